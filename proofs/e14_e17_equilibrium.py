"""Proof: spectral form, monotonicity and uniqueness of the noise equilibrium (E14)–(E17).

Setting checked: the spectral form of G and C in an orthonormal eigenbasis of A for
d = 1..4 (A = diag(a_i), Σ a generic symmetric matrix; grouping equal eigenvalues gives
s_i = Tr[P_iΣ] and ‖P_iθ‖²); derivatives, signs and the independence of the start for a
*symbolic number r of eigenvalues* (sums over indexed symbols a_i, s_i); the limits at
±∞ for two and three eigenvalues of every sign pattern; the closed form (E17) exactly.

Hypotheses (arguments of :func:`proof`):

* ``noise_nonnegative``: s_i = Tr[P_iΣ] ≥ 0 (Σ ⪰ 0 and P_i an orthogonal projector);
  without it the sign of G' is unknown and the monotonicity step fails.
* ``both_signs``: the noise reaches both signs of A (s₊ > 0 on some a > 0 and s₋ > 0 on
  some −b < 0); without it (s₋ = 0) G tends to 0, not −∞, and the limit step fails.
"""

from __future__ import annotations

import sympy as sp

from noether_sym.report._prove import (
    Proof,
    Step,
    generic_vector,
    limit,
    sign,
    symmetric,
    zero,
)

lam, mu = sp.Symbol("lambda", real=True), sp.Symbol("mu", real=True)
i, r = sp.symbols("i r", integer=True, positive=True)


def _spectral_G(d: int):
    a = [sp.Symbol(f"a_{k}", real=True) for k in range(1, d + 1)]
    A = sp.diag(*a)
    E = sp.diag(*[sp.exp(-lam * ak) for ak in a])  # e^{-λA}
    Sigma = symmetric("Sigma", d)
    lhs = (A * E * Sigma * E).trace()  # Tr[A Σ(θ_λ)], Σ(θ_λ) = e^{-λA} Σ e^{-λA} by (E6)
    rhs = sum(a[k] * sp.exp(-2 * lam * a[k]) * Sigma[k, k] for k in range(d))
    return lhs - rhs


def _spectral_C(d: int):
    a = [sp.Symbol(f"a_{k}", real=True) for k in range(1, d + 1)]
    th = generic_vector("theta", d)
    Ep = sp.diag(*[sp.exp(lam * ak) for ak in a])
    lhs = ((Ep * th).T * sp.diag(*a) * (Ep * th))[0]
    return lhs - sum(a[k] * sp.exp(2 * lam * a[k]) * th[k] ** 2 for k in range(d))


