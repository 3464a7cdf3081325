"""Report: everything the theory says about one loss, in one object (:func:`derive`).

:func:`derive` runs the pipeline loss -> symmetries -> charges -> dynamics -> equilibria ->
sharpness and returns a :class:`Derivation`, which renders itself as a JSON summary
(``to_dict``) and as a complete LaTeX document (``latex``, written by ``report._latex``).

Design
------
Gradient flow from θ₀ to Φ(θ₀) runs once (bounded by ``flow_evaluations``; a flow that
does not settle is a note, never an error), and every prediction is made from Φ(θ₀). The
equilibria come from the one dispatcher, :func:`~noether_sym.theory._predict.predict_equilibrium`:
one prediction per generator (the generators come from the finder, already confirmed, so
``check_symmetry=False``) and, when every pair of generators commutes exactly, their joint
equilibrium. Where these do not give SGD's stationary state -- generators that do not
commute (:func:`~noether_sym.theory._predict.flow_reason`) or a local symmetry the
dispatcher refuses -- the Noether flow (E22) does
(:func:`~noether_sym.theory._predict.predict_with_flow`); ``Derivation.prediction`` and
``how`` say which prediction applies. A loss without a data model still gets its
symmetries and charges; the stages that need the noise are skipped with a note instead of
an error.
"""


from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import GradientFlowError, InvalidArgumentError, LocalSymmetryError, NoetherSymError
from .._printing import NotebookDisplay
from .._validate import Integer
from ..loss._loss import Loss, as_loss
from ..symmetry._finder import find_symmetries
from ..theory._dynamics import charge_dynamics
from ..theory._gradient_flow import gradient_flow_limit
from ..theory._predict import flow_reason, predict_equilibrium, predict_with_flow
from ..theory._sharpness import sharpness_along_orbit
from ._latex import derivation_document

__all__ = ['Derivation', 'derive']



@dataclass
class Derivation(NotebookDisplay):
    """Symmetries, charges, drift laws, equilibria and sharpness of a loss.

    ``equilibria``/``sharpness`` hold one result per generator (each balance with the other
    charges fixed), ``joint`` the joint equilibrium of a commuting set, ``flow`` the
    :class:`~noether_sym.NoetherFlow` where that is the prediction; ``prediction`` names the
    prediction of SGD's stationary state that applies (``"per-generator"``, ``"joint"``,
    ``"noether_flow"`` or ``"none"``) and ``how`` says how it was made and why.
    """

    loss: Loss
    symmetries: Any
    dynamics: list[Any]
    equilibria: list[Any]
    sharpness: list[Any]
    joint: Any
    theta: Any
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    flow: Any = None
    prediction: str = "none"
    how: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "loss": self.loss.name,
            "n_params": self.loss.n,
            "symmetries": self.symmetries.to_dict(with_matrices=True),
            "charges": [str(c) for c in self.symmetries.charges],
            "drift": [str(d.drift) for d in self.dynamics],
            "trace_A_sigma": [str(d.trace_A_sigma) for d in self.dynamics],
            "equilibria": [e.to_dict() for e in self.equilibria],
            "sharpness": [
                {"argmin": s.argmin, "lam_star": s.lam_star, "change": s.change, "verdict": s.verdict}
                for s in self.sharpness
            ],
            "notes": self.notes,
            "seconds": round(self.seconds, 4),
            "projection": next((e.start.to_dict() for e in self.equilibria if e.start is not None), None),
            "prediction": self.prediction,
            "how": self.how,
        }
        if self.flow is not None:
            out["noether_flow"] = {
                "kind": self.flow.kind,
                "reason": self.flow.reason,
                "theta": [float(v) for v in self.flow.theta],
                "rotation_rate": float(self.flow.rotation_rate),
                "start": [float(v) for v in self.flow.start],
                "method": self.flow.method,
            }
        if self.joint is not None:
            out["joint"] = {
                "lams": [float(v) for v in self.joint.lams],
                "theta": [float(v) for v in self.joint.theta],
                "max_residual": float(abs(self.joint.residuals).max()) if len(self.joint.residuals) else 0.0,
                "kind": self.joint.kind,
            }
        return out

    def _latex_(self, names: Mapping[Any, str] | None) -> str:
        return derivation_document(self, names)

    def latex(self) -> str:
        """A complete LaTeX document with every derived object."""

        return derivation_document(self)


