"""Proof: gradient flow with weight decay scales the Noether charge exactly, dC/dt = −2γC (E9).

Setting checked: d = 1..4, a generic symmetric A (symbolic entries), θ(t) a curve of
undefined functions, and a mean gradient ∇L constrained by (E7) (∇Lᵀ Aθ = 0), written
∇L = J Aθ with a generic antisymmetric J (every vector orthogonal to Aθ has this form).

Hypothesis (argument of :func:`proof`): ``assume_symmetry`` — ∇Lᵀ A θ = 0, which (E7)
derives from the symmetry; without it ∇L is a generic vector and step 3 fails.
"""

from __future__ import annotations

import sympy as sp

from noether_sym.report._prove import (
    Proof,
    Step,
    generic_vector,
    orthogonal_to,
    rewrite,
    symmetric,
    zero,
)

DIMS = (1, 2, 3, 4)
t, gamma = sp.Symbol("t", real=True), sp.Symbol("gamma", positive=True)


def _setup(d: int, use_symmetry: bool = True):
    A = symmetric("A", d)
    th = generic_vector("theta", d)
    gradL = orthogonal_to(A * th, "J", constrain=use_symmetry)
    return A, th, gradL


def _chain(d: int):
    A, th, _ = _setup(d)
    curve = sp.Matrix([sp.Function(f"theta_{i}")(t) for i in range(1, d + 1)])
    C_t = (curve.T * A * curve)[0]
    lhs = sp.diff(C_t, t)
    rhs = 2 * (curve.T * A * sp.diff(curve, t))[0]
    return lhs - rhs


def _flow(d: int):
    A, th, _ = _setup(d)
    G = generic_vector("G", d)  # any mean gradient
    C = (th.T * A * th)[0]
    rhs = 2 * (th.T * A * (-(G + gamma * th)))[0]
    return rhs - (-2 * (th.T * A * G)[0] - 2 * gamma * C)


def _conserved(d: int, use_symmetry: bool):
    A, th, gradL = _setup(d, use_symmetry)
    C = (th.T * A * th)[0]
    dCdt = 2 * (th.T * A * (-(gradL + gamma * th)))[0]
    return dCdt + 2 * gamma * C


n = sp.Symbol("n", integer=True, positive=True)
TH, G, A_ = sp.MatrixSymbol("theta", n, 1), sp.MatrixSymbol("G", n, 1), sp.MatrixSymbol("A", n, n)
Z = sp.ZeroMatrix(1, 1)
#: A symmetric: the 1x1 matrix Gᵀ A θ equals its transpose θᵀ A G
SYMMETRIC_A = [(G.T * A_ * TH, TH.T * A_ * G)]


def _flow_n(use_symmetry: bool):
    """Symbolic dimension n: dC/dt + 2γC with θ̇ = −(∇L + γθ), rewritten by (E7) if assumed."""
    rules = SYMMETRIC_A + ([(TH.T * A_ * G, Z)] if use_symmetry else [])
    dCdt = 2 * TH.T * A_ * (-(G + gamma * TH))
    return rewrite(dCdt + 2 * gamma * TH.T * A_ * TH, rules)


def proof(*, assume_symmetry: bool = True) -> Proof:
    """(E9) for d = 1..4 (see the module docstring)."""
    C0 = sp.Symbol("C_0", real=True)
    steps = [
        Step(
            "chain rule",
            r"\frac{d}{dt}\,\theta^\top A\theta &= 2\,\theta^\top A\,\dot\theta",
            "Product rule; $A$ is symmetric.",
            [zero(lambda d=d: _chain(d), label=f"d={d}") for d in DIMS],
            "d = 1..4, generic symmetric A, undefined theta_i(t)",
        ),
        Step(
            "insert the flow",
            r"\frac{dC}{dt} &= -2\,\theta^\top A\,(\nabla L + \gamma\theta) = -2\,\nabla L^\top A\theta - 2\gamma C",
            "Gradient flow with weight decay, $\\dot\\theta = -(\\nabla L + \\gamma\\theta)$ ((E2) with $\\eta\\to 0$).",
            [zero(lambda d=d: _flow(d), label=f"d={d}") for d in DIMS]
            + [zero(lambda: rewrite(2 * TH.T * A_ * (-(G + gamma * TH)) - (-2 * TH.T * A_ * G - 2 * gamma * TH.T * A_ * TH), SYMMETRIC_A),
                    reduce="matexpr", label="symbolic n")],
            "d = 1..4 and symbolic n (MatrixSymbol), any gradient",
        ),
        Step(
            "(E7) kills the gradient term",
            r"\frac{dC}{dt} &= -2\gamma C",
            "By (E7), $\\nabla L^\\top A\\theta = 0$.",
            [zero(lambda d=d: _conserved(d, assume_symmetry), label=f"d={d}") for d in DIMS]
            + [zero(lambda: _flow_n(assume_symmetry), reduce="matexpr", label="symbolic n")],
            "d = 1..4, generic symmetric A; symbolic n (MatrixSymbol) with (E7) as a rewriting rule",
        ),
        Step(
            "solve",
            r"C(t) &= C(0)\, e^{-2\gamma t}",
            "This function solves the linear equation of step 3 with the right initial value; solutions of "
            "linear ODEs are unique. For $\\gamma = 0$ the charge is exactly conserved.",
            [zero(sp.diff(C0 * sp.exp(-2 * gamma * t), t) + 2 * gamma * C0 * sp.exp(-2 * gamma * t), label="ODE"),
             zero((C0 * sp.exp(-2 * gamma * t)).subs(t, 0), C0, label="initial value")],
            "symbolic",
        ),
    ]
    return Proof(
        key="e09",
        title="Gradient flow conserves the Noether charge",
        tags=("E9",),
        statement=r"If $\ell$ has the $A$-exponential symmetry, then along gradient flow with weight decay, "
        r"$\dot\theta = -(\nabla L(\theta) + \gamma\theta)$, the charge $C = \theta^\top A\theta$ satisfies "
        r"$\dot C = -2\gamma C$, so $C(t) = C(0)e^{-2\gamma t}$; for $\gamma = 0$ it is conserved.",
        hypotheses=[r"$\nabla L(\theta)^\top A\theta = 0$ for every $\theta$ (E7)."] if assume_symmetry else [],
        steps=steps,
    )
