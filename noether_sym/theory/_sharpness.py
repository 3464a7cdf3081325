"""Theory: the sharpness along a symmetry orbit and at the noise equilibrium (THEORY (E19)).

:func:`population_hessian` gives H(θ) = E∇²ℓ (exact when the moments are); by the transport
law its trace along the orbit is T(λ) = Σ_i e^{-2λa_i} h_i with h_i = Tr[P_iH(θ)].
:func:`sharpness_along_orbit` returns a :class:`Sharpness`: T at λ = 0 and at λ*, its
minimiser, and whether SGD flattens or sharpens on its way to the equilibrium.
"""


from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import flint
import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError, NoetherSymError
from .._printing import LINE_WIDTH, NotebookDisplay, _check_names, _num, _rhs
from ..compile._compiled import compiled
from ..data._moments import expectation, moments
from ..data._sample import _value_map, make_sampler
from ..loss._generators import as_generator
from ..loss._loss import Loss, as_loss
from ._equilibrium import noise_equilibrium
from ._noise import _eval_exact, _exact_theta
from ._root import _solve
from ._spectrum import LAMBDA, drift_terms, spectrum

__all__ = ['Sharpness', 'population_hessian', 'sharpness_along_orbit']



# ------------------------------------------------------------------------------------------
# Sharpness along the orbit (E19)
# ------------------------------------------------------------------------------------------


@dataclass
class Sharpness(NotebookDisplay):
    """Hessian trace along the orbit, T(λ) = Σ_i e^{-2λa_i} h_i, h_i = Tr[P_i H(θ)] (E19).

    ``argmin`` is the flattest point of the orbit; ``change`` = T(λ*) − T(0) is the
    predicted sharpness change when SGD moves to the noise equilibrium λ*; ``verdict`` is
    "flatten" (change < 0), "sharpen" (> 0) or "unchanged".
    """

    eigenvalues: list[Any]
    h: list[Any]
    argmin: float
    lam_star: float
    T0: float
    T_star: float
    change: float
    verdict: str
    exact: bool
    method: str

    def T(self, lam: float) -> float:
        return float(sum(math.exp(-2 * lam * float(a)) * float(h) for a, h in zip(self.eigenvalues, self.h)))

    def latex(self, symbol_names: Any = None) -> str:
        """T(λ), its minimizer and the predicted change as LaTeX (see :func:`noether_sym.to_latex`)."""

        return sharpness_latex(self, _check_names(symbol_names))

    def _latex_(self, names: Mapping[Any, str] | None) -> str:
        return sharpness_latex(self, names)


