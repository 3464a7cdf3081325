"""The main job, ``noether-sym verify`` (THEORY §9): the contract document, the report
directory, exit statuses, and that the checks can fail."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import noether_sym as ns
from noether_sym.check import _verify
from noether_sym.cli._main import main


def test_verify_json_follows_the_contract(capsys):
    code = main(["verify", "--quick", "--family", "rescaling", "--family", "tanh-net", "--json", "--no-report",
                 "--no-progress"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["passed"] is True
    assert isinstance(doc["seconds"], float) and doc["seconds"] > 0
    keys = {"family", "theorem", "predicted", "measured", "tolerance", "passed"}
    assert doc["checks"] and all(keys <= set(c) for c in doc["checks"])
    assert {c["family"] for c in doc["checks"]} == {"rescaling", "tanh-net"}
    theorems = {c["theorem"].split()[0] for c in doc["checks"] if c["family"] == "rescaling"}
    # every theorem the family declares and verify can check is there
    assert {"E4", "E5", "E6", "E7", "E9", "E10", "E11", "E14", "E16"} <= theorems
    for c in doc["checks"]:
        assert c["passed"] is True
        assert abs(c["measured"] - c["predicted"]) <= c["tolerance"]


def test_report_directory(tmp_path):
    rep = ns.verify(["rescaling"], quick=True, out=tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"report.md", "results.json", "derivations.tex"} <= names
    pngs = sorted(n for n in names if n.endswith(".png"))
    stochastic = [c for c in rep.checks if c.kind == "stochastic"]
    assert len(pngs) >= 2 and all(c.figure in pngs for c in stochastic if c.figure)
    md = (tmp_path / "report.md").read_text()
    assert "| rescaling | E16" in md and "![" in md
    doc = json.loads((tmp_path / "results.json").read_text())
    assert len(doc["checks"]) == len(rep.checks)
    assert r"\begin{document}" in (tmp_path / "derivations.tex").read_text()


def test_exit_status_one_when_a_check_fails(monkeypatch, capsys):
    def failing(case):
        return [_verify.Check(case.name, "E0", "a check that fails", "exact", 1, 0, 0, False)]

    monkeypatch.setattr(_verify, "CHECKS", [("E4", failing)])
    assert main(["verify", "--quick", "--family", "tanh-net", "--no-report", "--no-progress"]) == 1
    assert "NO" in capsys.readouterr().out


def test_unknown_family_is_a_usage_error(capsys):
    assert main(["verify", "--family", "no-such-net", "--no-report"]) == 2
    assert "no family" in capsys.readouterr().err


def test_bad_perturb():
    with pytest.raises(ns.InvalidArgumentError):
        ns.verify(["tanh-net"], perturb=0)


# every family with an equilibrium check ((E16), (E18), (E21)) and (E11) checks; in full mode
# the replicas of a check are scaled up until 4 s.e. ≤ 3% of the prediction
_STOCHASTIC = ["rescaling", "scale-invariant-2d", "normalized-linear", "diagonal-net", "matrix-factorization",
               "relu-net", "leaky-relu-net", "monomial-net", "matrix-factorization-rotating"]


@pytest.mark.slow
@pytest.mark.parametrize("factor", [1.1, 0.9])
def test_stochastic_checks_fail_when_a_prediction_is_10_percent_off(factor):
    """Every stochastic prediction, moved by 10%, is rejected (full mode: Richardson, 3%
    bias allowance + 4 s.e.), while the true predictions pass."""
    rep = ns.verify(_STOCHASTIC, perturb=factor)
    stochastic = [c for c in rep.checks if c.kind == "stochastic"]
    assert len(stochastic) >= 30
    assert not [(c.family, c.theorem) for c in stochastic if c.passed]
    # the exact and numeric checks do not depend on predictions: they still pass
    assert all(c.passed for c in rep.checks if c.kind in ("exact", "numeric"))




#: a measured finding, not a tolerance question: leaky-relu-net's minima (linear teacher) are
#: degenerate -- the units' |·| parts must cancel, which puts every unit on one line, and at
#: Φ(θ₀) the population Hessian has 5 null directions for 3 generators -- so per-generator
#: balance is not SGD's stationary state (it predicted 0.498/0.787 for units 1/2, SGD settles
#: at 0.525/0.765 and drifts). Φ(θ₀) there is refused (GradientFlowError: the charges do not
#: pin it, or the Monte Carlo flow's end point does not polish onto a minimum), so its (E16)
#: check fails with that reason; the tests below turn red the day it passes, to revisit this.
_KNOWN_OPEN = {("leaky-relu-net", "E16")}


def _known_open(c) -> bool:
    return (c.family, c.theorem.split()[0]) in _KNOWN_OPEN


@pytest.mark.slow
def test_true_predictions_pass_in_full_mode():
    rep = ns.verify(_STOCHASTIC)
    bad = [(c.family, c.theorem, c.predicted, c.measured, c.tolerance, c.detail) for c in rep.checks
           if not c.passed and not _known_open(c)]
    assert not bad
    assert all(math.isfinite(c.measured) for c in rep.checks if not _known_open(c))
    # the known open case is rejected by verify (the per-generator prediction is not confirmed)
    open_checks = [c for c in rep.checks if _known_open(c)]
    assert open_checks and not any(c.passed for c in open_checks)


@pytest.mark.slow
def test_quick_verify_passes_on_the_whole_catalog(capsys):
    """`noether-sym verify --quick` in CI: ≥ 8 families, every applicable check passes."""
    code = main(["verify", "--quick", "--json", "--no-report", "--no-progress"])
    doc = json.loads(capsys.readouterr().out)
    failed = [(c["family"], c["theorem"], c["predicted"], c["measured"], c["tolerance"]) for c in doc["checks"]
              if not c["passed"] and (c["family"], c["theorem"].split()[0]) not in _KNOWN_OPEN]
    open_failed = any(not c["passed"] for c in doc["checks"] if (c["family"], c["theorem"].split()[0]) in _KNOWN_OPEN)
    assert not failed and code == (1 if open_failed else 0)
    assert len({c["family"] for c in doc["checks"]}) >= 8
    kinds = {c["kind"] for c in doc["checks"]}
    assert {"exact", "numeric", "stochastic"} <= kinds


# ---- the Noether flow (E22) ---------------------------------------------------------------


def _rotating_flow():
    fam = ns.families.get("matrix-factorization-rotating")
    loss = fam.build()
    return loss, ns.noether_flow(loss, fam.theta0(loss))


def test_flow_invariants_are_constant_on_the_steady_rotation():
    """On the rotating two-layer case the observables verify uses are invariants of the
    rotation: checked here against a hand-built rotation of the hidden frame, W -> R W,
    U -> U Rᵀ (R ∈ SO(2)), which must leave them unchanged, while a single weight changes."""
    from noether_sym.check._verify_flow import flow_invariants

    loss, flow = _rotating_flow()
    assert flow.kind == "rotating"
    gens = [np.array(A.tolist(), dtype=float) for A in ns.find_symmetries(loss).generators]
    obs = flow_invariants(flow, gens)
    assert "‖C‖²" in obs and len(obs) == 3
    W, U = flow.theta[:4].reshape(2, 2), flow.theta[4:].reshape(2, 2)
    c, s_ = np.cos(0.7), np.sin(0.7)
    R = np.array([[c, -s_], [s_, c]])
    turned = np.concatenate([(R @ W).ravel(), (U @ R.T).ravel()])
    assert not np.allclose(turned, flow.theta)
    for f in obs.values():
        assert float(f(turned)) == pytest.approx(float(f(flow.theta)), rel=1e-10)
    # ‖C‖² is the Frobenius norm of Q = WWᵀ − UᵀU up to the generators' normalisation: the
    # ratio is the same at two points of different Q
    Q = lambda th: th[:4].reshape(2, 2) @ th[:4].reshape(2, 2).T - th[4:].reshape(2, 2).T @ th[4:].reshape(2, 2)
    other = flow.trajectory[1][0]
    r1 = float(obs["‖C‖²"](flow.theta)) / np.sum(Q(flow.theta) ** 2)
    r2 = float(obs["‖C‖²"](other)) / np.sum(Q(other) ** 2)
    assert r1 == pytest.approx(r2, rel=1e-9)


@pytest.mark.slow
def test_noether_flow_check_on_the_rotating_two_layer_case():
    """(E22) in quick mode on THEORY §7.2's caveat: the verdicts come from the flow (route
    noether_flow, said in the detail), pass, and fail when the prediction moves by 10%
    (quick mode: the measurement at η = 0.0025 within 6% + 4 s.e.)."""
    rep = ns.verify(["matrix-factorization-rotating"], quick=True, skip=["E11"])
    flow_checks = [c for c in rep.checks if c.theorem.startswith("E22")]
    assert len(flow_checks) == 3 and all(c.passed for c in rep.checks)
    assert all("prediction (noether_flow)" in c.detail and "rotating" in c.detail for c in flow_checks)
    assert all(c.tolerance < 0.1 * abs(c.predicted) for c in flow_checks)
