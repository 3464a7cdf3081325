"""Proof: the identities of the Noether flow (E22) on the minimum manifold (THEORY §10).

(E22): dθ/dτ = −½ P_T ∇³L[Λ], HΛ + ΛH = Σ on the normal space, ∇³L[Λ] = ∇Tr(H(θ)Λ), Λ fixed.

1. Charge part. For a symmetric generator A, H(e^{λA}θ) = e^{−λA}H e^{−λA} (E6); its λ-derivative
   is D H[Aθ] = −(AH + HA) (checked on L = F(θ₁θ₂, θ₃), F a generic function, A = diag(1, −1, 0)).
   Aθ is tangent, so ⟨Aθ, dθ/dτ⟩ = −½Tr(DH[Aθ]Λ) = ½Tr(A(HΛ + ΛH)) = ½Tr(AΣ): (E12) in τ = η²k/S.
2. Rotation part. For an antisymmetric J (a rotation symmetry), D H[Jθ] = JH − HJ (checked on
   L = F(θ₁² + θ₂², θ₃)), so ⟨Jθ, dθ/dτ⟩ = −½Tr(J(HΛ − ΛH)); when H and Σ commute (shared
   eigenvectors), Λ = Σ/(2H) on the normal space commutes with H and the rotation part vanishes.
3. Label noise. Σ = cH on the normal space gives Λ = (c/2)P_N; along the manifold P_T DH[v] P_T = 0
   for tangent v (checked on L = (θ₁θ₂ − 1)²), so P_T∇Tr(HP_N) = P_T∇Tr H and (E22) is
   dθ/dτ = −(c/4) P_T ∇Tr H: the Riemannian gradient flow of Tr H (flattening, §6).
"""

from __future__ import annotations

import sympy as sp

from noether_sym.report._prove import Proof, Step, symmetric, zero

t1, t2, t3, lam = sp.symbols("theta1 theta2 theta3 lambda", real=True)
TH = sp.Matrix([t1, t2, t3])
F = sp.Function("F")


def _hess(L):
    return sp.hessian(L, list(TH))


def _directional(M, v):
    """D M[v] = Σ_k v_k ∂M/∂θ_k."""
    return sum((M.diff(TH[k]) * v[k] for k in range(3)), sp.zeros(*M.shape))


def _charge_derivative():
    A = sp.diag(1, -1, 0)
    L = F(t1 * t2, t3)
    H = _hess(L)
    return sp.simplify(_directional(H, A * TH) + A * H + H * A)


def _rotation_derivative():
    J = sp.Matrix([[0, -1, 0], [1, 0, 0], [0, 0, 0]])
    L = F(t1**2 + t2**2, t3)
    H = _hess(L)
    return sp.simplify(_directional(H, J * TH) - (J * H - H * J))


def _trace_identity(d: int):
    A, H, Lam = symmetric("A", d), symmetric("H", d), symmetric("Lambda", d)
    return (-(A * H + H * A) * Lam).trace() + (A * (H * Lam + Lam * H)).trace()


def _commuting(d: int):
    h = sp.symbols(f"h1:{d + 1}", positive=True)
    s = sp.symbols(f"s1:{d + 1}", nonnegative=True)
    H, S = sp.diag(*h), sp.diag(*s)
    Lam = sp.diag(*[s[i] / (2 * h[i]) for i in range(d)])
    return sp.Matrix.vstack(H * Lam + Lam * H - S, H * Lam - Lam * H)


def _label_noise_lambda(d: int):
    h = sp.symbols(f"h1:{d + 1}", positive=True)
    c = sp.Symbol("c", positive=True)
    H = sp.diag(*h)
    Lam = c / 2 * sp.eye(d)
    return H * Lam + Lam * H - c * H


def _tangent_block():
    t = sp.Symbol("t", positive=True)
    L = (t1 * t2 - 1) ** 2
    H = _hess(L)
    v = sp.Matrix([t, -1 / t, 0])  # tangent of {θ₁θ₂ = 1} at (t, 1/t, θ₃)
    e3 = sp.Matrix([0, 0, 1])  # θ₃ is flat: tangent too
    pt = {t1: t, t2: 1 / t}
    out = []
    for w in (v, e3):
        DH = _directional(H, w).subs(pt)
        out.append(sp.simplify((v.T * DH * v)[0]))
        out.append(sp.simplify((v.T * DH * e3)[0]))
        out.append(sp.simplify((e3.T * DH * e3)[0]))
    return sp.Matrix(out)


