"""Theory: the one place that decides how to predict the stationary state of SGD.

:func:`predict_equilibrium` chooses the route from what it is given and returns a
:class:`Prediction` that names the route and holds the underlying result:

* ``"single"`` -- one generator: :func:`~noether_sym.noise_equilibrium`, the root of the
  balance function G (E16)-(E18);
* ``"joint"`` -- several pairwise commuting generators:
  :func:`~noether_sym.joint_equilibrium`, Tr[A_jΣ(θ*)] = 0 for every j;
* ``"two_layer"`` -- a two-layer linear network with its data covariances
  (``two_layer=TwoLayerModel(...)``): the closed form over the whole GL(d) orbit,
  :func:`~noether_sym.two_layer_equilibrium` (E20)-(E21);
* ``"noether_flow"`` -- where none of these gives the stationary state (generators that do
  not commute, a local symmetry): the slow flow (E22), :func:`~noether_sym.noether_flow`,
  through :func:`flow_reason` and :func:`predict_with_flow`.

Design
------
Every consumer (``compare``, ``derive``, the theorem checks, the command line) used to
make this choice itself, each with slightly different rules; they now state only what
differs for them (``check_symmetry``, ``finite``) and share the rules here. Rejections
that mean "the theory gives no single point here" (non-commuting generators, weight decay
with several generators, a run-away charge under ``finite=True``) raise
:class:`~noether_sym.InvalidArgumentError` with a message that says what to pass instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError, LocalSymmetryError
from ..loss._loss import Loss
from ._equilibrium import Equilibrium, noise_equilibrium
from ._joint import JointEquilibrium, joint_equilibrium
from ._noether_flow import NoetherFlow, noether_flow
from ._local import local_symmetry_drift
from ._two_layer import TwoLayerEquilibrium, two_layer_equilibrium

__all__ = ["Prediction", "TwoLayerModel", "predict_equilibrium"]


@dataclass(frozen=True)
class TwoLayerModel:
    """The data of f(x) = U W x for the closed form (E21): layer sizes and covariances.

    θ is laid out as ``[W.ravel(), U.ravel()]`` (W is d x n_in, U is m x d), the parameter
    order of the ``linear-net`` family.
    """

    n_in: int
    d: int
    m: int
    Sigma_x: Any
    Sigma_eps: Any

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(U, W) from θ in the ``[W, U]`` layout."""
        th = np.asarray(theta, dtype=float).ravel()
        k = self.d * self.n_in
        if th.shape != (k + self.m * self.d,):
            raise InvalidArgumentError(
                f"θ must have d·n_in + m·d = {k + self.m * self.d} entries ([W, U] layout); got {th.shape[0]}"
            )
        return th[k:].reshape(self.m, self.d), th[:k].reshape(self.d, self.n_in)


@dataclass(frozen=True)
class Prediction:
    """A predicted stationary point: which route, its result, and θ* in params order.

    Attributes
    ----------
    route
        ``"single"``, ``"joint"``, ``"two_layer"`` or ``"noether_flow"``.
    result
        The :class:`Equilibrium`, :class:`JointEquilibrium` or :class:`TwoLayerEquilibrium`.
    theta
        θ* as a float array (may hold ±inf for a run-away single generator).
    how
        One line saying how θ* was found (shown by ``compare`` and the command line).
    """

    route: str
    result: Equilibrium | JointEquilibrium | TwoLayerEquilibrium | NoetherFlow
    theta: np.ndarray
    how: str

    @property
    def start(self) -> Any:
        """Φ(θ₀), the projection of the start on the minimum manifold the prediction is made
        from (a GradientFlowLimit; None on the two-layer route without a loss and on the
        Noether-flow route, whose result holds Φ(θ₀) as ``result.start``)."""
        if self.route == "noether_flow":
            return None
        return getattr(self.result, "start", None)

    @property
    def finite(self) -> bool:
        """Whether θ* is a finite point (a balanced or weight-decay-restored equilibrium)."""
        if self.route == "joint":
            return self.result.kind == "balanced"
        if self.route == "noether_flow":
            return self.result.kind in ("fixed point", "rotating")
        return bool(np.all(np.isfinite(self.theta)))


