"""Tests of the data stage: exact E[g], M = E[g gᵀ], Σ = M − E[g]E[g]ᵀ (THEORY §1), the
sampler, the data-attaching helpers and their errors.

Statistical tolerance. Monte Carlo checks use ≥ 10⁶ samples and accept |exact − MC| ≤ 5
standard errors (plus 1e-12 for entries whose noise is exactly 0). Under the CLT a single
entry fails with probability 5.7e-7; with at most ~100 entries per check the family-wise
false-alarm rate stays below 1e-4, while a wrong moment (an error of a few percent of a
typical entry) is 10-100 standard errors away. The seeds are fixed, so runs are
reproducible.
"""

from __future__ import annotations

import itertools
import math
import time
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.stats import (
    Bernoulli,
    Cauchy,
    E,
    Exponential,
    MultivariateNormal,
    Normal,
    Rademacher,
    Uniform,
)

import noether_sym as ns
from noether_sym.data._model import (
    attach_data,
    gaussian_linear_teacher,
    minibatch_factor,
)
from noether_sym.data._moments import Moments, compiled_moments, expectation, moments
from noether_sym.data._polynomial import _normal_moment_coeffs, _PolyBuilder
from noether_sym.data._sample import make_sampler

MC_SAMPLES = 10**6
Z = 5.0  # accepted standard errors, see the module docstring

# ------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------

#: THEORY §7.1 worked numbers: Σ_x = diag(1, 4, 1/4), β = (1, −1/2, 2), σ² = 1/2
STD_X = [sp.Integer(1), sp.Integer(2), sp.Rational(1, 2)]
BETA = [sp.Integer(1), sp.Rational(-1, 2), sp.Integer(2)]
SIGMA2 = sp.Rational(1, 2)


def rescaling_loss() -> tuple[ns.Loss, sp.Symbol, sp.Matrix]:
    """f = u (wᵀx), y = βᵀx + ε (THEORY §7.1), params (u, w_0, w_1, w_2)."""
    u = sp.Symbol("u")
    w = ns.vector("w", 3)
    X = [Normal(f"x{i}", 0, STD_X[i]) for i in range(3)]
    eps = Normal("eps", 0, sp.sqrt(SIGMA2))
    y = sum(b * x for b, x in zip(BETA, X)) + eps
    f = u * sum(w[i] * X[i] for i in range(3))
    return ns.Loss((f - y) ** 2, [u, w], name="rescaling"), u, w


def linear_222() -> ns.Loss:
    net = ns.families.linear_net([2, 2, 2])
    V = [[1, -2], [sp.Rational(1, 2), 3]]
    return gaussian_linear_teacher(
        net, net.data_symbols[:2], net.data_symbols[2:], V, input_std=[1, 3], noise_std=[sp.Rational(1, 2), 2]
    )


def shifted_loss() -> tuple[ns.Loss, sp.Symbol]:
    """Nonzero data means, a symbolic input std s and a biased label noise."""
    u, w, b = sp.symbols("u w b")
    s = sp.Symbol("s", positive=True)
    x = Normal("x", 1, s)
    z = Normal("z", -2, sp.Rational(1, 2))
    eps = Normal("eps", sp.Rational(1, 2), 1)
    y = 3 * x - z + 1 + eps
    return ns.Loss((u * w * x + b * z - y) ** 2, [u, w, b], name="shifted"), s


def as_array(m: sp.Matrix) -> np.ndarray:
    return np.array(m.evalf(30), dtype=float)


def assert_within_se(exact: np.ndarray, mc: np.ndarray, se: np.ndarray) -> None:
    exact = np.asarray(exact, dtype=float).reshape(mc.shape)
    excess = np.abs(exact - mc) - (Z * se + 1e-12)
    assert np.all(excess <= 0), (
        f"max |exact - MC| / se = {np.max(np.abs(exact - mc) / np.maximum(se, 1e-300)):.2f}\n{exact}\n{mc}\n{se}"
    )


def assert_moments_match_mc(exact: Moments, mc: Moments) -> None:
    assert exact.exact and not mc.exact and mc.method == "monte carlo"
    for name in ("mean_grad", "second_moment", "covariance"):
        assert_within_se(as_array(getattr(exact, name)), getattr(mc, name), mc.standard_error[name])


# ------------------------------------------------------------------------------------------
# Gaussian moments against Monte Carlo
# ------------------------------------------------------------------------------------------


