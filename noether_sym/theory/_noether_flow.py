"""Theory: the Noether flow on the whole minimum manifold, (E22) of THEORY §10 (beyond the paper).

:func:`noether_flow` integrates the slow limit of SGD near the manifold of minima Γ
(Li, Wang, Arora, ICLR 2022), in the time τ = η²k/S:

    dθ/dτ = −½ P_T ∇³L(θ)[Λ] − (γS/η) P_T θ,   H Λ + Λ H = Σ on the normal space,

from Φ(θ₀) (gradient flow from the start, :func:`~noether_sym.gradient_flow_limit`) to its
stationary state, and classifies it: a fixed point, a steady rotation along an antisymmetric
symmetry (a relative equilibrium with constant charge invariants), a closed orbit that is no
steady rotation (a limit cycle), a divergence along a semidefinite generator, or degenerate /
undetermined with the reason (:class:`NoetherFlow`).

Design
------
Geometry from the spectrum. At θ ∈ Γ the Hessian H is positive semidefinite; its kernel is
the tangent space T (its dimension is fixed once at the start, where the spectral gap is
measured and reported) and Λ is solved in H's eigenbasis, Λ_ij = Σ̃_ij / (λ_i + λ_j) over
normal pairs. The noise must have no component along T (P_T Σ ≈ 0, true for every exact
symmetry by (E7)); otherwise the limit flow is stochastic and the call refuses.

Integration. The flow is integrated as an ODE in the ambient space, F(θ) = drift(R(θ)),
with R the Newton retraction onto Γ along the normal space (θ ← θ − H⁺∇L, quadratic
convergence), by SciPy's DOP853, in chunks of τ. A drift is compared with the size of its
terms, s = ‖½∇³L[Λ]‖ + (γS/η)‖θ‖ (before the projection P_T): a drift below ``ROUNDOFF_RTOL``·s
is round-off, the point is stationary to that tolerance (when it is a stable one: the tangent
Jacobian of the drift has no growing mode). Chunk lengths come from time scales of the flow,
never from ‖θ‖/‖drift‖ alone: the first is at most ``CHUNK_NATURAL`` natural times
max(1, ‖θ‖)/s, each later one grows by 1.5 at most and spans at most ``CHUNK_STEPS`` of the
solver's steps of the chunk before (the step an accurate integration of the flow needs is its
fastest relevant time scale). A chunk ends the run when the drift that is not explained by a
steady rotation -- F minus its projection on span{J_kθ}, J_k the antisymmetric generators of
the symmetry algebra -- is below ``rtol`` times the initial drift (or at round-off), or when
the trajectory is a closed orbit: it crosses the section through its current point (normal
to the drift) twice within ``PERIOD_RTOL``·max(1, ‖θ‖) of that point, one period apart (the
Poincaré map has converged: a limit cycle, e.g. along a symmetry that is no linear one;
``average`` is then the mean over one more period, integrated at evenly spaced times). Near
an isolated fixed point (drift below ``NEWTON_START`` of its initial size, no rotation part)
Newton on the manifold finishes the approach; it is used only where the tangent Jacobian has
no neutral mode at the solution and no growing one (a continuum of fixed points, where the
flow's end point depends on its path, is integrated to the end).

Charges and rotations. :meth:`NoetherFlow.drift` splits (E22) at a point: for each
symmetric generator A, dC_A/dτ = 2⟨Aθ, dθ/dτ⟩, which equals (E12) in τ units,
Tr[AΣ] − 2(γS/η)C_A (a check, not an input); the part along span{J_kθ} is the rotation
J = Σ a_k J_k, whose speed is the largest |imaginary part| of J's eigenvalues.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp
from scipy.linalg import eigh, expm
from scipy.optimize import brentq

from .._errors import (
    CertificationError,
    InvalidArgumentError,
    NoetherSymError,
    NoiseAlongManifoldError,
)
from .._printing import NotebookDisplay
from .._validate import Integer, Optional, Real, validate
from ..loss._loss import Loss, as_loss
from ..symmetry._finder import find_symmetries
from ._gradient_flow import _integrate as _flow_to_minimum
from ._population import Population, population

__all__ = ["FlowDrift", "NoetherFlow", "noether_flow"]

_OPTIONS = {
    "batch_size": Integer(1),
    "weight_decay": Real(0.0),
    "lr": Optional(Real(0.0, None, low_open=True)),
    "rtol": Real(0.0, 1e-2, low_open=True),
    "max_chunks": Integer(1, 100_000),
    "max_evaluations": Integer(100, 100_000_000),
    "seed": Integer(0),
    "n_samples": Optional(Integer(100)),
}

#: a Hessian eigenvalue is tangent when below this fraction of the largest
TANGENT_RTOL = 1e-7
#: largest accepted ‖P_T Σ‖ / ‖Σ‖ (exact moments; Monte Carlo adds 4 standard errors)
NOISE_ALONG_T_RTOL = 1e-6
#: Newton retraction: iterations and relative gradient tolerance
_NEWTON_STEPS = 30
#: a drift (E22) at most this fraction of the size of its terms is round-off: the point is stationary
#: (moving θ by 1% of its norm would take 1e8 natural times max(1, ‖θ‖)/s)
ROUNDOFF_RTOL = 1e-10
#: a stationary point is unstable when its tangent Jacobian has an eigenvalue whose real part exceeds
#: this fraction of the natural rate s / max(1, ‖θ‖) (finite differences resolve ~1e-7 of it)
UNSTABLE_RTOL = 1e-5
#: a closed orbit returns within this fraction of max(1, ‖θ‖) after one period (twice in a row)
PERIOD_RTOL = 1e-6
#: the first chunk spans at most this many natural times max(1, ‖θ‖)/s
CHUNK_NATURAL = 10.0
#: a chunk spans at most this many of the solver's (median) steps of the chunk before
CHUNK_STEPS = 200
#: the flow's approach to a fixed point is finished by Newton on the manifold once the drift is below
#: this fraction of its initial size (and is not a rotation); at most ``_POLISH_STEPS`` steps
NEWTON_START = 1e-2
_POLISH_STEPS = 6
#: a tangent Jacobian eigenvalue below this fraction of the largest is a neutral mode (no Newton)
NEUTRAL_RTOL = 1e-6
#: ... and below this fraction where Newton starts (a mode that slow is skipped: integrate instead)
SLOW_MODE_RTOL = 1e-2
#: solver step points kept for finding closed orbits (older ones are dropped)
_TRACK_STEPS = 6000
#: points per period for the average over a closed orbit
_CYCLE_POINTS = 512


@dataclass
class FlowDrift:
    """(E22) at one point of the manifold, split into charge drifts and a rotation.

    Attributes
    ----------
    theta
        The point (on Γ, after retraction), ``loss.params`` order.
    total
        dθ/dτ, τ = η²k/S.
    charge_drift
        dC_A/dτ = 2⟨Aθ, dθ/dτ⟩ for each symmetric generator A (``generators`` order).
    e12
        The same rates from (E12): Tr[AΣ] − 2(γS/η)C_A.
    rotation
        Coefficients a_k of the rotation J = Σ a_k J_k (``rotations`` order) fitted to dθ/dτ.
    rotation_rate
        max |Im eig J| (radians per unit τ).
    residual
        ‖dθ/dτ − Jθ‖: the drift not explained by a steady rotation.
    generators, rotations
        The symmetric and antisymmetric generators used (numpy arrays).
    """

    theta: np.ndarray
    total: np.ndarray
    charge_drift: np.ndarray
    e12: np.ndarray
    rotation: np.ndarray
    rotation_rate: float
    residual: float
    generators: list[np.ndarray] = field(repr=False)
    rotations: list[np.ndarray] = field(repr=False)

    @property
    def rotation_generator(self) -> np.ndarray:
        n = len(self.theta)
        J = np.zeros((n, n))
        for a, Jk in zip(self.rotation, self.rotations):
            J += a * Jk
        return J


@dataclass
class NoetherFlow(NotebookDisplay):
    """The slow flow (E22) from Φ(θ₀) and its stationary state (result of :func:`noether_flow`).

    Attributes
    ----------
    kind
        ``"fixed point"``, ``"rotating"``, ``"periodic"`` (a closed orbit that is no steady rotation:
        a limit cycle), ``"divergent"``, ``"degenerate"`` or ``"undetermined"``.
    reason
        One sentence: why this kind (and, for divergent / degenerate / undetermined, what).
    start
        Φ(θ₀), where gradient flow from θ₀ lands on the minimum manifold.
    theta
        A point of the stationary state (the last point for divergent / undetermined runs).
    rotation_rate
        Angular speed of the steady motion, radians per unit τ = η²k/S (0 at a fixed point).
    rotation_generator
        The antisymmetric J with dθ/dτ = Jθ on the stationary state (zeros at a fixed point).
    divergence_rate
        Divergent runs: dC/dτ of the semidefinite generator that grows (else 0).
    trajectory
        (τ, θ): arrays of shape (K,) and (K, n), the flow at a stride.
    gap
        Spectral gap of the Hessian: smallest normal eigenvalue / largest |tangent| one
        (smallest over the trajectory); ``tangent_dim`` the dimension of Γ.
    noise_along_manifold
        ‖P_T Σ P_T‖ / ‖Σ‖ at the start.
    exact
        True when Σ and the derivatives are exact (quadrature, dataset rows); False for Monte
        Carlo (``method`` says which).
    period
        Periodic runs: the period of the closed orbit in τ = η²k/S (else 0).
    """

    loss: Loss
    kind: str
    reason: str
    start: np.ndarray
    theta: np.ndarray
    rotation_rate: float
    rotation_generator: np.ndarray
    divergence_rate: float
    trajectory: tuple[np.ndarray, np.ndarray]
    gap: float
    tangent_dim: int
    noise_along_manifold: float
    exact: bool
    method: str
    tau: float
    seconds: float
    period: float = 0.0
    _core: Any = field(default=None, repr=False, compare=False)
    _cycle: Any = field(default=None, repr=False, compare=False)

    def drift(self, theta: Any) -> FlowDrift:
        """(E22) at a point (retracted onto Γ first), split into charge drifts and a rotation."""
        th = self.loss.theta_vector(theta)
        return self._core.split(self._core.retract(th))

    def average(self, expr: Any) -> float:
        """Time average of a SymPy expression of the parameters over the stationary state.

        Its value at a fixed point; at a steady rotation θ(τ) = e^{τJ}θ*, the mean over one
        period (over 64 periods of the slowest frequency when the frequencies of J are not
        commensurate); on a closed orbit, the mean over one period (points evenly spaced in τ).
        """
        if self.kind not in ("fixed point", "rotating", "periodic"):
            raise InvalidArgumentError(
                f"the flow has no stationary state to average over (kind {self.kind!r}: {self.reason})"
            )
        try:
            e = sp.sympify(expr, strict=True)
        except (sp.SympifyError, TypeError):
            raise InvalidArgumentError(f"expr must be a SymPy expression of the parameters; got {expr!r}") from None
        extra = e.free_symbols - set(self.loss.params)
        if extra:
            raise InvalidArgumentError(
                f"expr uses symbol(s) {', '.join(sorted(map(str, extra)))} that are not parameters of the loss"
            )
        f = sp.lambdify(list(self.loss.params), e, modules="numpy")
        if self.kind == "fixed point":
            return float(f(*self.theta))
        pts = self._cycle if self.kind == "periodic" else _rotation_samples(self.rotation_generator, self.theta)
        vals = np.broadcast_to(np.asarray(f(*pts.T), dtype=float), (pts.shape[0],))
        return float(vals.mean())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "start": [float(v) for v in self.start],
            "theta": [float(v) for v in self.theta],
            "rotation_rate": self.rotation_rate,
            "divergence_rate": self.divergence_rate,
            "gap": self.gap,
            "tangent_dim": self.tangent_dim,
            "noise_along_manifold": self.noise_along_manifold,
            "exact": self.exact,
            "method": self.method,
            "tau": self.tau,
            "period": self.period,
            "seconds": self.seconds,
        }

    def __repr__(self) -> str:
        rate = f", rotation_rate={self.rotation_rate:.6g}" if self.kind == "rotating" else ""
        rate += f", period={self.period:.6g}" if self.kind == "periodic" else ""
        return f"NoetherFlow({self.loss.name!r}, kind={self.kind!r}{rate}, tangent_dim={self.tangent_dim})"


def _eigh(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of a symmetric matrix (LAPACK evr: many
    times faster than numpy's evd at n ≈ 50)."""
    return eigh((H + H.T) / 2, driver="evr")


