"""Acceptance: the two-unit ReLU network with biases on a scalar Gaussian input (THEORY §5, §7.4, §10).

f = v₁relu(w₁x + b₁) + v₂relu(w₂x + b₂), x ~ N(0, 1), teacher y = relu(x) + ε, ε ~ N(0, 1/4)
(the model of tests/test_piecewise.py and benchmarks/relu_moments.py), from
θ₀ = (w₁, b₁, v₁, w₂, b₂, v₂) = (1.5, 0.2, 0.5, −0.3, 0.1, 0.8).

What happens, derived by hand: relu(x) is one unit, so on the minimum manifold unit 1 carries
the teacher (b₁ = 0, v₁w₁ = 1) and unit 2 contributes nothing. Gradient flow from θ₀ turns unit 2
off (w₂ → 0⁻, b₂ < 0: it is active only on a far left tail, x < −b₂/w₂), slowly, ‖∇L‖ ~ 1/t, and
keeps both charges C_j = w_j² + b_j² − v_j² (E9). The two units never share an activation
pattern at Φ(θ₀) (unit 1 on x > 0, unit 2 on the tail), so there is no local GL(2) mixing them
and per-generator balance is the stationary state of (E22) for unit 1:
Tr Σ_{w₁,b₁} = 4σ²v₁²(E[x²; x>0] + P(x>0)) = 4σ²v₁², Tr Σ_{v₁} = 4σ²E[relu(w₁x)²] = 2σ²w₁², so
v₁² = w₁²/2 with v₁w₁ = 1: w₁² = √2 and C₁* = √2 − 1/√2 = 1/√2. Unit 2's noise lives on the
tail (probability ~1e-8), so its charge relaxes on a time scale of ~1e13 SGD steps: it stays at
C₂(θ₀) = −0.54 on any practical time scale (up to the O(η) it moves while SGD falls to the manifold).

The SGD here is hand-written NumPy (not ns.simulate); the η → 0 value is the linear Richardson
estimate from η = 0.02 and 0.01 run for the same flow time ηk.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import quad
from sympy.stats import Normal

import noether_sym as ns

THETA0 = np.array([1.5, 0.2, 0.5, -0.3, 0.1, 0.8])
SIGMA = 0.5
A1 = np.diag([1.0, 1, -1, 0, 0, 0])
A2 = np.diag([0.0, 0, 0, 1, 1, -1])


def _loss() -> ns.Loss:
    w1, b1, v1, w2, b2, v2 = sp.symbols("w1 b1 v1 w2 b2 v2")
    x = Normal("x", 0, 1)
    eps = Normal("eps", 0, sp.Rational(1, 2))
    f = v1 * sp.Max(0, w1 * x + b1) + v2 * sp.Max(0, w2 * x + b2)
    return ns.Loss((f - sp.Max(0, x) - eps) ** 2, [w1, b1, v1, w2, b2, v2])


def _quad_grad(th: np.ndarray) -> np.ndarray:
    """∇L by adaptive quadrature over x (ε integrated by hand: E[r] = r₀), split at the kinks."""
    w1, b1, v1, w2, b2, v2 = th

    def integrand(x: float, i: int) -> float:
        a1, a2 = w1 * x + b1, w2 * x + b2
        h1, h2 = float(a1 > 0), float(a2 > 0)
        r0 = v1 * max(a1, 0.0) + v2 * max(a2, 0.0) - max(x, 0.0)
        d = (v1 * h1 * x, v1 * h1, max(a1, 0.0), v2 * h2 * x, v2 * h2, max(a2, 0.0))
        return 2 * r0 * d[i] * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)

    pts = sorted({-b1 / w1 if w1 else 0.0, -b2 / w2 if w2 else 0.0, 0.0})
    return np.array([quad(integrand, -40, 40, args=(i,), points=pts, limit=500, epsabs=1e-16, epsrel=1e-13)[0]
                     for i in range(6)])


@pytest.fixture(scope="module")
def predictions():
    """Per generator and seed: the toolkit's noise equilibrium (one loss: the flow is cached)."""
    loss = _loss()
    gens = ns.find_symmetries(loss).generators
    assert len(gens) == 2
    # order (unit 1, unit 2), each normalised to +1 on its unit's in-weights (A₁, A₂ above)
    mats = [np.array(A.tolist(), dtype=float) for A in gens]
    mats = [M / M[0, 0] if M[0, 0] else M / M[3, 3] for M in mats]
    mats.sort(key=lambda M: int(M[3, 3] != 0))
    assert np.array_equal(mats[0], A1) and np.array_equal(mats[1], A2)
    return loss, {seed: [ns.noise_equilibrium(loss, A, THETA0, seed=seed) for A in (A1, A2)] for seed in (0, 1, 2)}


