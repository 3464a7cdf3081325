"""Theory: the Noether flow on the whole minimum manifold, (E22) of THEORY §10 (beyond the paper).

:func:`noether_flow` integrates the slow limit of SGD near the manifold of minima Γ
(Li, Wang, Arora, ICLR 2022), in the time τ = η²k/S:

    dθ/dτ = −½ P_T ∇³L(θ)[Λ] − (γS/η) P_T θ,   H Λ + Λ H = Σ on the normal space,

from Φ(θ₀) (gradient flow from the start, :func:`~noether_sym.gradient_flow_limit`) to its
stationary state, and classifies it: a fixed point, a steady rotation along an antisymmetric
symmetry (a relative equilibrium with constant charge invariants), a divergence along a
semidefinite generator, or degenerate / undetermined with the reason (:class:`NoetherFlow`).

Design
------
Geometry from the spectrum. At θ ∈ Γ the Hessian H is positive semidefinite; its kernel is
the tangent space T (its dimension is fixed once at the start, where the spectral gap is
measured and reported) and Λ is solved in H's eigenbasis, Λ_ij = Σ̃_ij / (λ_i + λ_j) over
normal pairs. The noise must have no component along T (P_T Σ ≈ 0, true for every exact
symmetry by (E7)); otherwise the limit flow is stochastic and the call refuses.

Integration. The flow is integrated as an ODE in the ambient space, F(θ) = drift(R(θ)),
with R the Newton retraction onto Γ along the normal space (θ ← θ − H⁺∇L, quadratic
convergence), by SciPy's DOP853, in chunks of τ whose length is the time the initial drift
takes to move θ by its own norm. A chunk ends the run when the drift that is not explained
by a steady rotation -- F minus its projection on span{J_kθ}, J_k the antisymmetric
generators of the symmetry algebra -- is below ``rtol`` times the initial drift.

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
    "seed": Integer(0),
    "n_samples": Optional(Integer(100)),
}

#: a Hessian eigenvalue is tangent when below this fraction of the largest
TANGENT_RTOL = 1e-7
#: largest accepted ‖P_T Σ‖ / ‖Σ‖ (exact moments; Monte Carlo adds 4 standard errors)
NOISE_ALONG_T_RTOL = 1e-6
#: Newton retraction: iterations and relative gradient tolerance
_NEWTON_STEPS = 30


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
        ``"fixed point"``, ``"rotating"``, ``"divergent"``, ``"degenerate"`` or ``"undetermined"``.
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
    _core: Any = field(default=None, repr=False, compare=False)

    def drift(self, theta: Any) -> FlowDrift:
        """(E22) at a point (retracted onto Γ first), split into charge drifts and a rotation."""
        th = self.loss.theta_vector(theta)
        return self._core.split(self._core.retract(th))

    def average(self, expr: Any) -> float:
        """Time average of a SymPy expression of the parameters over the stationary state.

        Its value at a fixed point; at a steady rotation θ(τ) = e^{τJ}θ*, the mean over one
        period (over 64 periods of the slowest frequency when the frequencies of J are not
        commensurate).
        """
        if self.kind not in ("fixed point", "rotating"):
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
        pts = _rotation_samples(self.rotation_generator, self.theta)
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
            "seconds": self.seconds,
        }

    def __repr__(self) -> str:
        rate = f", rotation_rate={self.rotation_rate:.6g}" if self.kind == "rotating" else ""
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
        lam, vec = self.spectrum(th)
        scale = max(1e-300, float(np.abs(lam).max()))
        N = vec[:, self.k:]
        tol = 1e-13 * scale * max(1.0, float(np.linalg.norm(th)))
        g = self.pop.grad(th)
        for _ in range(_NEWTON_STEPS):
            if not np.isfinite(g).all() or float(np.linalg.norm(g)) <= tol:
                break
            Hn = N.T @ self.pop.hessian(th) @ N
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
        self.evaluations += 1
        T, N, lam = self.geometry(th)
        if T.shape[1] == 0:
            return np.zeros_like(th)
        S = self.pop.sigma(th)
        St = N.T @ S @ N
        Lt = St / (lam[:, None] + lam[None, :])
        Lam = N @ Lt @ N.T
        d = -0.5 * (T @ (T.T @ self.pop.third(th, Lam)))
        if self.wd_rate:
            d -= self.wd_rate * (T @ (T.T @ th))
        return d

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
    tol = 1e-7 * max(g0, floor)
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
    max_chunks
        Budget of integration chunks (each about the time the initial drift takes to move θ
        by its norm); exceeding it ends the run as ``"undetermined"``.
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
                    max_chunks=max_chunks, seed=seed, n_samples=n_samples)
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
            rate: float, div_rate: float, t_start: float, J: np.ndarray | None = None) -> NoetherFlow:
    n = theta.size
    return NoetherFlow(
        kind=kind, reason=reason, theta=theta, rotation_rate=rate,
        rotation_generator=np.zeros((n, n)) if J is None else J, divergence_rate=div_rate,
        trajectory=(np.asarray(taus, dtype=float), np.asarray(thetas, dtype=float)),
        gap=core.min_gap, tau=float(taus[-1]), seconds=time.perf_counter() - t_start, _core=core, **meta,
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


def _integrate(meta: dict, core: _FlowCore, start: np.ndarray, opts: dict, sym_note: str,
               t_start: float) -> NoetherFlow:
    rtol = opts["rtol"]
    d0 = float(np.linalg.norm(core.drift(start)))
    if d0 == 0.0:
        return _result(meta, core, "fixed point", "the drift (E22) vanishes at Φ(θ₀)", start, [0.0], [start],
                       0.0, 0.0, t_start)
    chunk = max(1.0, float(np.linalg.norm(start))) / d0
    div = _divergent_generator(core, start, d0)
    taus, thetas = [0.0], [start.copy()]
    th, tau, prev = start.copy(), 0.0, None
    scale0 = float(np.linalg.norm(start))
    max_chunks = opts["max_chunks"] if div is None else min(opts["max_chunks"], 20)
    for _ in range(max_chunks):
        sol = solve_ivp(lambda t, y: core.field(y), (tau, tau + chunk), th, method="DOP853",
                        rtol=min(1e-8, 100 * rtol), atol=1e-12 * max(1.0, scale0))
        if not sol.success:
            raise CertificationError(f"the integration of (E22) failed at τ = {tau:.4g}: {sol.message}")
        tau += chunk
        th = core.retract(sol.y[:, -1])
        taus.append(tau)
        thetas.append(th.copy())
        if float(np.linalg.norm(th)) > 1e6 * max(1.0, scale0):
            return _result(meta, core, "divergent", f"‖θ‖ grew beyond {1e6 * max(1.0, scale0):.3g} along the manifold",
                           th, taus, thetas, 0.0, float("inf"), t_start)
        d = core.drift(th)
        dn = float(np.linalg.norm(d))
        _, res = core.rotation_fit(th, d)
        if div is None and dn <= rtol * d0:
            return _result(meta, core, "fixed point", f"the drift (E22) fell below {rtol:g} of its initial size",
                           th, taus, thetas, 0.0, 0.0, t_start)
        steady = prev is not None and abs(dn - prev) <= 1e3 * rtol * dn
        if div is None and res <= rtol * d0 and steady:
            sp_ = core.split(th)
            J = sp_.rotation_generator
            return _result(meta, core, "rotating", "a relative equilibrium: steady motion along the antisymmetric "
                           f"generator J (‖dθ/dτ‖ = {dn:.6g}) with constant charge invariants", th, taus, thetas,
                           sp_.rotation_rate, 0.0, t_start, J)
        prev = dn
        if res > 0.5 * rtol * d0:
            chunk *= 1.5 if dn > 0.1 * d0 else 1.0
    if div is not None:
        i, _ = div
        rate = float(np.sum(core.generators[i] * core.pop.sigma(th)))
        return _result(meta, core, "divergent", f"the charge of the semidefinite generator #{i} has dC/dτ = Tr[AΣ] "
                       f"of one sign ({rate:.6g} at the last point, {div[1]:.6g} at the start) and no weight decay: it "
                       "moves without bound", th, taus, thetas, 0.0, rate, t_start)
    note = f"; {sym_note}" if sym_note else ""
    return _result(meta, core, "undetermined", f"no stationary state within {max_chunks} chunks (τ = {tau:.4g}): the "
                   f"drift not explained by a rotation is {res:.3g} (initial drift {d0:.3g}){note}", th, taus, thetas,
                   0.0, 0.0, t_start)
