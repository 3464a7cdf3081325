"""Proof: sharpness along the orbit, and when the noise equilibrium is the flattest point (E19).

Setting checked: T(λ) in an eigenbasis for d = 1..4 (generic symmetric H); derivatives,
convexity and the link G = −(c/2)T' for a symbolic number r of eigenvalues; the label-noise
identity Σ = 2σ²H at a minimum for parameter dimension d = 1..3 and data on K = 1..2
points, with gradients and Hessians of the model as generic symbols and the label noise ε
independent of x with E ε = 0, E ε² = σ².

Hypotheses (arguments of :func:`proof`):

* ``hessian_psd``: h_i = Tr[P_iH] ≥ 0 (H ⪰ 0 at a minimum); without it convexity fails.
* ``proportional_noise``: Σ = cH with c > 0 (s_i = c h_i); without it the identity G = −(c/2)T'
  fails.
* ``zero_mean_noise``: E ε = 0; without it Σ ≠ 2σ²H (the label-noise step fails).
"""

from __future__ import annotations

import sympy as sp

from noether_sym.report._prove import Proof, Step, generic_vector, sign, symmetric, zero

lam = sp.Symbol("lambda", real=True)
i, r = sp.symbols("i r", integer=True, positive=True)


def _spectral_T(d: int):
    a = [sp.Symbol(f"a_{k}", real=True) for k in range(1, d + 1)]
    E = sp.diag(*[sp.exp(-lam * ak) for ak in a])
    H = symmetric("H", d)
    return (E * H * E).trace() - sum(sp.exp(-2 * lam * a[k]) * H[k, k] for k in range(d))


def _label_noise(d: int, K: int, zero_mean: bool):
    eps = sp.Symbol("epsilon", real=True)
    sigma2 = sp.Symbol("sigma^2", positive=True)
    m = sp.Integer(0) if zero_mean else sp.Symbol("m", real=True)  # E ε
    probs = [sp.Symbol(f"p_{k}", positive=True) for k in range(1, K)]
    probs.append(1 - sum(probs))

    def E_eps(expr):  # ε independent of x: E ε = m, E ε² = σ² + m²
        poly = sp.Poly(sp.expand(expr), eps)
        mom = {0: 1, 1: m, 2: sigma2 + m**2}
        return sum(c * mom[k[0]] for k, c in poly.terms())

    Sigma, H, mean = sp.zeros(d, d), sp.zeros(d, d), sp.zeros(d, 1)
    for k in range(K):
        F = generic_vector(f"F{k + 1}", d)  # ∇_θ f(θ, x_k)
        Phi = symmetric(f"Phi{k + 1}", d)  # ∇²_θ f(θ, x_k)
        # at a minimum of the realizable problem f(θ, x) = f*(x), y = f*(x) + ε: f − y = −ε
        g = 2 * (-eps) * F  # ∇ℓ of ℓ = (f − y)²
        hess = 2 * F * F.T + 2 * (-eps) * Phi  # ∇²ℓ
        Sigma += probs[k] * (g * g.T).applyfunc(E_eps)
        H += probs[k] * hess.applyfunc(E_eps)
        mean += probs[k] * g.applyfunc(E_eps)
    Sigma -= mean * mean.T
    return Sigma - 2 * sigma2 * H