def _rotation_samples(J: np.ndarray, theta: np.ndarray, m: int = 256) -> np.ndarray:
    """Points e^{sJ}θ evenly spaced over one period of the steady rotation."""
    freqs = np.abs(np.linalg.eigvals(J).imag)
    freqs = freqs[freqs > 1e-9 * max(1e-300, freqs.max(initial=0.0))]
    if freqs.size == 0:
        return theta[None, :]
    w0 = freqs.min()
    ratios = freqs / w0
    periods = 1 if np.allclose(ratios, np.round(ratios), atol=1e-6) else 64
    T = periods * 2 * math.pi / w0
    s = np.arange(m * periods) * (T / (m * periods))
    step = expm(J * (T / (m * periods)))
    out = np.empty((s.size, theta.size))
    cur = theta.copy()
    for k in range(s.size):
        out[k] = cur
        cur = step @ cur
    return out


# ------------------------------------------------------------------------------------------
# The flow at a point
# ------------------------------------------------------------------------------------------


class _FlowCore:
    """Geometry, (E22) and the retraction for one loss and hyper-parameters."""

    def __init__(self, pop: Population, tangent_dim: int, wd_rate: float,
                 generators: list[np.ndarray], rotations: list[np.ndarray]) -> None:
        self.pop = pop
        self.k = tangent_dim
        self.wd_rate = wd_rate  # γ S / η
        self.generators = generators
        self.rotations = rotations
        self.min_gap = math.inf
        self.evaluations = 0

    def spectrum(self, th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _eigh(self.pop.hessian(th))

    def retract(self, th: np.ndarray) -> np.ndarray:
        """Newton steps along the normal space until ∇L = 0 (to rounding).

        The normal basis N is taken once from H's spectrum at the first point; each step
        solves (NᵀHN) s = Nᵀ∇L with the current H (quadratic convergence near Γ).
        """
        th = np.array(th, dtype=float)
        H = self.pop.hessian(th)
        lam, vec = _eigh(H)
        scale = max(1e-300, float(np.abs(lam).max()))
        N = vec[:, self.k:]
        tol = 1e-13 * scale * max(1.0, float(np.linalg.norm(th)))
        g = self.pop.grad(th)
        for it in range(_NEWTON_STEPS):
            if not np.isfinite(g).all() or float(np.linalg.norm(g)) <= tol:
                break
            Hn = N.T @ (H if it == 0 else self.pop.hessian(th)) @ N
            step = N @ np.linalg.solve(Hn, N.T @ g)
            th = th - step
            g = self.pop.grad(th)
            if float(np.linalg.norm(step)) <= 1e-15 * max(1.0, float(np.linalg.norm(th))):
                break
        if not np.isfinite(g).all() or np.linalg.norm(g) > 1e-6 * scale * max(1.0, float(np.linalg.norm(th))):
            raise CertificationError(
                f"the retraction onto the minimum manifold did not converge (‖∇L‖ = {np.linalg.norm(g):.3g}): "
                "the flow left the neighbourhood of the manifold; try a smaller rtol"
            )
        return th

    def geometry(self, th: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tangent basis (n, k), normal basis (n, n−k), normal eigenvalues)."""
        lam, vec = self.spectrum(th)
        top = max(1e-300, float(np.abs(lam).max()))
        tan_max = float(np.abs(lam[: self.k]).max(initial=0.0))
        nor_min = float(lam[self.k]) if self.k < len(lam) else top
        self.min_gap = min(self.min_gap, nor_min / max(tan_max, 1e-16 * top))
        return vec[:, : self.k], vec[:, self.k:], lam[self.k:]

    def drift(self, th: np.ndarray) -> np.ndarray:
        """(E22) at a point of Γ."""
        return self.drift_and_scale(th)[0]

    def drift_and_scale(self, th: np.ndarray) -> tuple[np.ndarray, float]:
        """(E22) at a point of Γ and the size of its terms before the projection,
        s = ‖½∇³L[Λ]‖ + (γS/η)‖θ‖ (the yardstick of round-off in the drift)."""
        self.evaluations += 1
        T, N, lam = self.geometry(th)
        if T.shape[1] == 0:
            return np.zeros_like(th), 0.0
        S = self.pop.sigma(th)
        St = N.T @ S @ N
        Lt = St / (lam[:, None] + lam[None, :])
        Lam = N @ Lt @ N.T
        full = 0.5 * self.pop.third(th, Lam)
        d = -(T @ (T.T @ full))
        scale = float(np.linalg.norm(full))
        if self.wd_rate:
            d -= self.wd_rate * (T @ (T.T @ th))
            scale += self.wd_rate * float(np.linalg.norm(th))
        return d, scale

    def field(self, th: np.ndarray) -> np.ndarray:
        return self.drift(self.retract(th))

    def rotation_fit(self, th: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, float]:
        """Coefficients a with d ≈ Σ a_k J_k θ (least squares, minimum norm) and the residual."""
        if not self.rotations:
            return np.zeros(0), float(np.linalg.norm(d))
        B = np.stack([J @ th for J in self.rotations], axis=1)
        a, *_ = np.linalg.lstsq(B, d, rcond=1e-10)
        return a, float(np.linalg.norm(d - B @ a))

    def split(self, th: np.ndarray) -> FlowDrift:
        d = self.drift(th)
        S = self.pop.sigma(th)
        cd = np.array([2.0 * float((A @ th) @ d) for A in self.generators])
        e12 = np.array([float(np.sum(A * S)) - 2.0 * self.wd_rate * float(th @ A @ th) for A in self.generators])
        a, res = self.rotation_fit(th, d)
        J = sum((ak * Jk for ak, Jk in zip(a, self.rotations)), np.zeros((th.size, th.size)))
        rate = float(np.abs(np.linalg.eigvals(J).imag).max(initial=0.0)) if self.rotations else 0.0
        return FlowDrift(th, d, cd, e12, a, rate, res, self.generators, self.rotations)


# ------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------


def _gradient_flow(pop: Population, th0: np.ndarray, max_time: float = 1e6) -> np.ndarray:
    """Φ(θ₀) on the population the flow uses (its own data nodes, so the start lies on the
    same manifold as the flow): the projection's integrator with this population's exact
    Hessian as Jacobian, to a tolerance relative to the start's gradient and curvature."""
    g0 = float(np.linalg.norm(pop.grad(th0)))
    H0 = float(np.abs(_eigh(pop.hessian(th0))[0]).max())
    floor = 1e-12 * max(H0, 1e-300) * max(1.0, float(np.linalg.norm(th0)))
    if g0 <= floor:
        return th0.copy()
    # a start already near Γ (e.g. another projection's end point) need not be polished below
    # round-off: the retraction that follows finishes it along the normal space
    tol = max(1e-7 * g0, floor)
    y, *_ = _flow_to_minimum(lambda Y: np.stack([pop.grad(t) for t in Y]), th0, tol, max_time, 200_000,
                       rtol=1e-10, hessian=pop.hessian)
    return y


def _symmetries(loss: Loss) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    try:
        sym = find_symmetries(loss)
    except NoetherSymError as exc:
        return [], [], f"no global symmetries found ({exc})"
    gens = [np.array(A.tolist(), dtype=float) for A in sym.generators]
    rots = [np.array(J.tolist(), dtype=float) for J in sym.rotations]
    return gens, rots, ""


def noether_flow(
    loss: Loss,
    theta: Any,
    *,
    batch_size: int = 1,
    weight_decay: float = 0.0,
    lr: float | None = None,
    rtol: float = 1e-10,
    max_chunks: int = 400,
    max_evaluations: int = 200_000,
    values: Mapping | None = None,
    n_samples: int | None = None,
    seed: int = 0,
) -> NoetherFlow:
    """The slow flow (E22) of SGD on the minimum manifold, from Φ(θ₀) to its stationary state.

    Parameters
    ----------
    loss
        A Loss with a data model (random symbols or a finite dataset).
    theta
        θ₀ (mapping symbol -> number or a sequence in ``loss.params`` order); gradient flow
        carries it to Φ(θ₀) on the manifold first.
    batch_size
        S; the flow's time is τ = η²k/S (samples drawn with replacement).
    weight_decay, lr
        γ and η: weight decay of order η adds −(γS/η)P_Tθ to the drift (``lr`` required
        when γ > 0).
    rtol
        Stationarity: the drift not explained by a steady rotation below ``rtol`` times the
        initial drift.
    max_chunks, max_evaluations
        Budgets of integration chunks (each at most ``CHUNK_STEPS`` solver steps) and of drift
        evaluations; exceeding either ends the run as ``"undetermined"``, naming it.
    values, n_samples, seed
        Numbers for symbolic distribution parameters; Monte Carlo sample size and seed for
        losses that are not polynomial in the data.

    Returns
    -------
    NoetherFlow

    Raises
    ------
    InvalidDataError
        The loss has no data model.
    GradientFlowError
        Gradient flow from θ₀ diverges or does not settle.
    NoiseAlongManifoldError
        The noise has a component along the manifold (P_T Σ ≠ 0): (E22) does not apply.
    CertificationError
        No spectral gap separates tangent and normal spaces.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, sp.Rational(1, 2))
    >>> flow = ns.noether_flow(ns.Loss((u * w * x - x - e) ** 2, [u, w]), {u: 2, w: 1})
    >>> flow.kind, round(flow.average(u**2), 8), round(flow.average(u**2 - w**2), 8)
    ('fixed point', 1.0, 0.0)
    """
    t_start = time.perf_counter()
    loss = as_loss(loss)
    opts = validate(_OPTIONS, batch_size=batch_size, weight_decay=weight_decay, lr=lr, rtol=rtol,
                    max_chunks=max_chunks, max_evaluations=max_evaluations, seed=seed, n_samples=n_samples)
    if opts["weight_decay"] > 0 and opts["lr"] is None:
        raise InvalidArgumentError("with weight decay the flow's drift −(γS/η)P_Tθ involves η: pass lr=...")
    wd_rate = opts["weight_decay"] * opts["batch_size"] / opts["lr"] if opts["weight_decay"] > 0 else 0.0
    th0 = loss.theta_vector(theta)
    pop = population(loss, values=values, n_samples=opts["n_samples"], seed=opts["seed"])
    start = _gradient_flow(pop, th0)
    gens, rots, sym_note = _symmetries(loss)
    # the tangent dimension: a coarse cut at the gradient-flow end point, then the fine one on Γ
    lam = _eigh(pop.hessian(start))[0]
    core = _FlowCore(pop, int(np.sum(lam <= 1e-4 * max(1e-300, float(np.abs(lam).max())))), wd_rate, gens, rots)
    start = core.retract(start)
    lam = _eigh(pop.hessian(start))[0]
    k = core.k = int(np.sum(lam <= TANGENT_RTOL * max(1e-300, float(np.abs(lam).max()))))
    start = core.retract(start)
    T, _, _ = core.geometry(start)
    if k and k < len(lam) and core.min_gap < 1e4:
        raise CertificationError(
            f"no spectral gap separates the tangent and normal spaces of the minimum manifold at Φ(θ₀) "
            f"(ratio {core.min_gap:.3g} < 1e4): the manifold is not a clean minimum set there"
        )
    S = pop.sigma(start)
    s_norm = float(np.linalg.norm(S))
    along = float(np.linalg.norm(T.T @ S)) / s_norm if s_norm > 0 else 0.0
    se = pop.sigma_standard_error(start)
    allowed = NOISE_ALONG_T_RTOL + (4 * float(np.linalg.norm(se)) / s_norm if se is not None and s_norm > 0 else 0.0)
    if along > allowed:
        raise NoiseAlongManifoldError(
            f"the gradient noise has a component along the minimum manifold (‖P_T Σ‖/‖Σ‖ = {along:.3g} > {allowed:.2g}): "
            "the per-sample losses are not invariant along it, so SGD diffuses on the manifold and the deterministic "
            "flow (E22) does not apply"
        )
    meta = {"loss": loss, "start": start, "tangent_dim": k, "noise_along_manifold": along, "exact": pop.exact,
            "method": f"{pop.method} population; Σ from {pop.nodes.method}"}
    if k == 0:
        return _result(meta, core, "fixed point", "Φ(θ₀) is an isolated minimum: no flat direction to move along",
                       start, [0.0], [start], 0.0, 0.0, t_start)
    if s_norm == 0.0 and not wd_rate:
        return _result(meta, core, "degenerate", "no gradient noise on the manifold: (E22) vanishes and every point "
                       "is stationary", start, [0.0], [start], 0.0, 0.0, t_start)
    return _integrate(meta, core, start, opts, sym_note, t_start)


def _result(meta: dict, core: _FlowCore, kind: str, reason: str, theta: np.ndarray, taus: list, thetas: list,
            rate: float, div_rate: float, t_start: float, J: np.ndarray | None = None, period: float = 0.0,
            cycle: np.ndarray | None = None) -> NoetherFlow:
    n = theta.size
    return NoetherFlow(
        kind=kind, reason=reason, theta=theta, rotation_rate=rate,
        rotation_generator=np.zeros((n, n)) if J is None else J, divergence_rate=div_rate,
        trajectory=(np.asarray(taus, dtype=float), np.asarray(thetas, dtype=float)),
        gap=core.min_gap, tau=float(taus[-1]), seconds=time.perf_counter() - t_start, period=period,
        _core=core, _cycle=cycle, **meta,
    )


def _definite(A: np.ndarray) -> int:
    """+1 / −1 for a positive / negative semidefinite generator, else 0."""
    ev = np.linalg.eigvalsh(A)
    tol = 1e-12 * max(1.0, float(np.abs(ev).max()))
    if ev.min() >= -tol:
        return 1
    if ev.max() <= tol:
        return -1
    return 0


def _divergent_generator(core: _FlowCore, th: np.ndarray, d0: float) -> tuple[int, float] | None:
    """A semidefinite generator whose charge the noise drives one way (no weight decay)."""
    if core.wd_rate:
        return None
    S = core.pop.sigma(th)
    for i, A in enumerate(core.generators):
        sign = _definite(A)
        if sign == 0:
            continue
        rate = float(np.sum(A * S))
        if abs(rate) > 1e-9 * max(1e-300, float(np.abs(A).max()) * float(np.trace(np.abs(S)))):
            return i, rate
    return None


class _Budget(Exception):
    """The drift-evaluation budget ran out inside a chunk."""


class _Track:
    """The solver's step points (τ, θ) of the last chunks (at most ``_TRACK_STEPS``), for closed orbits."""

    def __init__(self) -> None:
        self.t: list[np.ndarray] = []
        self.y: list[np.ndarray] = []

    def add(self, sol: Any) -> None:
        self.t.append(sol.t)
        self.y.append(sol.y.T)
        while len(self.t) > 1 and sum(t.size for t in self.t) > _TRACK_STEPS:
            self.t.pop(0)
            self.y.pop(0)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.t), np.concatenate(self.y)


