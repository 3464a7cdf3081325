"""Proof: the divergent class and the weight-decay equilibrium of scale invariance (E18).

Setting checked: the sign of G for a symbolic number r of eigenvalues; the scaling
Σ(cθ) = Σ(θ)/c² from (E6) for d = 1..3 with a generic symmetric Σ; the equilibria of the
continuous (E12) and discrete (E11) laws exactly, with symbolic η, γ, S and noise levels.

Hypotheses (arguments of :func:`proof`):

* ``semidefinite``: A ⪰ 0 (eigenvalues a_i ≥ 0); without it G has no sign (step 1 fails).
* ``scale_invariant``: A = I (ℓ(cθ) = ℓ(θ)); replaced by a generic diagonal A the noise
  does not scale as 1/‖θ‖² and step 3 fails.
"""

from __future__ import annotations

import sympy as sp

from noether_sym.report._prove import Proof, Step, sign, symmetric, zero

lam = sp.Symbol("lambda", real=True)
i, r = sp.symbols("i r", integer=True, positive=True)
eta, gamma, S = sp.symbols("eta gamma S", positive=True)
rho = sp.Symbol("rho", positive=True)  # ‖θ‖
That = sp.Symbol(r"\hat{T}", positive=True)  # Tr Σ(θ̂), θ̂ = θ/‖θ‖
Ghat = sp.Symbol(r"\hat{q}", positive=True)  # ‖∇L(θ̂)‖²


def _scaling(d: int, scale_invariant: bool):
    a = [sp.Integer(1)] * d if scale_invariant else [sp.Symbol(f"a_{k}", positive=True) for k in range(1, d + 1)]
    E = sp.diag(*[sp.exp(-sp.log(rho) * ak) for ak in a])  # e^{-λA} at λ = log ρ
    Sigma = symmetric("Sigma", d)
    return E * Sigma * E - Sigma / rho**2