def test_rescaling_gaussian_moments_match_independent_monte_carlo():
    loss, u, w = rescaling_loss()
    mom = moments(loss)
    assert mom.exact and mom.method == "gaussian moments (Isserlis)"
    theta = np.array([0.7, 0.3, -0.8, 1.1])
    exact = mom.at(theta)

    # independent Monte Carlo: hand-written gradient, plain NumPy sampling
    rng = np.random.default_rng(20240207)
    std = np.array([float(s) for s in STD_X])
    beta = np.array([float(b) for b in BETA])
    x = rng.normal(size=(MC_SAMPLES, 3)) * std
    y = x @ beta + rng.normal(scale=math.sqrt(float(SIGMA2)), size=MC_SAMPLES)
    uu, ww = theta[0], theta[1:]
    r = uu * (x @ ww) - y
    g = np.column_stack([2 * r * (x @ ww), 2 * r[:, None] * uu * x])
    N = len(g)
    mean = g.mean(axis=0)
    gg = g[:, :, None] * g[:, None, :]
    M = gg.mean(axis=0)
    c = g - mean
    cc = c[:, :, None] * c[:, None, :]
    S = cc.sum(axis=0) / (N - 1)
    assert_within_se(as_array(exact.mean_grad), mean, g.std(axis=0, ddof=1) / math.sqrt(N))
    assert_within_se(as_array(exact.second_moment), M, gg.std(axis=0, ddof=1) / math.sqrt(N))
    assert_within_se(as_array(exact.covariance), S, cc.std(axis=0, ddof=1) / math.sqrt(N))


def test_rescaling_numeric_route_matches_exact():
    loss, _, _ = rescaling_loss()
    theta = [0.7, 0.3, -0.8, 1.1]
    mc = moments(loss, theta=theta, method="numeric", n_samples=MC_SAMPLES, seed=1)
    assert_moments_match_mc(moments(loss, theta=theta), mc)


def test_two_layer_linear_net_anisotropic_matches_monte_carlo():
    loss = linear_222()
    mom = moments(loss)
    assert mom.mean_grad.shape == (8, 1) and mom.covariance.shape == (8, 8)
    theta = np.array([0.5, -1.0, 0.25, 1.5, 1.0, -0.5, 0.75, 0.2])
    mc = moments(loss, theta=theta, method="numeric", n_samples=MC_SAMPLES, seed=2)
    assert_moments_match_mc(mom.at(theta), mc)


def test_nonzero_means_and_symbolic_std_match_monte_carlo():
    loss, s = shifted_loss()
    mom = moments(loss)
    assert s in mom.covariance.free_symbols  # the std stays symbolic
    assert mom.mean_grad.free_symbols <= {s, *loss.params}
    theta = [0.8, -1.2, 0.4]
    value = sp.Rational(3, 2)
    exact = mom.at(theta, values={s: value})
    assert exact.covariance.free_symbols == set()
    # the same with the std given as a number from the start
    mc = moments(loss, theta=theta, method="numeric", n_samples=MC_SAMPLES, seed=3, values={s: 1.5})
    assert_moments_match_mc(exact, mc)
    # and moments(theta=..., values=...) gives the same exact point
    assert moments(loss, theta=theta, values={s: value}).covariance == exact.covariance


# ------------------------------------------------------------------------------------------
# The worked example of THEORY §7.1 and the balance statement (E20)
# ------------------------------------------------------------------------------------------


def test_worked_example_traces_of_theory_7_1():
    loss, u, w = rescaling_loss()
    mom = moments(loss)
    Sx = sp.diag(*[s**2 for s in STD_X])
    beta = sp.Matrix(BETA)

    # at θ = (u = 2, w = β/2): uw = β, a minimum, where r = −ε and
    # Tr Σ_u = 4σ² wᵀΣ_x w, Tr Σ_w = 4σ² u² Tr Σ_x (derived: g_u = 2r wᵀx, g_w = 2ru x)
    w0 = beta / 2
    at = mom.at([2, *w0])
    assert at.mean_grad == sp.zeros(4, 1)
    tr_u = at.covariance[0, 0]
    tr_w = sum(at.covariance[i, i] for i in range(1, 4))
    assert tr_u == 4 * SIGMA2 * (w0.T * Sx * w0)[0, 0] == sp.Rational(3, 2)
    assert tr_w == 4 * SIGMA2 * 4 * Sx.trace() == 42

    # the same formulas along the whole minimum manifold w = β/u (symbolic u)
    wm = beta / u
    on = {w[i]: wm[i] for i in range(3)}
    cov = mom.covariance.xreplace(on)
    assert sp.simplify(cov[0, 0] - 4 * SIGMA2 * (wm.T * Sx * wm)[0, 0]) == 0
    assert sp.simplify(sum(cov[i, i] for i in range(1, 4)) - 4 * SIGMA2 * u**2 * Sx.trace()) == 0

    # the quoted equilibrium: λ* = ¼ log(Tr Σ_u / Tr Σ_w) = −0.8331, u*² = u² e^{2λ*} = 0.7559
    lam = math.log(float(tr_u / tr_w)) / 4
    assert round(lam, 4) == -0.8331
    assert round(4 * math.exp(2 * lam), 4) == 0.7559


