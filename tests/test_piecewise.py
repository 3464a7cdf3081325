"""Deterministic cone moments of piecewise-linear losses on Gaussian data (data/_piecewise.py).

Every reference is computed independently here: 1-D adaptive quadrature (scipy.integrate.quad,
split at the kinks) of hand-derived integrands, a degree check of the ζ rule against known
Gaussian moments, and large Monte Carlo (within 5 standard errors) in higher dimensions.
"""

import itertools
import math

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import quad
from sympy.stats import Normal

import noether_sym as ns
from noether_sym.data._piecewise import _zeta_rule

THETA = [1.5, 0.2, 0.5, -0.3, 0.1, 0.8]  # (w1, b1, v1, w2, b2, v2)
SIGMA = 0.5


def _two_unit_loss():
    w1, b1, v1, w2, b2, v2 = sp.symbols("w1 b1 v1 w2 b2 v2")
    x = Normal("x", 0, 1)
    eps = Normal("eps", 0, sp.Rational(1, 2))
    f = v1 * sp.Max(0, w1 * x + b1) + v2 * sp.Max(0, w2 * x + b2)
    return ns.Loss((f - sp.Max(0, x) - eps) ** 2, [w1, b1, v1, w2, b2, v2])


def _hand_moments(th):
    """E[g], E[g gᵀ] by quad over x, ε integrated by hand: E[r] = r0, E[r²] = r0² + σ²."""
    w1, b1, v1, w2, b2, v2 = th

    def d(x):  # ∂f/∂θ
        h1, h2 = float(w1 * x + b1 > 0), float(w2 * x + b2 > 0)
        return np.array([v1 * h1 * x, v1 * h1, max(0.0, w1 * x + b1), v2 * h2 * x, v2 * h2, max(0.0, w2 * x + b2)])

    def r0(x):
        return v1 * max(0.0, w1 * x + b1) + v2 * max(0.0, w2 * x + b2) - max(0.0, x)

    phi = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    pts = sorted({-b1 / w1, -b2 / w2, 0.0})

    def E(fun):
        return quad(lambda x: fun(x) * phi(x), -14, 14, points=pts, limit=400, epsabs=1e-15, epsrel=1e-13)[0]

    n = 6
    g = np.array([E(lambda x, i=i: 2 * r0(x) * d(x)[i]) for i in range(n)])
    M = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            M[i, j] = M[j, i] = E(lambda x, i=i, j=j: 4 * (r0(x) ** 2 + SIGMA**2) * d(x)[i] * d(x)[j])
    L = E(lambda x: r0(x) ** 2) + SIGMA**2
    return L, g, M


def test_one_dimension_matches_quadrature_to_1e_8():
    loss = _two_unit_loss()
    cm = ns.cone_moments(loss, THETA)
    L, g, M = _hand_moments(THETA)
    assert cm.rank == 1
    assert abs(cm.mean_loss - L) <= 1e-8 * abs(L)
    scale_g = np.abs(g).max()
    assert np.abs(cm.mean_grad - g).max() <= 1e-8 * scale_g
    assert np.abs(cm.second_moment - M).max() <= 1e-8 * np.abs(M).max()
    S = M - np.outer(g, g)
    assert np.abs(cm.covariance - S).max() <= 1e-8 * np.abs(S).max()
    # the error estimate is honest: the true error is below it (plus rounding of quad)
    assert np.all(np.abs(cm.mean_grad - g) <= cm.error["mean_grad"] + 1e-12 * scale_g)


def test_moments_dispatch_is_deterministic_for_every_seed():
    loss = _two_unit_loss()
    ms = [ns.moments(loss, theta=THETA, seed=s) for s in (0, 1, 2)]
    assert all(m.method == "gaussian cones (deterministic cubature)" for m in ms)
    assert all(not m.exact for m in ms)
    for m in ms[1:]:
        assert np.array_equal(m.covariance, ms[0].covariance)
        assert np.array_equal(m.mean_grad, ms[0].mean_grad)
    assert np.all(ms[0].standard_error["covariance"] < 1e-9)
    # method="numeric" still asks for Monte Carlo explicitly
    assert ns.moments(loss, theta=THETA, method="numeric", n_samples=1000).method == "monte carlo"


