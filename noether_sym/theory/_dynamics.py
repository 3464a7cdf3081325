"""Theory: how SGD moves a Noether charge, exactly per step and in continuous time (§4).

For a generator A with charge C = θᵀAθ (E8), every minibatch gradient satisfies ĝᵀAθ = 0
(E4), so expanding θ_{k+1} = (1 − ηγ)θ_k − ηĝ_k gives, with no approximation,

    C_{k+1} = (1 − ηγ)² C_k + η² ĝ_kᵀ A ĝ_k                                    (E10)
    E[C_{k+1} | θ_k] = (1 − ηγ)² C_k + η² (∇Lᵀ A ∇L + κ Tr[A Σ])               (E11)
    dC/dt = −2γ C + (η/S) Tr[A Σ(θ)]                                           (E12)

with κ = 1/S for S samples drawn with replacement and κ = (N − S)/(S(N − 1)) without
replacement from N. :class:`ChargeDynamics` holds the three laws as SymPy expressions,
compiled NumPy functions (``lambdify(..., cse=True)``, batched over θ) and LaTeX.
"""


from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError
from .._printing import LINE_WIDTH, NotebookDisplay, _latex, _rhs, _visible
from ..data._moments import moments
from ..loss._generators import as_generator
from ..loss._loss import Loss, as_loss
from ._spectrum import BATCH, ETA, GAMMA

__all__ = ['ChargeDynamics', 'charge_dynamics']


C_K = sp.Symbol("C_k")
C_NEXT = sp.Symbol("C_{k+1}")


@dataclass
class ChargeDynamics(NotebookDisplay):
    """The charge of one generator and its laws of motion under SGD (E10)–(E12).

    Attributes
    ----------
    charge
        C(θ) = θᵀAθ in the user's symbols.
    step
        (E10) right-hand side in C_k, η, γ and the minibatch-gradient symbols ``ghat``.
    expected_step
        (E11) right-hand side as a function of θ, η, γ, S (the noise term uses κ).
    drift
        (E12) dC/dt as a function of θ, η, γ, S.
    trace_A_sigma
        Tr[A Σ(θ)], the noise term (E13 at λ = 0).
    """

    loss: Loss
    A: sp.Matrix
    charge: sp.Expr
    ghat: tuple[sp.Symbol, ...]
    step: sp.Expr
    expected_step: sp.Expr
    drift: sp.Expr
    trace_A_sigma: sp.Expr
    kappa: sp.Expr
    _fns: dict[str, Callable] = field(default_factory=dict, repr=False)

    # ---- numeric ---------------------------------------------------------------------
    def step_numeric(self, C: Any, ghat: Any, lr: float, weight_decay: float = 0.0) -> np.ndarray:
        """(E10) for arrays: C (...,), ghat (..., n)."""
        A = np.array(self.A.tolist(), dtype=float)
        g = np.asarray(ghat, dtype=float)
        return (1 - lr * weight_decay) ** 2 * np.asarray(C) + lr**2 * np.einsum("...i,ij,...j->...", g, A, g)

    def _compiled(self, name: str) -> Callable:
        if name not in self._fns:
            expr = {"charge": self.charge, "expected_step": self.expected_step, "drift": self.drift,
                    "trace_A_sigma": self.trace_A_sigma}[name]
            args = list(self.loss.params) + [ETA, GAMMA, BATCH]
            self._fns[name] = sp.lambdify(args, expr, modules="numpy", cse=True)
        return self._fns[name]

    def evaluate(self, name: str, theta: Any, *, lr: float = 0.0, weight_decay: float = 0.0, batch_size: int = 1) -> np.ndarray:
        """Evaluate ``charge``, ``expected_step``, ``drift`` or ``trace_A_sigma`` at θ (..., n)."""
        th = np.asarray(theta, dtype=float)
        if th.shape[-1] != self.loss.n:
            raise InvalidArgumentError(f"theta must have shape (..., {self.loss.n}); got {th.shape}")
        f = self._compiled(name)
        out = f(*[th[..., i] for i in range(self.loss.n)], lr, weight_decay, batch_size)
        return np.broadcast_to(out, th.shape[:-1]).astype(float)

    # ---- text --------------------------------------------------------------------------
    def _latex_(self, names: Mapping[Any, str] | None) -> str:
        return dynamics_latex(self, names)

    def latex(self) -> str:
        """The three laws as LaTeX (align-ready lines)."""
        lines = [
            r"C(\theta) &= " + sp.latex(self.charge),
            r"C_{k+1} &= " + sp.latex((1 - ETA * GAMMA) ** 2 * C_K) + r" + \eta^{2}\, \hat g_k^{\top} A \hat g_k",
            r"\mathbb{E}[C_{k+1}\mid\theta_k] &= " + sp.latex(self.expected_step),
            r"\frac{dC}{dt} &= " + sp.latex(self.drift),
        ]
        return " \\\\\n".join(lines)