def test_balance_statement_e20_on_a_333_linear_net(record_property):
    """(E20): at a minimum UW = V, E[g_W g_Wᵀ] = 4 Tr(Σ_x) UᵀΣ_εU, E[g_Uᵀg_U] = 4 Tr(Σ_ε) WΣ_xWᵀ.

    Also the speed measurement of the 3-3-3 case (exact expectations, ≤ 10 s required).
    """
    net = ns.families.linear_net([3, 3, 3])
    V = sp.Matrix([[1, 2, 0], [0, -1, 1], [sp.Rational(1, 2), 0, 3]])
    sx = [1, 2, sp.Rational(1, 2)]
    se = [1, sp.Rational(1, 3), 2]
    loss = gaussian_linear_teacher(net, net.data_symbols[:3], net.data_symbols[3:], V, sx, se)
    t0 = time.perf_counter()
    mom = moments(loss)
    seconds = time.perf_counter() - t0
    record_property("seconds_moments_linear_333", seconds)
    print(f"moments() on linear-net 3-3-3 with Gaussian data: {seconds:.2f} s")

    W = sp.Matrix([[1, 1, 0], [0, 1, 2], [1, 0, 1]])  # det 3: invertible over QQ
    U = V * W.inv()
    at = mom.at([*W, *U])
    assert at.mean_grad == sp.zeros(18, 1)
    S = at.covariance  # = M at a minimum
    Sx, Se = sp.diag(*[v**2 for v in sx]), sp.diag(*[v**2 for v in se])
    # W entries sit at 0..8 (row-major W[a, j] -> 3a + j), U entries at 9..17 (U[o, a] -> 9 + 3o + a)
    gWgW = sp.Matrix(3, 3, lambda a, b: sum(S[3 * a + j, 3 * b + j] for j in range(3)))
    gUgU = sp.Matrix(3, 3, lambda a, b: sum(S[9 + 3 * o + a, 9 + 3 * o + b] for o in range(3)))
    assert gWgW == 4 * Sx.trace() * U.T * Se * U
    assert gUgU == 4 * Se.trace() * W * Sx * W.T


# ------------------------------------------------------------------------------------------
# Finite datasets: exact enumeration
# ------------------------------------------------------------------------------------------


def _direct_dataset_moments(expr, params, columns):
    """E[g], M, Σ by summing over rows with exact Fractions (independent of noether_sym)."""
    grads = [sp.diff(expr, p) for p in params]
    N = len(next(iter(columns.values())))
    n = len(params)
    mean = sp.zeros(n, 1)
    M = sp.zeros(n, n)
    for r in range(N):
        row = {s: sp.Rational(Fraction(float(col[r])).numerator, Fraction(float(col[r])).denominator)
               for s, col in columns.items()}
        g = sp.Matrix([gi.xreplace(row) for gi in grads])
        mean += g
        M += g * g.T
    mean = (mean / N).applyfunc(sp.expand)
    M = (M / N).applyfunc(sp.expand)
    return mean, M, (M - mean * mean.T).applyfunc(sp.expand)


def test_dataset_moments_are_exact_empirical_means():
    rng = np.random.default_rng(7)
    net = ns.families.linear_net([2, 2, 1])
    x0, x1, y0 = net.data_symbols
    cols = {x0: rng.normal(size=6), x1: rng.normal(size=6) * 3, y0: rng.normal(size=6) + 1}
    loss = ns.Loss(net.expr, list(net.params), data=cols)
    mom = moments(loss)
    assert mom.exact and mom.method == "dataset (exact empirical mean)"
    mean, M, S = _direct_dataset_moments(net.expr, net.params, cols)
    assert (mom.mean_grad - mean).applyfunc(sp.expand) == sp.zeros(6, 1)
    assert (mom.second_moment - M).applyfunc(sp.expand) == sp.zeros(6, 6)
    assert (mom.covariance - S).applyfunc(sp.expand) == sp.zeros(6, 6)