def test_hessian_matches_differences_of_quadrature_gradient():
    loss = _two_unit_loss()
    H, err = ns.cone_hessian(loss, THETA)
    th = np.array(THETA)
    h = 1e-4
    ref = np.zeros((6, 6))
    for j in range(6):
        e = np.zeros(6)
        e[j] = h
        ref[:, j] = (_hand_moments(th + e)[1] - _hand_moments(th - e)[1]) / (2 * h)
    # reference: O(h²) ≈ 1e-8 truncation plus quad noise / h ≈ 1e-9
    assert np.abs(H - ref).max() <= 1e-6 * np.abs(ref).max()
    assert err.max() < 1e-5


@pytest.mark.parametrize("m,degree", [(1, 4), (3, 4), (5, 5), (9, 4), (2, 6)])
def test_zeta_rule_is_exact_for_gaussian_monomials(m, degree):
    pts, w = _zeta_rule(m, degree)

    def moment(k):  # E[z^k], z ~ N(0, 1)
        return 0 if k % 2 else math.prod(range(k - 1, 0, -2))

    for alpha in itertools.product(range(degree + 1), repeat=min(m, 3)):
        if sum(alpha) > degree:
            continue
        mono = np.prod([pts[:, i] ** a for i, a in enumerate(alpha)], axis=0)
        exact = math.prod(moment(a) for a in alpha)
        assert abs(w @ mono - exact) <= 1e-12 * max(1, exact)


def _teacher_net(d, k, teacher, seed_theta):
    net = ns.families.relu_net([d, k, 1], bias=True)
    loss = ns.gaussian_linear_teacher(net, net.data_symbols[:d], net.data_symbols[d:], [teacher], noise_std=0.5,
                                      input_mean=[0.3] + [0] * (d - 1), input_std=[1.5] + [1] * (d - 1))
    th = np.random.default_rng(seed_theta).normal(size=loss.n) * 0.6
    return loss, th


def _check_against_monte_carlo(loss, th, n_samples):
    cm = ns.cone_moments(loss, th)
    mc = ns.moments(loss, theta=th, method="numeric", n_samples=n_samples, seed=11)
    se = mc.standard_error
    # 5 standard errors per entry (plug-in s.e.; a few hundred entries, so 5σ, not 3σ)
    assert np.all(np.abs(cm.mean_grad - mc.mean_grad) <= 5 * se["mean_grad"] + 1e-12)
    assert np.all(np.abs(cm.covariance - mc.covariance) <= 5 * se["covariance"] + 1e-12)
    return cm


def test_two_dimensional_input_matches_monte_carlo():
    loss, th = _teacher_net(2, 3, [1, -0.5], 0)
    cm = _check_against_monte_carlo(loss, th, 200_000)
    assert cm.rank == 2
    assert cm.error["covariance"].max() <= 1e-6 * np.abs(cm.covariance).max()


@pytest.mark.slow
def test_ten_dimensional_input_matches_monte_carlo():
    loss, th = _teacher_net(10, 2, [1, -0.5] + [0.2] * 8, 1)
    cm = _check_against_monte_carlo(loss, th, 400_000)
    assert cm.rank == 2
    assert cm.error["covariance"].max() <= 1e-6 * np.abs(cm.covariance).max()


@pytest.mark.slow
def test_rank_three_matches_monte_carlo():
    loss, th = _teacher_net(4, 3, [1, -0.5, 0.3, 0.0], 2)
    cm = _check_against_monte_carlo(loss, th, 400_000)
    assert cm.rank == 3
    # from rank 3 the rule is coarser (8 vs 6 points per panel); its estimate certifies 1e-4
    assert cm.error["covariance"].max() <= 1e-4 * np.abs(cm.covariance).max()


