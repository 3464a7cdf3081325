"""The main job, ``noether-sym verify`` (THEORY §9): the contract document, the report
directory, exit statuses, and that the checks can fail."""

from __future__ import annotations

import json
import math

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
               "relu-net", "leaky-relu-net", "monomial-net"]


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


#: a measured finding, not a tolerance question: from an accurate gradient-flow limit
#: (‖∇L‖ = 1e-5) per-generator balance predicts units 1/2 of leaky-relu-net at 0.4975/0.7882,
#: SGD settles at 0.519/0.768 with a still-drifting tail (unit 3 agrees). The stationary state
#: of this family needs the whole-manifold flow (E22), which verify does not use yet, so its
#: (E16) checks must fail; the test below turns red the day they pass, to revisit this.
_KNOWN_OPEN = {("leaky-relu-net", "E16")}


def _known_open(c) -> bool:
    return (c.family, c.theorem.split()[0]) in _KNOWN_OPEN


@pytest.mark.slow
def test_true_predictions_pass_in_full_mode():
    rep = ns.verify(_STOCHASTIC)
    bad = [(c.family, c.theorem, c.predicted, c.measured, c.tolerance, c.detail) for c in rep.checks
           if not c.passed and not _known_open(c)]
    assert not bad
    assert all(math.isfinite(c.measured) for c in rep.checks)
    # the known open case is rejected by verify (the per-generator prediction is not confirmed)
    open_checks = [c for c in rep.checks if _known_open(c)]
    assert open_checks and not any(c.passed for c in open_checks)


@pytest.mark.slow
def test_quick_verify_passes_on_the_whole_catalog(capsys):
    """`noether-sym verify --quick` in CI: ≥ 8 families, every applicable check passes."""
    code = main(["verify", "--quick", "--json", "--no-report", "--no-progress"])
    doc = json.loads(capsys.readouterr().out)
    failed = [(c["family"], c["theorem"], c["predicted"], c["measured"], c["tolerance"]) for c in doc["checks"]
              if not c["passed"]]
    assert code == 0 and not failed
    assert len({c["family"] for c in doc["checks"]}) >= 8
    kinds = {c["kind"] for c in doc["checks"]}
    assert {"exact", "numeric", "stochastic"} <= kinds