def _crossing(core: _FlowCore, t0: float, y0: np.ndarray, t1: float, th: np.ndarray, nvec: np.ndarray,
              rtol: float, length: float) -> tuple[float, np.ndarray]:
    """Where the flow from (t0, y0) crosses the section n·(θ − th) = 0 before t1 (one short
    integration with dense output, then a root), and the retracted point there."""
    sol = solve_ivp(lambda t, y: core.field(y), (t0, t1), y0, method="DOP853", rtol=min(1e-8, 100 * rtol),
                    atol=1e-12 * length, dense_output=True)
    f = lambda t: float(nvec @ (sol.sol(t) - th))
    if f(t0) * f(t1) > 0:
        return t1, core.retract(sol.y[:, -1])
    t = brentq(f, t0, t1, xtol=1e-13 * max(1.0, abs(t1)))
    return t, core.retract(sol.sol(t))


def _closed_orbit(core: _FlowCore, track: _Track, th: np.ndarray, d: np.ndarray, tau: float, rtol: float,
                  length: float) -> tuple[float, float] | None:
    """(period, return distance) when the trajectory that ends at θ(τ) = th is a closed orbit.

    The section through th normal to the drift d: the last two crossings of it near th (in the
    direction of the flow, each after the trajectory went away) must both lie within
    PERIOD_RTOL·length of th, one period apart (the Poincaré map has converged).
    """
    tol = PERIOD_RTOL * length
    nvec = d / float(np.linalg.norm(d))
    ts, ys = track.points()
    s = (ys - th) @ nvec
    dist = np.linalg.norm(ys - th, axis=1)
    found: list[tuple[float, float]] = []
    end = len(ts)
    for i in np.nonzero((s[:-1] < 0) & (s[1:] >= 0))[0][::-1]:
        away = float(dist[i + 1:end].max()) if i + 1 < end else 0.0  # how far the orbit went since
        if away < 1e3 * tol or min(dist[i], dist[i + 1]) > 0.1 * away:
            continue  # the crossing at th itself, or a crossing of the plane far from th
        if ts[i + 1] <= ts[i]:
            continue  # a chunk boundary (the same τ before and after the retraction)
        t_star, y_star = _crossing(core, float(ts[i]), ys[i], float(ts[i + 1]), th, nvec, rtol, length)
        gap = float(np.linalg.norm(y_star - th))
        if gap > tol:
            return None
        found.append((t_star, gap))
        if len(found) == 2:
            p1, p2 = tau - found[0][0], found[0][0] - found[1][0]
            if abs(p1 - p2) > PERIOD_RTOL * p1:
                return None
            return p1, max(found[0][1], found[1][1])
        end = i + 1  # the crossing before must come with the trajectory gone away again
    return None