@pytest.mark.slow
def test_flow_limit_is_a_minimum_that_keeps_both_charges(predictions):
    _, preds = predictions
    phi = preds[0][0].start
    assert phi.moved and phi.grad_norm <= 1e-9
    # independent check of the end point: ∇L by quadrature, and the charges of θ₀ (E9)
    assert np.abs(_quad_grad(phi.theta)).max() <= 1e-8
    for A in (A1, A2):
        assert phi.theta @ A @ phi.theta == pytest.approx(THETA0 @ A @ THETA0, abs=1e-7)
    w1, b1, v1, w2, b2, _ = phi.theta
    assert abs(b1) <= 1e-6 and v1 * w1 == pytest.approx(1.0, abs=1e-6)
    # unit 2 is off except on a far tail: active for x < −b₂/w₂, probability < 1e-6
    assert w2 < 0 and b2 < 0 and math.erfc(abs(b2 / w2) / math.sqrt(2)) / 2 < 1e-6
    # unit 1 is active on x > 0: no shared activation pattern (no local GL(2), THEORY §10)


@pytest.mark.slow
def test_unit_one_balances_at_the_hand_derived_charge(predictions):
    _, preds = predictions
    eq1 = preds[0][0]
    assert eq1.kind == "balanced"
    # C₁* = 1/√2 on the manifold with unit 2 off; unit 2's tail changes it by < 1e-6
    assert eq1.charge == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    # deterministic moments: the stated uncertainty is the cubature's, far below SGD's
    assert eq1.charge_se is not None and eq1.charge_se < 1e-8
    # τ = C'(λ*)/(η²|G'(λ*)|) at the balance point: w₁² = √2, v₁² = 1/√2, s₊ = 4σ²v₁², s₋ = 2σ²w₁²
    w2_, v2_ = math.sqrt(2), 1 / math.sqrt(2)
    tau = 2 * (w2_ + v2_) / (0.01**2 * 2 * (4 * SIGMA**2 * v2_ + 2 * SIGMA**2 * w2_))
    assert eq1.relaxation_steps(0.01) == pytest.approx(tau, rel=1e-5)


@pytest.mark.slow
def test_unit_two_is_reported_slow_with_its_time_scale(predictions):
    _, preds = predictions
    eq2 = preds[0][1]
    # either no resolvable noise (degenerate) or a balance SGD cannot reach in practice
    assert eq2.kind == "degenerate" or eq2.relaxation_steps(0.01) > 1e10


@pytest.mark.slow
def test_seeds_0_1_2_give_the_same_numbers(predictions):
    _, preds = predictions
    for seed in (1, 2):
        for a, b in zip(preds[0], preds[seed]):
            assert a.kind == b.kind and a.lam == b.lam
            assert np.array_equal(a.theta, b.theta) and np.array_equal(a.start.theta, b.start.theta)


