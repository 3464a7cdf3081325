"""Check: the Noether flow (E22) of THEORY §10 against simulated SGD (a theorem check of verify).

:func:`check_noether_flow` integrates the slow flow from Φ(θ₀) with
:func:`~noether_sym.noether_flow` and measures its stationary state with SGD at η, 2η and 4η
(η → 0 from the clean runs, :func:`~noether_sym.compare`), through observables that are
constant on that state:

* at a fixed point, the positive and negative parts θᵀA±θ of the charges (as for (E16));
* on a steady rotation θ(τ) = e^{τJ}θ*, the invariants of the rotation: the parts θᵀA±θ of
  the charges whose generator commutes with J, and ‖C‖², the squared norm of the charge
  vector in a Frobenius-orthonormal basis of the generators (conjugation by e^{τJ} maps the
  symmetry algebra to itself and keeps that norm). Each is confirmed constant along one
  period of the predicted rotation (to 1e-8 relative) before it is used.

Design
------
Same verdict as every stochastic check (``_verify_base``): the Richardson estimate within
``rtol·|predicted| + 4 s.e.`` and a stationary tail. The run length comes from the flow's own
relaxation time (its trajectory), not from a per-family constant: the base run covers at
least ten of them, so the tail half is at e⁻⁵ of the initial distance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import null_space

from .._errors import LocalSymmetryError
from ..theory._noether_flow import NoetherFlow, _rotation_samples, noether_flow
from ..theory._predict import predict_equilibrium
from ._compare import _flow_relaxation_steps, _observable_functions
from ._verify_base import (
    _MAX_STEPS,
    _RTOL,
    Check,
    _Case,
    _compare_resolved,
    _sim_settings,
    _split_observables,
    _stochastic_from_comparison,
    _timed,
)

__all__ = ["check_noether_flow", "flow_comparison", "flow_invariants", "local_symmetry_flow"]

#: an observable counts as constant on the stationary state within this relative spread
_INVARIANT_RTOL = 1e-8
#: the base run covers this many relaxation times of the flow
_RELAXATIONS = 10


def flow_invariants(flow: NoetherFlow, gens_f: list[np.ndarray], k: int = 3) -> dict[str, Any]:
    """Observables (name -> batched function θ (..., n) -> (...)) constant on the flow's
    stationary state: the charge parts θᵀA±θ at a fixed point (first ``k`` generators); on a
    steady rotation the parts of the charges that commute with it and ‖C‖² (see the module
    docstring), each confirmed constant along one period."""
    if flow.kind != "rotating" or not gens_f:
        obs, _ = _split_observables(gens_f, k)
        return obs or {"‖θ‖²": lambda T: np.einsum("...i,...i->...", T, T)}
    J = flow.rotation_generator
    M = np.stack([(J @ A - A @ J).ravel() for A in gens_f], axis=1)
    fixed = null_space(M, rcond=1e-10)  # coefficients v with [J, Σ v_i A_i] = 0
    commuting = [np.tensordot(v, np.stack(gens_f), axes=1) for v in fixed.T]
    obs, _ = _split_observables(commuting, k)
    obs = {nm.replace("θᵀA", "θᵀB"): f for nm, f in obs.items()}  # B: generators commuting with J
    G = np.array([[float(np.sum(A * B)) for B in gens_f] for A in gens_f])
    Ginv = np.linalg.pinv(G)
    stack = np.stack(gens_f)

    def norm_c(T: np.ndarray) -> np.ndarray:
        c = np.einsum("...i,kij,...j->...k", T, stack, T)
        return np.einsum("...k,kl,...l->...", c, Ginv, c)

    obs["‖C‖²"] = norm_c
    pts = _rotation_samples(J, flow.theta)
    keep = {}
    for nm, f in obs.items():
        v = np.asarray(f(pts), dtype=float).reshape(len(pts))
        if float(v.max() - v.min()) <= _INVARIANT_RTOL * max(1.0, float(np.abs(v).max())):
            keep[nm] = f
    return keep


@_timed
def check_noether_flow(case: _Case) -> list[Check]:
    """(E22): SGD settles at the stationary state of the Noether flow from Φ(θ₀) (a fixed
    point, or a steady rotation seen through its invariants)."""

    if not (case.loss.random_symbols or case.loss.dataset is not None):
        return []
    kw = _sim_settings(case)
    gamma = float(case.settings.get("weight_decay", 0.0))
    th = case.minimum()
    flow = noether_flow(case.loss, th, batch_size=kw["batch_size"], weight_decay=gamma,
                        lr=kw["lr"] if gamma > 0 else None, seed=case.seed)
    if flow.kind not in ("fixed point", "rotating"):
        ok = flow.kind in ("divergent", "degenerate")  # no stationary state: (E18) checks the divergence
        if ok:
            return []
        return [Check(case.name, "E22", "the Noether flow reaches a stationary state", "error", np.nan, np.nan,
                      np.nan, False, detail=f"noether_flow: {flow.kind}: {flow.reason}")]
    if gamma > 0:
        kw["weight_decay"] = gamma
    cmp = flow_comparison(case, th, flow, flow_invariants(flow, case.gens_f), kw)
    what = (f"a steady rotation at ω = {flow.rotation_rate:.4g} per unit η²k/S, seen through its invariants"
            if flow.kind == "rotating" else "a fixed point")
    return _stochastic_from_comparison(
        case, "E22", f"SGD settles at the stationary state of the Noether flow from Φ(θ₀): {what}", cmp,
        _RTOL["quick" if case.quick else "full"])


def flow_comparison(case: _Case, th: np.ndarray, flow: NoetherFlow, obs: dict[str, Any], kw: dict[str, Any]) -> Any:
    """``compare`` against the flow's stationary state (route ``"noether_flow"``), the base run
    at least ``_RELAXATIONS`` relaxation times of the flow long (capped at ``_MAX_STEPS``)."""
    _, evaluate = _observable_functions(case.loss, obs, None)
    tau = _flow_relaxation_steps(flow, evaluate, kw["lr"], kw["batch_size"])
    kw = dict(kw)
    if tau is not None:
        kw["steps"] = max(kw["steps"], min(int(_RELAXATIONS * tau), _MAX_STEPS))
    return _compare_resolved(case, th, observables=obs, predicted=flow, **kw)


def local_symmetry_flow(case: _Case, th: np.ndarray, batch_size: int) -> tuple[NoetherFlow, str] | None:
    """(the Noether flow from ``th``, why) when the generators' joint balance is not SGD's
    stationary state because a local symmetry the generators miss drives the flow
    (:func:`~noether_sym.predict_equilibrium` raises LocalSymmetryError); else None."""
    try:
        predict_equilibrium(case.loss, list(th), case.gens, batch_size=batch_size, finite=True)
    except LocalSymmetryError as exc:
        why = str(exc).split(": per-generator")[0]
        return noether_flow(case.loss, th, batch_size=batch_size, seed=case.seed), why
    return None