def _cycle_samples(core: _FlowCore, th: np.ndarray, tau: float, period: float, rtol: float,
                   length: float) -> np.ndarray:
    """One more period from th: points evenly spaced in τ (retracted), for the average."""
    grid = tau + period * np.arange(_CYCLE_POINTS) / _CYCLE_POINTS
    sol = solve_ivp(lambda t, y: core.field(y), (tau, tau + period), th, method="DOP853", t_eval=grid,
                    rtol=min(1e-8, 100 * rtol), atol=1e-12 * length)
    if not sol.success:
        raise CertificationError(f"the integration of (E22) over one period failed at τ = {tau:.4g}: {sol.message}")
    return np.array([core.retract(y) for y in sol.y.T])


def _tangent_jacobian(core: _FlowCore, th: np.ndarray) -> np.ndarray:
    """Tᵀ ∂F/∂θ T: the drift's Jacobian on the tangent space (central differences, retracted)."""
    T, _, _ = core.geometry(th)
    h = 1e-5 * max(1.0, float(np.linalg.norm(th)))
    cols = [(core.field(th + h * t) - core.field(th - h * t)) / (2 * h) for t in T.T]
    return T.T @ np.stack(cols, axis=1)


def _newton_fixed_point(core: _FlowCore, th: np.ndarray, d: np.ndarray, target: float,
                        length: float) -> tuple[np.ndarray, float, float] | str | None:
    """Newton on the manifold for drift(θ) = 0 from a point the flow approaches: steps
    −T J⁺ Tᵀ d with J the tangent Jacobian, each retracted onto Γ. Returns (θ*, ‖drift‖, the
    largest growth rate of J at θ*) when the drift falls below ``target`` at a point where no
    tangent mode grows; ``"neutral"`` when J has a neutral mode (a continuum of fixed points:
    where on it the flow ends depends on its path, at second order in the distance, which
    Newton does not follow); None when the drift does not halve at every step or the point is
    unstable (a saddle the flow only passes by). Otherwise the integration goes on."""
    dn = float(np.linalg.norm(d))
    for it in range(_POLISH_STEPS):
        T, _, _ = core.geometry(th)
        J = _tangent_jacobian(core, th)
        if it == 0:  # a mode much slower than the rest: likely neutral at θ* (checked there), so skip
            ev = np.abs(np.linalg.eigvals(J))
            if ev.size == 0 or ev.min() <= SLOW_MODE_RTOL * ev.max():
                return "neutral"
        new = core.retract(th - T @ np.linalg.lstsq(J, T.T @ d, rcond=1e-10)[0])
        d_new, scale = core.drift_and_scale(new)
        dn_new = float(np.linalg.norm(d_new))
        if dn_new > 0.5 * dn:
            return None
        th, d, dn = new, d_new, dn_new
        if dn <= target or dn <= ROUNDOFF_RTOL * scale:
            ev = np.linalg.eigvals(_tangent_jacobian(core, th))
            if ev.size == 0 or np.abs(ev).min() <= NEUTRAL_RTOL * np.abs(ev).max():
                return "neutral"
            growth = float(ev.real.max())
            if growth > UNSTABLE_RTOL * max(scale, 1e-300) / length:
                return None
            return th, dn, growth
    return None


