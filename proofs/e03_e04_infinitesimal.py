"""Proof: the exponential symmetry (E3) and its infinitesimal form (E4) are equivalent.

Setting checked: dimension d = 1..3, an arbitrary (undefined, smooth) per-sample loss
ℓ(θ) (the sample x is a fixed parameter throughout), and A in its orthonormal eigenbasis,
A = Q D Qᵀ, D = diag(a_1..a_d) with symbolic a_i. Step 1 shows that the change of variables
φ = Qᵀθ turns gᵀAθ into ∇_φℓ̃ᵀ D φ for *any* Q, so the diagonal case is the general case.

Hypotheses (arguments of :func:`proof`):

* ``assume_e4``: (E4) holds at every point. It enters as the rewriting rule that solves
  (E4) at the point e^{λA}θ for the last gradient component; without it the derivative
  of λ ↦ ℓ(e^{λA}θ) is a generic expression and step 3 fails.
* ``assume_e3``: (E3) holds. It enters as the rewriting ℓ(e^{λA}θ) → ℓ(θ) applied
  *before* differentiating in λ; without it step 5 fails.
"""

from __future__ import annotations

import sympy as sp

from noether_sym.report._prove import Proof, Step, general, generic_vector, zero

DIMS = (1, 2, 3)


def _setup(d: int):
    lam = sp.Symbol("lambda", real=True)
    a = [sp.Symbol(f"a_{i}", real=True, nonzero=True) for i in range(1, d + 1)]
    th = [sp.Symbol(f"theta_{i}", real=True, nonzero=True) for i in range(1, d + 1)]
    ell = sp.Function("ell")
    y = sp.symbols(f"y_1:{d + 1}")
    p = [sp.exp(lam * a[i]) * th[i] for i in range(d)]  # e^{λA}θ in the eigenbasis

    def grad_at(point, i):
        return sp.Derivative(ell(*y), y[i]).subs(dict(zip(y, point)))

    return lam, a, th, ell, y, p, grad_at


def _flow_derivative(d: int, use_e4: bool):
    lam, a, th, ell, y, p, grad_at = _setup(d)
    f_prime = sp.diff(ell(*p), lam)
    if use_e4:
        # (E4) at the point p, solved for the last gradient component
        rest = sum(a[i] * p[i] * grad_at(p, i) for i in range(d - 1))
        f_prime = f_prime.xreplace({grad_at(p, d - 1): -rest / (a[d - 1] * p[d - 1])})
    return f_prime


def _chain_rule(d: int):
    lam, a, th, ell, y, p, grad_at = _setup(d)
    return sp.diff(ell(*p), lam), sum(a[i] * p[i] * grad_at(p, i) for i in range(d))


def _change_of_basis(d: int):
    Q = general("q", d, d)
    D = sp.diag(*[sp.Symbol(f"a_{i}") for i in range(1, d + 1)])
    g, th = generic_vector("g", d), generic_vector("theta", d)
    # gᵀ (Q D Qᵀ) θ  versus  (Qᵀ g)ᵀ D (Qᵀ θ): ∇_φ ℓ(Qφ) = Qᵀ g, φ = Qᵀθ
    return (g.T * (Q * D * Q.T) * th)[0], ((Q.T * g).T * D * (Q.T * th))[0]


def _e4_from_e3(d: int, use_e3: bool):
    lam, a, th, ell, y, p, grad_at = _setup(d)
    f = ell(*th) if use_e3 else ell(*p)  # (E3): ℓ(e^{λA}θ) = ℓ(θ) for every λ
    return sp.diff(f, lam).subs(lam, 0).doit()


def _e4_at_lambda0(d: int):
    lam, a, th, ell, y, p, grad_at = _setup(d)
    lhs = sp.diff(ell(*p), lam).subs(lam, 0).doit()
    rhs = sum(a[i] * th[i] * sp.Derivative(ell(*th), th[i]) for i in range(d))
    return lhs, rhs


