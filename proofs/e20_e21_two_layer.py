"""Proof: the noise equilibrium of a two-layer linear network (E20) and its closed form (E21).

Setting checked: (E20) for f(x) = U W x with every shape (n, d, m) ∈ {1, 2}³ (generic
symbolic U, W, Σ_x, Σ_ε), squared loss ℓ = ‖UWx − y‖², teacher y = Vx + ε with x and ε
independent, zero-mean Gaussian (moments by Isserlis' theorem); gradients are computed by
differentiating ℓ. (E21) in symbolic dimension: products of noncommuting matrix symbols
reduced with the rules P P⁻¹ = I, R R⁻¹ = I, C² = R⁻¹ B R⁻¹ (C the SPD square root), plus the
transformation of M_W, M_U checked with explicit generic SPD-shaped P for d = 1..2.

Hypotheses (arguments of :func:`proof`):

* ``at_minimum``: UW = V; without it the residual keeps a (UW − V)x part and the
  second-moment step fails.
* ``square_root``: C² = R⁻¹BR⁻¹ (C is the square root in the geometric mean); without it the
  geometric mean does not solve X M_W X = c M_U and that step fails.
"""

from __future__ import annotations

import functools
import itertools

import sympy as sp

from noether_sym.report._prove import (
    Proof,
    Step,
    general,
    generic_vector,
    symmetric,
    zero,
)

SHAPES = [s for s in itertools.product((1, 2), repeat=3)]  # (n, d, m)


def _isserlis(expr: sp.Expr, xs: list[sp.Symbol], cov: sp.Matrix) -> sp.Expr:
    """E over a zero-mean Gaussian vector xs with covariance cov (Isserlis' theorem)."""
    poly = sp.Poly(sp.expand(expr), *xs)
    out = sp.Integer(0)
    for monom, coeff in poly.terms():
        idx = [k for k, e in enumerate(monom) for _ in range(e)]
        out += coeff * _pairings(idx, cov)
    return out


def _pairings(idx: list[int], cov: sp.Matrix) -> sp.Expr:
    if not idx:
        return sp.Integer(1)
    if len(idx) % 2:
        return sp.Integer(0)
    first, rest = idx[0], idx[1:]
    return sum(cov[first, rest[j]] * _pairings(rest[:j] + rest[j + 1:], cov) for j in range(len(rest)))


@functools.lru_cache(maxsize=None)
def _moments(n: int, d: int, m: int, at_minimum: bool):
    U, W = general("U", m, d), general("W", d, n)
    V = general("V", m, n)  # the teacher: a constant when differentiating
    Sx, Se = symmetric("Sx", n), symmetric("Se", m)
    x, e = generic_vector("x", n), generic_vector("e", m)
    y = V * x + e
    res = U * W * x - y
    ell = (res.T * res)[0]
    gW = sp.Matrix(d, n, lambda i, j: sp.diff(ell, W[i, j]))
    gU = sp.Matrix(m, d, lambda i, j: sp.diff(ell, U[i, j]))
    if at_minimum:  # evaluate the gradients at a minimum, V = UW
        at = dict(zip(V, U * W))
        gW, gU = gW.subs(at), gU.subs(at)

    def E(M):
        return M.applyfunc(lambda z: _isserlis(_isserlis(z, list(x), Sx), list(e), Se))

    lhs_W = E(gW * gW.T) - 4 * Sx.trace() * U.T * Se * U
    lhs_U = E(gU.T * gU) - 4 * Se.trace() * W * Sx * W.T
    return lhs_W, lhs_U, E(gW), E(gU)


def _transport(d: int, n: int, m: int):
    P = symmetric("P", d)
    Pi = P.inv()
    U, W = general("U", m, d), general("W", d, n)
    Sx, Se = symmetric("Sx", n), symmetric("Se", m)
    Us, Ws = U * Pi, P * W
    return (Ws * Sx * Ws.T - P * (W * Sx * W.T) * P).col_join(Us.T * Se * Us - Pi * (U.T * Se * U) * Pi)


