"""Theory: the closed-form GL(d) noise equilibrium of a two-layer linear net (THEORY (E20)-(E21)).

For f(x) = UWx with teacher data y = Vx + ε, :func:`two_layer_equilibrium` returns
θ* = (UP⁻¹, PW) with P² = X = M_W⁻¹ # (c M_U), the matrix geometric mean
(:func:`geometric_mean`), and the residuals of X M_W X = c M_U and of (E20) at θ*
(:class:`TwoLayerEquilibrium`). Assumption: M_W or M_U invertible (d ≤ max(n, m)); when
both are singular the regularised limit used here need not solve the balance (and with
rank M_W ≠ rank M_U no SPD solution exists), so check ``residual`` and
``balance_residual``.
"""


from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import CertificationError, InvalidArgumentError
from .._printing import NotebookDisplay, _check_names, _latex_matrix, _num

__all__ = ['TwoLayerEquilibrium', 'geometric_mean', 'two_layer_equilibrium']



# ------------------------------------------------------------------------------------------
# Two-layer linear network: the full GL(d) equilibrium (E20)-(E21)
# ------------------------------------------------------------------------------------------


@dataclass
class TwoLayerEquilibrium(NotebookDisplay):
    """θ* = (U P⁻¹, P W) on the GL(d) orbit of (U, W), P² = X = M_W⁻¹ # (c M_U) (E21)."""

    U: np.ndarray
    W: np.ndarray
    P: np.ndarray
    X: np.ndarray
    residual: float  # ‖X M_W X − c M_U‖ / ‖c M_U‖ (on the ranges)
    balance_residual: float  # (E20) at θ*: ‖TrΣ_x U*ᵀΣ_εU* − TrΣ_ε W*Σ_xW*ᵀ‖ / scale
    Q_eigenvalues: np.ndarray  # eigenvalues of W*W*ᵀ − U*ᵀU* (rotation invariants)

    def latex(self, symbol_names: Any = None) -> str:
        """X, P, the rotation invariants and the residuals as LaTeX (see :func:`noether_sym.to_latex`)."""

        return two_layer_latex(self, _check_names(symbol_names))

    def _latex_(self, names: Mapping[Any, str] | None) -> str:
        return two_layer_latex(self, names)


#: largest relative residual of X M_W X = c M_U accepted as a solution of (E21)
MAX_RESIDUAL = 1e-3