def proof(*, hessian_psd: bool = True, proportional_noise: bool = True, zero_mean_noise: bool = True) -> Proof:
    """(E19) (see the module docstring)."""
    a = sp.IndexedBase("a", real=True)
    h = sp.IndexedBase("h", nonnegative=True) if hessian_psd else sp.IndexedBase("h", real=True)
    c = sp.Symbol("c", positive=True)
    s = (lambda j: c * h[j]) if proportional_noise else (lambda j: sp.IndexedBase("s", nonnegative=True)[j])
    T = sp.Sum(sp.exp(-2 * lam * a[i]) * h[i], (i, 1, r))
    dT = -2 * sp.Sum(a[i] * sp.exp(-2 * lam * a[i]) * h[i], (i, 1, r))
    d2T = 4 * sp.Sum(a[i] ** 2 * sp.exp(-2 * lam * a[i]) * h[i], (i, 1, r))
    G = sp.Sum(a[i] * sp.exp(-2 * lam * a[i]) * s(i), (i, 1, r))
    steps = [
        Step(
            "(E19) spectral form",
            r"T(\lambda) = \Tr H(e^{\lambda A}\theta) = \Tr\big[e^{-\lambda A} H(\theta) e^{-\lambda A}\big] &= \sum_i e^{-2\lambda a_i} h_i,"
            r"\qquad h_i = \Tr[P_i H(\theta)]",
            "Hessian transport (E6) in an eigenbasis of $A$.",
            [zero(lambda d=d: _spectral_T(d), label=f"d={d}") for d in (1, 2, 3, 4)],
            "d = 1..4, generic symmetric H",
        ),
        Step(
            "derivatives",
            r"T'(\lambda) &= -2\sum_{i=1}^r a_i e^{-2\lambda a_i} h_i, \qquad T''(\lambda) = 4\sum_{i=1}^r a_i^2 e^{-2\lambda a_i} h_i",
            "Term by term.",
            [zero(lambda: sp.diff(T, lam) - dT, reduce="sums"), zero(lambda: sp.diff(T, lam, 2) - d2T, reduce="sums")],
            "symbolic r",
        ),
        Step(
            "convexity",
            r"T''(\lambda) &\ge 0",
            "At a minimum $H \\succeq 0$, so $h_i = \\Tr[P_i H P_i] \\ge 0$; every term is $\\ge 0$. The flattest point of "
            "the orbit solves $\\sum_i a_i e^{-2\\lambda a_i}h_i = 0$.",
            [sign(d2T, "nonneg")],
            "symbolic r",
        ),
        Step(
            "noise proportional to curvature",
            r"\Sigma = cH\ (c > 0):\quad G(\lambda) &= \sum_i a_i e^{-2\lambda a_i}\, c\,h_i = -\tfrac{c}{2}\, T'(\lambda)",
            "$s_i = c\\,h_i$ in (E14): the noise equilibrium $G(\\lambda^*) = 0$ is the stationary point of $T$, "
            "which by convexity is its minimum: $\\lambda^* = \\arg\\min T$.",
            [zero(lambda: G - (-c / 2) * dT, reduce="sums")],
            "symbolic r",
        ),
        Step(
            "label noise",
            r"\Sigma(\theta) &= 4\sigma^2\,\mathbb{E}[\nabla f\nabla f^\top] = 2\sigma^2 H(\theta)",
            "Squared loss $(f - y)^2$ at a minimum of a realizable problem, $y = f^*(x) + \\varepsilon$, "
            "$\\mathbb{E}\\varepsilon = 0$, $\\mathbb{E}\\varepsilon^2 = \\sigma^2$, $\\varepsilon$ independent of $x$: "
            "$g = -2\\varepsilon\\nabla f$ and $\\nabla^2\\ell = 2\\nabla f\\nabla f^\\top - 2\\varepsilon\\nabla^2 f$.",
            [zero(lambda d=d, K=K: _label_noise(d, K, zero_mean_noise), label=f"d={d}, K={K}") for d in (1, 2, 3) for K in (1, 2)],
            "d = 1..3, data on K = 1..2 points, generic model gradients and Hessians",
        ),
        Step(
            "progressive flattening",
            r"\lambda^* &= \arg\min_\lambda T(\lambda)",
            "Steps 4 and 5 with $c = 2\\sigma^2$: under label noise SGD moves to the flattest point of the orbit.",
            [],
            "logic: steps 4 and 5",
        ),
    ]
    hyps = []
    if hessian_psd:
        hyps.append(r"$H(\theta) \succeq 0$ (a minimum), so $h_i \ge 0$;")
    if proportional_noise:
        hyps.append(r"for step 4: $\Sigma(\theta) = cH(\theta)$ near the minimum, $c > 0$;")
    if zero_mean_noise:
        hyps.append(r"for step 5: label noise $\varepsilon$ independent of $x$ with $\mathbb{E}\varepsilon = 0$, $\mathbb{E}\varepsilon^2 = \sigma^2$.")
    return Proof(
        key="e19",
        title="Sharpness along the orbit",
        tags=("E19",),
        statement=r"$T(\lambda) = \Tr H(e^{\lambda A}\theta) = \sum_i e^{-2\lambda a_i}h_i$ is convex at a minimum; if "
        r"$\Sigma = cH$ ($c > 0$), the noise equilibrium is its minimizer, $\lambda^* = \arg\min T$. Under label noise "
        r"$\Sigma = 2\sigma^2 H$ at a minimum, so SGD moves to the flattest point of the orbit.",
        hypotheses=hyps,
        steps=steps,
    )
