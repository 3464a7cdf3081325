"""The machine-checked proofs (``report._prove``, ``proofs/``): every proof passes, and each
one fails at the step that uses a hypothesis when that hypothesis is removed, showing the
failing expression."""

from __future__ import annotations

import pytest
import sympy as sp

from noether_sym.cli import _main as cli
from noether_sym.report._prove import (
    Proof,
    ProofCheck,
    ProofError,
    Step,
    discover,
    proofs_dir,
    proofs_document,
    run_proof,
    sign,
    zero,
)

PROOFS = discover()

#: (proof file, dropped hypothesis, name of the step that must fail)
DROPS = [
    ("e03_e04_infinitesimal", {"assume_e4": False}, "(E4) => (E3)"),
    ("e03_e04_infinitesimal", {"assume_e3": False}, "(E3) => (E4)"),
    ("e05_e07_transport", {"assume_e3": False}, "(E5) gradient transport"),
    ("e05_e07_transport", {"assume_e4": False}, "(E7) mean gradient"),
    ("e09_gradient_flow", {"assume_symmetry": False}, "(E7) kills the gradient term"),
    ("e10_e11_discrete", {"assume_symmetry": False}, "minibatch gradient is orthogonal"),
    ("e10_e11_discrete", {"independent_draws": False}, "minibatch moments"),
    ("e12_ito", {"assume_symmetry": False}, "no noise in dC"),
    ("e14_e17_equilibrium", {"noise_nonnegative": False}, "(E14) monotonicity"),
    ("e14_e17_equilibrium", {"both_signs": False}, "limits"),
    ("e18_divergent", {"semidefinite": False}, "divergent class: G has one sign"),
    ("e18_divergent", {"scale_invariant": False}, "scale invariance"),
    ("e19_sharpness", {"hessian_psd": False}, "convexity"),
    ("e19_sharpness", {"proportional_noise": False}, "noise proportional to curvature"),
    ("e19_sharpness", {"zero_mean_noise": False}, "label noise"),
    ("e20_e21_two_layer", {"at_minimum": False}, "gradients at a minimum"),
    ("e20_e21_two_layer", {"square_root": False}, "(E21) geometric mean solves it"),
]


def test_every_result_has_a_proof_file():
    tags = {t for f in PROOFS.values() for t in f().tags}
    wanted = {"E3", "E4", "E5", "E6", "E7", "E9", "E10", "E11", "E12", "E14", "E15", "E16", "E17", "E18", "E19", "E20", "E21"}
    assert wanted <= tags, wanted - tags


@pytest.mark.parametrize("name", sorted(PROOFS))
def test_proof_passes(name):
    res = run_proof(PROOFS[name]())
    failing = [(s.step.name, s.reason, s.expression) for s in res.steps if not s.ok]
    assert res.ok, failing
    assert all(s.checks or s.scope.startswith("logic") for s in res.proof.steps)


@pytest.mark.parametrize("name, drop, step", DROPS, ids=[f"{n}-{next(iter(d))}" for n, d, _ in DROPS])
def test_dropping_a_hypothesis_breaks_the_dependent_step(name, drop, step):
    res = run_proof(PROOFS[name](**drop))
    assert not res.ok
    k = res.failed_step
    failed = res.steps[k]
    assert failed.step.name == step, (failed.step.name, failed.reason)
    # every earlier step still passes: the failure is where the hypothesis is used
    assert all(s.ok for s in res.steps[:k])
    assert all(s.status == "skipped" for s in res.steps[k + 1:])
    # and the failing expression is shown (a nonzero residual, an offending term or a limit)
    assert failed.expression is not None and failed.expression != 0
    assert failed.reason


def test_each_hypothesis_of_each_proof_is_tested():
    import inspect

    for name, fn in PROOFS.items():
        params = set(inspect.signature(fn).parameters)
        tested = {next(iter(d)) for n, d, _ in DROPS if n == name}
        assert params == tested, (name, params - tested)


