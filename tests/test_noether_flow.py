"""The Noether flow (E22): against measured SGD limits, closed forms, (E12), and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.stats import Normal

import noether_sym as ns

HALF = sp.Rational(1, 2)
V = sp.Matrix([[1, HALF], [-HALF, 1]])
W0 = np.array([[1.5, 0.3], [-0.2, 0.8]])
U0 = np.array(V.tolist(), dtype=float) @ np.linalg.inv(W0)
TH0 = np.concatenate([W0.ravel(), U0.ravel()])


def two_layer(noise_std, input_std=(1, 2)):
    net = ns.families.linear_net([2, 2, 2])
    return ns.gaussian_linear_teacher(net, net.data_symbols[:2], net.data_symbols[2:], V, input_std=list(input_std),
                                      noise_std=noise_std)


def q_eig(th):
    W, U = th[:4].reshape(2, 2), th[4:].reshape(2, 2)
    return np.linalg.eigvalsh(W @ W.T - U.T @ U)


def test_anisotropic_two_layer_rotates_at_the_measured_rate():
    # measured independently (THEORY §7.2 caveat): SGD's η → 0 limit of eig Q is
    # (−0.6023, 0.6423) ± 0.0005 and the frame turns at 0.233 ± 0.003 rad per unit η²k
    flow = ns.noether_flow(two_layer([HALF, 1]), TH0, batch_size=1)
    assert flow.kind == "rotating"
    assert np.allclose(q_eig(flow.theta), [-0.6023, 0.6423], rtol=3e-3)
    assert abs(flow.rotation_rate - 0.233) <= 0.03 * 0.233
    # a relative equilibrium: the invariants are constant along the steady rotation
    assert flow.average(sp.Symbol("W1_0_0") ** 2 + sp.Symbol("W1_0_1") ** 2 + sp.Symbol("W1_1_0") ** 2
                        + sp.Symbol("W1_1_1") ** 2) == pytest.approx(float(np.sum(flow.theta[:4] ** 2)), rel=1e-9)
    # (E21) misses here: it predicts ∓0.6228
    e21 = ns.two_layer_equilibrium(U0, W0, np.diag([1.0, 4.0]), np.diag([0.25, 1.0]))
    assert abs(e21.Q_eigenvalues[1] - q_eig(flow.theta)[1]) > 0.01


def test_isotropic_noise_gives_the_e21_fixed_point():
    flow = ns.noether_flow(two_layer([1, 1]), TH0)
    assert flow.kind == "fixed point" and flow.rotation_rate == 0.0
    e21 = ns.two_layer_equilibrium(U0, W0, np.diag([1.0, 4.0]), np.eye(2))
    assert np.allclose(q_eig(flow.theta), np.sort(e21.Q_eigenvalues), atol=1e-8)


def test_single_rescaling_generator_matches_noise_equilibrium():
    # THEORY §7.1: f = u wᵀx, one generator; the minimum manifold is exactly its orbit
    u = sp.Symbol("u")
    w = sp.symbols("w0:3")
    xs = [Normal(f"x{i}", 0, s) for i, s in enumerate([1, 2, HALF])]
    beta = [1, -HALF, 2]
    eps = Normal("eps", 0, sp.sqrt(HALF))
    y = sum(b * x for b, x in zip(beta, xs)) + eps
    loss = ns.Loss((u * sum(wi * x for wi, x in zip(w, xs)) - y) ** 2, [u, *w])
    th = np.array([2.0, 0.5, -0.25, 1.0])  # u w = β: on the manifold
    flow = ns.noether_flow(loss, th)
    A = sp.diag(1, -1, -1, -1)
    eq = ns.noise_equilibrium(loss, A, theta=th, batch_size=1)
    assert flow.kind == "fixed point"
    assert np.allclose(flow.theta, eq.theta, atol=1e-8)
    assert flow.average(u**2) == pytest.approx(0.7559, abs=1e-4)  # worked number of THEORY §7.1


def test_commuting_generators_match_joint_equilibrium():
    a, b, c, d = sp.symbols("a b c d")
    x1, x2 = Normal("x1", 0, 1), Normal("x2", 0, 2)
    e1, e2 = Normal("e1", 0, HALF), Normal("e2", 0, 1)
    loss = ns.Loss((a * b * x1 - x1 - e1) ** 2 + (c * d * x2 - 2 * x2 - e2) ** 2, [a, b, c, d])
    th = np.array([2.0, 0.5, 0.5, 4.0])
    flow = ns.noether_flow(loss, th)
    sym = ns.find_symmetries(loss)
    joint = ns.joint_equilibrium(loss, sym.generators, theta=th)
    assert flow.kind == "fixed point"
    assert np.allclose(flow.theta, np.asarray(joint.theta, dtype=float), atol=1e-8)


def _independent_e22(loss, th):
    """(E22) written out with SymPy: L = E ℓ, H, Σ from compiled exact moments, ∇Tr(HΛ) by diff."""
    params = list(loss.params)
    L = ns.expectation(loss, loss.expr)
    H = sp.hessian(L, params)
    Hf = sp.lambdify(params, H, "numpy")
    Hn = np.array(Hf(*th), dtype=float)
    Sn = ns.compiled_moments(loss)(th)[2]
    lam, vec = np.linalg.eigh(Hn)
    k = int(np.sum(lam < 1e-7 * lam.max()))
    T, N, ln = vec[:, :k], vec[:, k:], lam[k:]
    Lam = N @ ((N.T @ Sn @ N) / (ln[:, None] + ln[None, :])) @ N.T
    tr = sum(H[i, j] * Lam[i, j] for i in range(len(params)) for j in range(len(params)))
    grad_tr = np.array([float(sp.diff(tr, p).subs(dict(zip(params, th)))) for p in params])
    return -0.5 * T @ (T.T @ grad_tr), Sn


def test_charge_components_equal_e12_at_random_points_of_the_manifold():
    loss = two_layer([HALF, 1])
    flow = ns.noether_flow(loss, TH0)
    sym = ns.find_symmetries(loss)
    rng = np.random.default_rng(3)
    Vn = np.array(V.tolist(), dtype=float)
    for _ in range(3):
        W = rng.normal(size=(2, 2)) + 2 * np.eye(2)
        th = np.concatenate([W.ravel(), (Vn @ np.linalg.inv(W)).ravel()])
        d = flow.drift(th)
        ref, S = _independent_e22(loss, d.theta)
        assert np.allclose(d.total, ref, atol=1e-10 * max(1.0, np.abs(ref).max()))
        for A, rate in zip(sym.generators, d.charge_drift):
            An = np.array(A.tolist(), dtype=float)
            assert rate == pytest.approx(float(np.sum(An * S)), abs=1e-10 * max(1.0, abs(rate)))


def test_isotropic_input_gives_the_e21_fixed_point():
    # Σ_x isotropic (THEORY §7.2: (E21) holds when either covariance is isotropic)
    flow = ns.noether_flow(two_layer([HALF, 1], input_std=(1, 1)), TH0)
    assert flow.kind == "fixed point"
    e21 = ns.two_layer_equilibrium(U0, W0, np.eye(2), np.diag([0.25, 1.0]))
    assert np.allclose(q_eig(flow.theta), np.sort(e21.Q_eigenvalues), atol=1e-8)


def test_loss_without_data_model_is_refused():
    w, x = sp.symbols("w x")
    with pytest.raises(ns.InvalidDataError, match="no data distribution"):
        ns.noether_flow(ns.Loss((w * x - x) ** 2, [w], data=[x]), [1.0])


def test_start_whose_gradient_flow_does_not_settle_is_refused():
    w = sp.Symbol("w")
    x = Normal("x", 0, 1)
    with pytest.raises(ns.GradientFlowError, match="diverges|does not settle"):
        ns.noether_flow(ns.Loss(-(w * x) ** 2, [w]), [1.0])


def test_noise_along_the_manifold_is_refused():
    a, b = sp.symbols("a b")
    x = Normal("x", 0, 1)
    loss = ns.Loss(a**2 * (1 + x**2) + b * x, [a, b])  # L = 2a², flat in b, per-sample noise along b
    with pytest.raises(ns.NoiseAlongManifoldError, match="along the minimum manifold"):
        ns.noether_flow(loss, [0.3, 1.0])


def test_weight_decay_needs_lr():
    with pytest.raises(ns.InvalidArgumentError, match="lr"):
        ns.noether_flow(two_layer([1, 1]), TH0, weight_decay=0.1)


def test_average_refuses_foreign_symbols():
    flow = ns.noether_flow(two_layer([1, 1]), TH0)
    with pytest.raises(ns.InvalidArgumentError, match="not parameters"):
        flow.average(sp.Symbol("zeta"))


@pytest.mark.slow
def test_relu_units_sharing_their_pattern_follow_the_local_gl2():
    # THEORY §10: independent SGD (η → 0, 400 replicas, s.e. ≤ 1e-4) ends at
    # (0.8088, 0.8088, 0.5882, 0.5882); per-unit balance would give (0.7919, .., 0.6106, ..).
    # Monte Carlo data nodes (reflected): the stationary point is a label-noise point
    # (Σ ∝ H on the manifold), insensitive to the sample; tolerance 0.1%.
    w1, v1, w2, v2 = sp.symbols("w1 v1 w2 v2")
    x, e = Normal("x", 0, 1), Normal("e", 0, HALF)
    relu = lambda z: sp.Max(0, z)
    loss = ns.Loss((v1 * relu(w1 * x) + v2 * relu(w2 * x) - relu(x) - e) ** 2, [w1, v1, w2, v2])
    flow = ns.noether_flow(loss, [1, 0.1, 0.5, 0.3], n_samples=1024)
    assert flow.kind == "fixed point" and not flow.exact
    assert np.allclose(flow.start, [1.1375, 0.5513, 0.6792, 0.5490], atol=2e-4)
    assert np.allclose(flow.theta, [0.8088, 0.8088, 0.5882, 0.5882], rtol=1e-3)


def test_scale_invariance_without_weight_decay_diverges_at_the_e12_rate():
    from noether_sym.families._scale_invariant import normalized_linear

    loss = normalized_linear(2)
    flow = ns.noether_flow(loss, [0.6, 0.8, 1.0], max_chunks=30)
    assert flow.kind == "divergent"
    assert np.linalg.norm(flow.theta[1:]) > 1.0  # ‖w‖ grew from 1
    S = np.array(ns.moments(loss, theta=flow.theta).covariance.tolist(), dtype=float)
    assert flow.divergence_rate == pytest.approx(S[1, 1] + S[2, 2], rel=1e-8)  # d‖w‖²/dτ = Tr Σ_w (E12)


# ---- round-off drift, closed orbits, budgets ----------------------------------------------------


def _softmax_data(loss):
    d = {str(k): np.asarray(v, dtype=float) for k, v in loss.dataset.items()}
    return np.stack([d["x_0"], d["x_1"]], axis=1), np.stack([d["y_0"], d["y_1"], d["y_2"]], axis=1)


def _softmax_sgd(X, Y, th0, lr, steps, replicas=100, seed=0):
    """Hand-written SGD on the softmax cross-entropy (∂ℓ/∂W = (p − y) xᵀ), batch 1, all replicas
    at once; each replica's θ averaged over the second half, then the mean and its standard error."""
    rng = np.random.default_rng(seed)
    W = np.tile(np.asarray(th0, dtype=float).reshape(3, 2), (replicas, 1, 1))
    acc = np.zeros_like(W)
    for k in range(steps):
        i = rng.integers(0, len(X), replicas)
        z = np.einsum("rcj,rj->rc", W, X[i])
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        W -= lr * (p - Y[i])[:, :, None] * X[i][:, None, :]
        if k >= steps // 2:
            acc += W
    per = (acc / (steps - steps // 2)).reshape(replicas, 6)
    return per.mean(axis=0), per.std(axis=0, ddof=1) / np.sqrt(replicas)


def test_round_off_drift_is_a_stationary_start():
    # softmax cross-entropy on a dataset: the manifold is the orbit of the logit translations,
    # which leave every per-sample loss unchanged, so (E22) vanishes identically there (Tr[AΣ] ≡ 0)
    # and what the drift computes is round-off of its terms. That is a fixed point at once (a few
    # evaluations for the drift and its tangent Jacobian), never an integration over τ ~ ‖θ‖/round-off.
    loss = ns.families.softmax_classifier()
    th0 = [0.5, -0.3, 0.2, 0.8, -0.6, 0.1]
    flow = ns.noether_flow(loss, th0)
    assert flow.kind == "fixed point" and "round-off" in flow.reason
    assert np.array_equal(flow.theta, flow.start) and flow.tau == 0.0
    k = flow.tangent_dim
    assert k == 2 and flow._core.evaluations <= 2 * k + 2
    # the column sums of W (the translation charges) are those of θ₀: SGD and GD conserve them
    assert np.allclose(flow.theta.reshape(3, 2).sum(axis=0), np.reshape(th0, (3, 2)).sum(axis=0), atol=1e-9)


@pytest.mark.slow
def test_round_off_fixed_point_is_where_hand_written_sgd_settles():
    # SGD from θ₀ (off the manifold) at η and 2η, each replica's θ averaged over the second half of
    # 20,000 / 10,000 steps (≥ 7 relaxation times 1/(ηλ) of the slowest normal mode, λ ≈ 0.007);
    # the stationary mean moves by O(η) (0.07 at η = 0.2), Richardson 2m(η) − m(2η) removes that.
    # Tolerance: 4 standard errors + 0.01 for the O(η²) the two-point rule leaves.
    loss = ns.families.softmax_classifier()
    X, Y = _softmax_data(loss)
    th0 = [0.5, -0.3, 0.2, 0.8, -0.6, 0.1]
    flow = ns.noether_flow(loss, th0)
    m1, s1 = _softmax_sgd(X, Y, th0, 0.1, 40_000)
    m2, s2 = _softmax_sgd(X, Y, th0, 0.2, 20_000, seed=1)
    est, se = 2 * m1 - m2, np.sqrt(4 * s1**2 + s2**2)
    assert np.all(np.abs(est - flow.theta) <= 4 * se + 0.01), (est, se, flow.theta)
    assert np.abs(m2 - flow.theta).max() > 0.03  # the O(η) shift the extrapolation removes is real


def _square_units(seed):
    """v1(a·x)² + v2(c·x)² on 40 rows (tests/zoo_cases.py's case with the dataset seed given)."""
    a0, a1, v1, c0, c1, v2, x0, x1, ys = sp.symbols("a0 a1 v1 c0 c1 v2 x0 x1 ys")
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.5, 1.5, (40, 2))
    Y = X[:, 0] ** 2 + 0.5 * X[:, 1] ** 2 + 0.6 * X[:, 0] * X[:, 1] + 0.3 * rng.standard_normal(40)
    f = v1 * (a0 * x0 + a1 * x1) ** 2 + v2 * (c0 * x0 + c1 * x1) ** 2
    return ns.Loss((f - ys) ** 2, [a0, a1, v1, c0, c1, v2], data={x0: X[:, 0], x1: X[:, 1], ys: Y})


def test_a_flow_that_does_not_settle_stops_at_its_evaluation_budget():
    # dataset seed 11: the flow cycles for ever (below); with a small budget the run ends as
    # "undetermined", naming the budget, instead of integrating ever longer chunks
    flow = ns.noether_flow(_square_units(11), [1.0, 0.2, 0.8, 0.1, 0.9, 0.6], max_evaluations=1500)
    assert flow.kind == "undetermined" and "max_evaluations" in flow.reason
    assert flow._core.evaluations <= 1500 + 200  # the budget, plus one chunk end's checks


@pytest.mark.slow
def test_limit_cycle_is_reported_with_its_period_average():
    # dataset seed 11: the flow's stationary state is a closed orbit along the nonlinear O(2) of
    # M = v1 aaᵀ + v2 ccᵀ, no steady rotation (no linear antisymmetric generator exists). Checks
    # independent of the flow's numerics: (i) every charge returns after a period, so the mean of
    # its drift Tr[AΣ] (E12) over the period vanishes -- Σ written out here from the per-sample
    # gradients with SymPy; (ii) swapping the units (a, v1) <-> (c, v2) is a symmetry of the loss
    # that maps the cycle onto itself, so the period averages of v1 and v2 (|a|², |c|²) agree,
    # although they differ at every point of the cycle.
    loss = _square_units(11)
    flow = ns.noether_flow(loss, [1.0, 0.2, 0.8, 0.1, 0.9, 0.6])
    assert flow.kind == "periodic" and flow.period > 0 and flow.rotation_rate == 0.0
    a0, a1, v1, c0, c1, v2 = loss.params
    x0, x1, ys = sorted(loss.dataset, key=str)
    rows = np.stack([np.asarray(loss.dataset[s], dtype=float) for s in (x0, x1, ys)], axis=1)
    grads = [[sp.diff(loss.expr, p).xreplace({x0: sp.Float(r[0]), x1: sp.Float(r[1]), ys: sp.Float(r[2])})
              for p in loss.params] for r in rows]
    mean = [sp.Add(*[g[i] for g in grads]) / len(rows) for i in range(6)]
    for A in (sp.diag(1, 1, -2, 0, 0, 0), sp.diag(0, 0, 0, 1, 1, -2)):
        # Tr[AΣ] = E[gᵀAg] − E[g]ᵀA E[g]
        tr = sp.Add(*[A[i, i] * (sp.Add(*[g[i] ** 2 for g in grads]) / len(rows) - mean[i] ** 2) for i in range(6)])
        rms = flow.average(tr**2) ** 0.5  # its size along the cycle (it changes sign there)
        assert rms > 1e-3 and abs(flow.average(tr)) <= 1e-4 * rms
    assert flow.average(v1) == pytest.approx(flow.average(v2), rel=1e-6)
    assert flow.average(a0**2 + a1**2) == pytest.approx(flow.average(c0**2 + c1**2), rel=1e-6)
    assert abs(flow.theta[2] - flow.theta[5]) > 0.01