def proof() -> Proof:
    """(E22) identities (see the module docstring)."""
    steps = [
        Step(
            "Hessian transport along a charge",
            r"D H[A\theta] &= -(AH + HA)",
            "Differentiate $H(e^{\\lambda A}\\theta) = e^{-\\lambda A}H(\\theta)e^{-\\lambda A}$ (E6) at $\\lambda = 0$.",
            [zero(_charge_derivative, label="L = F(t1 t2, t3), generic F")],
            "generic F, A = diag(1, -1, 0)",
        ),
        Step(
            "charge part equals (E12)",
            r"\langle A\theta, \tfrac{d\theta}{d\tau}\rangle &= -\tfrac12\Tr(DH[A\theta]\Lambda) = "
            r"\tfrac12\Tr(A(H\Lambda + \Lambda H)) = \tfrac12\Tr(A\Sigma)",
            "$A\\theta$ is tangent (the orbit lies in the manifold) and $P_T\\Sigma = 0$, so $H\\Lambda + \\Lambda H = \\Sigma$; "
            "$dC/d\\tau = 2\\langle A\\theta, d\\theta/d\\tau\\rangle = \\Tr(A\\Sigma)$ is (E12) with $\\tau = \\eta^2k/S$.",
            [zero(lambda d=d: _trace_identity(d), label=f"d={d}") for d in (1, 2, 3)],
            "d = 1..3, generic symmetric A, H, Lambda",
        ),
        Step(
            "Hessian transport along a rotation",
            r"D H[J\theta] &= JH - HJ",
            "Differentiate $H(e^{\\lambda J}\\theta) = e^{\\lambda J}H(\\theta)e^{-\\lambda J}$ for an orthogonal symmetry.",
            [zero(_rotation_derivative, label="L = F(t1^2 + t2^2, t3), generic F")],
            "generic F, J the rotation of (t1, t2)",
        ),
        Step(
            "rotation part vanishes when H and Sigma commute",
            r"[H, \Sigma] = 0 &\Longrightarrow \Lambda = \tfrac{\Sigma}{2H},\ [H, \Lambda] = 0,\ "
            r"\langle J\theta, \tfrac{d\theta}{d\tau}\rangle = -\tfrac12\Tr(J[H,\Lambda]) = 0",
            "Commuting symmetric matrices share an eigenbasis; there the Lyapunov equation is diagonal.",
            [zero(lambda d=d: _commuting(d), label=f"d={d}") for d in (1, 2, 3)],
            "d = 1..3 in the shared eigenbasis",
        ),
        Step(
            "label noise: Lambda is a multiple of P_N",
            r"\Sigma = cH \Longrightarrow \Lambda &= \tfrac{c}{2} P_N",
            "The Lyapunov equation in H's eigenbasis (normal block).",
            [zero(lambda d=d: _label_noise_lambda(d), label=f"d={d}") for d in (1, 2, 3)],
            "d = 1..3",
        ),
        Step(
            "tangent block of DH vanishes on the manifold",
            r"P_T\, DH[v]\, P_T &= 0 \quad (v \in T)",
            "Differentiate $H P_T = 0$ along the manifold; hence $P_T\\nabla\\Tr(HP_N) = P_T\\nabla\\Tr H$ and "
            "(E22) is $d\\theta/d\\tau = -\\tfrac{c}{4}P_T\\nabla\\Tr H$.",
            [zero(_tangent_block, label="L = (t1 t2 - 1)^2 on t1 t2 = 1")],
            "the manifold t1 t2 = 1 (times R)",
        ),
    ]
    return Proof(
        key="e22",
        title="The Noether flow on the minimum manifold",
        tags=("E22", "E12"),
        statement=r"Under (E22), the charge component of the flow is (E12): "
        r"$\frac{d}{d\tau}\theta^\top A\theta = \Tr[A\Sigma]$; the rotation component "
        r"$\langle J\theta, d\theta/d\tau\rangle$ vanishes when $H$ and $\Sigma$ commute; with label noise "
        r"($\Sigma = cH$) the flow is $-\tfrac{c}{4}P_T\nabla\Tr H$.",
        hypotheses=[r"$\theta$ on the minimum manifold, $P_T\Sigma = 0$ (E7)."],
        steps=steps,
    )
