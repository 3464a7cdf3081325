"""Report: everything the theory says about one loss, in one object (:func:`derive`).

:func:`derive` runs the pipeline loss -> symmetries -> charges -> dynamics -> equilibria ->
sharpness and returns a :class:`Derivation`, which renders itself as a JSON summary
(``to_dict``) and as a complete LaTeX document (``latex``, written by ``report._latex``).

Design
------
The equilibria come from the one dispatcher, :func:`~noether_sym.theory._predict.predict_equilibrium`:
one prediction per generator (the generators come from the finder, already confirmed, so
``check_symmetry=False``) and, when every pair of generators commutes exactly, their joint
equilibrium. A loss without a data model still gets its symmetries and charges; the
stages that need the noise are skipped with a note instead of an error.
"""


from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import NoetherSymError
from .._printing import NotebookDisplay
from .._validate import Integer
from ..loss._loss import Loss, as_loss
from ..symmetry._finder import find_symmetries
from ..theory._dynamics import charge_dynamics
from ..theory._predict import predict_equilibrium
from ..theory._sharpness import sharpness_along_orbit
from ._latex import derivation_document

__all__ = ['Derivation', 'derive']



@dataclass
class Derivation(NotebookDisplay):
    """Symmetries, charges, drift laws, equilibria and sharpness of a loss."""

    loss: Loss
    symmetries: Any
    dynamics: list[Any]
    equilibria: list[Any]
    sharpness: list[Any]
    joint: Any
    theta: Any
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

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
) -> Derivation:
    """Everything THEORY §3–§6 says about ``loss``: symmetries, charges, the drift of every
    charge (E10)–(E12), and at a point θ the noise equilibrium (E16)–(E18) and the sharpness
    along each orbit (E19); commuting generators also get their joint equilibrium.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    >>> d = ns.derive(ns.Loss((u * w * x - x - e) ** 2, [u, w]), [2, 0.5])
    >>> d.equilibria[0].kind, d.sharpness[0].verdict
    ('balanced', 'flatten')
    """

    t0 = time.perf_counter()
    max_generators = Integer(0)(max_generators, "max_generators")
    loss = as_loss(loss)
    sym = find_symmetries(loss)
    gens = sym.generators[:max_generators]
    notes = []
    if len(sym.generators) > max_generators:
        notes.append(f"only the first {max_generators} of {len(sym.generators)} generators are derived")
    dyn, eqs, shs = [], [], []
    joint = None
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
        if theta is not None:
            for A in gens:
                eqs.append(predict_equilibrium(loss, theta, [A], batch_size=batch_size, weight_decay=weight_decay,
                                               lr=lr, check_symmetry=False, values=values).result)
                # λ* is measured on the orbit of Φ(θ) (the projection on the minimum manifold):
                # the sharpness must be taken along the same orbit
                start = eqs[-1].start
                at = start.theta if start is not None and start.moved else theta
                shs.append(sharpness_along_orbit(loss, A, at, lam_star=eqs[-1].lam, values=values))
            if eqs and eqs[0].start is not None and eqs[0].start.moved:
                notes.append(eqs[0].start.describe())
            if len(gens) > 1 and all(A * B == B * A for A in gens for B in gens):
                # the joint balance is the γ = 0 one: weight decay enters per generator above
                joint = predict_equilibrium(loss, theta, gens, values=values).result
    return Derivation(
        loss=loss,
        symmetries=sym,
        dynamics=dyn,
        equilibria=eqs,
        sharpness=shs,
        joint=joint,
        theta=theta,
        notes=notes,
        seconds=time.perf_counter() - t0,
    )