def _stationary_start(meta: dict, core: _FlowCore, start: np.ndarray, d0: float, s0: float,
                      t_start: float) -> NoetherFlow:
    """Φ(θ₀) where the drift is round-off: a fixed point when no tangent mode of the flow grows."""
    if s0 == 0.0:
        return _result(meta, core, "fixed point", "the drift (E22) and its terms vanish at Φ(θ₀)", start, [0.0],
                       [start], 0.0, 0.0, t_start)
    natural = s0 / max(1.0, float(np.linalg.norm(start)))
    ev = np.linalg.eigvals(_tangent_jacobian(core, start))
    growth = float(ev.real.max(initial=-math.inf))
    if growth > UNSTABLE_RTOL * natural:
        return _result(meta, core, "undetermined", f"Φ(θ₀) is stationary (drift {d0:.3g}, round-off against its "
                       f"terms {s0:.3g}) but unstable: a tangent mode of the flow grows at {growth:.3g} per unit τ, "
                       "so SGD's fluctuations leave it, in a direction they choose", start, [0.0], [start], 0.0, 0.0,
                       t_start)
    return _result(meta, core, "fixed point", f"the drift (E22) at Φ(θ₀) is round-off: {d0:.3g} ≤ {ROUNDOFF_RTOL:g} "
                   f"× the size of its terms ({s0:.3g}), and no tangent mode grows (largest rate {growth:.3g} against "
                   f"the natural rate {natural:.3g}): stationary to that tolerance", start, [0.0], [start], 0.0, 0.0,
                   t_start)