def test_leaky_and_abs_units_match_quadrature():
    w, v = sp.symbols("w v")
    x = Normal("x", 1, 2)
    loss = ns.Loss((v * sp.Max(w * x - 1, w * x / 10 - 1 / 10) + sp.Abs(x - w) - x) ** 2, [w, v])
    th = (0.7, -1.3)
    cm = ns.cone_moments(loss, th)

    def grad(z):
        leaky = max(th[0] * z - 1, th[0] * z / 10 - 0.1)
        r = th[1] * leaky + abs(z - th[0]) - z
        dl_dw = (z if th[0] * z - 1 > th[0] * z / 10 - 0.1 else z / 10)
        return np.array([2 * r * (th[1] * dl_dw - np.sign(z - th[0])), 2 * r * leaky])

    pdf = lambda z: math.exp(-((z - 1) ** 2) / 8) / math.sqrt(8 * math.pi)
    pts = sorted({1 / th[0], th[0]})
    ref = [quad(lambda z, i=i: grad(z)[i] * pdf(z), -30, 30, points=pts, limit=400, epsabs=1e-14)[0] for i in range(2)]
    assert np.abs(cm.mean_grad - ref).max() <= 1e-8 * np.abs(ref).max()


def test_other_losses_fall_back_to_labelled_monte_carlo():
    w = sp.Symbol("w")
    x = Normal("x", 0, 1)
    smooth = ns.Loss((sp.tanh(w * x) - x) ** 2, [w])
    m = ns.moments(smooth, theta=[0.5], n_samples=2000)
    assert m.method == "monte carlo" and m.standard_error["mean_grad"][0] > 0
    nested = ns.Loss((sp.Max(0, w * sp.Max(0, w * x) - 1) - x) ** 2, [w])
    m = ns.moments(nested, theta=[0.5], n_samples=2000)
    assert m.method == "monte carlo"
    with pytest.raises(ns.UnsupportedExpressionError, match="not affine|not polynomial"):
        ns.cone_moments(nested, [0.5])
    with pytest.raises(ns.InvalidArgumentError):
        ns.cone_moments(_two_unit_loss(), [1.0, float("nan"), 0, 0, 0, 0])


def test_batched_derivatives_match_quadrature():
    # ∇L at a batch, H, and ∇_θ Tr(HΛ) = Σ μ D³L[v, v, ·] against differences of the quad gradient
    loss = _two_unit_loss()
    d = ns.cone_derivatives(loss)
    th = np.array(THETA)
    other = th + np.array([0.1, -0.05, 0.2, 0.1, 0.0, -0.1])
    G = d.grad(np.stack([th, other]))
    for row, p in zip(G, (th, other)):
        ref = _hand_moments(p)[1]
        assert np.abs(row - ref).max() <= 1e-8 * np.abs(ref).max()
    H = d.hessian(th)
    h = 1e-4
    ref_H = np.array([(_hand_moments(th + h * e)[1] - _hand_moments(th - h * e)[1]) / (2 * h) for e in np.eye(6)]).T
    assert np.abs(H - ref_H).max() <= 1e-6 * np.abs(ref_H).max()
    v = np.array([0.3, -0.2, 0.5, 0.1, 0.6, -0.4])
    v /= np.linalg.norm(v)
    Lam = 0.7 * np.outer(v, v)
    hs = 2e-3  # second difference of the quad gradient along v: O(hs²) ≈ 4e-6 relative
    ref_T = 0.7 * (_hand_moments(th + hs * v)[1] - 2 * _hand_moments(th)[1] + _hand_moments(th - hs * v)[1]) / hs**2
    assert np.abs(d.third(th, Lam) - ref_T).max() <= 1e-4 * np.abs(ref_T).max()
    with pytest.raises(ns.UnsupportedExpressionError):
        ns.cone_derivatives(ns.Loss((sp.tanh(sp.Symbol("w") * Normal("x", 0, 1)) - 1) ** 2, [sp.Symbol("w")]))
