"""Proof: transport laws of the gradient, moments and Hessian (E5), (E6) and (E7).

Setting checked: (E5) and the Hessian law for d = 1..3 with an undefined smooth ℓ and A in
its eigenbasis (the reduction of proofs/e03_e04_infinitesimal.py, step 1); (E6) for a data
distribution on K = 1..3 points with symbolic probabilities (p_K = 1 − Σ_{k<K} p_k) and
d = 1..3; (E7) for a *generic symmetric* A (no eigenbasis needed), d = 1..3, K = 1..3.

Hypotheses (arguments of :func:`proof`):

* ``assume_e3``: ℓ(e^{λA}θ) = ℓ(θ); it enters as the rewriting ℓ(e^{λA}θ) → ℓ(θ) before
  differentiating in θ, and as the per-sample gradients at e^{λA}θ being those of (E5).
  Without it the gradients at e^{λA}θ are unrelated symbols and steps 2, 4, 5 fail.
* ``assume_e4``: every per-sample gradient satisfies gᵀAθ = 0 (last component solved);
  without it the (E7) steps fail.
"""

from __future__ import annotations

import sympy as sp

from noether_sym.report._prove import Proof, Step, generic_vector, orthogonal_to, zero

DIMS = (1, 2, 3)


def _setup(d: int):
    lam = sp.Symbol("lambda", real=True)
    a = [sp.Symbol(f"a_{i}", real=True) for i in range(1, d + 1)]
    th = [sp.Symbol(f"theta_{i}", real=True) for i in range(1, d + 1)]
    ell = sp.Function("ell")
    y = sp.symbols(f"y_1:{d + 1}")
    p = [sp.exp(lam * a[i]) * th[i] for i in range(d)]
    return lam, a, th, ell, y, p


def _transport_chain(d: int, j: int):
    lam, a, th, ell, y, p = _setup(d)
    lhs = sp.diff(ell(*p) - ell(*th), th[j])
    g_p = sp.Derivative(ell(*y), y[j]).subs(dict(zip(y, p)))
    rhs = sp.exp(lam * a[j]) * g_p - sp.Derivative(ell(*th), th[j])
    return lhs - rhs


def _transport(d: int, j: int, use_e3: bool):
    lam, a, th, ell, y, p = _setup(d)
    invariant = ell(*th) if use_e3 else ell(*p)  # (E3) rewrites ℓ(e^{λA}θ) -> ℓ(θ)
    return sp.diff(invariant - ell(*th), th[j])


def _quadratic(y):
    """A generic quadratic polynomial in ``y``: it matches any 2-jet at any point."""
    d = len(y)
    c = sp.Symbol("c_0")
    c += sum(sp.Symbol(f"c_{i + 1}") * y[i] for i in range(d))
    c += sum(sp.Symbol(f"c_{i + 1}{j + 1}") * y[i] * y[j] for i in range(d) for j in range(i, d))
    return c


def _hessian(d: int, use_e3: bool, chain: bool):
    lam, a, th, ell, y, p = _setup(d)
    out = sp.zeros(d, d)
    if chain:
        # The identity is linear in ℓ and involves only its 2-jet at two points, so it holds
        # for every smooth ℓ iff it holds for a generic quadratic polynomial.
        q = _quadratic(y)
        q_p, q_th = q.subs(dict(zip(y, p))), q.subs(dict(zip(y, th)))
        for i in range(d):
            for j in range(d):
                H_p = sp.diff(q, y[i], y[j]).subs(dict(zip(y, p)))
                H_th = sp.diff(q, y[i], y[j]).subs(dict(zip(y, th)))
                out[i, j] = sp.diff(q_p - q_th, th[i], th[j]) - (sp.exp(lam * (a[i] + a[j])) * H_p - H_th)
        return out
    invariant = ell(*th) if use_e3 else ell(*p)  # (E3) rewrites ℓ(e^{λA}θ) -> ℓ(θ)
    for i in range(d):
        for j in range(d):
            out[i, j] = sp.diff(invariant - ell(*th), th[i], th[j])
    return out


