"""derive: which prediction of SGD's stationary state it uses, and that it says so.

Per-generator balances where the generators commute; the Noether flow (E22) where they do
not, checked against the independent closed form (E21) of the two-layer net with isotropic
covariances; a start whose gradient flow stalls is a note, not an exception."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.stats import Normal

import noether_sym as ns

u, w = sp.symbols("u w")


def test_commuting_generators_use_the_per_generator_balance():
    x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    d = ns.derive(ns.Loss((u * w * x - x - e) ** 2, [u, w]), [2, sp.Rational(1, 2)])
    assert d.prediction == "per-generator" and d.flow is None
    assert "noise_equilibrium" in d.how and d.to_dict()["prediction"] == "per-generator"
    # by hand: Σ along A = diag(1, −1) has noise levels ∝ w² (on u) and u² (on w) with the same
    # factor, so G(λ) = 0 where u² = w²: the charge u² − w² vanishes at λ*
    assert abs(float(d.equilibria[0].charge)) < 1e-12


def test_non_commuting_generators_use_the_noether_flow_at_the_e21_value():
    """Two-layer net 2-2-2 with Σ_x = I, Σ_ε = I/2 (the family's data): its three symmetric
    generators do not commute, so derive runs the Noether flow; with isotropic covariances
    its fixed point is the closed form (E21) on the orbit of Φ(θ₀) (rotation invariants:
    the eigenvalues of Q = WWᵀ − UᵀU)."""
    loss = ns.families.build("linear-net", dims=[2, 2, 2])
    theta = [sp.Rational(v) for v in ("13/10", "-2/5", "1/4", "9/10", "6/5", "1/5", "-3/10", "4/5")]
    d = ns.derive(loss, theta)
    assert d.prediction == "noether_flow", d.how
    assert "do not commute" in d.how and any("Noether flow (E22)" in n for n in d.notes)
    assert d.flow.kind == "fixed point"
    start = np.asarray(d.flow.start, dtype=float)
    W0, U0 = start[:4].reshape(2, 2), start[4:].reshape(2, 2)
    tl = ns.two_layer_equilibrium(U0, W0, np.eye(2), 0.5 * np.eye(2))
    th = np.asarray(d.flow.theta, dtype=float)
    W, U = th[:4].reshape(2, 2), th[4:].reshape(2, 2)
    q_flow = np.sort(np.linalg.eigvalsh(W @ W.T - U.T @ U))
    assert np.allclose(q_flow, np.sort(tl.Q_eigenvalues), atol=1e-6), (q_flow, tl.Q_eigenvalues)
    assert d.to_dict()["noether_flow"]["kind"] == "fixed point"
    assert "Noether flow (E22)" in d.latex()


def test_flow_false_says_what_is_missing():
    loss = ns.families.build("linear-net", dims=[2, 2, 2])
    theta = [sp.Rational(v) for v in ("13/10", "-2/5", "1/4", "9/10", "6/5", "1/5", "-3/10", "4/5")]
    d = ns.derive(loss, theta, flow=False)
    assert d.flow is None and d.prediction == "none"
    assert any("not run (flow=False)" in n for n in d.notes)


def test_a_stalling_gradient_flow_is_a_note_not_an_error():
    """ReLU units on a finite dataset: the flow from this start reaches a kink where ∇L jumps;
    derive still gives symmetries and charges and says why there is no prediction."""
    loss = ns.families.build("residual-block")
    fam = ns.families.get("residual-block")
    d = ns.derive(loss, list(fam.theta0(loss)), flow_evaluations=4000)
    assert d.symmetries.n_generators > 0
    assert d.prediction == "none" and d.equilibria == []
    assert any(n.startswith("no prediction: gradient flow") for n in d.notes)


def test_bad_flow_argument():
    x = Normal("x", 0, 1)
    with pytest.raises(ns.InvalidArgumentError, match="flow must be"):
        ns.derive(ns.Loss((u * w * x - x) ** 2, [u, w]), [1, 1], flow="yes")


def test_drift_and_hessian_from_the_exact_polynomials_match_the_hand_computation():
    """Tr[AΣ], ∇LᵀA∇L and the population Hessian come from the moments' polynomials in exact
    arithmetic (no SymPy expansion); by hand for ℓ = (uwx − x)², x ~ N(0, 1): g = 2(uw − 1)x²
    (w, u), so Σ = 8(uw − 1)² (w, u)(w, u)ᵀ (E[x⁴] − E[x²]² = 2), ∇L = 2(uw − 1)(w, u),
    L = (uw − 1)² and H = [[2w², 2(2uw − 1)], [2(2uw − 1), 2u²]]."""
    x = Normal("x", 0, 1)
    loss = ns.Loss((u * w * x - x) ** 2, [u, w])
    A = sp.diag(1, -1)
    dyn = ns.charge_dynamics(loss, A)
    assert sp.expand(dyn.trace_A_sigma - 8 * (u * w - 1) ** 2 * (w**2 - u**2)) == 0
    from noether_sym.theory._spectrum import ETA as eta
    from noether_sym.theory._spectrum import GAMMA as gam

    gAg = sp.expand((dyn.expected_step - (1 - eta * gam) ** 2 * dyn.charge) / eta**2 - dyn.kappa * dyn.trace_A_sigma)
    assert sp.expand(gAg - 4 * (u * w - 1) ** 2 * (w**2 - u**2)) == 0
    # a generator with an irrational entry takes the SymPy route: the same law
    r = sp.sqrt(2)
    dyn2 = ns.charge_dynamics(loss, sp.diag(r, -r))
    assert sp.expand(dyn2.trace_A_sigma - r * 8 * (u * w - 1) ** 2 * (w**2 - u**2)) == 0
    from noether_sym.theory._sharpness import population_hessian

    pu, pw = sp.Rational(3, 2), sp.Rational(1, 3)
    H, exact = population_hessian(loss, [pu, pw])
    hand = sp.Matrix([[2 * pw**2, 2 * (2 * pu * pw - 1)], [2 * (2 * pu * pw - 1), 2 * pu**2]])
    assert exact and H == hand


def test_mean_and_weighted_gradients_match_hand_written_numpy():
    """The batched means a gradient flow takes (every point against every row in one call)
    and the cubature's weighted sums per point, against per-sample gradients written by hand:
    ℓ = (v·relu(wx) − y)², ∂ℓ/∂w = 2r·v·x·[wx > 0], ∂ℓ/∂v = 2r·relu(wx)."""
    from noether_sym.compile._compiled import compiled

    wv, vv, xs, ys = sp.symbols("w v x y")
    loss = ns.Loss((vv * sp.Max(0, wv * xs) - ys) ** 2, [wv, vv], data={xs: np.linspace(-2, 2, 7), ys: np.arange(7.0)})
    cl = compiled(loss)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 2))
    T = rng.standard_normal((3, 2))

    def hand(th: np.ndarray, rows: np.ndarray) -> np.ndarray:
        z = th[0] * rows[:, 0]
        r = th[1] * np.maximum(z, 0) - rows[:, 1]
        return np.stack([2 * r * th[1] * rows[:, 0] * (z > 0), 2 * r * np.maximum(z, 0)], axis=1)

    got = cl.grad_mean(T, X, block=16)  # blocks smaller than the data: the sums add up
    assert np.allclose(got, [hand(t, X).mean(axis=0) for t in T], rtol=1e-13, atol=1e-13)
    owner = np.repeat(np.arange(3), [10, 25, 15])
    wts = rng.random(50)
    sums = cl.grad_sums(T, owner, X, wts, block=7)
    expect = [(hand(T[b], X[owner == b]) * wts[owner == b, None]).sum(axis=0) for b in range(3)]
    assert np.allclose(sums, expect, rtol=1e-13, atol=1e-13)