def derive(
    loss: Loss,
    theta: Any = None,
    *,
    batch_size: int = 1,
    weight_decay: float = 0.0,
    lr: float | None = None,
    values: Any = None,
    max_generators: int = 12,
    flow: bool | None = None,
    flow_evaluations: int = 5_000,
) -> Derivation:
    """Everything the theory (docs/theory.md §3–§6, §10) says about ``loss``: symmetries,
    charges, the drift of every charge (E10)–(E12), and at a point θ the noise equilibrium
    (E16)–(E18) and the sharpness along each orbit (E19); commuting generators also get their
    joint equilibrium, and where these do not give SGD's stationary state (generators that
    do not commute, a local symmetry) the Noether flow (E22) does.

    Parameters
    ----------
    loss
        The Loss (a data model is needed for everything past the charges).
    theta
        The start θ₀; predictions are made from Φ(θ₀), where gradient flow from θ₀ lands
        (computed once, with at most ``flow_evaluations`` gradient evaluations; a flow that
        does not settle is a note, not an equilibrium).
    batch_size, weight_decay, lr, values
        As in :func:`~noether_sym.noise_equilibrium`.
    max_generators
        Derive at most this many generators.
    flow
        ``None``: run :func:`~noether_sym.noether_flow` only where the per-generator and joint
        predictions do not apply; ``True``: always; ``False``: never (a note says so).

    Returns
    -------
    Derivation
        ``prediction`` says which prediction of the stationary state applies
        (``"per-generator"``, ``"joint"``, ``"noether_flow"`` or ``"none"``) and ``how`` why.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    >>> d = ns.derive(ns.Loss((u * w * x - x - e) ** 2, [u, w]), [2, 0.5])
    >>> d.equilibria[0].kind, d.sharpness[0].verdict, d.prediction
    ('balanced', 'flatten', 'per-generator')
    """

    t0 = time.perf_counter()
    max_generators = Integer(0)(max_generators, "max_generators")
    flow_evaluations = Integer(10)(flow_evaluations, "flow_evaluations")
    if flow not in (None, True, False):
        raise InvalidArgumentError(f"flow must be None (when needed), True or False; got {flow!r}")
    loss = as_loss(loss)
    sym = find_symmetries(loss)
    gens = sym.generators[:max_generators]
    notes = []
    if len(sym.generators) > max_generators:
        notes.append(f"only the first {max_generators} of {len(sym.generators)} generators are derived")
    dyn: list[Any] = []
    has_data = bool(loss.random_symbols) or loss.dataset is not None
    if not has_data:
        notes.append("no data distribution: dynamics and equilibria need random symbols or a dataset")
    else:
        for A in gens:
            try:
                dyn.append(charge_dynamics(loss, A, values=values))
            except NoetherSymError as exc:
                notes.append(f"dynamics: {exc}")
                break
    pred = _Predictions()
    if has_data and theta is not None:
        pred = _predict(loss, theta, gens, notes, batch_size=batch_size, weight_decay=weight_decay, lr=lr,
                        values=values, flow=flow, flow_evaluations=flow_evaluations)
    return Derivation(
        loss=loss,
        symmetries=sym,
        dynamics=dyn,
        equilibria=pred.eqs,
        sharpness=pred.shs,
        joint=pred.joint,
        theta=theta,
        notes=notes,
        seconds=time.perf_counter() - t0,
        flow=pred.flow,
        prediction=pred.route,
        how=pred.how,
    )


@dataclass
class _Predictions:
    eqs: list[Any] = field(default_factory=list)
    shs: list[Any] = field(default_factory=list)
    joint: Any = None
    flow: Any = None
    route: str = "none"
    how: str = "no point θ or no data model: no prediction"


def _predict(loss: Loss, theta: Any, gens: list[Any], notes: list[str], *, batch_size: int, weight_decay: float,
             lr: float | None, values: Any, flow: bool | None, flow_evaluations: int) -> _Predictions:
    """Φ(θ₀) once, then the equilibria along each generator, their sharpness, the joint
    equilibrium of a commuting set, and the Noether flow where the dispatcher says it is needed."""
    out = _Predictions()
    if not gens and not flow:
        out.how = "no symmetry generator: no charge, nothing to balance"
        return out
    try:
        phi = gradient_flow_limit(loss, theta, values=values, max_evaluations=flow_evaluations)
    except GradientFlowError as exc:
        notes.append(f"no prediction: {exc}")
        out.how = f"no prediction ({exc}; derive's budget is flow_evaluations={flow_evaluations})"
        return out
    if phi.moved:
        notes.append(phi.describe())
    at = phi.theta if phi.moved else theta  # on the manifold: keep θ exact (rationals stay fast)
    reason = flow_reason(gens) if len(gens) > 1 else None
    for A in gens:
        try:
            p = predict_equilibrium(loss, at, [A], batch_size=batch_size, weight_decay=weight_decay, lr=lr,
                                    check_symmetry=False, values=values)
        except LocalSymmetryError as exc:
            reason = str(exc)
            break
        eq = p.result
        if phi.moved:
            eq.start = phi  # predicted from Φ(θ₀): the start that was projected, not Φ(θ₀) itself
        out.eqs.append(eq)
        # λ* is measured on the orbit of Φ(θ₀): the sharpness is taken along the same orbit
        out.shs.append(sharpness_along_orbit(loss, A, at, lam_star=eq.lam, values=values))
    if reason is None and len(out.eqs) > 1:
        # the joint balance is the γ = 0 one: weight decay enters per generator above
        try:
            jp = predict_equilibrium(loss, at, gens, values=values)
        except LocalSymmetryError as exc:
            reason = str(exc)
        else:
            out.joint = jp.result
            if phi.moved:
                out.joint.start = phi
            out.route, out.how = "joint", jp.how
    elif reason is None and out.eqs:
        out.route, out.how = "per-generator", f"noise_equilibrium per generator ({out.eqs[0].method})"
    if reason is not None and flow is None and out.eqs and all(e.kind == "degenerate" for e in out.eqs):
        # no noise along any generator: no charge drifts (E12), nothing for the flow to balance
        notes.append(f"the generators do not commute, but every one is degenerate (no noise along it): the charges "
                     "do not drift (E12) and the Noether flow was not run (flow=True runs it)")
        out.route, out.how = "per-generator", "noise_equilibrium per generator (every generator degenerate)"
        return out
    if reason is not None or flow:
        why = reason or "requested (flow=True)"
        if flow is False:
            notes.append(f"the per-generator predictions do not give the stationary state ({why}); "
                         "the Noether flow was not run (flow=False)")
            out.how = f"none: {why}"
            return out
        try:
            fp = predict_with_flow(loss, theta, why, batch_size=batch_size, weight_decay=weight_decay, lr=lr,
                                   values=values)
        except NoetherSymError as exc:
            notes.append(f"Noether flow (E22) refused: {exc}")
            out.how = f"none: {why}; the Noether flow refused ({exc})"
            return out
        out.flow, out.route, out.how = fp.result, "noether_flow", fp.how
        if reason is not None:
            notes.append(f"stationary state from the Noether flow (E22): {reason}")
    return out