def proof(*, semidefinite: bool = True, scale_invariant: bool = True) -> Proof:
    """(E18) (see the module docstring)."""
    a = sp.IndexedBase("a", nonnegative=True) if semidefinite else sp.IndexedBase("a", real=True)
    s = sp.IndexedBase("s", nonnegative=True)
    G = sp.Sum(a[i] * sp.exp(-2 * lam * a[i]) * s[i], (i, 1, r))
    ap, sp_ = sp.Symbol("a_p", positive=True), sp.Symbol("s_p", positive=True)
    C_star = sp.sqrt(eta * That / (2 * gamma * S))  # ‖θ*‖² (continuous time)
    drift = lambda C: -2 * gamma * C + (eta / S) * That / C  # noqa: E731  (E12) with Tr Σ = T̂/‖θ‖²
    q = Ghat + That / S
    C_disc = sp.sqrt(eta * q / (gamma * (2 - eta * gamma)))
    step_disc = lambda C: (1 - eta * gamma) ** 2 * C + eta**2 * q / C  # noqa: E731  (E11), A = I
    steps = [
        Step(
            "divergent class: G has one sign",
            r"A \succeq 0:\quad G(\lambda) &= \sum_{i=1}^r a_i e^{-2\lambda a_i} s_i \ge 0",
            "Every term is $\\ge 0$ when $a_i \\ge 0$ and $s_i \\ge 0$ (E14).",
            [sign(G, "nonneg")],
            "symbolic r",
        ),
        Step(
            "no finite equilibrium",
            r"G(\lambda) &\ge a_p e^{-2\lambda a_p} s_p > 0",
            "If some eigenvalue $a_p > 0$ carries noise, $G > 0$ for every $\\lambda$: no root, $\\lambda^* = +\\infty$; "
            "by (E12) with $\\gamma = 0$ the charge grows forever.",
            [sign(ap * sp.exp(-2 * lam * ap) * sp_ + G, "positive")],
            "symbolic r",
        ),
        Step(
            "scale invariance",
            r"\Sigma(\rho\hat\theta) &= e^{-(\log\rho) I}\,\Sigma(\hat\theta)\,e^{-(\log\rho) I} = \rho^{-2}\,\Sigma(\hat\theta)",
            "(E6) with $A = I$ and $\\lambda = \\log\\rho$, $\\rho = \\|\\theta\\|$; likewise $\\nabla L(\\rho\\hat\\theta) = \\nabla L(\\hat\\theta)/\\rho$.",
            [zero(lambda d=d: _scaling(d, scale_invariant), label=f"d={d}") for d in (1, 2, 3)],
            "d = 1..3, generic symmetric Sigma",
        ),
        Step(
            "(E18) continuous equilibrium",
            r"\frac{dC}{dt} &= -2\gamma\|\theta\|^2 + \frac{\eta}{S}\frac{\Tr\Sigma(\hat\theta)}{\|\theta\|^2} = 0"
            r"\quad\text{at}\quad \|\theta^*\|^4 = \frac{\eta\,\Tr\Sigma(\hat\theta)}{2\gamma S}",
            "(E12) with $C = \\|\\theta\\|^2$ and step 3; the equation $2\\gamma C^* = (\\eta/S)\\Tr[A\\Sigma(\\theta^*)]$.",
            [zero(lambda: drift(C_star), reduce="cancel")],
            "symbolic eta, gamma, S",
        ),
        Step(
            "attraction",
            r"\frac{d}{dC}\Big(-2\gamma C + \frac{\eta}{S}\frac{\Tr\Sigma(\hat\theta)}{C}\Big) &= -2\gamma - \frac{\eta\,\Tr\Sigma(\hat\theta)}{S\,C^2} < 0",
            "The drift decreases in $C$: above $C^*$ the charge shrinks, below it grows.",
            [zero(lambda: sp.diff(drift(rho), rho) - (-2 * gamma - eta * That / (S * rho**2))),
             sign(-2 * gamma - eta * That / (S * rho**2), "negative")],
            "symbolic",
        ),
        Step(
            "(E18) discrete equilibrium",
            r"\|\theta^*\|^4 &= \frac{\eta\,\big(\|\nabla L(\hat\theta)\|^2 + \Tr\Sigma(\hat\theta)/S\big)}{\gamma\,(2 - \eta\gamma)}",
            "Fixed point $C^* = \\mathbb{E}[C_{k+1}]$ of (E11) with $A = I$, $\\nabla L = \\nabla L(\\hat\\theta)/\\|\\theta\\|$ and step 3.",
            [zero(lambda: step_disc(C_disc) - C_disc, reduce="cancel")],
            "symbolic eta, gamma, S",
        ),
    ]
    hyps = []
    if semidefinite:
        hyps.append(r"$A \succeq 0$ (eigenvalues $a_i \ge 0$), noise levels $s_i = \Tr[P_i\Sigma] \ge 0$;")
    if scale_invariant:
        hyps.append(r"for the equilibrium: scale invariance, $A = I$ ($\ell(c\theta) = \ell(\theta)$, $c > 0$), and weight decay $\gamma > 0$.")
    return Proof(
        key="e18",
        title="The divergent class and the weight-decay equilibrium",
        tags=("E18",),
        statement=r"If $A \succeq 0$ then $G \ge 0$ on the whole orbit, so SGD without weight decay moves the charge "
        r"monotonically (no finite equilibrium when noise reaches a positive eigenvalue). For scale invariance ($A = I$) "
        r"with weight decay $\gamma > 0$ the charge has the attractive equilibrium "
        r"$\|\theta^*\|^4 = \eta\Tr\Sigma(\hat\theta)/(2\gamma S)$ in continuous time and "
        r"$\|\theta^*\|^4 = \eta(\|\nabla L(\hat\theta)\|^2 + \Tr\Sigma(\hat\theta)/S)/(\gamma(2-\eta\gamma))$ for (E11).",
        hypotheses=hyps,
        steps=steps,
    )
