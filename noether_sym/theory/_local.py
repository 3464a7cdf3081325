"""Theory: local symmetries -- flat directions of the minimum manifold no global generator explains.

Per-generator balance (E16) is the stationary state of SGD's slow flow (E22) only when every
flat direction of the minimum manifold Γ at θ* is a global symmetry direction (A_iθ for the
symmetric generators, J_kθ for the rotations). Piecewise-linear units can have more: ReLU
units that share their activation pattern on the data's support act as one linear layer
there, a local GL(k) that holds only on an open region of θ (THEORY §10). Along such a
direction the noise drives (E22) even where every charge balances, and per-generator
balance is confidently wrong. :func:`local_symmetry_drift` measures that drift at a point.

Design
------
A symmetry that holds for every x on an open set of θ extends to all θ when the loss is
analytic in θ, so only non-analytic losses can have local-only symmetries; the check runs
where the population is the deterministic cone cubature (piecewise-linear units on
Gaussian data) and returns None otherwise. At θ: the tangent space T = ker H (eigenvalues
below ``TANGENT_RTOL`` of the largest), the part E of T orthogonal to span{A_iθ, J_kθ}, and
the (E22) drift d (with Λ built from the normal directions whose curvature is at least
``SLOW_RTOL`` of the largest: flatter ones, such as the weight of a nearly dead unit, relax on
the flow's own time scale and are reported by the equilibria's relaxation times instead); the
check compares ‖P_E d‖ with the gross speed at which the noise pushes
the charges, max_A Tr[A₊Σ]/(2‖Aθ‖) (A₊ the positive part of A): balance is a cancellation
of such pushes, so a drift along E of that order moves θ* on the charges' own time scale.
The check belongs at Φ(θ₀) as well as at θ*: the stationary set of (E22) can contain every
per-generator balanced point while the flow from Φ(θ₀) still moves along E on its way
(THEORY §10's two units), so a small drift at θ* alone proves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import NoetherSymError
from ..loss._loss import Loss
from ..symmetry._finder import find_symmetries
from ._noether_flow import TANGENT_RTOL, _eigh
from ._population import population

__all__ = ["LocalDrift", "local_symmetry_drift"]

#: normal Hessian eigenvalues below this fraction of the largest relax too slowly to feed (E22)
SLOW_RTOL = 1e-4
#: the point must be this close to the manifold (‖∇L‖ relative to the largest curvature times
#: max(1, ‖θ‖)); farther away the check is not made
ON_MANIFOLD_RTOL = 1e-7
#: a drift along local flat directions above this fraction of the charges' gross speed
#: makes per-generator balance unreliable
LOCAL_DRIFT_RTOL = 1e-3


@dataclass(frozen=True)
class LocalDrift:
    """The slow flow (E22) along flat directions that no global symmetry explains.

    Attributes
    ----------
    extra_dim
        Dimension of the tangent space of Γ at θ beyond span{A_iθ, J_kθ}.
    drift
        ‖P_E dθ/dτ‖ along those directions (τ = η²k/S).
    charge_speed
        max_A Tr[A₊Σ(θ)] / (2‖Aθ‖): the speed at which the noise pushes the charges.
    """

    extra_dim: int
    drift: float
    charge_speed: float

    @property
    def ratio(self) -> float:
        return self.drift / self.charge_speed if self.charge_speed > 0 else (0.0 if self.drift == 0 else np.inf)

    @property
    def significant(self) -> bool:
        """Whether the local drift moves θ on the charges' time scale (per-generator balance wrong)."""
        return self.extra_dim > 0 and self.ratio > LOCAL_DRIFT_RTOL