def _chunk(core: _FlowCore, th: np.ndarray, tau: float, chunk: float, rtol: float, length: float,
           budget: int) -> Any:
    """One chunk of DOP853, stopped by _Budget past ``budget`` drift evaluations."""
    stop = core.evaluations + budget

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        if core.evaluations > stop:
            raise _Budget()
        return core.field(y)

    sol = solve_ivp(rhs, (tau, tau + chunk), th, method="DOP853", rtol=min(1e-8, 100 * rtol),
                    atol=1e-12 * length)
    if not sol.success:
        raise CertificationError(f"the integration of (E22) failed at τ = {tau:.4g}: {sol.message}")
    return sol


def _integrate(meta: dict, core: _FlowCore, start: np.ndarray, opts: dict, sym_note: str,
               t_start: float) -> NoetherFlow:
    rtol = opts["rtol"]
    d0v, s0 = core.drift_and_scale(start)
    d0 = float(np.linalg.norm(d0v))
    length = max(1.0, float(np.linalg.norm(start)))
    if d0 <= ROUNDOFF_RTOL * s0:
        return _stationary_start(meta, core, start, d0, s0, t_start)
    # the first chunk: the time the drift takes to move θ by its norm, at most CHUNK_NATURAL
    # natural times length/s0 (a drift far below its terms would otherwise ask for a huge span)
    chunk = min(length / d0, CHUNK_NATURAL * length / s0)
    div = _divergent_generator(core, start, d0)
    taus, thetas = [0.0], [start.copy()]
    th, tau, prev, track = start.copy(), 0.0, None, _Track()
    max_chunks = opts["max_chunks"] if div is None else min(opts["max_chunks"], 20)
    budget = opts["max_evaluations"]
    res, why, newton = d0, f"within {max_chunks} chunks", True
    for _ in range(max_chunks):
        try:
            sol = _chunk(core, th, tau, chunk, rtol, length, budget - core.evaluations)
        except _Budget:
            why = f"within the budget of {budget} drift evaluations (max_evaluations)"
            break
        track.add(sol)
        tau += chunk
        th = core.retract(sol.y[:, -1])
        taus.append(tau)
        thetas.append(th.copy())
        if float(np.linalg.norm(th)) > 1e6 * length:
            return _result(meta, core, "divergent", f"‖θ‖ grew beyond {1e6 * length:.3g} along the manifold",
                           th, taus, thetas, 0.0, float("inf"), t_start)
        d, scale = core.drift_and_scale(th)
        dn = float(np.linalg.norm(d))
        _, res = core.rotation_fit(th, d)
        if div is None and (dn <= rtol * d0 or dn <= ROUNDOFF_RTOL * scale):
            return _result(meta, core, "fixed point", f"the drift (E22) fell below {rtol:g} of its initial size "
                           f"(or to round-off, {ROUNDOFF_RTOL:g} of its terms)", th, taus, thetas, 0.0, 0.0, t_start)
        steady = prev is not None and abs(dn - prev) <= 1e3 * rtol * dn
        if div is None and res <= max(rtol * d0, ROUNDOFF_RTOL * scale) and steady:
            sp_ = core.split(th)
            J = sp_.rotation_generator
            return _result(meta, core, "rotating", "a relative equilibrium: steady motion along the antisymmetric "
                           f"generator J (‖dθ/dτ‖ = {dn:.6g}) with constant charge invariants", th, taus, thetas,
                           sp_.rotation_rate, 0.0, t_start, J)
        if div is None and newton and dn <= NEWTON_START * d0 and res >= 0.5 * dn:
            polished = _newton_fixed_point(core, th, d, rtol * d0, length)
            newton = polished is None  # after a neutral mode or a failed polish: integrate to the end
            if isinstance(polished, tuple):
                th, dn, growth = polished
                taus.append(tau)
                thetas.append(th.copy())
                return _result(meta, core, "fixed point", f"the drift (E22) fell below {rtol:g} of its initial size "
                               f"(or to round-off, {ROUNDOFF_RTOL:g} of its terms), the approach finished by Newton on "
                               f"the manifold; no tangent mode grows there (largest rate {growth:.3g})", th, taus,
                               thetas, 0.0, 0.0, t_start)
        if div is None and res > 1e-3 * dn:  # not (nearly) a steady rotation: look for a closed orbit
            orbit = _closed_orbit(core, track, th, d, tau, rtol, length)
            if orbit is not None:
                period, gap = orbit
                cycle = _cycle_samples(core, th, tau, period, rtol, length)
                speed = [float(np.linalg.norm(core.drift(y))) for y in cycle[:: max(1, len(cycle) // 64)]]
                return _result(meta, core, "periodic", f"a closed orbit of period {period:.6g} (a limit cycle of the "
                               f"flow, no steady rotation): the trajectory crossed its section twice within {gap:.2g} "
                               f"of this point (tolerance {PERIOD_RTOL:g} × {length:.3g}), one period apart; its speed "
                               f"‖dθ/dτ‖ varies from {min(speed):.3g} to {max(speed):.3g} along it (the mean over the "
                               "cycle is an η → 0 statement: where the speed is low a finite η can stop SGD)",
                               th, taus, thetas, 0.0, 0.0, t_start, period=period, cycle=cycle)
        prev = dn
        if res > 0.5 * rtol * d0:
            chunk *= 1.5 if dn > 0.1 * d0 else 1.0
        # never longer than CHUNK_STEPS of the steps the solver needed in the last chunk
        chunk = min(chunk, CHUNK_STEPS * float(np.median(np.diff(sol.t))))
    if div is not None:
        i, _ = div
        rate = float(np.sum(core.generators[i] * core.pop.sigma(th)))
        return _result(meta, core, "divergent", f"the charge of the semidefinite generator #{i} has dC/dτ = Tr[AΣ] "
                       f"of one sign ({rate:.6g} at the last point, {div[1]:.6g} at the start) and no weight decay: it "
                       "moves without bound", th, taus, thetas, 0.0, rate, t_start)
    note = f"; {sym_note}" if sym_note else ""
    return _result(meta, core, "undetermined", f"no stationary state {why} (τ = {tau:.4g}): the drift not "
                   f"explained by a rotation is {res:.3g} (initial drift {d0:.3g}){note}", th, taus, thetas,
                   0.0, 0.0, t_start)
