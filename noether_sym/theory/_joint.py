"""Theory: the joint noise equilibrium of several commuting generators.

For pairwise commuting A_j with joint eigenspaces P_i (eigenvalue vectors a_i), the
conditions Tr[A_jΣ(θ*)] = 0 are the stationarity of the convex Φ(λ) = ½Σ_i s_i e^{-2a_i·λ};
:func:`joint_equilibrium` minimises Φ by damped Newton and reports the gradient norm and
the smallest Hessian eigenvalue as the certificate (:class:`JointEquilibrium`).
Non-commuting generators are rejected: their balance is a matrix equation (two-layer nets:
:mod:`noether_sym.theory._two_layer`).
"""


from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError, InvalidGeneratorError
from .._printing import NotebookDisplay, _check_names, _num
from ..loss._generators import as_generator
from ..loss._loss import Loss, as_loss
from ._gradient_flow import GradientFlowLimit, gradient_flow_limit
from ._noise import _exact_theta, _noise_matrix
from ._spectrum import spectrum

__all__ = ['JointEquilibrium', 'joint_equilibrium']



# ------------------------------------------------------------------------------------------
# Several generators
# ------------------------------------------------------------------------------------------


@dataclass
class JointEquilibrium(NotebookDisplay):
    """Joint noise equilibrium of commuting generators: Tr[A_jΣ(θ*)] = 0 for every j.

    With joint eigenspaces P_i (eigenvalue vector a_i ∈ R^k) the conditions are the
    stationarity of the convex Φ(λ) = ½ Σ_i s_i e^{-2 a_i·λ} (∂Φ/∂λ_j = -G_j), solved by
    Newton's method; ``gradient_norm`` and ``min_hessian_eigenvalue`` certify the minimum.
    ``start`` is the projection Φ(θ₀) of the start on the minimum manifold (gradient flow,
    see :func:`~noether_sym.noise_equilibrium`); θ* is on its orbit.
    """

    lams: np.ndarray
    theta: np.ndarray
    residuals: np.ndarray
    gradient_norm: float
    min_hessian_eigenvalue: float
    iterations: int
    kind: str
    start: GradientFlowLimit | None = None
    #: (joint eigenvalue vectors a_i, s_i, ‖P_iθ‖²) at the point the orbit starts from
    _terms: Any = None

    @property
    def projection(self) -> GradientFlowLimit | None:
        """Alias of ``start``."""
        return self.start

    def relaxation_steps(self, lr: float, batch_size: int = 1) -> float:
        """SGD steps for the slowest charge to relax toward θ* by a factor e at (η, S).

        Per step dC_j/dk = (η²/S) G_j(λ) (E12); linearised at λ*, dλ/dk = (η²/S) J_C⁻¹ J_G (λ − λ*)
        with J_C = 2Σ_i a_i a_iᵀ e^{2a_i·λ*}‖P_iθ‖², J_G = −2Σ_i a_i a_iᵀ e^{−2a_i·λ*} s_i; τ is
        the inverse of the slowest decay rate (``inf`` without a restoring drift).
        """
        eta = float(lr)
        if not eta > 0:
            raise InvalidArgumentError(f"lr must be > 0; got {lr!r}")
        if self._terms is None or self.kind != "balanced":
            return math.inf
        avec, s, c = self._terms
        lam = np.asarray(self.lams, dtype=float)
        JC = 2 * (avec.T * (c * np.exp(2 * avec @ lam))) @ avec
        JG = -2 * (avec.T * (s * np.exp(-2 * avec @ lam))) @ avec
        try:
            rates = np.linalg.eigvals(np.linalg.solve(JC, JG)).real * eta**2 / float(batch_size)
        except np.linalg.LinAlgError:
            return math.inf
        slow = float(np.min(np.abs(rates))) if rates.size else 0.0
        return math.inf if slow == 0 else 1.0 / slow

    def latex(self, symbol_names: Any = None) -> str:
        """λ*_j and the residual certificate as LaTeX (see :func:`noether_sym.to_latex`)."""

        return joint_latex(self, _check_names(symbol_names))

    def _latex_(self, names: Mapping[Any, str] | None) -> str:
        return joint_latex(self, names)


