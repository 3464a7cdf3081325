"""Proof: the continuous-time drift of the charge by Itô's lemma (E12).

Setting checked: d = 1..3, a generic symmetric A, the SDE (E2)
dθ = b dt + ε B dW with b = −(∇L + γθ), ε² = η/S and a noise factor B with BBᵀ = Σ,
and Itô's rules dt² = dt·dW_i = 0, dW_i dW_j = δ_ij dt applied to the exact second-order
expansion of the quadratic C(θ + dθ). By (E7) ΣAθ = 0, hence ‖BᵀAθ‖² = θᵀAΣAθ = 0 and
BᵀAθ = 0: each column of B is orthogonal to Aθ, written J_k Aθ with J_k generic
antisymmetric; likewise ∇L = J Aθ.

Hypothesis (argument of :func:`proof`): ``assume_symmetry`` — (E7) for ∇L and Σ; without
it B and ∇L are generic and the noise step (4) fails: C is no longer deterministic.
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

DIMS = (1, 2, 3)
dt = sp.Symbol("dt", positive=True)
eps = sp.Symbol("epsilon", positive=True)  # sqrt(eta / S)
gamma = sp.Symbol("gamma", nonnegative=True)


def ito_reduce(expr: sp.Expr, dW: list[sp.Symbol]) -> sp.Expr:
    """Itô's multiplication table on a polynomial in dt and dW: keep order <= 1 in dt
    (dt counts 2, dW_i counts 1), dW_i dW_j -> δ_ij dt."""
    poly = sp.Poly(sp.expand(expr), dt, *dW)
    out = sp.Integer(0)
    for monom, coeff in poly.terms():
        k_dt, k_w = monom[0], monom[1:]
        order = 2 * k_dt + sum(k_w)
        if order > 2:
            continue
        if sum(k_w) == 2:
            if max(k_w) != 2:
                continue  # dW_i dW_j = 0 for i != j
            out += coeff * dt
        else:
            out += coeff * dt**k_dt * sp.Mul(*[w**k for w, k in zip(dW, k_w)])
    return sp.expand(out)


def _setup(d: int, use_symmetry: bool):
    A, th = symmetric("A", d), generic_vector("theta", d)
    v = A * th
    gradL = orthogonal_to(v, "J", constrain=use_symmetry)
    B = sp.Matrix.hstack(*[orthogonal_to(v, f"B{k}", constrain=use_symmetry) for k in range(1, d + 1)])
    dW = list(sp.symbols(f"dW_1:{d + 1}"))
    b = -(gradL + gamma * th)
    dth = b * dt + eps * B * sp.Matrix(dW)
    return A, th, gradL, B, dW, b, dth


def _taylor(d: int):
    A, th, dth = symmetric("A", d), generic_vector("theta", d), generic_vector("dtheta", d)
    C = lambda z: (z.T * A * z)[0]  # noqa: E731
    return C(th + dth) - C(th) - (2 * (th.T * A * dth)[0] + (dth.T * A * dth)[0])


def _taylor_n():
    n = sp.Symbol("n", integer=True, positive=True)
    th, dth, A = sp.MatrixSymbol("theta", n, 1), sp.MatrixSymbol("dtheta", n, 1), sp.MatrixSymbol("A", n, n)
    C = lambda z: z.T * A * z  # noqa: E731
    # A symmetric: dθᵀAθ = θᵀA dθ (a 1x1 matrix equals its transpose)
    return rewrite(C(th + dth) - C(th) - (2 * th.T * A * dth + C(dth)), [(dth.T * A * th, th.T * A * dth)])


def _ito(d: int):
    A, th, gradL, B, dW, b, dth = _setup(d, False)
    dC = ito_reduce(2 * (th.T * A * dth)[0] + (dth.T * A * dth)[0], dW)
    expected = (2 * (th.T * A * b)[0] + eps**2 * (A * B * B.T).trace()) * dt + 2 * eps * (th.T * A * B * sp.Matrix(dW))[0]
    return dC - expected


def _noise(d: int, use_symmetry: bool):
    A, th, gradL, B, dW, b, dth = _setup(d, use_symmetry)
    return (B.T * A * th).T


def _drift(d: int, use_symmetry: bool):
    A, th, gradL, B, dW, b, dth = _setup(d, use_symmetry)
    eta, S = sp.symbols("eta S", positive=True)
    C = (th.T * A * th)[0]
    drift = 2 * (th.T * A * b)[0] + eps**2 * (A * B * B.T).trace()
    return (drift - (-2 * gamma * C + eps**2 * (A * B * B.T).trace())).subs(eps, sp.sqrt(eta / S))


def proof(*, assume_symmetry: bool = True) -> Proof:
    """(E12) (see the module docstring)."""
    steps = [
        Step(
            "second-order expansion",
            r"C(\theta + d\theta) - C(\theta) &= 2\,\theta^\top A\, d\theta + d\theta^\top A\, d\theta",
            "Exact for the quadratic $C = \\theta^\\top A\\theta$.",
            [zero(lambda d=d: _taylor(d), label=f"d={d}") for d in DIMS]
            + [zero(_taylor_n, reduce="matexpr", label="symbolic n")],
            "d = 1..3 and symbolic n (MatrixSymbol)",
        ),
        Step(
            "Ito's rules",
            r"dC &= \big(2\,\theta^\top A b + \tfrac{\eta}{S}\Tr[A B B^\top]\big)\,dt + 2\sqrt{\tfrac{\eta}{S}}\;\theta^\top A B\, dW",
            "Insert $d\\theta = b\\,dt + \\sqrt{\\eta/S}\\,B\\,dW$ and use $dt^2 = dt\\,dW_i = 0$, $dW_i\\,dW_j = \\delta_{ij}\\,dt$.",
            [zero(lambda d=d: _ito(d), label=f"d={d}") for d in DIMS],
            "d = 1..3, generic B and gradient",
        ),
        Step(
            "no noise in dC",
            r"B^\top A\theta &= 0 \quad\Longrightarrow\quad 2\sqrt{\tfrac{\eta}{S}}\;\theta^\top A B\, dW = 0",
            "By (E7), $\\Sigma A\\theta = 0$, so $\\|B^\\top A\\theta\\|^2 = \\theta^\\top A\\Sigma A\\theta = 0$: every column of $B$ "
            "($BB^\\top = \\Sigma$) is orthogonal to $A\\theta$; the Brownian term of step 2 vanishes and $C$ evolves "
            "deterministically.",
            [zero(lambda d=d: _noise(d, assume_symmetry), label=f"d={d}") for d in DIMS],
            "d = 1..3",
        ),
        Step(
            "(E12) drift",
            r"\frac{dC}{dt} &= -2\gamma C + \frac{\eta}{S}\Tr[A\Sigma(\theta)]",
            "$b = -(\\nabla L + \\gamma\\theta)$ and $\\nabla L^\\top A\\theta = 0$ by (E7).",
            [zero(lambda d=d: _drift(d, assume_symmetry), label=f"d={d}") for d in DIMS],
            "d = 1..3",
        ),
    ]
    return Proof(
        key="e12",
        title="The drift of the charge in continuous time",
        tags=("E12",),
        statement=r"Under the SDE (E2), $d\theta = -(\nabla L + \gamma\theta)\,dt + \sqrt{\eta/S}\,\Sigma^{1/2}dW_t$, the charge "
        r"$C = \theta^\top A\theta$ of a symmetry has no diffusion term and "
        r"$\dfrac{dC}{dt} = -2\gamma C + \dfrac{\eta}{S}\Tr[A\Sigma(\theta)]$.",
        hypotheses=[r"$\nabla L^\top A\theta = 0$ and $\Sigma A\theta = 0$ (E7)."] if assume_symmetry else [],
        steps=steps,
    )