def population_hessian(loss: Loss, theta: Any, *, values: Any = None, n_samples: int | None = None, seed: int = 0) -> tuple[Any, bool]:
    """H(θ) = E[∇²ℓ(θ, x)]: exact (polynomial data model) or Monte Carlo; (matrix, exact)."""

    th = loss.theta_vector(theta)
    te = _exact_theta(loss, theta, th)
    if not values:
        H = _hessian_from_polys(loss, te)
        if H is not None:
            return H, True
    try:
        Hs = loss._cache.get("population_hessian_symbolic")
        if Hs is None:
            L = sp.expand(expectation(loss, loss.expr))
            n = loss.n
            Hs = sp.zeros(n, n)
            grads = [sp.diff(L, p) for p in loss.params]
            for i in range(n):
                for j in range(i, n):
                    Hs[i, j] = Hs[j, i] = sp.diff(grads[i], loss.params[j])
            loss._cache["population_hessian_symbolic"] = Hs
        if values:

            Hs = Hs.xreplace(_value_map(loss, values))
        H = _eval_exact(loss, "hessian", Hs, te, values)
        if any(not v.is_number for v in H):
            raise InvalidArgumentError("the Hessian depends on symbols besides θ; pass values=")
        return H, True
    except InvalidArgumentError:
        raise
    except Exception:  # noqa: BLE001 - non-polynomial in the data: Monte Carlo below
        pass

    cl = compiled(loss)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    m = n_samples or 20_000
    X = make_sampler(loss).draw(rng, (m,))
    n = loss.n
    H = np.zeros((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1.0
        H[:, i] = cl.hvp(np.broadcast_to(th, (m, n)), np.broadcast_to(e, (m, n)), X).mean(axis=0)
    return (H + H.T) / 2, False


def _hessian_from_polys(loss: Loss, te: sp.Matrix) -> sp.Matrix | None:
    """H(θ) exactly at a rational θ from the exact moments' polynomials, or None.

    H_ij = ∂E[g_i]/∂θ_j: the polynomials of E[g] differentiated and evaluated at θ in exact
    rational arithmetic (FLINT), no symbolic expansion of E[ℓ]. None when the moments are
    not polynomial, θ hides inside a non-polynomial factor (``tanh(w)``, ``1/w``: a FLINT
    derivative would miss it), or the result depends on other symbols (the SymPy route then
    evaluates, or names them).
    """
    try:
        polys = moments(loss)._polys
    except NoetherSymError:
        return None
    if polys is None:
        return None
    b, mean, _, _ = polys
    theta_set = set(loss.theta)
    if any(a.free_symbols & theta_set for a in b.atoms):
        return None
    idx = {t: k for k, t in enumerate(b.gens) if k >= b.D}
    if any(t not in idx for t in loss.theta):
        return None
    cols = [idx[t] for t in loss.theta]
    sub = {k: flint.fmpq(int(v.p), int(v.q)) for k, v in zip(cols, te)}
    n = loss.n
    H = sp.zeros(n, n)
    for i in range(n):
        for j in range(i, n):
            v = mean[i].derivative(cols[j]).subs(sub)
            if not v.is_constant():
                return None
            H[i, j] = H[j, i] = b.to_sympy(v)
    return H


def sharpness_along_orbit(
    loss: Loss,
    A: Any,
    theta: Any,
    *,
    lam_star: float | None = None,
    values: Any = None,
    n_samples: int | None = None,
    seed: int = 0,
) -> Sharpness:
    """Sharpness T(λ) = Tr H(e^{λA}θ) along the orbit, its minimiser, and the predicted
    change T(λ*) − T(0) when SGD moves to the noise equilibrium (E19).

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    >>> loss = ns.Loss((u * w * x - x - e) ** 2, [u, w])  # label noise independent of x
    >>> sh = ns.sharpness_along_orbit(loss, sp.diag(1, -1), [2, 0.5])
    >>> sh.verdict, round(sh.argmin - sh.lam_star, 12)   # Σ ∝ H at a minimum: λ* = argmin T
    ('flatten', 0.0)
    """
    loss = as_loss(loss)
    Am = as_generator(A, loss.n, symmetry="symmetric", rational=False, nonzero=True)
    spec = spectrum(Am)
    H, exact = population_hessian(loss, theta, values=values, n_samples=n_samples, seed=seed)
    th = loss.theta_vector(theta)
    h_list, _ = drift_terms(spec, H, _exact_theta(loss, theta, th) if exact else th)
    exact = exact and spec.rational
    a_f = spec.floats
    h_f = [float(v) for v in h_list]
    # argmin T: root of -T'/2 = Σ a_i e^{-2λa_i} h_i (same structure as G)
    pos = any(a > 0 and h > 0 for a, h in zip(a_f, h_f))
    neg = any(a < 0 and h > 0 for a, h in zip(a_f, h_f))
    if pos and neg:
        lam_min = float(_solve(spec, h_list, [0] * len(h_list), 0.0, sp.Integer(0), 20, exact)[0])
    else:
        lam_min = math.inf if pos else (-math.inf if neg else 0.0)
    if lam_star is None:
        lam_star = noise_equilibrium(loss, Am, theta, check_symmetry=False, values=values, project=False).lam
    T = lambda lam: float(sum(math.exp(-2 * lam * a) * h for a, h in zip(a_f, h_f)))
    T0 = T(0.0)
    Ts = T(lam_star) if math.isfinite(lam_star) else (math.inf if any(
        (a > 0) != (lam_star > 0) and h > 0 for a, h in zip(a_f, h_f) if a != 0) else 0.0)
    change = Ts - T0
    tol = 1e-12 * max(1.0, abs(T0))
    verdict = "flatten" if change < -tol else ("sharpen" if change > tol else "unchanged")
    return Sharpness(
        eigenvalues=list(spec.eigenvalues),
        h=list(h_list),
        argmin=lam_min,
        lam_star=float(lam_star),
        T0=T0,
        T_star=Ts,
        change=change,
        verdict=verdict,
        exact=exact,
        method="exact population Hessian" if exact else "Monte Carlo population Hessian",
    )


def sharpness_latex(sh: Any, names: Mapping[Any, str] | None = None) -> str:
    """Hessian trace along the orbit T(λ) (E19), its minimizer, λ* and the predicted change."""

    T = sp.Add(*[sp.exp(-2 * LAMBDA * sp.sympify(a)) * sp.sympify(h) for a, h in zip(sh.eigenvalues, sh.h)])
    return "\n".join(
        [
            r"\begin{align*}",
            f"T(\\lambda) &= \\operatorname{{Tr}} H(e^{{\\lambda A}}\\theta) = {_rhs(T, names, width=LINE_WIDTH - 20)} && \\text{{(E19)}} \\\\",
            f"\\arg\\min_\\lambda T &= {_num(sh.argmin)}, \\qquad \\lambda^* = {_num(sh.lam_star)} \\\\",
            f"T(\\lambda^*) - T(0) &= {_num(sh.T_star)} - {_num(sh.T0)} = {_num(sh.change)}",
            r"\end{align*}",
            f"SGD is predicted to {sh.verdict}.",
        ]
    )