def proof(*, noise_nonnegative: bool = True, both_signs: bool = True) -> Proof:
    """(E14)–(E17) (see the module docstring)."""
    a = sp.IndexedBase("a", real=True)
    s = sp.IndexedBase("s", nonnegative=True) if noise_nonnegative else sp.IndexedBase("s", real=True)
    n = sp.IndexedBase("n", nonnegative=True)  # n_i = ‖P_iθ‖²
    G = sp.Sum(a[i] * sp.exp(-2 * lam * a[i]) * s[i], (i, 1, r))
    dG = -2 * sp.Sum(a[i] ** 2 * sp.exp(-2 * lam * a[i]) * s[i], (i, 1, r))
    C = sp.Sum(a[i] * sp.exp(2 * lam * a[i]) * n[i], (i, 1, r))
    dC = 2 * sp.Sum(a[i] ** 2 * sp.exp(2 * lam * a[i]) * n[i], (i, 1, r))
    # strictness: one eigenvalue a_p != 0 carries noise s_p > 0, the rest as before
    ap, sp_ = sp.Symbol("a_p", real=True, nonzero=True), sp.Symbol("s_p", positive=True)
    dG_split = -2 * ap**2 * sp.exp(-2 * lam * ap) * sp_ + dG
    # limits: a, b, c > 0; noise s_plus on a, s_minus on -b, s_0 >= 0 on a third eigenvalue ±c
    A_, B_, C_ = sp.symbols("a b c", positive=True)
    s_plus = sp.Symbol("s_+", positive=True)
    s_minus = sp.Symbol("s_-", positive=True) if both_signs else sp.Integer(0)
    s0 = sp.Symbol("s_0", positive=True)
    G2 = A_ * sp.exp(-2 * lam * A_) * s_plus - B_ * sp.exp(2 * lam * B_) * s_minus
    G3p = G2 + C_ * sp.exp(-2 * lam * C_) * s0
    G3m = G2 - C_ * sp.exp(2 * lam * C_) * s0
    # independence of the start: s_i -> e^{-2μ a_i} s_i at e^{μA}θ (E6)
    G_mu = sp.Sum(a[i] * sp.exp(-2 * lam * a[i]) * (sp.exp(-2 * mu * a[i]) * s[i]), (i, 1, r))
    # closed form (E17)
    lam_star = sp.log(A_ * s_plus / (B_ * s_minus)) / (2 * (A_ + B_)) if both_signs else sp.Symbol("lambda^*")
    steps = [
        Step(
            "(E14) spectral form",
            r"G(\lambda) = \Tr\big[A\, e^{-\lambda A}\Sigma(\theta) e^{-\lambda A}\big] &= \sum_i a_i\, e^{-2\lambda a_i}\, s_i,"
            r"\qquad s_i = \Tr[P_i\Sigma(\theta)]",
            "(E6) and $A = \\sum_i a_i P_i$ in an orthonormal eigenbasis; equal eigenvalues group into $s_i$.",
            [zero(lambda d=d: _spectral_G(d), label=f"d={d}") for d in (1, 2, 3, 4)],
            "d = 1..4, generic symmetric Sigma, symbolic eigenvalues",
        ),
        Step(
            "derivative of G",
            r"G'(\lambda) &= -2\sum_{i=1}^{r} a_i^2\, e^{-2\lambda a_i}\, s_i",
            "Differentiate term by term.",
            [zero(lambda: sp.diff(G, lam) - dG, reduce="sums")],
            "symbolic number r of eigenvalues",
        ),
        Step(
            "(E14) monotonicity",
            r"G'(\lambda) &\le 0",
            "Every term is $-2a_i^2e^{-2\\lambda a_i}s_i \\le 0$ because $s_i = \\Tr[P_i\\Sigma P_i] \\ge 0$.",
            [sign(dG, "nonpos")],
            "symbolic r, term by term",
        ),
        Step(
            "strict monotonicity",
            r"G'(\lambda) &\le -2a_p^2 e^{-2\lambda a_p} s_p < 0",
            "If some eigenvalue $a_p \\ne 0$ carries noise $s_p > 0$, its term is strictly negative and the others are $\\le 0$.",
            [sign(dG_split, "negative")],
            "symbolic r",
        ),
        Step(
            "(E15) charge along the orbit",
            r"C(e^{\lambda A}\theta) &= \sum_i a_i\, e^{2\lambda a_i}\, \|P_i\theta\|^2",
            "Eigenbasis of $A$.",
            [zero(lambda d=d: _spectral_C(d), label=f"d={d}") for d in (1, 2, 3, 4)],
            "d = 1..4",
        ),
        Step(
            "(E15) C increases",
            r"\frac{d}{d\lambda}C(e^{\lambda A}\theta) &= 2\sum_{i=1}^r a_i^2 e^{2\lambda a_i}\|P_i\theta\|^2 \ge 0",
            "Differentiate; every term is $\\ge 0$.",
            [zero(lambda: sp.diff(C, lam) - dC, reduce="sums"), sign(dC, "nonneg")],
            "symbolic r",
        ),
        Step(
            "limits",
            r"\lim_{\lambda\to-\infty} G(\lambda) &= +\infty, \qquad \lim_{\lambda\to+\infty} G(\lambda) = -\infty",
            "With noise $s_+ > 0$ on an eigenvalue $a > 0$ and $s_- > 0$ on $-b < 0$, the exponentials of the extreme "
            "eigenvalues dominate; checked for two eigenvalues and for a third one of either sign.",
            [limit(g, lam, pt, val, label=f"{nm}, lambda -> {pt}") for nm, g in (("a,-b", G2), ("a,-b,c", G3p), ("a,-b,-c", G3m))
             for pt, val in ((-sp.oo, sp.oo), (sp.oo, -sp.oo))],
            "r = 2, 3, all sign patterns",
        ),
        Step(
            "(E16) unique equilibrium",
            r"\exists!\,\lambda^*:\ G(\lambda^*) &= 0,\qquad \theta^* = e^{\lambda^* A}\theta",
            "$G$ is continuous, strictly decreasing (step 4) and runs from $+\\infty$ to $-\\infty$ (step 7): "
            "intermediate value theorem for existence, strict monotonicity for uniqueness.",
            [],
            "logic: steps 4 and 7",
        ),
        Step(
            "start independence",
            r"G_{e^{\mu A}\theta}(\lambda) &= \sum_i a_i e^{-2\lambda a_i} e^{-2\mu a_i} s_i = G_\theta(\lambda + \mu)",
            "(E6) at the starting point $e^{\\mu A}\\theta$ multiplies $s_i$ by $e^{-2\\mu a_i}$; so its root is $\\lambda^* - \\mu$ "
            "and $e^{(\\lambda^*-\\mu)A}e^{\\mu A}\\theta = \\theta^*$.",
            [zero(lambda: G_mu - G.subs(lam, lam + mu), reduce="sums")],
            "symbolic r",
        ),
        Step(
            "(E17) closed form",
            r"\lambda^* &= \frac{1}{2(a+b)}\log\frac{a\, s_+}{b\, s_-}:\quad \log\big(a e^{-2\lambda^* a} s_+\big) = \log\big(b e^{2\lambda^* b} s_-\big)",
            "Two eigenvalues $a > 0 > -b$: both terms of $G(\\lambda^*)$ are positive, so $G(\\lambda^*) = 0$ iff their "
            "logarithms agree.",
            [zero(lambda: sp.log(A_ * sp.exp(-2 * lam_star * A_) * s_plus) - sp.log(B_ * sp.exp(2 * lam_star * B_) * s_minus),
                  reduce="expand_log")],
            "symbolic a, b, s_+, s_-",
        ),
        Step(
            "attraction",
            r"G(\lambda) &= a\,s_+ e^{-2\lambda a}\big(1 - e^{2(a+b)(\lambda - \lambda^*)}\big)",
            "So $G > 0$ for $\\lambda < \\lambda^*$ and $G < 0$ for $\\lambda > \\lambda^*$. With $\\gamma = 0$, (E12) gives "
            "$dC/dt = (\\eta/S)\\,G$ and $C$ increases with $\\lambda$ (step 6): the position on the orbit moves toward "
            "$\\lambda^*$ from either side (the Noether flow).",
            [zero(lambda: G2 - A_ * s_plus * sp.exp(-2 * lam * A_)
                  * (1 - sp.exp(2 * (A_ + B_) * lam) * sp.exp(-sp.cancel(2 * (A_ + B_) * lam_star))))],
            "two eigenvalues a > 0 > -b, symbolic",
        ),
        Step(
            "rescaling",
            r"a = b = 1:\quad \lambda^* &= \tfrac14 \log\frac{s_+}{s_-}",
            "Special case of step 10.",
            [zero(lambda: lam_star.subs({A_: 1, B_: 1}) - sp.log(s_plus / s_minus) / 4, reduce="expand_log")],
            "symbolic",
        ),
    ]
    hyps = [r"$A = A^\top$ is a symmetry generator; $G(\lambda) = \Tr[A\Sigma(e^{\lambda A}\theta)]$ (E13);"]
    if noise_nonnegative:
        hyps.append(r"$\Sigma(\theta) \succeq 0$, so $s_i = \Tr[P_i\Sigma(\theta)] \ge 0$;")
    if both_signs:
        hyps.append(r"the noise reaches both signs of $A$: $s_i > 0$ for some $a_i > 0$ and $s_j > 0$ for some $a_j < 0$.")
    return Proof(
        key="e14_e17",
        title="The noise equilibrium: spectral form, monotonicity, uniqueness, closed form",
        tags=("E14", "E15", "E16", "E17"),
        statement=r"$G(\lambda) = \sum_i a_i e^{-2\lambda a_i}s_i$ is nonincreasing and $C(e^{\lambda A}\theta)$ is "
        r"nondecreasing in $\lambda$. If the noise reaches both signs of $A$, $G$ has exactly one root $\lambda^*$, "
        r"$\theta^* = e^{\lambda^* A}\theta$ does not depend on the starting point of the orbit, and for two eigenvalues "
        r"$a > 0 > -b$, $\lambda^* = \log(a s_+ / (b s_-)) / (2(a+b))$, which attracts the motion along the orbit.",
        hypotheses=hyps,
        steps=steps,
    )