def charge_dynamics(
    loss: Loss,
    A: Any,
    *,
    replace: bool = True,
    values: Any = None,
) -> ChargeDynamics:
    """The charge of ``A`` and its exact SGD dynamics (E10)–(E12) for ``loss``.

    Parameters
    ----------
    loss
        A loss with a data model whose moments are exact (Gaussian/polynomial data or a
        dataset).
    A
        A symmetric generator (n x n).
    replace
        Minibatches drawn with replacement (κ = 1/S) or, for a finite dataset of N samples,
        without (κ = (N − S)/(S(N − 1))).

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x = Normal("x", 0, 1)
    >>> dyn = ns.charge_dynamics(ns.Loss((u * w * x - x) ** 2, [u, w]), sp.diag(1, -1))
    >>> dyn.charge
    u**2 - w**2
    >>> sp.factor(dyn.trace_A_sigma)
    -8*(u - w)*(u + w)*(u*w - 1)**2
    """

    loss = as_loss(loss)
    n = loss.n
    Am = as_generator(A, n, symmetry="symmetric", rational=False, nonzero=True)
    mom = moments(loss, values=values)
    if not (mom.exact and isinstance(mom.covariance, sp.MatrixBase)):
        raise InvalidArgumentError(
            "charge_dynamics needs exact moments (polynomial data model or a dataset); "
            "for other losses use noise_equilibrium (numeric moments) or simulate"
        )
    if values:
        mom = mom.with_values(values)
    th = sp.Matrix(loss.params)
    charge = sp.expand((th.T * Am * th)[0, 0])
    ghat = tuple(sp.Symbol(f"ghat_{i}") for i in range(n))
    g = sp.Matrix(ghat)
    step = (1 - ETA * GAMMA) ** 2 * C_K + ETA**2 * sp.expand((g.T * Am * g)[0, 0])
    tr, gAg = _noise_terms_exact(mom, Am)
    N = loss.n_samples
    if not replace:
        if N is None:
            raise InvalidArgumentError("sampling without replacement needs a finite dataset")
        kappa = (N - BATCH) / (BATCH * (N - 1))
    else:
        kappa = 1 / BATCH
    expected = (1 - ETA * GAMMA) ** 2 * charge + ETA**2 * (gAg + kappa * tr)
    drift = -2 * GAMMA * charge + ETA / BATCH * tr
    return ChargeDynamics(
        loss=loss,
        A=Am,
        charge=charge,
        ghat=ghat,
        step=step,
        expected_step=expected,
        drift=drift,
        trace_A_sigma=tr,
        kappa=kappa,
    )


def _noise_terms_exact(mom: Any, Am: sp.Matrix) -> tuple[sp.Expr, sp.Expr]:
    """(Tr[AΣ], ∇LᵀA∇L), expanded, from exact moments.

    With the moments' polynomials at hand and a rational A, both are sums of those
    polynomials with rational weights (exact arithmetic in FLINT, then one conversion to
    SymPy, already expanded and canonical); otherwise ``sp.expand`` of the SymPy matrices.
    """
    polys = mom._polys
    entries = [(i, j, v) for (i, j), v in Am.todok().items() if v != 0]
    if polys is not None and all(sp.sympify(v).is_Rational for _, _, v in entries):
        b, mean, _, S = polys
        tr_p, gAg_p = b.zero, b.zero
        for i, j, v in entries:
            c = b.const(sp.Rational(v))
            tr_p = tr_p + c * S[min(i, j), max(i, j)]
            gAg_p = gAg_p + c * (mean[i] * mean[j])
        return b.to_sympy(tr_p), b.to_sympy(gAg_p)
    Sigma = mom.covariance
    grad = mom.mean_grad
    tr = sp.expand(sp.Add(*[v * Sigma[j, i] for i, j, v in entries]))
    gAg = sp.expand((grad.T * Am * grad)[0, 0])
    return tr, gAg


def dynamics_latex(dyn: Any, names: Mapping[Any, str] | None = None) -> str:
    """The charge and its laws of motion: (E10) exact step, (E11) expectation, (E12) drift."""

    # (E11) = (1 − ηγ)² C + η² (∇LᵀA∇L + κ Tr[AΣ]); print the mean-gradient part on its own line
    gAg = sp.expand((dyn.expected_step - (1 - ETA * GAMMA) ** 2 * dyn.charge) / ETA**2 - dyn.kappa * dyn.trace_A_sigma)
    kappa = _latex(dyn.kappa, names)
    return "\n".join(
        [
            r"\begin{align*}",
            f"C(\\theta) &= {_rhs(dyn.charge, names)} \\\\",
            r"C_{k+1} &= (1 - \eta\gamma)^{2}\, C_k + \eta^{2}\, \hat g_k^\top A\, \hat g_k && \text{(E10)} \\",
            f"\\mathbb{{E}}[C_{{k+1}}\\mid\\theta_k] &= (1 - \\eta\\gamma)^{{2}}\\, C_k + \\eta^{{2}} \\Big(\\nabla L^\\top A \\nabla L "
            f"+ {kappa}\\,\\operatorname{{Tr}}[A\\Sigma(\\theta)]\\Big) && \\text{{(E11)}} \\\\",
            f"\\nabla L^\\top A \\nabla L &= {_rhs(gAg, names)} \\\\",
            f"\\operatorname{{Tr}}[A\\Sigma(\\theta)] &= {_rhs(dyn.trace_A_sigma, names)} \\\\",
            _drift_row(dyn, names),
            r"\end{align*}",
        ]
    )


def _drift_row(dyn: Any, names: Mapping[Any, str] | None) -> str:
    """(E12) as one row when short, else in the structured form −2γC + (η/S)·Tr[AΣ]."""
    full = _latex(dyn.drift, names)
    if _visible(full) <= LINE_WIDTH:
        return f"\\frac{{dC}}{{dt}} &= {full} && \\text{{(E12)}}"
    return r"\frac{dC}{dt} &= -2\gamma\, C(\theta) + \frac{\eta}{S}\operatorname{Tr}[A\Sigma(\theta)] && \text{(E12)}"