def _sgd(lr: float, steps: int, replicas: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hand-written SGD, batch 1; the two charges averaged over the last quarter of the steps.
    Returns (mean over replicas, standard error over replicas)."""
    rng = np.random.default_rng(seed)
    th = np.tile(THETA0, (replicas, 1))
    acc = np.zeros((replicas, 2))
    window = steps // 4
    for k in range(steps):
        x = rng.standard_normal(replicas)
        e = SIGMA * rng.standard_normal(replicas)
        w1, b1, v1, w2, b2, v2 = th.T
        a1, a2 = w1 * x + b1, w2 * x + b2
        h1, h2 = a1 > 0, a2 > 0
        r1, r2 = np.where(h1, a1, 0.0), np.where(h2, a2, 0.0)
        r = 2 * (v1 * r1 + v2 * r2 - np.maximum(x, 0.0) - e)
        g = np.stack([r * v1 * h1 * x, r * v1 * h1, r * r1, r * v2 * h2 * x, r * v2 * h2, r * r2], axis=1)
        th -= lr * g
        if k >= steps - window:
            acc[:, 0] += th[:, 0] ** 2 + th[:, 1] ** 2 - th[:, 2] ** 2
            acc[:, 1] += th[:, 3] ** 2 + th[:, 4] ** 2 - th[:, 5] ** 2
    per = acc / window
    return per.mean(axis=0), per.std(axis=0, ddof=1) / math.sqrt(replicas)


@pytest.mark.slow
def test_independent_sgd_confirms_every_generator(predictions):
    # η = 0.02 and 0.01 for the same flow time ηk = 1200: unit 1 relaxes (τ = 1.5/η² steps, so
    # 16τ and 8τ; the window starts after 12τ and 6τ), unit 2's charge moves only while SGD falls
    # to the manifold, O(η). Linear Richardson 2m(η) − m(2η); tolerance 4 standard errors of the
    # estimate (256 replicas each) plus the prediction's own stated uncertainty.
    _, preds = predictions
    eq1, eq2 = preds[0]
    m2, se2 = _sgd(0.02, 60_000, 256, seed=1)
    m1, se1 = _sgd(0.01, 120_000, 256, seed=2)
    est = 2 * m1 - m2
    se = np.sqrt(4 * se1**2 + se2**2)
    assert abs(est[0] - eq1.charge) <= 4 * se[0] + 4 * eq1.charge_se
    # unit 2: SGD leaves its charge where gradient flow put it, C₂(Φ(θ₀)) = C₂(θ₀)
    c2 = float(eq2.start.theta @ A2 @ eq2.start.theta)
    assert eq2.relaxation_steps(0.01) > 1e3 * 120_000
    assert abs(est[1] - c2) <= 4 * se[1]
    # and the finite-η runs are visibly off both: the extrapolation is doing work
    assert abs(m2[0] - eq1.charge) > 4 * se2[0]


@pytest.mark.slow
def test_dispatcher_keeps_per_generator_balance_here(predictions):
    # no local symmetry carries noise drift at Φ(θ₀) or θ*: the joint route answers, and its
    # unit-1 charge is the hand-derived 1/√2
    from noether_sym.theory._predict import predict_equilibrium

    loss, _ = predictions
    p = predict_equilibrium(loss, THETA0, [sp.Matrix(A1.astype(int)), sp.Matrix(A2.astype(int))])
    assert p.route == "joint"
    assert p.theta @ A1 @ p.theta == pytest.approx(1 / math.sqrt(2), abs=1e-6)


def test_units_sharing_their_pattern_are_refused_with_the_reason():
    # THEORY §10: without biases both units are active on x > 0 and act as one linear layer
    # there (a local GL(2)); gradient flow from (1, 0.1, 0.5, 0.3) lands at products
    # (0.6271, 0.3729) and per-generator balance would give (0.7919, 0.7919, 0.6106, 0.6106),
    # while SGD ends at (0.8088, 0.8088, 0.5882, 0.5882) (THEORY §10's independent simulation).
    # The dispatcher must refuse rather than answer the former, and name the flow (E22).
    from noether_sym.theory._predict import predict_equilibrium

    w1, v1, w2, v2 = sp.symbols("w1 v1 w2 v2")
    x, e = Normal("x", 0, 1), Normal("e", 0, sp.Rational(1, 2))
    relu = lambda z: sp.Max(0, z)
    loss = ns.Loss((v1 * relu(w1 * x) + v2 * relu(w2 * x) - relu(x) - e) ** 2, [w1, v1, w2, v2])
    gens = ns.find_symmetries(loss).generators
    for chosen in (gens, gens[:1]):
        with pytest.raises(ns.LocalSymmetryError, match="noether_flow"):
            predict_equilibrium(loss, [1, 0.1, 0.5, 0.3], chosen)
    # the per-generator answer itself (noise_equilibrium) is still available on request
    eq = ns.noise_equilibrium(loss, gens[0], [1, 0.1, 0.5, 0.3])
    assert eq.kind == "balanced"