def test_dataset_with_block_keys_and_numeric_mean():
    rng = np.random.default_rng(8)
    a, b = sp.symbols("a b")
    X = ns.vector("x", 2)
    y = sp.Symbol("y")
    expr = (a * b * X[0] + b**2 * X[1] ** 2 - y) ** 2
    data = rng.normal(size=(5, 2))
    ys = rng.normal(size=5)
    loss = ns.Loss(expr, [a, b], data={sp.ImmutableMatrix(X): data, y: ys})
    mom = moments(loss)
    mean, M, S = _direct_dataset_moments(expr, [a, b], {X[0]: data[:, 0], X[1]: data[:, 1], y: ys})
    assert (mom.covariance - S).applyfunc(sp.expand) == sp.zeros(2, 2)
    num = moments(loss, theta=[0.3, -1.1], method="numeric")
    assert not num.exact and num.method == "dataset (empirical mean at θ, numeric)"
    exact = mom.at([0.3, -1.1])
    np.testing.assert_allclose(num.mean_grad, as_array(exact.mean_grad).ravel(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(num.covariance, as_array(exact.covariance), rtol=1e-10, atol=1e-12)


def test_minibatch_factor_matches_enumeration_without_replacement():
    """Cov ĝ = Σ (N − S)/(S(N − 1)) for batches drawn without replacement (THEORY §1)."""
    rng = np.random.default_rng(9)
    w, v, x, y = sp.symbols("w v x y")
    N, Sb = 5, 2
    cols = {x: rng.normal(size=N), y: rng.normal(size=N)}
    expr = (w * v * x - y) ** 2
    loss = ns.Loss(expr, [w, v], data=cols)
    theta = {w: sp.Rational(1, 3), v: sp.Rational(-2, 1)}
    Sigma = moments(loss).covariance.xreplace(theta)
    exact = {s: [sp.Rational(Fraction(float(v))) for v in col] for s, col in cols.items()}
    rows = [{x: exact[x][r], y: exact[y][r]} for r in range(N)]
    g = [sp.Matrix([sp.diff(expr, p).xreplace(theta).xreplace(row) for p in (w, v)]) for row in rows]
    batches = [sum((g[i] for i in B), sp.zeros(2, 1)) / Sb for B in itertools.combinations(range(N), Sb)]
    mean = sum(batches, sp.zeros(2, 1)) / len(batches)
    cov = sum(((b - mean) * (b - mean).T for b in batches), sp.zeros(2, 2)) / len(batches)
    assert cov == minibatch_factor(Sb, N, replace=False) * Sigma
    assert minibatch_factor(Sb, N, replace=False) == sp.Rational(N - Sb, Sb * (N - 1))
    assert minibatch_factor(Sb) == minibatch_factor(Sb, N) == sp.Rational(1, Sb)  # default: with replacement
    assert minibatch_factor(N, N, replace=False) == 0 and minibatch_factor(1, 1, replace=False) == 0


# ------------------------------------------------------------------------------------------
# Other distributions against sympy.stats.E
# ------------------------------------------------------------------------------------------


def test_uniform_bernoulli_rademacher_against_sympy_stats():
    w, a, c = sp.symbols("w a c")
    U = Uniform("U", -1, 3)
    Us = Uniform("Us", a, c)
    B = Bernoulli("B", sp.Rational(1, 3))
    B2 = Bernoulli("B2", sp.Rational(3, 4), 2, -1)
    R = Rademacher("R")
    X = Normal("X", 1, 2)
    loss = ns.Loss((w * U + B * R - X + Us * B2) ** 2, [w])
    assert moments(loss).method == "sympy moments"
    for expr in [
        U**3 * w + B,
        (U * B - R) ** 2 * w,
        B2**3 + R**4 * U**2 - w * B2 * X**2,
        Us**2 * B + w * Us,
        (U + R + B) ** 3,
    ]:
        assert sp.expand(expectation(loss, expr) - E(expr)) == 0, expr


def test_other_sympy_distribution_and_moment_table():
    lam = sp.Symbol("lam", positive=True)
    w = sp.Symbol("w")
    Ex = Exponential("Ex", lam)
    loss = ns.Loss((w * Ex - 1) ** 2, [w])
    mom = moments(loss)
    g = 2 * (w * Ex - 1) * Ex
    assert sp.simplify(mom.covariance[0, 0] - (E(g**2) - E(g) ** 2)) == 0
    # the Isserlis table against sympy.stats.moment with symbolic μ, σ
    mu, s = sp.Symbol("mu"), sp.Symbol("sigma", positive=True)
    Xn = Normal("Xn", mu, s)
    from sympy.stats import moment

    for k in range(9):
        table = sum(c * mu**a * s ** (2 * j) for c, a, j in _normal_moment_coeffs(k))
        assert sp.expand(table - moment(Xn, k)) == 0, k


@settings(max_examples=20, deadline=None)
@given(
    coeffs=st.lists(st.integers(-4, 4), min_size=1, max_size=5),
    mu=st.fractions(min_value=-3, max_value=3, max_denominator=4),
    sigma=st.fractions(min_value=Fraction(1, 4), max_value=3, max_denominator=4),
)
def test_property_normal_polynomial_expectation_equals_sympy_stats(coeffs, mu, sigma):
    x = Normal("x", sp.Rational(mu.numerator, mu.denominator), sp.Rational(sigma.numerator, sigma.denominator))
    w = sp.Symbol("w")
    loss = ns.Loss((w * x) ** 2, [w])
    poly = sum(c * x**k for k, c in enumerate(coeffs))
    assert expectation(loss, poly + w * x) == sp.expand(E(poly) + w * E(x))


@settings(max_examples=30, deadline=None)
@given(
    terms=st.lists(
        st.tuples(st.integers(-5, 5), st.integers(1, 7), st.lists(st.integers(0, 3), min_size=4, max_size=4)),
        min_size=0,
        max_size=12,
    )
)
def test_property_fast_polynomial_to_sympy_is_canonical(terms):
    """The directly assembled Add/Mul equals SymPy's own construction (args, hash)."""
    gens = sp.symbols("a b w_0 W1_0_1")
    expr = sp.Add(*[sp.Rational(p, q) * sp.Mul(*[g**e for g, e in zip(gens, exps)]) for p, q, exps in terms])
    b = _PolyBuilder([], gens, gens)
    b.scan(expr)
    b.freeze()
    out = b.to_sympy(b.convert(expr))
    ref = sp.expand(expr)
    assert out == ref and out.args == ref.args and hash(out) == hash(ref)


# ------------------------------------------------------------------------------------------
# Non-polynomial losses: numeric routes
# ------------------------------------------------------------------------------------------


def relu_loss() -> ns.Loss:
    net = ns.families.relu_net([2, 2, 1])
    return gaussian_linear_teacher(net, net.data_symbols[:2], net.data_symbols[2:], [[1, -1]], 1, sp.Rational(1, 2))


def test_relu_network_needs_theta_and_gives_monte_carlo():
    loss = relu_loss()
    with pytest.raises(ns.UnsupportedExpressionError, match="not polynomial in the data"):
        moments(loss)
    theta = [0.5, -0.3, 0.8, 0.2, 1.0, -0.7]
    a = moments(loss, theta=theta, n_samples=200_000, method="numeric", seed=1)
    b = moments(loss, theta=theta, n_samples=200_000, method="numeric", seed=2)
    assert not a.exact and a.method == "monte carlo" and a.n_samples == 200_000
    assert a.mean_grad.shape == (6,) and a.covariance.shape == (6, 6)
    for name in ("mean_grad", "second_moment", "covariance"):
        se = np.hypot(a.standard_error[name], b.standard_error[name])
        assert np.all(np.abs(getattr(a, name) - getattr(b, name)) <= Z * se + 1e-12)
    # deterministic given the seed
    again = moments(loss, theta=theta, n_samples=200_000, method="numeric", seed=1)
    np.testing.assert_array_equal(again.covariance, a.covariance)


def test_relu_dataset_numeric_mean_is_the_empirical_mean():
    rng = np.random.default_rng(3)
    net = ns.families.relu_net([2, 2, 1])
    x0, x1, y0 = net.data_symbols
    cols = {x0: rng.normal(size=50), x1: rng.normal(size=50), y0: rng.normal(size=50)}
    loss = ns.Loss(net.expr, list(net.params), data=cols)
    theta = np.array([0.5, -0.3, 0.8, 0.2, 1.0, -0.7])
    num = moments(loss, theta=theta)
    X = np.column_stack([cols[x0], cols[x1]])
    W1, W2 = theta[:4].reshape(2, 2), theta[4:].reshape(1, 2)
    z = X @ W1.T
    h = np.maximum(z, 0)
    r = (h @ W2.T)[:, 0] - cols[y0]
    gW2 = 2 * r[:, None] * h
    gW1 = 2 * r[:, None, None] * (W2[0][None, :, None] * (z > 0)[:, :, None]) * X[:, None, :]
    g = np.column_stack([gW1.reshape(50, 4), gW2])
    np.testing.assert_allclose(num.mean_grad, g.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(num.second_moment, g.T @ g / 50, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------
# Compiled moments, caching, expectation
# ------------------------------------------------------------------------------------------


def test_compiled_moments_match_exact_and_broadcast():
    loss = linear_222()
    f = compiled_moments(loss)
    assert compiled_moments(loss) is f
    rng = np.random.default_rng(4)
    th = rng.normal(size=(3, 2, 8))
    mean, M, S = f(th)
    assert mean.shape == (3, 2, 8) and M.shape == S.shape == (3, 2, 8, 8)
    point = [sp.Rational(int(v * 64), 64) for v in th[1, 0]]
    exact = moments(loss).at(point)
    pf = np.array([float(v) for v in point])
    np.testing.assert_allclose(f.covariance(pf), as_array(exact.covariance), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(f.mean_grad(pf), as_array(exact.mean_grad).ravel(), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(f.second_moment(pf), as_array(exact.second_moment), rtol=1e-11, atol=1e-11)


def test_compiled_moments_with_atoms_and_symbolic_parameters():
    w, v = sp.symbols("w v")
    s = sp.Symbol("s", positive=True)
    x = Normal("x", 1, s)
    loss = ns.Loss((sp.tanh(w) * x - v * x) ** 2 + sp.pi * w**2, [w, v])
    mom = moments(loss)
    assert mom.exact and mom.mean_grad.has(sp.tanh(w))
    with pytest.raises(ns.InvalidArgumentError, match="values"):
        compiled_moments(loss)
    f = compiled_moments(loss, values={s: 2})
    exact = mom.at([sp.Rational(3, 10), sp.Rational(1, 5)], values={s: 2})
    np.testing.assert_allclose(f.covariance([0.3, 0.2]), as_array(exact.covariance), rtol=1e-12)
    np.testing.assert_allclose(f.mean_grad([0.3, 0.2]), as_array(exact.mean_grad).ravel(), rtol=1e-12)


def test_moments_are_cached_and_in_user_symbols():
    loss, u, w = rescaling_loss()
    m = moments(loss)
    assert moments(loss) is m
    assert m.covariance.free_symbols == {u, *w}
    assert "Moments(" in repr(m)


def test_expectation_uses_user_and_random_symbols():
    w = sp.Symbol("w")
    x = Normal("x", 1, 2)
    loss = ns.Loss((w * x - 1) ** 2, [w])
    assert expectation(loss, x**2 * w + 3) == 5 * w + 3
    assert expectation(loss, loss.sample_expr) == expectation(loss, loss.expr) == 5 * w**2 - 2 * w + 1
    k = sp.Symbol("k")  # foreign symbols are kept
    assert expectation(loss, k * x) == k


def test_loss_without_data_is_deterministic():
    a, b = sp.symbols("a b")
    m = moments(ns.Loss((a * b - 1) ** 2, [a, b]))
    assert m.method == "no data (deterministic)"
    assert m.covariance == sp.zeros(2, 2)
    assert m.mean_grad == sp.Matrix([2 * b * (a * b - 1), 2 * a * (a * b - 1)]).applyfunc(sp.expand)


# ------------------------------------------------------------------------------------------
# attach_data and the Gaussian linear teacher
# ------------------------------------------------------------------------------------------


def test_attach_data_keeps_params_and_constants():
    net = ns.families.linear_net([3, 3, 3])
    loss = gaussian_linear_teacher(net, net.data_symbols[:3], net.data_symbols[3:], sp.eye(3), 1, 1)
    assert loss.params == net.params and loss.blocks == net.blocks
    assert [str(s) for s in loss.random_symbols] == ["E0", "E1", "E2", "X0", "X1", "X2"]
    c = sp.Symbol("c")
    u, w, x, y = sp.symbols("u w x y")
    base = ns.Loss((u * w * x - y) ** 2, [u, w], data=[x, y])
    X = Normal("X", 0, 1)
    new = attach_data(base, {"x": X, y: c * X}, constants={c: 2}, name="teacher")
    assert new.name == "teacher" and new.constants == {c: 2}
    m = moments(new)
    assert c in m.mean_grad.free_symbols
    assert m.with_values(None).mean_grad.free_symbols == {u, w}
    partial = attach_data(base, {x: X})
    assert [str(s) for s in partial.data_symbols] == ["X", "y"]
    with pytest.raises(ns.InvalidDataError, match="no data distribution"):
        moments(partial)


def test_gaussian_teacher_minimum_has_zero_mean_gradient():
    loss = linear_222()
    W = sp.Matrix([[2, 1], [1, 1]])
    U = sp.Matrix([[1, -2], [sp.Rational(1, 2), 3]]) * W.inv()
    assert moments(loss).at([*W, *U]).mean_grad == sp.zeros(8, 1)


# ------------------------------------------------------------------------------------------
# The sampler
# ------------------------------------------------------------------------------------------


def test_sampler_draws_each_distribution():
    w = sp.Symbol("w")
    c = sp.Symbol("c")
    X = Normal("a_X", 1, 2)
    U = Uniform("b_U", -1, 3)
    B = Bernoulli("c_B", sp.Rational(1, 4), 2, -1)
    R = Rademacher("d_R")
    Ex = Exponential("e_Ex", 4)
    loss = ns.Loss(w * (X + U + B + R + Ex) + c, [w], constants={c: 7.5})
    s = make_sampler(loss)
    assert s.dataset_size is None and s.d == 6
    rows = s.draw(np.random.default_rng(0), (200_000,))
    assert rows.shape == (200_000, 6)
    mean, var = rows.mean(axis=0), rows.var(axis=0)
    expected_mean = [1, 1, 2 * 0.25 - 0.75, 0, 0.25, 7.5]
    expected_var = [4, 16 / 12, 9 * 0.25 * 0.75, 1, 1 / 16, 0]
    se = np.sqrt(np.array(expected_var) / len(rows))
    assert np.all(np.abs(mean - expected_mean) <= Z * se + 1e-12)
    np.testing.assert_allclose(var, expected_var, rtol=0.02, atol=1e-12)
    assert set(np.unique(rows[:, 2])) == {-1.0, 2.0} and set(np.unique(rows[:, 3])) == {-1.0, 1.0}
    # deterministic given the generator, any leading shape
    a = s.draw(np.random.default_rng(5), (4, 3))
    b = s.draw(np.random.default_rng(5), (4, 3))
    assert a.shape == (4, 3, 6) and np.array_equal(a, b)
    # feeds the compiled loss directly
    from noether_sym.compile._compiled import compiled

    assert compiled(loss).grad(np.array([1.0]), a).shape == (4, 3, 1)


def test_sampler_dataset_draw_and_take():
    w, x, y = sp.symbols("w x y")
    loss = ns.Loss((w * x - y) ** 2, [w], data={x: [1.0, 2.0, 3.0], y: [0.5, -1.0, 4.0]})
    s = make_sampler(loss)
    assert s.dataset_size == 3
    np.testing.assert_array_equal(s.take(np.array([2, 0])), [[3.0, 4.0], [1.0, 0.5]])
    rows = s.draw(np.random.default_rng(0), (1000,))
    assert rows.shape == (1000, 2) and set(map(tuple, rows)) <= {(1.0, 0.5), (2.0, -1.0), (3.0, 4.0)}


def test_sampler_symbolic_std_needs_values():
    loss, s = shifted_loss()
    with pytest.raises(ns.InvalidDataError, match="symbolic parameter"):
        make_sampler(loss)
    rows = make_sampler(loss, values={s: 2}).draw(np.random.default_rng(0), (10,))
    assert rows.shape == (10, 3)


# ------------------------------------------------------------------------------------------
# Errors: one test per bad input
# ------------------------------------------------------------------------------------------


def _plain_loss() -> ns.Loss:
    w, x, y = sp.symbols("w x y")
    return ns.Loss((w * x - y) ** 2, [w], data=[x, y])


def test_error_no_distribution():
    with pytest.raises(ns.InvalidDataError, match="no data distribution.*attach_data"):
        moments(_plain_loss())
    with pytest.raises(ns.InvalidDataError, match="no data distribution"):
        make_sampler(_plain_loss())


def test_error_joint_random_symbols():
    Y = MultivariateNormal("Y", [0, 0], [[1, 0], [0, 1]])
    x, y = sp.symbols("x y")
    with pytest.raises(ns.InvalidDataError, match="joint random vector"):
        attach_data(_plain_loss(), {x: Y[0], y: Y[1]})
    w = sp.Symbol("w")
    loss = ns.Loss((w * Normal("xn", 0, 1)) ** 2, [w])
    with pytest.raises(ns.InvalidDataError, match="joint random vector"):
        expectation(loss, Y[0] * w)


def test_error_compound_distribution():
    w = sp.Symbol("w")
    x = Normal("xc", Normal("m", 0, 1), 1)
    with pytest.raises(ns.InvalidDataError, match="compound"):
        moments(ns.Loss((w * x) ** 2, [w]))


def test_error_distribution_depends_on_parameters():
    w, v = sp.symbols("w v")
    with pytest.raises(ns.InvalidDataError, match="depends on the parameter"):
        moments(ns.Loss((w * Normal("xw", v, 1) + v) ** 2, [w, v]))


def test_error_distribution_without_moments():
    w = sp.Symbol("w")
    with pytest.raises(ns.InvalidDataError, match="Cauchy"):
        moments(ns.Loss((w * Cauchy("C", 0, 1)) ** 2, [w]))


def test_error_foreign_random_symbol_in_expectation():
    w = sp.Symbol("w")
    loss = ns.Loss((w * Normal("x1", 0, 1)) ** 2, [w])
    with pytest.raises(ns.InvalidDataError, match="not part of this loss"):
        expectation(loss, Normal("other", 0, 1) * w)


def test_error_non_polynomial_expectation():
    w = sp.Symbol("w")
    x = Normal("x2", 0, 1)
    loss = ns.Loss((w * x) ** 2, [w])
    with pytest.raises(ns.UnsupportedExpressionError, match="polynomial in the data"):
        expectation(loss, sp.exp(x) * w)
    with pytest.raises(ns.InvalidArgumentError, match="SymPy expression"):
        expectation(loss, "x**2")


def test_error_non_numeric_theta():
    loss, u, w = rescaling_loss()
    with pytest.raises(ns.InvalidArgumentError, match="numeric"):
        moments(loss, theta=[u, 1, 2, 3])
    with pytest.raises(ns.InvalidArgumentError, match="one entry per parameter"):
        moments(loss, theta=[1, 2])
    with pytest.raises(ns.InvalidArgumentError, match="no value for parameter"):
        moments(loss, theta={u: 1})
    with pytest.raises(ns.InvalidArgumentError, match="finite"):
        moments(loss, theta=[float("nan"), 1, 2, 3])
    with pytest.raises(ns.InvalidArgumentError, match="real numbers"):
        moments(relu_loss(), theta=["a"] * 6)


def test_error_bad_options():
    loss, _, _ = rescaling_loss()
    with pytest.raises(ns.InvalidArgumentError, match="method"):
        moments(loss, method="fast")
    with pytest.raises(ns.InvalidArgumentError, match="n_samples"):
        moments(loss, theta=[1, 1, 1, 1], method="numeric", n_samples=1)
    with pytest.raises(ns.InvalidArgumentError, match="seed"):
        moments(loss, seed=0.5)
    with pytest.raises(ns.InvalidArgumentError, match="pass theta"):
        moments(loss, method="numeric")
    with pytest.raises(ns.UnsupportedExpressionError, match="not polynomial"):
        moments(relu_loss(), theta=[1] * 6, method="exact")
    with pytest.raises(ns.InvalidArgumentError, match="parameter"):
        moments(loss).at([1, 1, 1, 1], values={loss.params[0]: 2})


def test_error_numeric_moments_have_no_exact_point():
    mc = moments(relu_loss(), theta=[1] * 6, n_samples=100)
    with pytest.raises(ns.InvalidArgumentError, match="exact"):
        mc.at([1] * 6)


def test_error_minibatch_factor():
    with pytest.raises(ns.InvalidArgumentError, match="exceeds"):
        minibatch_factor(6, 5, replace=False)
    with pytest.raises(ns.InvalidArgumentError, match="batch_size must be an integer >= 1"):
        minibatch_factor(0)
    with pytest.raises(ns.InvalidArgumentError, match="n_samples must be an integer >= 1"):
        minibatch_factor(2, 2.5)
    with pytest.raises(ns.InvalidArgumentError, match="replace must be True or False"):
        minibatch_factor(2, 4, replace="no")


def test_error_attach_data_inputs():
    x = sp.Symbol("x")
    X = Normal("Xa", 0, 1)
    with pytest.raises(ns.InvalidDataError, match="not a plain data symbol"):
        attach_data(_plain_loss(), {sp.Symbol("z"): X})
    with pytest.raises(ns.InvalidArgumentError, match="non-empty"):
        attach_data(_plain_loss(), {})
    w = sp.Symbol("w")
    ds = ns.Loss((w * x) ** 2, [w], data={x: [1.0, 2.0]})
    with pytest.raises(ns.InvalidDataError, match="dataset"):
        attach_data(ds, {x: X})


def test_error_gaussian_teacher_inputs():
    net = ns.families.linear_net([2, 1, 1])
    xs, ys = net.data_symbols[:2], net.data_symbols[2:]
    with pytest.raises(ns.InvalidArgumentError, match="shape"):
        gaussian_linear_teacher(net, xs, ys, [[1, 2, 3]])
    with pytest.raises(ns.InvalidArgumentError, match="positive"):
        gaussian_linear_teacher(net, xs, ys, [[1, 2]], input_std=0)
    with pytest.raises(ns.InvalidArgumentError, match="positive"):
        gaussian_linear_teacher(net, xs, ys, [[1, 2]], noise_std=-1)
    with pytest.raises(ns.InvalidArgumentError, match="entries"):
        gaussian_linear_teacher(net, xs, ys, [[1, 2]], input_std=[1, 2, 3])
    with pytest.raises(ns.InvalidArgumentError, match="V must be a real number"):
        gaussian_linear_teacher(net, xs, ys, [["__import__('os')", 2]])  # text is never evaluated


def test_error_sampler_arguments():
    w = sp.Symbol("w")
    s = make_sampler(ns.Loss((w * Normal("xs", 0, 1)) ** 2, [w]))
    with pytest.raises(ns.InvalidArgumentError, match="Generator"):
        s.draw(np.random.RandomState(0), (3,))
    with pytest.raises(ns.InvalidArgumentError, match="shape"):
        s.draw(np.random.default_rng(0), (-1,))
    with pytest.raises(ns.InvalidArgumentError, match="dataset"):
        s.take(np.array([0]))
    ds = make_sampler(ns.Loss((w * sp.Symbol("x")) ** 2, [w], data={sp.Symbol("x"): [1.0, 2.0]}))
    with pytest.raises(ns.InvalidArgumentError, match="indices"):
        ds.take(np.array([5]))
    with pytest.raises(ns.InvalidArgumentError, match="integers"):
        ds.take(np.array([0.5]))


def test_error_constant_without_value_for_sampling():
    w, c = sp.symbols("w c")
    loss = ns.Loss((w * Normal("xk", 0, 1) - c) ** 2, [w], constants=[c])
    with pytest.raises(ns.InvalidLossError, match="no numeric value"):
        make_sampler(loss)