def local_symmetry_drift(loss: Loss, theta: Any, *, values: Mapping | None = None) -> LocalDrift | None:
    """The (E22) drift at a point of the minimum manifold along its local flat directions.

    Returns None when the loss is not piecewise-linear on Gaussian data (analytic losses have
    no local-only symmetries; other non-analytic losses are not checked), has no global
    symmetry to compare with, or θ is not on the minimum manifold to ``ON_MANIFOLD_RTOL``
    (a Φ(θ₀) from the Monte Carlo flow of inputs of dimension ≥ 2: not checked).

    Examples
    --------
    THEORY §10: two ReLU units without biases share the pattern x > 0 (a local GL(2)).

    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> w1, v1, w2, v2 = sp.symbols("w1 v1 w2 v2")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, sp.Rational(1, 2))
    >>> r = lambda z: sp.Max(0, z)
    >>> loss = ns.Loss((v1 * r(w1 * x) + v2 * r(w2 * x) - r(x) - e) ** 2, [w1, v1, w2, v2])
    >>> phi = ns.gradient_flow_limit(loss, [1, 0.1, 0.5, 0.3]).theta  # ≈ (1.1375, 0.5513, 0.6792, 0.5490)
    >>> chk = local_symmetry_drift(loss, phi)
    >>> chk.extra_dim, chk.significant
    (1, True)
    >>> p = phi[0] * phi[1]  # the per-unit balance point of the same products
    >>> local_symmetry_drift(loss, [p**0.5, p**0.5, (1 - p)**0.5, (1 - p)**0.5]).significant
    False

    The per-unit balanced points are all fixed points of (E22) here (Tr H = ‖θ‖² on the
    manifold), yet the flow from Φ(θ₀) moves the products on its way and ends at
    (0.8087, 0.8087, 0.5882, 0.5882): the drift must be checked at the start, not only at θ*.
    """
    pop = population(loss, values=values)
    if pop.method != "cones":
        return None
    try:
        sym = find_symmetries(loss)
    except NoetherSymError:
        return None
    gens = [np.array(A.tolist(), dtype=float) for A in sym.generators]
    rots = [np.array(J.tolist(), dtype=float) for J in sym.rotations]
    if not gens:
        return None
    th = loss.theta_vector(theta)
    lam, vec = _eigh(pop.hessian(th))
    top = max(1e-300, float(np.abs(lam).max()))
    if float(np.linalg.norm(pop.grad(th))) > ON_MANIFOLD_RTOL * top * max(1.0, float(np.linalg.norm(th))):
        return None  # off the manifold (e.g. a Monte Carlo Φ): the kernel of H is not its tangent space
    k = int(np.sum(lam <= TANGENT_RTOL * max(1e-300, float(np.abs(lam).max()))))
    T = vec[:, :k]
    B = np.stack([M @ th for M in gens + rots], axis=1)
    U, s, _ = np.linalg.svd(B, full_matrices=False)
    Q = U[:, s > 1e-9 * max(1e-300, float(s.max(initial=0.0)))]
    R = T - Q @ (Q.T @ T)  # tangent directions not explained by the symmetries
    Ue, se, _ = np.linalg.svd(R, full_matrices=False) if k else (np.zeros((th.size, 0)), np.zeros(0), None)
    E = Ue[:, se > 1e-6]
    S = pop.sigma(th)
    speed = 0.0
    for A in gens:
        a, V = np.linalg.eigh(A)
        Ap = (V * np.maximum(a, 0.0)) @ V.T
        norm = float(np.linalg.norm(A @ th))
        if norm > 0:
            speed = max(speed, float(np.sum(Ap * S)) / (2 * norm))
    if E.shape[1] == 0:
        return LocalDrift(0, 0.0, speed)
    # Λ from the normal directions that relax fast next to the slow flow: an eigenvalue below
    # SLOW_RTOL of the largest (a nearly dead unit's weight) relaxes on a time scale comparable
    # to the flow's, so (E22) does not let it feed the drift
    fast = lam >= SLOW_RTOL * top
    N, ln = vec[:, fast], lam[fast]
    Lam = N @ ((N.T @ S @ N) / (ln[:, None] + ln[None, :])) @ N.T
    d = -0.5 * (E.T @ pop.third(th, Lam))
    return LocalDrift(int(E.shape[1]), float(np.linalg.norm(d)), speed)
