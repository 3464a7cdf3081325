"""Tests of the documentation: the theory page ships and covers every citation, and the site builds.

- docs/theory.md has every tag (E1)-(E22) and every section that code, tests, proofs,
  notebooks and the README cite, and nothing cites a "THEORY.md" the repository lacks;
- the wheel ships the theory page (hatch force-include), as the CLI and reports cite it;
- ``mkdocs build --strict`` (warnings are errors) builds the site; its API page lists every
  public name of ``noether_sym`` with a docstring, the theory page carries its equations to
  MathJax, the CLI page has every subcommand's help, and every notebook is rendered.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest

import noether_sym as ns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THEORY = os.path.join(ROOT, "docs", "theory.md")
CITING = ("noether_sym", "proofs", "tests", "notebooks", "benchmarks", "examples")


def _citing_texts() -> dict[str, str]:
    paths = [os.path.join(ROOT, "README.md")]
    for top in CITING:
        for ext in ("py", "ipynb", "md", "toml"):
            paths += glob.glob(os.path.join(ROOT, top, "**", f"*.{ext}"), recursive=True)
    this = os.path.abspath(__file__)
    return {p: open(p, encoding="utf-8").read() for p in paths if os.path.abspath(p) != this}


def _theory() -> str:
    with open(THEORY, encoding="utf-8") as f:
        return f.read()


def test_theory_page_has_every_tag_once_as_an_equation():
    text = _theory()
    for k in range(1, 23):
        assert len(re.findall(rf"\\tag{{E{k}}}", text)) == 1, f"(E{k}) must be tagged exactly once"
    assert not re.search(r"\\tag{E(?:0|2[3-9]|[3-9]\d)}", text)


def test_every_cited_tag_and_section_exists():
    text = _theory()
    tags = {int(m) for m in re.findall(r"\\tag{E(\d+)}", text)}
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", text, flags=re.MULTILINE))
    assert {"1", "5", "7.2", "10"} <= sections
    missing = []
    for path, body in _citing_texts().items():
        for k in re.findall(r"\(E(\d+)\)", body):
            if int(k) not in tags:
                missing.append((path, f"(E{k})"))
        for s in re.findall(r"§ ?(\d+(?:\.\d+)?)", body):
            if s.rstrip(".") not in sections:
                missing.append((path, f"§{s}"))
    assert not missing, f"citations that docs/theory.md lacks: {missing[:10]}"


def test_nothing_cites_a_missing_theory_file():
    bad = [p for p, body in _citing_texts().items() if "THEORY.md" in body]
    assert not bad, f"these cite THEORY.md, which the repository does not have: {bad}"


def test_the_wheel_ships_the_theory_page():
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        cfg = f.read()
    assert '"docs/theory.md" = "noether_sym/_docs/theory.md"' in cfg


def test_api_page_generator_lists_every_public_name():
    sys.path.insert(0, os.path.join(ROOT, "docs"))
    try:
        import _hooks
    finally:
        sys.path.pop(0)
    page = _hooks.api_markdown()
    names = [n for n in dir(ns) if not n.startswith("_")]
    for name in names:
        assert f"::: noether_sym.{name}\n" in page, name
    cli = _hooks.cli_markdown()
    for sub in ("verify", "symmetries", "derive", "simulate", "prove", "families", "sweep"):
        assert f"## noether-sym {sub}\n" in cli
        assert "usage: noether-sym " + sub in cli


@pytest.mark.slow
def test_site_builds_strict(tmp_path):
    """The whole site with warnings as errors (about 30 s: griffe reads the package, the
    notebooks are converted without being executed)."""
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in (n for n in dir(ns) if not n.startswith("_") and n != "__version__"):
        obj = getattr(ns, name)
        if callable(obj) or name == "families":
            assert f'id="noether_sym.{name}"' in api, f"{name} is missing from the API page"
    # a docstring's first line is on the page (here: Loss)
    assert "A per-sample loss" in api
    theory = (site / "theory" / "index.html").read_text(encoding="utf-8")
    assert theory.count('class="arithmatex"') > 100  # equations are handed to MathJax
    for k in (1, 12, 17, 21, 22):
        assert rf"\tag{{E{k}}}" in theory
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    assert "usage: noether-sym verify" in cli and "--quick" in cli
    for nb in glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")):
        stem = os.path.splitext(os.path.basename(nb))[0]
        assert (site / "notebooks" / stem / "index.html").is_file(), f"notebook {stem} not rendered"


# ------------------------------------------------------------------------------------------
# Notebook display: every result object shows its math and key numbers
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rescaling():
    import sympy as sp
    from sympy.stats import Normal

    u, w = sp.symbols("u w")
    x, e = Normal("x", 0, 1), Normal("e", 0, sp.Rational(1, 2))
    loss = ns.Loss((u * w * x - (x + e)) ** 2, params=[u, w])
    sym = ns.find_symmetries(loss)
    return loss, sym, (u, w)


def _latex_ok(obj, *needles):
    tex = obj._repr_latex_()
    assert isinstance(tex, str) and tex.strip(), type(obj).__name__
    assert tex.count("$$") % 2 == 0 and "\\begin{align*}" not in tex  # display math MathJax/KaTeX read
    for n in needles:
        assert n in tex, f"{type(obj).__name__}: {n!r} not in {tex[:400]!r}"
    return tex


def test_display_of_symbolic_results(rescaling):
    loss, sym, (u, w) = rescaling
    A = sym.generators[0]
    _latex_ok(sym, "1 generator", "u^{2} - w^{2}")
    _latex_ok(ns.charge_dynamics(loss, A), "(E12)")
    # the balance point of the minimum uw = 1 reached from (2, 1) is θ* = (1, 1) (docs/theory.md §5),
    # λ* = ¼ log(s₊/s₋) at Φ(θ₀); the display shows λ* to 10 digits and θ*
    eq = ns.noise_equilibrium(loss, A, {u: 2, w: 1})
    tex = _latex_ok(eq, "balanced", r"\left(1, 1\right)", "certified bracket")
    assert f"{eq.lam:.10g}" in tex
    joint = ns.joint_equilibrium(loss, [A], {u: 2, w: 1})
    assert f"{joint.lams[0]:.8g}" in _latex_ok(joint, "joint equilibrium")
    sh = ns.sharpness_along_orbit(loss, A, {u: 2, w: 1})
    _latex_ok(sh, "(E19)", sh.verdict)
    d = ns.derive(loss, {u: 2, w: 1})
    _latex_ok(d, "2 parameters", f"{d.equilibria[0].lam:.8g}", d.sharpness[0].verdict)
    # a two-layer closed form (E21) by hand: U = I, W = diag(2, 1/2), Σ_x = Σ_ε = I gives
    # M_W = W², M_U = I, c = 1, X = M_W^{-1} # I = W^{-1} = diag(0.5, 2)
    import numpy as np

    tl = ns.two_layer_equilibrium(np.eye(2), np.diag([2.0, 0.5]), np.eye(2), np.eye(2))
    _latex_ok(tl, "(E21)", "0.5", "2")
    for obj in (sym, eq, joint, sh, d, tl):
        assert obj._repr_html_() is None  # math objects show as LaTeX


def test_display_of_the_noether_flow(rescaling):
    if not hasattr(ns, "noether_flow"):
        pytest.fail("ns.noether_flow is missing")
    loss, _sym, (u, w) = rescaling
    flow = ns.noether_flow(loss, {u: 2, w: 1}, batch_size=1)
    _latex_ok(flow, "(E22)", flow.kind, f"{flow.theta[0]:.5g}")


def test_display_of_tables(rescaling):
    loss, _sym, (u, w) = rescaling
    cmp = ns.compare(loss, {u: 2, w: 1}, lr=0.05, batch_size=1, steps=400, replicas=8,
                     observables={"u^2": u**2}, richardson=False, seed=0)
    html = cmp._repr_html_()
    assert "<table>" in html and "u^2" in html and f"{cmp.predicted[0]:.6g}" in html
    assert f"{cmp.runs[0].value[0]:.6g}" in html
    rep = ns.verify(["tanh-net"], quick=True)
    html = rep._repr_html_()
    assert "<table>" in html and "tanh-net" in html and rep.summary().split(" (")[0] in html


# ------------------------------------------------------------------------------------------
# First contact: the main job's dependencies
# ------------------------------------------------------------------------------------------


def test_verify_needs_no_extra_for_its_figures():
    """`pip install .` must bring what `noether-sym verify` uses for figures and progress."""
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0].lower() for d in deps}
    assert {"matplotlib", "tqdm"} <= names


def test_a_missing_figure_dependency_is_said_once(tmp_path, capsys):
    calls = []

    def needs_matplotlib():
        calls.append(1)
        raise ImportError("plotting needs matplotlib, a dependency of noether_sym that is not installed")

    checks = [ns.Check("fam", f"E1{k}", "statement", "stochastic", 1.0, 1.0, 0.1, True) for k in range(3)]
    rep = ns.VerifyReport(checks, 0.1, True, ["fam"], 0, figures={0: needs_matplotlib, 1: needs_matplotlib})
    rep.write(tmp_path / "out")
    err = capsys.readouterr().err
    assert err.count("no figures written") == 1 and "matplotlib" in err
    assert len(calls) == 1
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "no figures written" in md and "matplotlib" in md


# ------------------------------------------------------------------------------------------
# First contact: the command line's frictions
# ------------------------------------------------------------------------------------------


def _cli(*argv):
    from noether_sym.cli import main

    return main(list(argv))


def test_a_typo_in_a_family_name_gets_did_you_mean(capsys):
    assert _cli("symmetries", "resacling") == 2
    err = capsys.readouterr().err
    assert "did you mean 'rescaling'" in err and "linear-net" not in err
    with pytest.raises(ns.InvalidArgumentError, match="the catalog has"):
        ns.families.get("zzzz")  # nothing close: the whole list


def test_simulate_loss_names_every_missing_flag_at_once(capsys):
    code = _cli("simulate", "--loss", "(u*w*x - x - e)^2", "--params", "u,w", "--data", "x,e", "--lr", "0.01")
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    for flag in ("--theta0", "--batch-size", "--steps", "--replicas", "--gaussian", "x, e"):
        assert flag in err
    assert "--lr," not in err  # given


def test_simulate_loss_gaussian_runs(capsys):
    code = _cli("simulate", "--loss", "(u*w*x - x - e)^2", "--params", "u,w", "--data", "x,e", "--gaussian",
                "--theta0", "u=2,w=1", "--lr", "0.01", "--batch-size", "1", "--steps", "50", "--replicas", "4")
    assert code == 0
    assert "diverged: none" in capsys.readouterr().out


def test_gd_needs_no_batch_size_and_sgd_says_it_needs_one():
    import numpy as np
    import sympy as sp
    from sympy.stats import Normal

    u, w = sp.symbols("u w")
    x = Normal("x", 0, 1)
    loss = ns.Loss((u * w * x - x) ** 2, [u, w])
    res = ns.simulate(loss, {u: 2, w: 1}, lr=0.01, steps=3, replicas=2, optimizer="gd")
    # GD by hand: L = (uw - 1)², ∇L = 2(uw - 1)(w, u)
    th = np.array([2.0, 1.0])
    for _ in range(3):
        th = th - 0.01 * 2 * (th[0] * th[1] - 1) * th[::-1]
    assert np.allclose(res.theta, th, rtol=1e-12)
    with pytest.raises(ns.InvalidArgumentError, match="batch_size"):
        ns.simulate(loss, {u: 2, w: 1}, lr=0.01, steps=3, replicas=2)