P, Pi, MW, MU, R, Ri, Cm, B, X, Sq = sp.symbols("P P^{-1} M_W M_U R R^{-1} C B X S", commutative=False)
tx, te = sp.symbols(r"\mathrm{Tr}\Sigma_x \mathrm{Tr}\Sigma_\varepsilon", positive=True)


def _reduce_words(expr: sp.Expr, rules: list[tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    expr = sp.expand(expr)
    for _ in range(20):
        new = expr
        for old, rep in rules:
            new = sp.expand(new.subs(old, rep))
        if new == expr:
            break
        expr = new
    return expr


def proof(*, at_minimum: bool = True, square_root: bool = True) -> Proof:
    """(E20) and (E21) (see the module docstring)."""
    c = tx / te
    inv_rules = [(P * Pi, 1), (Pi * P, 1), (R * Ri, 1), (Ri * R, 1)]
    sqrt_rule = [(Cm * Cm, Ri * B * Ri)] if square_root else []
    # (E20) at θ* = (U P⁻¹, P W): Tr Σ_x P⁻¹ M_U P⁻¹ − Tr Σ_ε P M_W P, multiplied by P on both sides
    e20_star = tx * Pi * MU * Pi - te * P * MW * P
    Xw = P * P
    # geometric mean X = A # B, A = M_W⁻¹ = R², R = A^{1/2}, C = (R⁻¹ B R⁻¹)^{1/2}; M_W = R⁻¹R⁻¹
    Xg = R * Cm * R
    steps = [
        Step(
            "gradients at a minimum",
            r"\mathbb{E}\, g_W &= 0, \qquad \mathbb{E}\, g_U = 0",
            "$g_W = 2U^\\top r x^\\top$, $g_U = 2 r x^\\top W^\\top$ with residual $r = UWx - y = -\\varepsilon$ when $UW = V$; "
            "$\\varepsilon$ has zero mean and is independent of $x$. So covariances equal second moments.",
            [zero(lambda s=s: sp.Matrix(list(_moments(*s, at_minimum)[2]) + list(_moments(*s, at_minimum)[3])), label=f"(n,d,m)={s}")
             for s in SHAPES],
            "(n, d, m) in {1,2}^3, gradients by differentiation",
        ),
        Step(
            "second moments",
            r"\mathbb{E}[g_W g_W^\top] &= 4\Tr(\Sigma_x)\, U^\top\Sigma_\varepsilon U, \qquad \mathbb{E}[g_U^\top g_U] = 4\Tr(\Sigma_\varepsilon)\, W\Sigma_x W^\top",
            "Isserlis' theorem for the Gaussian $x$ and $\\varepsilon$, independent.",
            [zero(lambda s=s, k=k: _moments(*s, at_minimum)[k], label=f"(n,d,m)={s}, {'W' if k == 0 else 'U'}") for s in SHAPES for k in (0, 1)],
            "(n, d, m) in {1,2}^3",
        ),
        Step(
            "(E20) balance",
            r"\frac{dQ}{dt} \propto \mathbb{E}[g_Wg_W^\top] - \mathbb{E}[g_U^\top g_U] = 0 &\iff \Tr(\Sigma_x)\, U^\top\Sigma_\varepsilon U = \Tr(\Sigma_\varepsilon)\, W\Sigma_x W^\top",
            "Step 2 in $dQ/dt = (\\eta/S)(\\mathrm{Cov}[g_Wg_W^\\top] - \\mathrm{Cov}[g_U^\\top g_U])$, $Q = WW^\\top - U^\\top U$.",
            [],
            "logic: steps 1 and 2",
        ),
        Step(
            "moments on the orbit",
            r"W^*\Sigma_x W^{*\top} &= P M_W P, \qquad U^{*\top}\Sigma_\varepsilon U^* = P^{-1} M_U P^{-1}",
            "$\\theta^* = (UP^{-1}, PW)$ with $P$ symmetric invertible; $M_W = W\\Sigma_xW^\\top$, $M_U = U^\\top\\Sigma_\\varepsilon U$.",
            [zero(lambda s=s: _transport(*s), reduce="cancel", label=f"(d,n,m)={s}") for s in [(1, 1, 1), (2, 1, 1), (2, 2, 2)]],
            "(d, n, m) in {(1,1,1), (2,1,1), (2,2,2)}, generic symmetric P",
        ),
        Step(
            "(E20) at theta* is a Riccati equation",
            r"P\,\big(\Tr\Sigma_x\, P^{-1}M_UP^{-1} - \Tr\Sigma_\varepsilon\, P M_W P\big)\,P &= \Tr\Sigma_\varepsilon\,\big(c\,M_U - X M_W X\big),"
            r"\quad X = P^2,\ c = \frac{\Tr\Sigma_x}{\Tr\Sigma_\varepsilon}",
            "Multiply (E20) at $\\theta^*$ by the invertible $P$ on both sides.",
            [zero(lambda: _reduce_words(P * e20_star * P - te * (c * MU - Xw * MW * Xw), inv_rules))],
            "symbolic dimension (noncommuting symbols)",
        ),
        Step(
            "(E21) geometric mean solves it",
            r"X = M_W^{-1} \# (c M_U) = R\,C\,R:\quad X M_W X &= R\,C\,R\,R^{-1}R^{-1}\,R\,C\,R = R\,C^2 R = c M_U",
            "$R = M_W^{-1/2}$, $B = c M_U$, $C = (R^{-1}BR^{-1})^{1/2}$, so $A\\#B = A^{1/2}(A^{-1/2}BA^{-1/2})^{1/2}A^{1/2}$ with $A = M_W^{-1}$.",
            [zero(lambda: _reduce_words(Xg * (Ri * Ri) * Xg - B, inv_rules + sqrt_rule))],
            "symbolic dimension (noncommuting symbols)",
        ),
        Step(
            "uniqueness",
            r"X M_W X = c M_U \iff (S X S)^2 &= S\,(c M_U)\,S, \qquad S = M_W^{1/2}",
            "So $SXS$ is the SPD square root of $S(cM_U)S$, which is unique; so "
            "$X = S^{-1}(S\\,cM_U\\,S)^{1/2}S^{-1}$ is the only SPD solution, and $X = RCR$ is SPD (a congruence of the SPD $C$).",
            [zero(lambda: _reduce_words(Sq * X * Sq * Sq * X * Sq - Sq * X * MW * X * Sq, [(Sq * Sq, MW)]))],
            "symbolic dimension",
        ),
    ]
    hyps = [r"$f(x) = UWx$, $\ell = \|f(x) - y\|^2$, $y = Vx + \varepsilon$, $x \sim N(0, \Sigma_x)$ and "
            r"$\varepsilon \sim N(0, \Sigma_\varepsilon)$ independent;"]
    if at_minimum:
        hyps.append(r"$\theta$ is a global minimum: $UW = V$;")
    if square_root:
        hyps.append(r"$M_W$, $M_U$ are SPD (solve on their ranges otherwise) and $C$ is the SPD square root of $R^{-1}BR^{-1}$.")
    return Proof(
        key="e20_e21",
        title="The two-layer linear network",
        tags=("E20", "E21"),
        statement=r"At a minimum, the charges $Q = WW^\top - U^\top U$ stop drifting if and only if "
        r"$\Tr(\Sigma_x)\,U^\top\Sigma_\varepsilon U =$ $\Tr(\Sigma_\varepsilon)\,W\Sigma_xW^\top$ (E20). On the orbit "
        r"$\theta^* = (UP^{-1}, PW)$ this holds iff $X = P^2$ solves $XM_WX = cM_U$, whose unique SPD solution is the "
        r"geometric mean $X = M_W^{-1}\#(cM_U)$ (E21).",
        hypotheses=hyps,
        steps=steps,
    )