def test_failing_step_shows_the_expression_on_the_command_line(tmp_path, capsys):
    (tmp_path / "e99_bad.py").write_text(
        "import sympy as sp\n"
        "from noether_sym.report._prove import Proof, Step, zero\n"
        "a, b = sp.symbols('a b')\n"
        "def proof():\n"
        "    return Proof('bad', 'Bad', ('E0',), 'x', [], [\n"
        "        Step('ok', 'a &= a', 'trivial', [zero(a, a)]),\n"
        "        Step('freshman', '(a+b)^2 &= a^2+b^2', 'wrong', [zero((a + b)**2, a**2 + b**2)]),\n"
        "        Step('after', '0 &= 0', '', [zero(sp.Integer(0))])])\n"
    )
    code = cli.main(["prove", "--proofs", str(tmp_path), "--out", str(tmp_path / "tex")])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  bad step 2/3: freshman" in out and "failing expression: 2*a*b" in out
    assert "skip  bad step 3/3" in out
    assert "FAILED" in (tmp_path / "tex" / "proofs.tex").read_text()


def test_cli_usage_errors(tmp_path, capsys):
    assert cli.main(["prove", "--only", "no-such-proof"]) == 2
    assert "matches no proof file" in capsys.readouterr().err
    assert cli.main(["prove", "--proofs", str(tmp_path / "missing")]) == 2
    (tmp_path / "e01_x.py").write_text("x = 1\n")
    assert cli.main(["prove", "--proofs", str(tmp_path)]) == 2
    assert "defines no proof() function" in capsys.readouterr().err


def test_cli_prove_one_proof(capsys):
    assert cli.main(["prove", "--only", "e09"]) == 0
    out = capsys.readouterr().out
    assert "PASS  e09 step 3/4: (E7) kills the gradient term" in out
    assert "1 proofs, 4 steps: 4 passed, 0 failed" in out


def test_checks_can_fail():
    x = sp.Symbol("x", real=True)
    p = sp.Symbol("p", positive=True)
    assert zero(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1).evaluate()[0] is False  # expand does not use trig identities
    assert sign(x**2 - 2 * x + 1, "nonneg").evaluate()[0] is False  # not term by term
    assert sign(p**2 + 1, "positive").evaluate()[0] is True
    assert sign(p * 0 + x**2, "positive").evaluate()[0] is False  # no strictly positive term
    with pytest.raises(ProofError):
        run_proof("not a proof")
    with pytest.raises(Exception, match="unknown check kind"):
        ProofCheck("maybe", lambda: 0)


def test_a_crashing_check_is_a_failure():
    boom = Step("boom", "x &= y", "", [zero(lambda: 1 / sp.Matrix([[0]]).inv())])
    res = run_proof(Proof("k", "t", (), "s", [], [boom]))
    assert not res.ok and "raised" in res.steps[0].reason


def test_document_lists_every_step():
    res = [run_proof(PROOFS["e09_gradient_flow"]())]
    tex = proofs_document(res, seconds=1.0)
    assert tex.startswith(r"\documentclass") and tex.rstrip().endswith(r"\end{document}")
    assert tex.count(r"\textbf{Step") == 4 and r"\begin{theorem}" in tex


def test_proofs_dir_is_found():
    assert proofs_dir().name in ("proofs", "_proofs")
    with pytest.raises(ProofError, match="not a folder"):
        proofs_dir("/nonexistent/folder")


def test_every_proof_builds():
    for fn in PROOFS.values():
        assert fn() is not None  # building is cheap: the checks run lazily


@pytest.mark.parametrize("name, drop, step", [
    ("e09_gradient_flow", {"assume_symmetry": False}, "(E7) kills the gradient term"),
    ("e10_e11_discrete", {"assume_symmetry": False}, "(E10) exact step"),
])
def test_symbolic_dimension_checks_fail_without_the_hypothesis(name, drop, step):
    """The MatrixSymbol (symbolic n) checks depend on the hypothesis on their own."""
    proof = PROOFS[name](**drop)
    chk = next(c for s in proof.steps if s.name == step for c in s.checks if c.label == "symbolic n")
    ok, expr, _ = chk.evaluate()
    assert not ok and "theta.T*A" in str(expr)
    chk = next(c for s in PROOFS[name]().steps if s.name == step for c in s.checks if c.label == "symbolic n")
    assert chk.evaluate()[0]