def proof(*, assume_e4: bool = True, assume_e3: bool = True) -> Proof:
    """(E3) ⇔ (E4) for d = 1..3 (see the module docstring)."""
    steps = [
        Step(
            "eigenbasis",
            r"g^\top (Q D Q^\top)\,\theta &= (Q^\top g)^\top D\, (Q^\top \theta)",
            "Orthogonal change of variables $\\varphi = Q^\\top\\theta$, $\\tilde\\ell(\\varphi)=\\ell(Q\\varphi)$, "
            "$\\nabla_\\varphi\\tilde\\ell = Q^\\top g$: the condition for $A = QDQ^\\top$ is the condition for the "
            "diagonal $D$ in the new variables, so $A = D = \\mathrm{diag}(a_1,\\dots,a_d)$ from now on.",
            [zero(lambda d=d: sp.Add(*[s * c for s, c in zip((1, -1), _change_of_basis(d))]), label=f"d={d}") for d in DIMS],
            "d = 1..3, generic Q (not even orthogonal) and D",
        ),
        Step(
            "chain rule",
            r"\frac{d}{d\lambda}\,\ell(e^{\lambda A}\theta) &= \sum_{i} a_i\, (e^{\lambda A}\theta)_i\, \partial_i \ell(e^{\lambda A}\theta)"
            r" = g(e^{\lambda A}\theta)^\top A\, e^{\lambda A}\theta",
            "Chain rule with $(e^{\\lambda A}\\theta)_i = e^{\\lambda a_i}\\theta_i$, for an arbitrary smooth $\\ell$.",
            [zero(lambda d=d: _chain_rule(d)[0] - _chain_rule(d)[1], label=f"d={d}") for d in DIMS],
            "d = 1..3, undefined function ell",
        ),
        Step(
            "(E4) => (E3)",
            r"\frac{d}{d\lambda}\,\ell(e^{\lambda A}\theta) &= 0 \quad\Longrightarrow\quad \ell(e^{\lambda A}\theta) = \ell(\theta) + \int_0^\lambda 0\, d\mu = \ell(\theta)",
            "Apply (E4) at the point $\\theta' = e^{\\lambda A}\\theta$ (it holds at every point): the derivative "
            "of step 2 is $g(\\theta')^\\top A\\theta' = 0$; integrate in $\\lambda$.",
            [zero(lambda d=d: _flow_derivative(d, assume_e4), reduce="cancel", label=f"d={d}") for d in DIMS],
            "d = 1..3, undefined function ell",
        ),
        Step(
            "derivative at 0",
            r"\frac{d}{d\lambda}\Big|_{\lambda=0}\ell(e^{\lambda A}\theta) &= g(\theta)^\top A\,\theta",
            "Step 2 at $\\lambda = 0$.",
            [zero(lambda d=d: _e4_at_lambda0(d)[0] - _e4_at_lambda0(d)[1], label=f"d={d}") for d in DIMS],
            "d = 1..3",
        ),
        Step(
            "(E3) => (E4)",
            r"g(\theta)^\top A\,\theta &= \frac{d}{d\lambda}\Big|_{\lambda=0}\ell(\theta) = 0",
            "By (E3) the function $\\lambda\\mapsto\\ell(e^{\\lambda A}\\theta)$ is the constant $\\ell(\\theta)$; "
            "its derivative, which is $g^\\top A\\theta$ by step 4, vanishes.",
            [zero(lambda d=d: _e4_from_e3(d, assume_e3), label=f"d={d}") for d in DIMS],
            "d = 1..3",
        ),
    ]
    hyps = []
    if assume_e4:
        hyps.append(r"(for $\Leftarrow$) $g(\theta,x)^\top A\theta = 0$ for every $\theta$ and $x$ (E4);")
    if assume_e3:
        hyps.append(r"(for $\Rightarrow$) $\ell(e^{\lambda A}\theta, x) = \ell(\theta, x)$ for every $\lambda$, $\theta$, $x$ (E3).")
    return Proof(
        key="e03_e04",
        title="Exponential symmetry and its infinitesimal form",
        tags=("E3", "E4"),
        statement=r"Let $A = A^\top \neq 0$ and $\ell$ smooth. Then $\ell(e^{\lambda A}\theta, x) = \ell(\theta, x)$ for all "
        r"$\lambda, \theta, x$ if and only if $g(\theta, x)^\top A\,\theta = 0$ for all $\theta, x$, where $g = \nabla_\theta\ell$.",
        hypotheses=hyps,
        steps=steps,
        setting="The sample $x$ is fixed throughout and suppressed from the notation.",
    )