def predict_equilibrium(
    loss: Loss | None,
    theta: Any,
    generators: Any = None,
    *,
    batch_size: int = 1,
    discrete: bool = False,
    weight_decay: float = 0.0,
    lr: float | None = None,
    values: Any = None,
    check_symmetry: bool = True,
    two_layer: TwoLayerModel | None = None,
    finite: bool = False,
) -> Prediction:
    """The noise equilibrium reached from ``theta``, by the route that fits the input.

    Parameters
    ----------
    loss
        The Loss with a data model (unused, may be None, on the two-layer route).
    theta
        The start θ (mapping or sequence in params order).
    generators
        Symmetric generators: one -> ``"single"``, several commuting -> ``"joint"``.
    batch_size, discrete, weight_decay, lr, values, check_symmetry
        Passed to :func:`~noether_sym.noise_equilibrium` on the single route (the joint
        route is the γ = 0, continuous-time balance and takes only ``values``).
    two_layer
        Use the GL(d) closed form (E21) for this two-layer model instead of generators.
    finite
        Raise InvalidArgumentError unless θ* is a finite point.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    >>> loss = ns.Loss((u * w * x - x - e) ** 2, [u, w])
    >>> p = predict_equilibrium(loss, [2, 0.5], ns.find_symmetries(loss).generators)
    >>> p.route, p.result.kind, p.finite
    ('single', 'balanced', True)
    """
    if two_layer is not None:
        return _two_layer(two_layer, theta)
    gens = list(generators) if generators is not None else []
    if not gens:
        raise InvalidArgumentError("no symmetry generator: nothing to predict; pass predicted=")
    if len(gens) == 1:
        eq = noise_equilibrium(loss, gens[0], theta, batch_size=batch_size, weight_decay=weight_decay, lr=lr,
                               discrete=discrete, check_symmetry=check_symmetry, values=values)
        out = Prediction("single", eq, np.asarray(eq.theta, dtype=float),
                         f"noise_equilibrium ({eq.kind}, {eq.method})" + _from_start(eq.start))
        if finite and not out.finite:
            raise InvalidArgumentError(
                f"the equilibrium along this generator is {eq.kind} (λ* = {eq.lam}): no finite prediction. "
                "A semidefinite generator needs weight decay (E18)." + (f" ({eq.method})" if eq.kind == "undetermined" else "")
            )
        _refuse_local_symmetry(loss, out, values)
        return out
    if float(weight_decay) > 0:
        raise InvalidArgumentError(
            "with weight decay and several generators give predicted= (e.g. from ns.noise_equilibrium per generator)"
        )
    An = [np.array(A.tolist(), dtype=float) for A in gens]
    for i in range(len(An)):
        for j in range(i):
            if np.abs(An[i] @ An[j] - An[j] @ An[i]).max() > 1e-12:
                raise InvalidArgumentError(
                    "the generators do not commute, so the joint equilibrium is a matrix problem: pass predicted= "
                    "(for a two-layer linear net, ns.two_layer_equilibrium (E21))"
                )
    je = joint_equilibrium(loss, gens, theta, values=values)
    out = Prediction("joint", je, np.asarray(je.theta, dtype=float),
                     "joint_equilibrium (commuting generators)" + _from_start(je.start))
    if finite and not out.finite:
        raise InvalidArgumentError(f"the joint equilibrium is {je.kind}: no finite prediction")
    _refuse_local_symmetry(loss, out, values)
    return out


def _refuse_local_symmetry(loss: Loss, out: Prediction, values: Any) -> None:
    """LocalSymmetryError when the noise drives SGD along flat directions no global generator
    explains, at Φ(θ₀) or at θ* (:func:`~noether_sym.theory._local.local_symmetry_drift`)."""
    if not out.finite:
        return
    start = out.start.theta if out.start is not None else None
    for where, th in (("Φ(θ₀)", start), ("θ*", out.theta)):
        chk = None if th is None else local_symmetry_drift(loss, th, values=values)
        if chk is not None and chk.significant:
            raise LocalSymmetryError(
                f"the minimum manifold has {chk.extra_dim} flat direction(s) at {where} that no global symmetry "
                f"explains (a local symmetry, e.g. ReLU units sharing their activation pattern), and the noise drives "
                f"SGD along them at {chk.ratio:.3g} of the speed it pushes the charges: per-generator balance is not "
                "the stationary state. Use ns.noether_flow (E22) for the prediction."
            )


def _from_start(start: Any) -> str:
    """'' on the manifold, else how far gradient flow moved the start (THEORY §5)."""
    if start is None or not start.moved:
        return ""
    return f"; from Φ(θ₀): gradient flow moved the start by {start.distance:.3g} to the minimum manifold"


def _two_layer(model: TwoLayerModel, theta: Any) -> Prediction:
    U, W = model.split(theta)
    tl = two_layer_equilibrium(U, W, model.Sigma_x, model.Sigma_eps)
    star = np.concatenate([tl.W.ravel(), tl.U.ravel()])
    return Prediction("two_layer", tl, star, "two_layer_equilibrium (GL(d) closed form, E21)")


# ------------------------------------------------------------------------------------------
# The Noether-flow route (E22): where the per-generator and joint balances do not apply
# ------------------------------------------------------------------------------------------


def flow_reason(generators: Any) -> str | None:
    """Why the per-generator (E16)-(E18) and joint balances do not give SGD's stationary state
    for this set of symmetric generators, or None when they do.

    They do not when two generators fail to commute: each balance holds the other charges
    fixed, but the noise moves them together (e.g. a two-layer linear net with anisotropic
    data, THEORY §7.2's caveat). A local symmetry (ReLU units sharing their activation
    pattern) is detected by :func:`predict_equilibrium` itself (LocalSymmetryError).

    Examples
    --------
    >>> import sympy as sp
    >>> flow_reason([sp.diag(1, -1, 0), sp.diag(0, 1, -1)]) is None
    True
    >>> flow_reason([sp.Matrix([[1, 0], [0, -1]]), sp.Matrix([[0, 1], [1, 0]])])[:25]
    'the generators 1 and 2 do'
    """
    An = [np.array(A.tolist(), dtype=float) for A in generators]
    for i in range(len(An)):
        for j in range(i):
            if np.abs(An[i] @ An[j] - An[j] @ An[i]).max() > 1e-12:
                return (f"the generators {j + 1} and {i + 1} do not commute: the per-generator balances hold the other "
                        "charges fixed, so their stationary state is the Noether flow's (E22)")
    return None


def predict_with_flow(loss: Loss, theta: Any, reason: str, *, batch_size: int = 1, weight_decay: float = 0.0,
                      lr: float | None = None, values: Any = None) -> Prediction:
    """The stationary state by the Noether flow (E22), :func:`~noether_sym.noether_flow`, for a
    case the per-generator predictions do not cover (``reason``, e.g. from :func:`flow_reason`
    or a LocalSymmetryError); the route ``"noether_flow"``."""
    fl: NoetherFlow = noether_flow(loss, theta, batch_size=batch_size, weight_decay=weight_decay, lr=lr,
                                   values=values)
    return Prediction("noether_flow", fl, np.asarray(fl.theta, dtype=float),
                      f"noether_flow (E22; {fl.kind}, {fl.method}): {reason}")
