"""Predictions from starts off the minimum manifold: Φ(θ₀), degenerate generators, relaxation
times, the η → 0 estimate from clean runs only, and bad input (THEORY §5, (E9), (E12), (E14)).

Every expected number here is derived by hand in the test (closed forms on the minimum
manifold, a hand-written Euler integration of gradient flow), never taken from the package.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from sympy.stats import Normal

import noether_sym as ns
from noether_sym._errors import (
    GradientFlowError,
    InvalidArgumentError,
    NoetherSymError,
)
from noether_sym.check._compare import Run, _extrapolate

u, w = sp.symbols("u w")
t1, t2 = sp.symbols("t1 t2")
x = Normal("x", 0, 1)
eps = Normal("eps", 0, sp.Rational(1, 2))


def _rescaling() -> ns.Loss:
    return ns.Loss((u * w * x - (x + eps)) ** 2, params=[u, w])


def _euler_flow(grad, th, dt=1e-3, steps=20_000):
    """Independent gradient flow: explicit Euler on a hand-written ∇L."""
    th = np.array(th, dtype=float)
    for _ in range(steps):
        th = th - dt * grad(th)
    return th


def test_flow_from_2_1_lands_on_uw_1_and_keeps_the_charge():
    # L = (uw − 1)² + σ²: ∇L = 2(uw − 1)(w, u); the flow keeps u² − w² = 3 (E9), so
    # Φ = the point of uw = 1 with u² − w² = 3: u² = (3 + √13)/2.
    loss = _rescaling()
    phi = ns.gradient_flow_limit(loss, {u: 2, w: 1})
    u2 = (3 + math.sqrt(13)) / 2
    assert phi.moved and phi.grad_norm <= 1e-9
    assert phi.theta == pytest.approx([math.sqrt(u2), 1 / math.sqrt(u2)], abs=1e-9)
    assert phi.theta[0] ** 2 - phi.theta[1] ** 2 == pytest.approx(3.0, abs=1e-8)  # (E9) to solver tolerance
    assert phi.distance == pytest.approx(float(np.linalg.norm(phi.theta - [2, 1])))
    euler = _euler_flow(lambda t: 2 * (t[0] * t[1] - 1) * np.array([t[1], t[0]]), [2, 1])
    assert phi.theta == pytest.approx(euler, abs=1e-3)  # Euler's O(dt) error
    assert phi.time > 0


def test_relu_unit_with_bias_flows_deterministically_to_the_closed_form():
    # ℓ = (v relu(wx + b) − relu(x) − ε)², x ~ N(0, 1): the minimum is b = 0, vw = 1 (w > 0); the
    # flow keeps w² + b² − v² = 2.04 (E9), so Φ = (w, 0, 1/w) with w² − 1/w² = 2.04. The flow
    # runs on the deterministic cone cubature: the same numbers for every seed.
    wv, bv, vv = sp.symbols("w b v")
    loss = ns.Loss((vv * sp.Max(0, wv * x + bv) - sp.Max(0, x) - eps) ** 2, [wv, bv, vv])
    w2 = (2.04 + math.sqrt(2.04**2 + 4)) / 2
    phis = [ns.gradient_flow_limit(loss, [1.5, 0.2, 0.5], seed=s) for s in (0, 1)]
    phi = phis[0]
    assert "cone" in phi.moments and phi.grad_norm <= 1e-9 and phi.standard_error == 0.0
    assert phi.theta == pytest.approx([math.sqrt(w2), 0.0, 1 / math.sqrt(w2)], abs=1e-7)
    assert np.array_equal(phis[1].theta, phi.theta)


def test_start_on_the_manifold_is_unchanged():
    phi = ns.gradient_flow_limit(_rescaling(), [2, 0.5])
    assert not phi.moved and phi.distance == 0.0 and list(phi.theta) == [2.0, 0.5]


def test_readme_example_predicts_u2_equal_1_from_2_1():
    loss = _rescaling()
    A = ns.find_symmetries(loss).generators[0]
    eq = ns.noise_equilibrium(loss, A, {u: 2, w: 1})
    # balance on uw = 1 with label noise independent of x: Tr Σ_u = Tr Σ_w, so u² = w² = 1
    assert eq.kind == "balanced"
    assert eq.theta == pytest.approx([1.0, 1.0], abs=1e-9)
    assert eq.start is eq.projection and eq.start.moved
    # the old orbit-of-θ₀ answer (u² = 2) is still available, and differs
    old = ns.noise_equilibrium(loss, A, {u: 2, w: 1}, project=False)
    assert old.theta[0] ** 2 == pytest.approx(2.0, abs=1e-9)


def test_boost_loss_from_2_half_predicts_sqrt3_0():
    # ℓ = (x(t₁² − t₂²) − 3x − ε)²: generator [[0, 1], [1, 0]] (a boost), charge 2t₁t₂.
    # Minimum t₁² − t₂² = 3; Σ ∝ ∇f∇fᵀ with ∇f ∝ (t₁, −t₂); balance Tr[AΣ] ∝ −2t₁t₂ = 0: (√3, 0).
    loss = ns.Loss((x * (t1**2 - t2**2) - 3 * x - eps) ** 2, params=[t1, t2])
    gens = ns.find_symmetries(loss).generators
    assert len(gens) == 1
    eq = ns.noise_equilibrium(loss, gens[0], [2, sp.Rational(1, 2)])
    assert eq.kind == "balanced"
    assert eq.theta == pytest.approx([math.sqrt(3), 0.0], abs=1e-9)
    # gradient flow keeps the charge 2t₁t₂ = 2 (E9)
    assert 2 * eq.start.theta[0] * eq.start.theta[1] == pytest.approx(2.0, abs=1e-8)


def test_joint_equilibrium_projects_and_keeps_every_charge():
    a, b, c = sp.symbols("a b c")
    loss = ns.Loss((a * b * c * x - 2 * x - eps) ** 2, [a, b, c])
    gens = ns.find_symmetries(loss).generators
    th0 = np.array([1.0, 1.5, 2.0])  # abc = 3, off the minimum abc = 2
    je = ns.joint_equilibrium(loss, gens, th0)
    assert je.start.moved and je.start.grad_norm <= 1e-9
    for A in gens:
        An = np.array(A.tolist(), dtype=float)
        assert je.start.theta @ An @ je.start.theta == pytest.approx(th0 @ An @ th0, abs=1e-8)
    # on abc = 2 with label noise: balance |a| = |b| = |c| = 2^{1/3}
    assert np.abs(je.theta) == pytest.approx([2 ** (1 / 3)] * 3, abs=1e-8)
    assert math.isfinite(je.relaxation_steps(0.01, 1)) and je.relaxation_steps(0.01, 1) > 0


def test_relaxation_steps_match_the_linearised_charge_flow():
    # At the balance point (1, 1) of the rescaling loss: s₊ = s₋ = 4σ²·1 = 1, C' = 2(u² + w²) = 4,
    # G' = −2(s₊ + s₋) = −4, so τ = C'/(η²/S·|G'|) = 1/η² steps.
    loss = _rescaling()
    eq = ns.noise_equilibrium(loss, sp.diag(1, -1), [1, 1])
    assert eq.relaxation_steps(0.01, 1) == pytest.approx(1e4, rel=1e-9)
    assert eq.relaxation_steps(0.01, 4) == pytest.approx(4e4, rel=1e-9)
    with pytest.raises(InvalidArgumentError):
        eq.relaxation_steps(0.0)


def test_weight_decay_projection_uses_the_flow_of_L():
    loss = _rescaling()
    eq = ns.noise_equilibrium(loss, sp.diag(1, -1), [2, 1], weight_decay=1e-3, lr=0.01)
    # Φ(θ₀) is the γ = 0 flow's end point (see the docstring): uw = 1 there
    assert eq.start.theta[0] * eq.start.theta[1] == pytest.approx(1.0, abs=1e-9)


# ---- bad input --------------------------------------------------------------------------


def test_non_finite_start_is_an_error():
    with pytest.raises(InvalidArgumentError, match="non-finite"):
        ns.noise_equilibrium(_rescaling(), sp.diag(1, -1), [np.nan, 1.0])
    with pytest.raises(InvalidArgumentError, match="non-finite"):
        ns.gradient_flow_limit(_rescaling(), [np.inf, 1.0])


def test_loss_whose_gradient_flow_diverges_is_an_error():
    # L = −(uw)² E[x²]: unbounded below, the flow runs away (finite-time blow-up)
    loss = ns.Loss(-(u * w * x) ** 2, [u, w])
    with pytest.raises(GradientFlowError, match="diverges"):
        ns.gradient_flow_limit(loss, [1.0, 0.5])
    with pytest.raises(GradientFlowError):
        ns.noise_equilibrium(loss, sp.diag(1, -1), [1.0, 0.5])


def test_loss_without_a_minimum_in_reach_is_an_error():
    # L = (u + w)·E[x²] + (u − w)² ... linear descent along u + w: never settles
    loss = ns.Loss((u + w) * x**2 + (u - w) ** 2, [u, w])
    with pytest.raises(GradientFlowError):
        ns.gradient_flow_limit(loss, [0.0, 0.0], max_time=1e3)


def test_loss_without_a_data_model_is_an_error():
    z = sp.Symbol("z")  # declared data, but no distribution and no dataset: no moments
    loss = ns.Loss((u * w * z - z) ** 2, [u, w], data=[z])
    with pytest.raises(NoetherSymError, match="data|distribution"):
        ns.noise_equilibrium(loss, sp.diag(1, -1), [2, 1])
    with pytest.raises(NoetherSymError, match="data|distribution"):
        ns.gradient_flow_limit(loss, [2, 1])


# ---- degenerate generators ----------------------------------------------------------------


def test_noise_below_monte_carlo_accuracy_is_undetermined_with_the_samples_that_decide_it():
    # x ~ U(−1, 1) (not Gaussian: Monte Carlo moments), unit relu(a x + c) active with
    # probability 0.0025: with 2,000 draws about 5 samples carry its noise, s ≈ 2 s.e. on each
    # side of the rescaling generator: the estimate cannot tell a balance from a degenerate
    # generator, so the class is "undetermined", with a sample size -- for every seed
    from sympy.stats import Uniform

    a, c, v = sp.symbols("a c v")
    xu = Uniform("xu", -1, 1)
    loss = ns.Loss((v * sp.Max(0, a * xu + c) - eps) ** 2, [a, c, v])
    for seed in (0, 1, 2):
        eq = ns.noise_equilibrium(loss, sp.diag(1, 1, -1), [1.0, -0.995, 0.5], n_samples=2000, project=False,
                                  seed=seed)
        assert eq.kind == "undetermined" and math.isnan(eq.lam)
        assert "undetermined at this accuracy" in eq.method and eq.needed_samples > 2000
        assert eq.lam_interval is not None and not all(map(math.isfinite, eq.lam_interval))


def test_monte_carlo_standard_error_of_lambda_matches_the_spread_over_seeds():
    # a live unit (active with probability 1/4) on uniform data: Monte Carlo moments, balanced.
    # The propagated lam_se must describe the seed-to-seed spread of λ*: over 24 seeds the
    # sample standard deviation of λ* lies within a factor 1.6 of the mean lam_se (the
    # standard deviation of 24 draws is within ±35% of σ with probability > 0.99), the
    # hand-computed λ* (quadrature over U(−1, 1)) lies in every seed's 4σ interval, and the
    # mean over seeds is within 4 of its standard errors (lam_se/√24) of it.
    from sympy.stats import Uniform

    a, c, v = sp.symbols("a c v")
    xu = Uniform("xu", -1, 1)
    loss = ns.Loss((v * sp.Max(0, a * xu + c) - eps) ** 2, [a, c, v])
    th = [1.0, -0.5, 0.5]
    lams, ses = [], []
    # exact: λ* = ¼ log(s₊/s₋) (E17), s₊ = Var g_a + Var g_c, s₋ = Var g_v, by quadrature over
    # x ~ U(−1, 1) with ε integrated by hand (E[r] = v·relu, E[r²] = v²relu² + σ²)
    from scipy.integrate import quad

    def E(fun):
        return quad(lambda z: fun(z) / 2, 0.5, 1.0, epsabs=1e-14)[0]  # the unit is active on x > 1/2

    vv, sig2 = 0.5, 0.25
    m1 = lambda z: vv * (z - 0.5)
    m2 = lambda z: m1(z) ** 2 + sig2
    mean = [E(lambda z: 2 * m1(z) * vv * z), E(lambda z: 2 * m1(z) * vv), E(lambda z: 2 * m1(z) * (z - 0.5))]
    second = [E(lambda z: 4 * m2(z) * vv**2 * z * z), E(lambda z: 4 * m2(z) * vv**2), E(lambda z: 4 * m2(z) * (z - 0.5) ** 2)]
    var = [sec - mu**2 for sec, mu in zip(second, mean)]
    lam_exact = 0.25 * math.log((var[0] + var[1]) / var[2])
    for seed in range(24):
        eq = ns.noise_equilibrium(loss, sp.diag(1, 1, -1), th, n_samples=4000, project=False, seed=seed)
        assert eq.kind == "balanced"
        lo, hi = eq.lam_interval
        assert lo <= lam_exact <= hi
        lams.append(eq.lam)
        ses.append(eq.lam_se)
        assert eq.charge_interval[0] <= eq.charge <= eq.charge_interval[1]
        assert eq.theta_se.shape == (3,) and eq.charge_se > 0
    ratio = float(np.std(lams, ddof=1)) / float(np.mean(ses))
    assert 1 / 1.6 <= ratio <= 1.6
    assert abs(float(np.mean(lams)) - lam_exact) <= 4 * float(np.mean(ses)) / math.sqrt(24)


def test_nearly_dead_unit_with_deterministic_moments_reports_its_time_scale():
    # Gaussian data: deterministic moments resolve the tiny noise (active with probability
    # Φ(−4) ≈ 3e-5), so λ* exists; its relaxation time says SGD will not get there in practice
    a, c, v = sp.symbols("a c v")
    loss = ns.Loss((v * sp.Max(0, a * x + c) - eps) ** 2, [a, c, v])
    eq = ns.noise_equilibrium(loss, sp.diag(1, 1, -1), [1.0, -4.0, 0.5], project=False)
    if eq.kind == "balanced":
        assert eq.relaxation_steps(0.01, 1) > 1e8
    else:
        assert eq.kind == "degenerate"


# ---- the η → 0 estimate uses clean runs only ------------------------------------------------


def _run(lr: float, value: float, diverged: int = 0, outliers: int = 0) -> Run:
    z = np.zeros((2, 1))
    return Run(lr, 100, np.array([value]), np.array([0.01]), 100, diverged, 0.0, np.arange(2), z, z, None, None,
               outliers)


def test_extrapolation_uses_clean_runs_and_refuses_below_two():
    # values on the line m = 1 + 3η
    clean = [_run(0.01, 1.03), _run(0.02, 1.06), _run(0.04, 1.12)]
    ext = _extrapolate(clean, True, "auto")
    assert ext.order == "linear" and ext.estimate[0] == pytest.approx(1.0) and ext.lrs == [0.01, 0.02, 0.04]
    bad4 = clean[:2] + [_run(0.04, 5.0, diverged=34)]
    ext = _extrapolate(bad4, True, "auto")
    assert ext.order == "two-point" and ext.lrs == [0.01, 0.02] and ext.estimate[0] == pytest.approx(1.0)
    bad2 = [clean[0], _run(0.02, 9.0, outliers=3), clean[2]]
    ext = _extrapolate(bad2, True, "quadratic")  # a named rule that needs the bad run falls back
    assert ext.order == "two-point" and ext.lrs == [0.01, 0.04] and ext.estimate[0] == pytest.approx(1.0)
    assert ext.notes
    ext = _extrapolate([clean[0], _run(0.02, 9.0, diverged=1), _run(0.04, 9.0, diverged=1)], True, "auto")
    assert ext.order == "none" and ext.estimate is None and "fewer than two clean runs" in ext.refusal


def test_compare_refusal_is_explicit():
    loss = _rescaling()
    cmp = ns.compare(loss, [1, 1], lr=0.12, batch_size=1, steps=3200, replicas=16, observables={"u^2": u**2},
                     records=100, seed=0)
    if cmp.richardson is None:  # at 2η = 0.24 and 4η = 0.48 replicas diverge: no η → 0 estimate
        assert cmp.refusal and any("no η → 0 estimate" in m for m in cmp.warnings)
        with pytest.raises(InvalidArgumentError, match="no η → 0 estimate"):
            cmp.within(0.1, "richardson")
    else:  # the estimate may only come from clean runs
        assert all(r.n_diverged == 0 and r.outliers == 0 for r in cmp.runs if r.lr in cmp.richardson_lrs)


def test_compare_warns_about_runs_shorter_than_the_relaxation_time():
    loss = _rescaling()
    cmp = ns.compare(loss, [2, 1], lr=0.01, batch_size=1, steps=400, replicas=8, observables={"u^2": u**2},
                     records=20, richardson=False)
    assert cmp.relaxation_steps == pytest.approx(1e4, rel=1e-6)  # 1/η² at the balance point (1, 1)
    assert any("relaxation times" in m for m in cmp.warnings)
    assert cmp.projection is not None and cmp.projection.moved
    assert cmp.predicted[0] == pytest.approx(1.0, abs=1e-9)


# ---- Φ(θ₀) where the exact gradient is too costly for a whole flow ------------------------


def _two_relu_units_on_r2() -> tuple[ns.Loss, list[float]]:
    a0, a1, v1, c0, c1, v2 = sp.symbols("a0 a1 v1 c0 c1 v2")
    x0, x1 = Normal("x0", 0, 1), Normal("x1", 0, 1)
    relu = lambda z: sp.Max(0, z)
    f = v1 * relu(a0 * x0 + a1 * x1) + v2 * relu(c0 * x0 + c1 * x1)
    loss = ns.Loss((f - relu(x0) - relu(x1) / 2 - eps) ** 2, [a0, a1, v1, c0, c1, v2])
    return loss, [1.2, 0.05, 0.9, -0.05, 0.8, 0.6]


def test_two_relu_units_on_r2_land_on_the_manifold_with_the_start_charges():
    # 2-D input: one exact ∇L needs ~40,000 cubature points, the flow runs on a Monte Carlo
    # sample and is polished with the exact gradient. By hand: the minimum with the units on
    # the teacher's axes has a1 = c0 = 0, v1 a0 = 1, v2 c1 = 1/2, and gradient flow keeps
    # q1 = a0² + a1² − v1² and q2 = c0² + c1² − v2² (E9), so a0² = (q1 + √(q1² + 4))/2 and
    # c1² = (q2 + √(q2² + 1))/2. Tolerance 1e-7: the polish stops at ‖∇L‖ ≤ 1e-8·(1 + ‖θ₀‖)
    # on a non-degenerate minimum (curvature ≥ 0.01 normal to it), charges to 1e-8.
    loss, th0 = _two_relu_units_on_r2()
    q1, q2 = th0[0] ** 2 + th0[1] ** 2 - th0[2] ** 2, th0[3] ** 2 + th0[4] ** 2 - th0[5] ** 2
    A2 = (q1 + math.sqrt(q1**2 + 4)) / 2
    C2 = (q2 + math.sqrt(q2**2 + 1)) / 2
    want = [math.sqrt(A2), 0.0, 1 / math.sqrt(A2), 0.0, math.sqrt(C2), 0.5 / math.sqrt(C2)]
    phi = ns.gradient_flow_limit(loss, th0)
    assert phi.moved and "cone" in phi.moments and phi.standard_error == 0.0
    assert phi.grad_norm <= phi.tol <= 1e-7
    assert np.allclose(phi.theta, want, atol=1e-7), (phi.theta, want)


def test_polish_over_its_budget_is_a_resource_error(monkeypatch):
    from noether_sym.theory import _gradient_flow as gf

    loss, th0 = _two_relu_units_on_r2()
    monkeypatch.setattr(gf, "FLOW_POLISH_NODES", 1_000)
    with pytest.raises(ns.ResourceLimitError, match="FLOW_POLISH_NODES"):
        ns.gradient_flow_limit(loss, th0)


def test_monte_carlo_flow_off_the_manifold_is_refused_not_predicted():
    # a tanh feature: neither exact moments nor cones, so ∇L is a Monte Carlo estimate; from
    # (u, w) = (2, 1), off the minimum uw = 1, the flow on a sample stops within its standard
    # error of a minimum, which is no certain Φ(θ₀): a refusal, for the prediction too
    loss = ns.Loss((u * w * sp.tanh(x) - sp.tanh(x) - eps) ** 2, [u, w])
    with pytest.raises(GradientFlowError, match="not on a minimum within the Monte Carlo accuracy"):
        ns.gradient_flow_limit(loss, [2.0, 1.0])
    with pytest.raises(GradientFlowError, match="not on a minimum within the Monte Carlo accuracy"):
        ns.noise_equilibrium(loss, sp.diag(1, -1), [2.0, 1.0], seed=1)


def test_polish_refuses_a_point_the_charges_do_not_pin(monkeypatch):
    """Three leaky-ReLU units on x ∈ R² fitting a linear teacher: the minimum manifold has a
    direction at fixed charges that no symmetry explains, so where the polish lands along it
    is the Monte Carlo flow's doing. Shown by hand: with the check switched off, two flow
    tolerances land visibly apart (an error of the flow, not of the loss); with it, a refusal."""
    from noether_sym.theory import _gradient_flow as gf

    loss = ns.families.build("leaky-relu-net")
    # the command line's default start: seeded N(0, 1) entries with two decimals, exact
    th0 = [sp.Rational(str(v)) for v in np.round(np.random.default_rng(0).standard_normal(loss.n), 2)]
    with pytest.raises(GradientFlowError, match="not determined by the charges"):
        ns.gradient_flow_limit(loss, th0, max_evaluations=5_000)
    monkeypatch.setattr(gf, "_off_rotations", lambda loss, Q, th: Q[:0])  # no directions checked
    ends = []
    for rtol in (1e-4, 1e-5):
        monkeypatch.setattr(gf, "_POLISH_FLOW_RTOL", rtol)
        ends.append(ns.gradient_flow_limit(ns.families.build("leaky-relu-net"), th0, max_evaluations=5_000).theta)
    assert np.abs(ends[0] - ends[1]).max() > 1e-5  # far above the polish's 1e-8 accuracy