def _moments(d: int, K: int, use_e3: bool):
    """(∇L, M, Σ) at θ_λ minus their transported values at θ, for K sample points."""
    lam = sp.Symbol("lambda", real=True)
    a = [sp.Symbol(f"a_{i}", real=True) for i in range(1, d + 1)]
    Einv = sp.diag(*[sp.exp(-lam * ai) for ai in a])  # e^{-λA}
    probs = [sp.Symbol(f"p_{k}", positive=True) for k in range(1, K)]
    probs.append(1 - sum(probs))
    g = [generic_vector(f"g{k}", d) for k in range(1, K + 1)]  # per-sample gradients at θ
    # per-sample gradients at θ_λ: (E5) under (E3), otherwise unrelated
    h = [Einv * gk for gk in g] if use_e3 else [generic_vector(f"h{k}", d) for k in range(1, K + 1)]

    def mom(vs):
        mean = sum((pk * v for pk, v in zip(probs, vs)), sp.zeros(d, 1))
        M = sum((pk * v * v.T for pk, v in zip(probs, vs)), sp.zeros(d, d))
        return mean, M, M - mean * mean.T

    m0, M0, S0 = mom(g)
    m1, M1, S1 = mom(h)
    return m1 - Einv * m0, M1 - Einv * M0 * Einv, S1 - Einv * S0 * Einv


def _e7(d: int, K: int, use_e4: bool):
    # only v = Aθ enters: (E4) constrains each g to v's orthogonal complement
    v = generic_vector("v", d)
    probs = [sp.Symbol(f"p_{k}", positive=True) for k in range(1, K)]
    probs.append(1 - sum(probs))
    g = [orthogonal_to(v, f"g{k}", constrain=use_e4) for k in range(1, K + 1)]
    mean = sum((pk * gk for pk, gk in zip(probs, g)), sp.zeros(d, 1))
    M = sum((pk * gk * gk.T for pk, gk in zip(probs, g)), sp.zeros(d, d))
    Sigma = M - mean * mean.T
    return (mean.T * v)[0], M * v, Sigma * v