def joint_equilibrium(
    loss: Loss, generators: list[Any], theta: Any, *, values: Any = None, tol: float = 1e-13, max_iter: int = 200,
    project: bool = True, flow_tol: float = 1e-9,
) -> JointEquilibrium:
    """Joint noise equilibrium for pairwise commuting generators (e.g. per-neuron rescaling).

    From Φ(θ), the limit of gradient flow from ``theta`` (``project``, ``flow_tol``: as in
    :func:`~noether_sym.noise_equilibrium`); the result's ``start`` records it.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> a, b, c = sp.symbols("a b c")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    >>> loss = ns.Loss((a * b * c * x - 2 * x - e) ** 2, [a, b, c])
    >>> gens = ns.find_symmetries(loss).generators
    >>> je = ns.joint_equilibrium(loss, gens, [1, 1, 2])
    >>> bool(abs(je.residuals).max() < 1e-12)
    True
    """
    loss = as_loss(loss)
    n = loss.n
    mats = [as_generator(A, n, symmetry="symmetric", rational=False, nonzero=True) for A in generators]
    if not mats:
        raise InvalidArgumentError("give at least one generator")
    for i in range(len(mats)):
        for j in range(i + 1, len(mats)):
            if mats[i] * mats[j] != mats[j] * mats[i]:
                raise InvalidGeneratorError(
                    f"generators {i} and {j} do not commute; the joint equilibrium of non-commuting "
                    "generators is a matrix equation (see two_layer_equilibrium for GL(d))"
                )
    rng = np.random.default_rng(7)
    B = sp.zeros(n, n)
    for M in mats:
        B += sp.Rational(int(rng.integers(1, 10**6)), 10**6) * M
    spec = spectrum(B)
    th = loss.theta_vector(theta)
    start = None
    if project:
        start = gradient_flow_limit(loss, th, tol=flow_tol, values=values)
        if start.moved:
            theta, th = start.theta, start.theta.copy()
    Sigma, exact, _ = _noise_matrix(loss, _exact_theta(loss, theta, th), 1, False, None, 0, values)
    Sn = np.array(Sigma.tolist(), dtype=float) if isinstance(Sigma, sp.MatrixBase) else np.asarray(Sigma)
    Ps = [np.array(P.tolist(), dtype=float) if isinstance(P, sp.MatrixBase) else P for P in spec.projectors]
    An = [np.array(M.tolist(), dtype=float) for M in mats]
    avec = np.array([[np.trace(Aj @ P) / max(np.trace(P), 1e-300) for Aj in An] for P in Ps])  # (m, k)
    s = np.array([np.trace(P @ Sn) for P in Ps])
    k = len(mats)
    lam = np.zeros(k)

    def phi(l: np.ndarray) -> float:
        return 0.5 * float(np.sum(s * np.exp(-2 * avec @ l)))

    it = 0
    for it in range(1, max_iter + 1):
        w = s * np.exp(-2 * avec @ lam)
        grad = -(avec.T @ w)  # = -G
        Hm = 2 * (avec.T * w) @ avec
        if np.linalg.norm(grad) < tol * max(1.0, float(np.sum(np.abs(w)))):
            break
        try:
            step = -np.linalg.solve(Hm + 1e-300 * np.eye(k), grad)
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(Hm, grad, rcond=None)[0]
        t, f0, g0 = 1.0, phi(lam), float(np.linalg.norm(grad))
        # Armijo on Φ, or a smaller gradient: near the root Φ's decrease is below rounding
        while (phi(lam + t * step) > f0 + 0.25 * t * float(grad @ step)
               and _grad_norm(s, avec, lam + t * step) >= g0 and t > 1e-12):
            t /= 2
        lam = lam + t * step
        if np.max(np.abs(lam)) > 200:
            break
    w = s * np.exp(-2 * avec @ lam)
    grad = -(avec.T @ w)
    Hm = 2 * (avec.T * w) @ avec
    mineig = float(np.linalg.eigvalsh(Hm).min()) if k else 0.0
    gnorm = float(np.linalg.norm(grad))
    converged = gnorm < 1e-10 * max(1.0, float(np.sum(np.abs(w)))) and mineig > 0
    theta_star = sum(np.exp(float(avec[i] @ lam)) * (Ps[i] @ th) for i in range(len(Ps)))
    # residuals Tr[A_j Σ(θ*)] by the transport law (E6): Σ(θ*) = e^{-Λ} Σ e^{-Λ}
    E = sum(np.exp(-float(avec[i] @ lam)) * Ps[i] for i in range(len(Ps)))
    S_star = E @ Sn @ E
    res = np.array([np.trace(Aj @ S_star) for Aj in An])
    return JointEquilibrium(
        lams=lam,
        theta=np.asarray(theta_star),
        residuals=res / max(1.0, float(np.abs(s).max())),
        gradient_norm=gnorm,
        min_hessian_eigenvalue=mineig,
        iterations=it,
        kind="balanced" if converged else "divergent or degenerate",
        start=start,
        _terms=(avec, s, np.array([float(th @ P @ th) for P in Ps])),
    )


def _grad_norm(s: np.ndarray, avec: np.ndarray, lam: np.ndarray) -> float:
    """‖∂Φ/∂λ‖ = ‖Σ_i a_i s_i e^{-2a_i·λ}‖."""
    return float(np.linalg.norm(avec.T @ (s * np.exp(-2 * avec @ lam))))


def joint_latex(je: Any, names: Mapping[Any, str] | None = None) -> str:
    """The joint equilibrium of commuting generators: λ*_j and the certificate."""
    lams = ", ".join(_num(v) for v in je.lams)
    return "\n".join(
        [
            r"\begin{align*}",
            f"(\\lambda^*_1, \\dots, \\lambda^*_{{{len(je.lams)}}}) &= ({lams}) \\\\",
            f"\\max_j \\big|\\operatorname{{Tr}}[A_j\\Sigma(\\theta^*)]\\big| &= {_num(float(abs(je.residuals).max()) if len(je.residuals) else 0.0, 3)}",
            r"\end{align*}",
            f"Class: {je.kind}; Newton iterations: {je.iterations}.",
        ]
    )