def _spd_sqrt(M: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh((M + M.T) / 2)
    return (V * np.sqrt(np.maximum(w, 0))) @ V.T


def geometric_mean(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A # B = A^{1/2}(A^{-1/2} B A^{-1/2})^{1/2} A^{1/2} for SPD A, B."""
    Ah = _spd_sqrt(A)
    w, V = np.linalg.eigh(Ah)
    Aih = (V / w) @ V.T
    return Ah @ _spd_sqrt(Aih @ B @ Aih) @ Ah


def two_layer_equilibrium(U: Any, W: Any, Sigma_x: Any, Sigma_eps: Any, *, rtol: float = 1e-10) -> TwoLayerEquilibrium:
    """Closed form of the noise equilibrium of f(x) = U W x over the whole GL(d) orbit (E21).

    ``U`` is m x d, ``W`` is d x n; ``Sigma_x`` (n x n) and ``Sigma_eps`` (m x m) are the input
    and label-noise covariances of the teacher y = Vx + ε. With M_W = WΣ_xWᵀ, M_U = UᵀΣ_εU
    and c = TrΣ_x / TrΣ_ε, X is the unique SPD solution of X M_W X = c M_U. When M_W or M_U
    is singular (d > min(n, m)) the equation is solved on their common range and X is the
    identity on its complement.

    Examples
    --------
    >>> import numpy as np, noether_sym as ns
    >>> rng = np.random.default_rng(0)
    >>> U, W = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    >>> eq = ns.two_layer_equilibrium(U, W, np.diag([1.0, 3.0]), np.diag([0.5, 2.0]))
    >>> bool(eq.residual < 1e-10 and eq.balance_residual < 1e-10)
    True
    """
    U = np.asarray(U, float)
    W = np.asarray(W, float)
    Sx = np.asarray(Sigma_x, float)
    Se = np.asarray(Sigma_eps, float)
    m, d = U.shape
    d2, nin = W.shape
    if d2 != d or Sx.shape != (nin, nin) or Se.shape != (m, m):
        raise InvalidArgumentError(
            f"shapes do not fit: U {U.shape}, W {W.shape}, Sigma_x {Sx.shape}, Sigma_eps {Se.shape}"
        )
    c = np.trace(Sx) / np.trace(Se)
    MW = W @ Sx @ W.T
    MU = U.T @ Se @ U
    scale = max(np.abs(MW).max(), np.abs(c * MU).max(), 1e-300)
    wW = np.linalg.eigvalsh(MW)
    wU = np.linalg.eigvalsh(MU)
    full = wW.min() > rtol * max(wW.max(), 1e-300) and wU.min() > rtol * max(wU.max(), 1e-300)
    if full:
        X = geometric_mean(np.linalg.inv(MW), c * MU)
    else:
        # singular M_W or M_U (d > min(n, m)): the balance X M_W X = c M_U then has a family
        # of SPD solutions; take the limit ε -> 0 of the regularized geometric mean
        # (M_W + εI)^-1 # c(M_U + εI), which solves it on the whole space (its residual
        # is reported below, on the whole space, not on a subspace)
        best = None
        for eps in (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10):
            I = np.eye(d) * eps * scale
            Xe = geometric_mean(np.linalg.inv(MW + I), c * (MU + I))
            Xe = (Xe + Xe.T) / 2
            res = np.linalg.norm(Xe @ MW @ Xe - c * MU)
            if not np.isfinite(res):
                break
            if best is None or res < best[0]:
                best = (res, Xe)
            elif res > 10 * best[0]:
                break  # conditioning takes over below this ε
        X = best[1]
    X = (X + X.T) / 2
    try:
        P = _spd_sqrt(X)
        Pinv = np.linalg.inv(P)
    except np.linalg.LinAlgError:
        P = Pinv = None
    lhs = X @ MW @ X
    residual = float(np.linalg.norm(lhs - c * MU) / max(np.linalg.norm(c * MU), 1e-300))
    if Pinv is None or not np.isfinite(residual) or residual > MAX_RESIDUAL:
        # never a confident wrong answer: with M_W and M_U both singular the balance equation
        # can have no SPD solution on this orbit (an invertible X keeps the rank of M_W)
        raise CertificationError(
            f"(E21) has no SPD solution on this orbit to accuracy: relative residual of "
            f"X M_W X = c M_U is {residual:.3g} (limit {MAX_RESIDUAL:g}); M_W has rank "
            f"{int(np.sum(wW > rtol * max(wW.max(), 1e-300)))} and M_U rank "
            f"{int(np.sum(wU > rtol * max(wU.max(), 1e-300)))} of {d}. The closed form needs both of "
            "full rank or a balanced pair of ranges; use ns.noether_flow for this start"
        )
    Us, Ws = U @ Pinv, P @ W
    bal = np.trace(Sx) * Us.T @ Se @ Us - np.trace(Se) * Ws @ Sx @ Ws.T
    bscale = max(np.linalg.norm(np.trace(Sx) * Us.T @ Se @ Us), 1e-300)
    return TwoLayerEquilibrium(
        U=Us,
        W=Ws,
        P=P,
        X=X,
        residual=residual,
        balance_residual=float(np.linalg.norm(bal) / bscale),
        Q_eigenvalues=np.linalg.eigvalsh(Ws @ Ws.T - Us.T @ Us),
    )


def two_layer_latex(tl: Any, names: Mapping[Any, str] | None = None) -> str:
    """The two-layer equilibrium (E21): X = M_W^{-1} # (c M_U), P = X^{1/2}, residuals."""
    eig = ", ".join(_num(v, 5) for v in tl.Q_eigenvalues)
    return "\n".join(
        [
            r"\begin{align*}",
            f"X &= M_W^{{-1}} \\# (c\\, M_U) = {_latex_matrix(tl.X)} && \\text{{(E21)}} \\\\",
            f"P &= X^{{1/2}} = {_latex_matrix(tl.P)}, \\qquad \\theta^* = (U P^{{-1}},\\ P W) \\\\",
            f"\\operatorname{{spec}}(W^*W^{{*\\top}} - U^{{*\\top}}U^*) &= \\{{{eig}\\}} \\\\",
            f"\\frac{{\\|X M_W X - c M_U\\|}}{{\\|c M_U\\|}} &= {_num(tl.residual, 3)}, \\qquad "
            f"\\text{{(E20) residual at }}\\theta^*: {_num(tl.balance_residual, 3)}",
            r"\end{align*}",
        ]
    )
