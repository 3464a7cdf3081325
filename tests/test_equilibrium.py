"""Charge dynamics and the noise equilibrium (THEORY §4–§7): closed forms against independent
numerics, properties from the theorems, bad input.

Independent references used here: scipy's brentq on G written from its definition (E13);
the worked numbers of THEORY §7.1 (λ* = −0.8331, u*² = 0.7559); Σ evaluated at the moved
point from the moments' own formula (not from the transport law being tested); expm.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm
from scipy.optimize import brentq
from sympy.stats import Normal

import noether_sym as ns
from noether_sym.theory._root import _bracket

# ------------------------------------------------------------------------------------------
# fixtures: the rescaling model of THEORY §7.1
# ------------------------------------------------------------------------------------------

u, w0, w1, w2 = sp.symbols("u w0 w1 w2")


def rescaling_loss(beta=(1, sp.Rational(-1, 2), 2), stds=(1, 2, sp.Rational(1, 2)), noise_var=sp.Rational(1, 2)):
    x = [Normal(f"x{i}", 0, s) for i, s in enumerate(stds)]
    eps = Normal("eps", 0, sp.sqrt(noise_var))
    y = sum(b * xi for b, xi in zip(beta, x)) + eps
    return ns.Loss((u * (w0 * x[0] + w1 * x[1] + w2 * x[2]) - y) ** 2, [u, w0, w1, w2], name="rescaling")


A_RESCALE = sp.diag(1, -1, -1, -1)


@pytest.fixture(scope="module")
def rescaling():
    return rescaling_loss()


def test_worked_numbers_of_section_7_1(rescaling):
    eq = ns.noise_equilibrium(rescaling, A_RESCALE, {u: 2, w0: sp.Rational(1, 2), w1: -sp.Rational(1, 4), w2: 1})
    assert eq.kind == "balanced"
    assert round(eq.lam, 4) == -0.8331  # THEORY §7.1
    assert round(float(eq.theta[0]) ** 2, 4) == 0.7559
    # the closed form (E17) for a = b = 1 with s+ = Tr Σ_u = 3/2, s- = Tr Σ_w = 42 (derived by hand in §7.1)
    assert sp.simplify(eq.lam_exact - sp.log(sp.Rational(3, 2) / 42) / 4) == 0
    lo, hi = eq.bracket
    assert float(lo) <= eq.lam <= float(hi) and float(hi) - float(lo) < 1e-25


def test_closed_form_e17_against_brentq():
    rng = np.random.default_rng(0)
    for _ in range(30):
        a, b = rng.uniform(0.1, 5, size=2)
        sp_, sm = rng.uniform(0.01, 10, size=2)
        G = lambda lam: a * math.exp(-2 * lam * a) * sp_ - b * math.exp(2 * lam * b) * sm  # (E14)
        ref = brentq(G, -50, 50, xtol=1e-15)
        closed = math.log(a * sp_ / (b * sm)) / (2 * (a + b))  # (E17)
        assert abs(closed - ref) < 1e-12


def test_polynomial_and_numeric_routes_agree_with_brentq():
    """Generators with three eigenvalues: rational spectrum -> polynomial root; the result
    must match brentq on G built from the returned s_i."""
    a, b, c, x, e = sp.symbols("a b c x e")
    X, E = Normal("X", 0, 1), Normal("E", 0, 1)
    # a*b^2*c^3: symmetries diag(p, q, r) with p + 2q + 3r = 0
    loss = ns.Loss((a * b**2 * c**3 * X - X - E) ** 2, [a, b, c])
    for A in (sp.diag(2, -1, 0), sp.diag(3, 0, -1), sp.diag(1, 1, -1)):
        eq = ns.noise_equilibrium(loss, A, [sp.Rational(3, 2), sp.Rational(1, 2), sp.Rational(6, 5)])
        av = [float(v) for v in eq.eigenvalues]
        sv = [float(v) for v in eq.noise]
        G = lambda lam: sum(ai * math.exp(-2 * lam * ai) * si for ai, si in zip(av, sv))
        ref = brentq(G, -40, 40, xtol=1e-15)
        assert eq.kind == "balanced" and abs(eq.lam - ref) < 1e-10, (A, eq.method)


@settings(max_examples=20, deadline=None)
@given(
    th=st.lists(st.floats(-2, 2).filter(lambda v: abs(v) > 0.2), min_size=4, max_size=4),
    mu=st.floats(-1.5, 1.5),
)
def test_theta_star_is_independent_of_the_start_on_the_orbit(rescaling, th, mu):
    eq1 = ns.noise_equilibrium(rescaling, A_RESCALE, th, check_symmetry=False, project=False)
    moved = expm(mu * np.diag([1.0, -1, -1, -1])) @ np.array(th)
    eq2 = ns.noise_equilibrium(rescaling, A_RESCALE, moved, check_symmetry=False, project=False)
    assert eq1.kind == eq2.kind == "balanced"
    assert np.allclose(eq1.theta, eq2.theta, rtol=1e-10, atol=1e-12)
    assert abs((eq1.lam - eq2.lam) - mu) < 1e-10 * max(1.0, abs(mu))


@settings(max_examples=20, deadline=None)
@given(th=st.lists(st.floats(-2, 2).filter(lambda v: abs(v) > 0.2), min_size=4, max_size=4))
def test_balance_holds_at_theta_star_and_G_decreases(rescaling, th):
    eq = ns.noise_equilibrium(rescaling, A_RESCALE, th, check_symmetry=False, project=False)
    # Σ at θ* from the moments' formula, evaluated independently of the transport law
    Sig = ns.compiled_moments(rescaling).covariance(eq.theta)
    An = np.diag([1.0, -1, -1, -1])
    tr = float(np.trace(An @ Sig))
    scale = float(np.trace(np.abs(An) @ Sig))
    assert abs(tr) <= 1e-12 * scale
    lams = np.linspace(eq.lam - 3, eq.lam + 3, 41)
    G = np.array([eq.G(float(l)) for l in lams])
    assert np.all(np.diff(G) < 0)  # (E14): G' ≤ 0, strictly with noise on both signs


def test_transport_laws_e6_for_sigma_and_hessian(rescaling):
    rng = np.random.default_rng(1)
    mf = ns.compiled_moments(rescaling)
    An = np.diag([1.0, -1, -1, -1])
    for _ in range(5):
        th = rng.standard_normal(4)
        lam = rng.uniform(-1, 1)
        E = expm(lam * An)
        Ei = expm(-lam * An)
        S0, S1 = mf.covariance(th), mf.covariance(E @ th)
        assert np.allclose(S1, Ei @ S0 @ Ei, rtol=1e-10, atol=1e-12)
        g0, g1 = mf.mean_grad(th), mf.mean_grad(E @ th)
        assert np.allclose(g1, Ei @ g0, rtol=1e-10, atol=1e-12)
        H0, _ = ns.theory._sharpness.population_hessian(rescaling, th)
        H1, _ = ns.theory._sharpness.population_hessian(rescaling, E @ th)
        H0 = np.array(H0.tolist(), dtype=float)
        H1 = np.array(H1.tolist(), dtype=float)
        assert np.allclose(H1, Ei @ H0 @ Ei, rtol=1e-9, atol=1e-10)


def test_class_matches_spectrum_and_noise():
    a, b, X, E = sp.symbols("a b X E")
    x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    # scale invariance: A = I, divergent
    t1, t2 = sp.symbols("t1 t2")
    r = sp.sqrt(t1**2 + t2**2)
    scale_inv = ns.Loss(((t1 - t2) / r * x - e) ** 2, [t1, t2])
    eq = ns.noise_equilibrium(scale_inv, sp.eye(2), [1.0, 0.5], n_samples=20000)
    assert eq.kind == "divergent" and eq.lam == math.inf and eq.rate > 0
    # noise on one side only: indefinite but degenerate (no label noise, a*b*x fits y = 2x: Σ = 0 at the minimum)
    loss = ns.Loss((a * b * x - 2 * x) ** 2, [a, b])
    eq = ns.noise_equilibrium(loss, sp.diag(1, -1), [1, 2])
    assert eq.kind == "degenerate" and math.isnan(eq.lam)
    # balanced
    loss = ns.Loss((a * b * x - 2 * x - e) ** 2, [a, b])
    assert ns.noise_equilibrium(loss, sp.diag(1, -1), [1, 2]).kind == "balanced"


def test_weight_decay_equilibrium_scale_invariance_e18():
    t1, t2 = sp.symbols("t1 t2")
    x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    r = sp.sqrt(t1**2 + t2**2)
    loss = ns.Loss(((t1 + 2 * t2) / r * x - e) ** 2, [t1, t2])
    eta, gam, S = 0.05, 0.01, 4
    th = np.array([0.6, -0.8])  # unit norm: Σ(θ̂) = Σ(θ)
    eq = ns.noise_equilibrium(loss, sp.eye(2), th, lr=eta, weight_decay=gam, batch_size=S, n_samples=200_000)
    trS = float(sum(float(s) for s in eq.noise))  # Tr Σ(θ̂) (Monte Carlo, numeric)
    predicted = (eta * trS / (2 * gam * S)) ** 0.25  # ‖θ*‖ from (E18)
    assert abs(np.linalg.norm(eq.theta) - predicted) < 1e-9 * predicted


def test_e10_holds_exactly_per_step(rescaling):
    rng = np.random.default_rng(2)
    cl = ns.compile._compiled.compiled(rescaling)
    sampler = ns.make_sampler(rescaling)
    dyn = ns.charge_dynamics(rescaling, A_RESCALE)
    An = np.diag([1.0, -1, -1, -1])
    for _ in range(20):
        th = rng.standard_normal(4)
        X = sampler.draw(rng, (8,))
        ghat = cl.grad(np.broadcast_to(th, (8, 4)), X).mean(axis=0)
        eta, gam = rng.uniform(0.001, 0.3), rng.uniform(0, 0.5)
        new = (1 - eta * gam) * th - eta * ghat
        C0, C1 = th @ An @ th, new @ An @ new
        pred = dyn.step_numeric(C0, ghat, eta, gam)
        assert abs(C1 - pred) <= 1e-12 * max(1.0, abs(C1), eta**2 * abs(ghat @ An @ ghat))


def test_dynamics_expected_step_and_drift_symbols(rescaling):
    dyn = ns.charge_dynamics(rescaling, A_RESCALE)
    eta, gam, S = ns.theory._spectrum.ETA, ns.theory._spectrum.GAMMA, ns.theory._spectrum.BATCH
    # (E12) at γ = 0 is (η/S) Tr[AΣ]; (E11) minus (1 − ηγ)²C is O(η²)
    assert sp.expand(dyn.drift.subs(gam, 0) - eta / S * dyn.trace_A_sigma) == 0
    rest = sp.expand(dyn.expected_step - (1 - eta * gam) ** 2 * dyn.charge)
    assert sp.Poly(rest, eta).monoms() == [(2,)]
    assert "frac{dC}{dt}" in dyn.latex()


def test_without_replacement_factor():
    th = sp.symbols("a b")
    x = sp.Symbol("x")
    data = {x: np.array([0.5, -1.0, 2.0, 1.5, -0.3])}
    loss = ns.Loss((th[0] * th[1] * x - x) ** 2, list(th), data=data)
    dyn = ns.charge_dynamics(loss, sp.diag(1, -1), replace=False)
    S = ns.theory._spectrum.BATCH
    assert sp.simplify(dyn.kappa - (5 - S) / (S * 4)) == 0


# ------------------------------------------------------------------------------------------
# several generators and the two-layer linear network (E20)-(E21)
# ------------------------------------------------------------------------------------------


def test_joint_equilibrium_of_commuting_generators():
    a, b, c = sp.symbols("a b c")
    x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    loss = ns.Loss((a * b * c * x - 2 * x - e) ** 2, [a, b, c])
    gens = ns.find_symmetries(loss).generators
    je = ns.joint_equilibrium(loss, gens, [1, 1, 2])
    assert je.kind == "balanced" and np.abs(je.residuals).max() < 1e-12 and je.min_hessian_eigenvalue > 0
    # every single-generator problem is solved at θ*: λ* = 0 from there
    for A in gens:
        assert abs(ns.noise_equilibrium(loss, A, je.theta, check_symmetry=False).lam) < 1e-9


def test_non_commuting_generators_are_rejected():
    loss = ns.families.linear_net([2, 2, 2])
    gens = ns.find_symmetries(loss).generators
    with pytest.raises(ns.InvalidGeneratorError, match="do not commute"):
        ns.joint_equilibrium(loss, gens, np.ones(loss.n))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), d=st.integers(1, 3))
def test_two_layer_geometric_mean_solves_its_equation(seed, d):
    """Assumption: d ≤ max(n, m) = 3, so M_W or M_U is invertible and X is the limit of a
    geometric mean with one singular argument. For d > max(n, m) both are singular; here
    (d = 4: rank M_W = 3 ≠ rank M_U = 2) X M_W X = c M_U has no SPD solution at all (an
    invertible X keeps the rank), the regularized X comes back with condition number
    ~1e17 or P is singular, and no bound on the residuals holds."""
    rng = np.random.default_rng(seed)
    n, m = 3, 2
    U, W = rng.standard_normal((m, d)), rng.standard_normal((d, n))
    Bx = rng.standard_normal((n, n))
    Be = rng.standard_normal((m, m))
    Sx, Se = Bx @ Bx.T + 0.1 * np.eye(n), Be @ Be.T + 0.1 * np.eye(m)
    eq = ns.two_layer_equilibrium(U, W, Sx, Se)
    singular = d > min(n, m)
    # X M_W X = c M_U and (E20) at θ*, on the whole space; in the singular case X is the
    # limit of a regularized geometric mean (ε -> 0), so a looser bound
    assert eq.residual < (1e-6 if singular else 1e-10)
    assert eq.balance_residual < (1e-3 if singular else 1e-9)
    assert np.allclose(eq.U @ eq.W, U @ W, atol=1e-10)  # θ* is on the orbit: UW unchanged
    if d > min(n, m):
        return  # directions outside the ranges carry no noise: degenerate, no unique θ* there
    # orbit independence: start from (U Q⁻¹, Q W), Q SPD; compare rotation invariants
    Q = rng.standard_normal((d, d))
    Q = Q @ Q.T + np.eye(d)
    eq2 = ns.two_layer_equilibrium(U @ np.linalg.inv(Q), Q @ W, Sx, Se)
    assert np.allclose(np.sort(eq.Q_eigenvalues), np.sort(eq2.Q_eigenvalues), rtol=1e-8, atol=1e-9)


def test_two_layer_singular_ranges_balance_on_the_whole_space():
    """d > min(n, m) with ranges of M_W and M_U that differ: (E20) must hold on the whole
    space, not only on the intersection of the ranges (a bug found by a notebook)."""
    eq = ns.two_layer_equilibrium(np.array([[1.0, 1.0]]), np.array([[1.0], [0.0]]), np.eye(1), 0.5 * np.eye(1))
    Us, Ws = eq.U, eq.W
    bal = 1.0 * Us.T @ (0.5 * Us) - 0.5 * Ws @ Ws.T  # Tr Σx UᵀΣεU − Tr Σε WΣxWᵀ, computed here
    assert np.abs(bal).max() < 1e-8
    assert np.allclose(Us @ Ws, [[1.0]])  # still on the orbit


def test_isotropic_two_layer_equilibrium_is_norm_balance():
    rng = np.random.default_rng(4)
    U, W = rng.standard_normal((3, 2)), rng.standard_normal((2, 3))
    eq = ns.two_layer_equilibrium(U, W, np.eye(3), 0.25 * np.eye(3))
    assert np.allclose(eq.U.T @ eq.U, eq.W @ eq.W.T, atol=1e-10)  # (E20) isotropic: UᵀU = WWᵀ


# ------------------------------------------------------------------------------------------
# sharpness (E19)
# ------------------------------------------------------------------------------------------


def test_label_noise_flattens_and_lambda_star_is_argmin(rescaling):
    # at a minimum with x-independent label noise Σ = 2σ²H, so λ* = argmin T (§6)
    sh = ns.sharpness_along_orbit(rescaling, A_RESCALE, {u: 2, w0: sp.Rational(1, 2), w1: -sp.Rational(1, 4), w2: 1})
    assert abs(sh.argmin - sh.lam_star) < 1e-12
    assert sh.verdict == "flatten" and sh.change < 0


def test_x_dependent_noise_matches_hand_computation():
    # f = u(wᵀx), x ~ N(0, I₂), y = βᵀx + 3εx₀: the noise variance grows along x₀ only.
    a, b0, b1 = sp.symbols("a b0 b1")
    x0, x1, e = Normal("x0", 0, 1), Normal("x1", 0, 1), Normal("e", 0, 1)
    loss = ns.Loss((a * (b0 * x0 + b1 * x1) - (x0 + 3 * x1) - 3 * e * x0) ** 2, [a, b0, b1])
    th = [1, 1, 3]  # a minimum: a·b = β
    sh = ns.sharpness_along_orbit(loss, sp.diag(1, -1, -1), th)
    # by hand: r = -3εx₀; Tr Σ_a = 36 E[x₀²(b·x)²] = 36(‖b‖² + 2b₀²) = 432,
    # Tr Σ_b = 36 a² E[x₀²‖x‖²] = 36·4 = 144 -> λ* = ¼ log 3;
    # h_a = 2‖b‖² = 20, h_b = 2a²·2 = 4 -> T(λ) = 20e^{-2λ} + 4e^{2λ}
    lam = math.log(3) / 4
    T = lambda l: 20 * math.exp(-2 * l) + 4 * math.exp(2 * l)
    assert abs(sh.lam_star - lam) < 1e-12
    assert abs(sh.change - (T(lam) - T(0))) < 1e-10
    assert abs(sh.argmin - math.log(5) / 4) < 1e-12
    assert sh.verdict == "flatten"


def test_x_dependent_noise_can_sharpen():
    # Same model, β = (3/2, 1/2), noise εx₀, start at a = 1, b = β (a minimum, near the flat point):
    # Tr Σ_a = 4(‖b‖² + 2b₀²) = 28, Tr Σ_b = 4a²(d + 2) = 16 -> λ* = ¼ log(7/4) ≈ 0.140;
    # h_a = 2‖b‖² = 5, h_b = 2a²d = 4 -> argmin T = ¼ log(5/4) ≈ 0.056, and T(λ*) > T(0):
    # SGD moves past the flattest point to a sharper one (progressive sharpening, §6).
    a, b0, b1 = sp.symbols("a b0 b1")
    x0, x1, e = Normal("x0", 0, 1), Normal("x1", 0, 1), Normal("e", 0, 1)
    loss = ns.Loss((a * (b0 * x0 + b1 * x1) - (sp.Rational(3, 2) * x0 + x1 / 2) - e * x0) ** 2, [a, b0, b1])
    sh = ns.sharpness_along_orbit(loss, sp.diag(1, -1, -1), [1, sp.Rational(3, 2), sp.Rational(1, 2)])
    lam = math.log(7 / 4) / 4
    T = lambda l: 5 * math.exp(-2 * l) + 4 * math.exp(2 * l)
    assert abs(sh.lam_star - lam) < 1e-12
    assert abs(sh.argmin - math.log(5 / 4) / 4) < 1e-12
    assert abs(sh.change - (T(lam) - T(0))) < 1e-10
    assert T(lam) > T(0) and sh.verdict == "sharpen"


# ------------------------------------------------------------------------------------------
# bad input and certificates
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "A,err,words",
    [
        (sp.Matrix([[1, 1, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0], [0, 0, 0, -1]]), ns.InvalidGeneratorError, "symmetric"),
        (sp.diag(1, -1), ns.InvalidGeneratorError, "4x4"),
        (sp.diag(1, 1, -1, -1), ns.InvalidGeneratorError, "not a symmetry"),
        (sp.zeros(4, 4), ns.InvalidGeneratorError, "zero matrix"),
        ("abc", ns.InvalidGeneratorError, "matrix"),
    ],
)
def test_bad_generators(rescaling, A, err, words):
    with pytest.raises(err, match=words):
        ns.noise_equilibrium(rescaling, A, [1, 1, 1, 1])


@pytest.mark.parametrize(
    "kwargs,words",
    [
        (dict(theta=[1, 1, 1]), "one entry per parameter"),
        (dict(theta=[1, 1, np.nan, 1]), "non-finite"),
        (dict(theta=[1, 1, 1, 1], lr=-0.1), "lr"),
        (dict(theta=[1, 1, 1, 1], batch_size=0), "batch_size"),
        (dict(theta=[1, 1, 1, 1], weight_decay=-1.0, lr=0.1), "weight_decay"),
        (dict(theta=[1, 1, 1, 1], weight_decay=0.1), "pass lr"),
        (dict(theta=[1, 1, 1, 1], digits=2), "digits"),
    ],
)
def test_bad_arguments(rescaling, kwargs, words):
    theta = kwargs.pop("theta")
    with pytest.raises(ns.NoetherSymError, match=words):
        ns.noise_equilibrium(rescaling, A_RESCALE, theta, **kwargs)


def test_loss_without_distribution_is_a_clear_error():
    x, y = sp.symbols("x y")
    loss = ns.Loss((u * w0 * x - y) ** 2, [u, w0], data=[x, y])
    with pytest.raises(ns.NoetherSymError, match="distribution"):
        ns.noise_equilibrium(loss, sp.diag(1, -1), [1, 1])


def test_no_bracket_is_an_error_not_a_number():
    with pytest.raises(ns.CertificationError, match="bracket"):
        _bracket(lambda lam: 1.0 + math.exp(-lam))  # never changes sign


def test_derive_bundles_everything(rescaling):
    d = ns.derive(rescaling, {u: 2, w0: sp.Rational(1, 2), w1: -sp.Rational(1, 4), w2: 1})
    assert d.symmetries.n_generators == 1 and len(d.dynamics) == 1
    assert round(d.equilibria[0].lam, 4) == -0.8331 and d.sharpness[0].verdict == "flatten"
    doc = d.to_dict()
    assert doc["equilibria"][0]["kind"] == "balanced"
    tex = d.latex()
    assert tex.startswith("\\documentclass") and "\\end{document}" in tex


def test_discrete_equilibrium_on_a_dataset_samples_like_simulate():
    """simulate draws the S rows of a minibatch with replacement, so the discrete drift (E11)
    on a dataset is M_S = ∇L∇Lᵀ + Σ/S, not the without-replacement (N − S)/(S(N − 1))."""
    from noether_sym.data._moments import moments

    w, v, x, y = sp.symbols("w v x y")
    rng = np.random.default_rng(3)
    N, S = 6, 3
    loss = ns.Loss((w * v * x - y) ** 2, [w, v], data={x: rng.normal(size=N), y: rng.normal(size=N)})
    theta = [1, 2]
    eq = ns.noise_equilibrium(loss, sp.diag(1, -1), theta, batch_size=S, discrete=True, project=False)
    assert eq.details["discrete_factor"] == "1/3"
    at = moments(loss).at(theta)
    g = np.array(at.mean_grad.tolist(), dtype=float).ravel()
    M = np.outer(g, g) + np.array(at.covariance.tolist(), dtype=float) / S
    noise = {float(a): float(s) for a, s in zip(eq.eigenvalues, eq.noise)}
    np.testing.assert_allclose([noise[1.0], noise[-1.0]], [M[0, 0], M[1, 1]], rtol=1e-12)


def _singular_pair(seed):
    rng = np.random.default_rng(seed)
    d = 3 + seed % 2  # d > n = m = 2: M_W and M_U are both singular
    W = rng.standard_normal((d, 2))
    U = rng.standard_normal((2, d))
    return U, W, np.diag(rng.uniform(0.5, 2, 2)), np.diag(rng.uniform(0.5, 2, 2))


def test_two_layer_equilibrium_refuses_when_both_covariances_are_singular():
    """d > n = m: M_W = WΣ_xWᵀ and M_U = UᵀΣ_εU are both singular and an invertible X keeps
    ranks, so the balance X M_W X = c M_U can have no SPD solution. Seed 8 is such a case (the
    old code raised numpy's LinAlgError there): a named refusal, never a raw error or wrong X."""
    with pytest.raises(ns.CertificationError, match="no SPD solution"):
        ns.two_layer_equilibrium(*_singular_pair(8))


def test_two_layer_equilibrium_answers_only_with_a_solution():
    """Over many singular cases every answer solves the balance (checked here, independently,
    from the returned X) and every other case is a refusal; tolerance 1e-3 relative."""
    answered = 0
    for seed in range(40):
        U, W, Sx, Se = _singular_pair(seed)
        try:
            eq = ns.two_layer_equilibrium(U, W, Sx, Se)
        except ns.CertificationError:
            continue
        answered += 1
        c = np.trace(Sx) / np.trace(Se)
        MW, MU = W @ Sx @ W.T, U.T @ Se @ U
        assert np.linalg.norm(eq.X @ MW @ eq.X - c * MU) <= 1e-3 * np.linalg.norm(c * MU), seed
    assert answered > 20  # the closed form still answers where a solution exists