def proof(*, assume_e3: bool = True, assume_e4: bool = True) -> Proof:
    """(E5), (E6), (E7) (see the module docstring)."""
    pairs = [(d, j) for d in DIMS for j in range(d)]
    dk = [(d, K) for d in DIMS for K in (1, 2, 3)]
    steps = [
        Step(
            "differentiate (E3) in theta",
            r"\partial_{\theta_j}\big[\ell(e^{\lambda A}\theta) - \ell(\theta)\big] &= e^{\lambda a_j}\, g_j(e^{\lambda A}\theta) - g_j(\theta)",
            "Chain rule in the eigenbasis of $A$ (an arbitrary smooth $\\ell$).",
            [zero(lambda d=d, j=j: _transport_chain(d, j), label=f"d={d}, j={j}") for d, j in pairs],
            "d = 1..3, every component j",
        ),
        Step(
            "(E5) gradient transport",
            r"e^{\lambda A}\, g(e^{\lambda A}\theta) - g(\theta) &= \nabla_\theta\big[\ell(\theta) - \ell(\theta)\big] = 0"
            r"\quad\Longrightarrow\quad g(e^{\lambda A}\theta, x) = e^{-\lambda A} g(\theta, x)",
            "By (E3) the bracket of step 1 is identically zero, so its gradient is zero; $A$ is symmetric, so "
            "$(e^{\\lambda A})^\\top = e^{\\lambda A}$.",
            [zero(lambda d=d, j=j: _transport(d, j, assume_e3), label=f"d={d}, j={j}") for d, j in pairs],
            "d = 1..3, every component j",
        ),
        Step(
            "Hessian: chain rule",
            r"\partial_i\partial_j\big[\ell(e^{\lambda A}\theta) - \ell(\theta)\big] &= e^{\lambda (a_i + a_j)} H_{ij}(e^{\lambda A}\theta) - H_{ij}(\theta)",
            "Differentiate step 1 once more (checked on a generic quadratic $\\ell$: the identity is linear in "
            "$\\ell$ and involves only its second-order jets, which a quadratic matches at any point).",
            [zero(lambda d=d: _hessian(d, assume_e3, chain=True), label=f"d={d}") for d in DIMS],
            "d = 1..3, all entries, generic 2-jet",
        ),
        Step(
            "(E6) Hessian transport",
            r"H(e^{\lambda A}\theta) &= e^{-\lambda A} H(\theta)\, e^{-\lambda A}",
            "The left side of step 3 vanishes by (E3).",
            [zero(lambda d=d: _hessian(d, assume_e3, chain=False), label=f"d={d}") for d in DIMS],
            "d = 1..3, all entries",
        ),
        Step(
            "(E6) moments",
            r"\nabla L(e^{\lambda A}\theta) &= e^{-\lambda A}\nabla L(\theta),\quad "
            r"M(e^{\lambda A}\theta) = e^{-\lambda A} M(\theta) e^{-\lambda A},\quad "
            r"\Sigma(e^{\lambda A}\theta) = e^{-\lambda A}\Sigma(\theta) e^{-\lambda A}",
            "Average (E5) and its outer product over the data: $\\nabla L = \\mathbb{E} g$, $M = \\mathbb{E}[gg^\\top]$, "
            "$\\Sigma = M - \\nabla L\\nabla L^\\top$.",
            [zero(lambda d=d, K=K, i=i: _moments(d, K, assume_e3)[i], label=f"d={d}, K={K}, {nm}")
             for d, K in dk for i, nm in enumerate(("grad L", "M", "Sigma"))],
            "d = 1..3, data on K = 1..3 points with symbolic probabilities",
        ),
        Step(
            "(E7) mean gradient",
            r"\nabla L(\theta)^\top A\,\theta &= \mathbb{E}\big[g(\theta,x)^\top A\theta\big] = 0",
            "Linearity of the expectation and (E4) for every sample.",
            [zero(lambda d=d, K=K: _e7(d, K, assume_e4)[0], label=f"d={d}, K={K}") for d, K in dk],
            "d = 1..3, K = 1..3, v = A theta generic",
        ),
        Step(
            "(E7) second moment",
            r"M(\theta) A\theta &= \mathbb{E}\big[g\,(g^\top A\theta)\big] = 0",
            "(E4) inside the expectation.",
            [zero(lambda d=d, K=K: _e7(d, K, assume_e4)[1], label=f"d={d}, K={K}") for d, K in dk],
            "d = 1..3, K = 1..3, v = A theta generic",
        ),
        Step(
            "(E7) noise covariance",
            r"\Sigma(\theta) A\theta &= M A\theta - \nabla L\,(\nabla L^\top A\theta) = 0",
            "Steps 6 and 7.",
            [zero(lambda d=d, K=K: _e7(d, K, assume_e4)[2], label=f"d={d}, K={K}") for d, K in dk],
            "d = 1..3, K = 1..3, v = A theta generic",
        ),
    ]
    hyps = []
    if assume_e3:
        hyps.append(r"$\ell(e^{\lambda A}\theta, x) = \ell(\theta, x)$ for all $\lambda, \theta, x$ (E3), $A = A^\top$;")
    if assume_e4:
        hyps.append(r"$g(\theta, x)^\top A\theta = 0$ for all $\theta, x$ (E4), equivalent to (E3) by the previous theorem.")
    return Proof(
        key="e05_e07",
        title="Transport of gradients, moments and Hessian",
        tags=("E5", "E6", "E7"),
        statement=r"If $\ell$ has the $A$-exponential symmetry, then $g(e^{\lambda A}\theta, x) = e^{-\lambda A}g(\theta, x)$; "
        r"$\nabla L$, $M$, $\Sigma$ and $H$ transform as $\nabla L\mapsto e^{-\lambda A}\nabla L$ and "
        r"$X \mapsto e^{-\lambda A} X e^{-\lambda A}$ along the orbit; and $\nabla L^\top A\theta = 0$, "
        r"$M A\theta = 0$, $\Sigma A\theta = 0$.",
        hypotheses=hyps,
        steps=steps,
    )
