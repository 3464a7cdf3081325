"""approximate_symmetries: generators that hold up to a measured breaking near a point.

References are independent of the implementation: the exact GL(2) generators come from the
exact finder on the *linear* network of the same shapes, the gradients of the tanh network
are written out by hand below, and the drift of the rescaling charge is the closed form of
THEORY §7.1 evaluated by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import noether_sym as ns

#: a fixed, unremarkable weight configuration (W1 row-major, then W2) scaled in the tests
BASE = np.array([1.0, 0.5, -0.5, 1.0, 0.8, -0.3, 0.4, 1.2])


@pytest.fixture(scope="module")
def tanh_net():
    return ns.families.teacher_net([2, 2, 2], "tanh")


@pytest.fixture(scope="module")
def gl2_basis():
    """Orthonormal basis (upper-triangle coordinates) of the linear net's generator space."""
    lin = ns.find_symmetries(ns.families.linear_net([2, 2, 2]), rotations=False)
    assert len(lin.generators) == 3
    iu = np.triu_indices(8)
    G = np.array([np.array(A, dtype=float)[iu] for A in lin.generators]).T
    return np.linalg.qr(G)[0]


def _sin_largest_angle(basis, mats):
    iu = np.triu_indices(8)
    V = np.linalg.qr(np.array([np.asarray(A, dtype=float)[iu] for A in mats]).T)[0]
    cos = np.linalg.svd(basis.T @ V, compute_uv=False)
    return float(np.sqrt(max(0.0, 1.0 - cos.min() ** 2)))


def test_tanh_small_weights_gives_the_gl2_generators(tanh_net, gl2_basis):
    approx = ns.approximate_symmetries(tanh_net, 0.1 * BASE)
    assert isinstance(approx, list) and len(approx) == 3
    assert all(not a.exact and isinstance(a.generator, np.ndarray) for a in approx)
    assert all(0 < a.breaking <= 0.05 for a in approx)
    # the span is that of the exact GL(2) generators of the linear net, up to the O(‖θ‖²)
    # tilt of the breaking (measured 0.027; a random 3-space has sin ≈ 1)
    assert _sin_largest_angle(gl2_basis, [a.generator for a in approx]) < 0.1
    # and it is separated from the rest (measured gap 15)
    assert approx.gap >= 3 and all(a.gap == approx.gap for a in approx)
    for a in approx:
        A = a.generator
        assert np.allclose(A, A.T) and np.isclose(np.linalg.norm(A), 1.0)
        assert isinstance(a.charge, sp.Expr) and a.charge.free_symbols <= set(tanh_net.params)


def test_breaking_grows_with_the_weights(tanh_net, gl2_basis):
    rms = []
    for scale in (0.1, 0.3, 1.0):
        approx = ns.approximate_symmetries(tanh_net, scale * BASE, count=3)
        rms.append(float(np.sqrt(np.mean([a.breaking**2 for a in approx]))))
    # tanh(z) - z tanh'(z) = O(z³): the breaking grows like the square of the weights at
    # first (measured 0.0029, 0.022, 0.095), so each step up is a clear factor
    assert rms[0] <= 0.05
    assert rms[1] > 3 * rms[0] and rms[2] > 2 * rms[1]
    # and at weights of size 1 the least broken directions no longer are the GL(2) ones
    far = ns.approximate_symmetries(tanh_net, BASE, count=3)
    assert _sin_largest_angle(gl2_basis, [a.generator for a in far]) > 0.5


def test_the_exact_finder_still_finds_none_for_tanh(tanh_net):
    sym = ns.find_symmetries(tanh_net)
    assert sym.generators == []


def test_rescaling_gets_its_exact_generator_with_breaking_zero():
    loss = ns.families.rescaling()
    theta = [2.0, 0.5, -0.25, 1.0]  # u = 2, w = β/2: on the minimum uw = β
    approx = ns.approximate_symmetries(loss, theta)
    assert len(approx) == 1
    a = approx[0]
    assert a.exact and a.breaking == 0.0
    assert a.generator == sp.diag(1, -1, -1, -1)
    u, w0, w1, w2 = loss.params
    assert sp.expand(a.charge - (u**2 - w0**2 - w1**2 - w2**2)) == 0
    # the drift (E12) there, by hand: Tr Σ_u − Tr Σ_w = 4σ²(wᵀΣ_x w − u² Tr Σ_x)
    # = 2 (0.25 + 4·0.0625 + 0.25 − 4·5.25) = −40.5, times η/S; the breaking term is 0
    d = a.drift(theta, lr=0.01, batch_size=2)
    assert d.breaking == 0.0
    assert d.noise == pytest.approx(-40.5 * 0.01 / 2, rel=1e-9)
    assert d.total == pytest.approx(d.noise, rel=1e-12)
    d = a.drift(theta, lr=0.01, batch_size=2, weight_decay=0.1)
    assert d.decay == pytest.approx(-2 * 0.1 * (4 - 0.25 - 0.0625 - 1), rel=1e-12)


def test_contract_example_plain_symbols():
    u, w, x, y = sp.symbols("u w x y")
    loss = ns.Loss((u * w * x - y) ** 2, params=[u, w], data=[x, y])
    approx = ns.approximate_symmetries(loss, {u: 2, w: 1})
    assert [(a.generator, a.breaking) for a in approx] == [(sp.diag(1, -1), 0.0)]


def _hand_grads(theta, x, y):
    """Per-sample gradient of Σ_o (U tanh(W x) − y)_o², written out (θ = W row-major, U)."""
    W, U = theta[:4].reshape(2, 2), theta[4:].reshape(2, 2)
    h = np.tanh(x @ W.T)
    r = h @ U.T - y
    gU = 2 * r[:, :, None] * h[:, None, :]
    gW = 2 * ((r @ U) * (1 - h**2))[:, :, None] * x[:, None, :]
    return np.concatenate([gW.reshape(-1, 4), gU.reshape(-1, 4)], axis=1)


def test_drift_of_a_broken_charge_against_a_hand_monte_carlo(tanh_net):
    theta = BASE  # weights of size 1: a clearly broken symmetry, mean drift far above its noise
    a = ns.approximate_symmetries(tanh_net, theta, count=1)[0]
    lr, S = 0.05, 4
    d = a.drift(theta, lr=lr, batch_size=S, n_samples=200_000, seed=1)
    rng = np.random.default_rng(12345)
    N = 400_000
    x = rng.standard_normal((N, 2))
    y = x + np.sqrt(0.5) * rng.standard_normal((N, 2))
    g = _hand_grads(theta, x, y)
    A = a.generator
    b = g @ (A @ theta)
    mean = g.mean(axis=0)
    quad = np.einsum("ki,ij,kj->k", g, A, g)
    noise = lr / S * (quad.mean() - mean @ A @ mean)
    se_b = 2 * b.std() / np.sqrt(N)
    se_n = lr / S * quad.std() / np.sqrt(N)
    # the breaking term is not zero (this is no exact symmetry) and both terms agree with
    # the hand computation within 5 combined standard errors
    assert abs(d.breaking) > 10 * (se_b + d.standard_error["breaking"])
    assert abs(d.breaking - (-2 * b.mean())) <= 5 * (se_b + d.standard_error["breaking"])
    assert abs(d.noise - noise) <= 5 * (se_n + d.standard_error["noise"]) + 1e-12
    assert d.total == pytest.approx(d.noise + d.breaking + d.decay)


def test_deterministic_for_a_seed_and_scale_free(tanh_net):
    theta = 0.1 * BASE
    a1 = ns.approximate_symmetries(tanh_net, theta, seed=3)
    a2 = ns.approximate_symmetries(tanh_net, theta, seed=3)
    assert [a.breaking for a in a1] == [a.breaking for a in a2]
    assert all(np.array_equal(p.generator, q.generator) for p, q in zip(a1, a2))
    # multiplying the loss by a constant changes nothing (rows are normalised)
    scaled = ns.Loss(7 * tanh_net.expr, tanh_net.params)
    a3 = ns.approximate_symmetries(scaled, theta, seed=3)
    assert np.allclose([a.breaking for a in a3], [a.breaking for a in a1], rtol=1e-8)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"theta": [np.nan] + [0.1] * 7},
        {"theta": [np.inf] + [0.1] * 7},
        {"radius": 0.0},
        {"radius": -0.5},
        {"radius": np.nan},
        {"n_points": 3},
        {"max_breaking": 0.0},
        {"count": 37},
        {"theta": [0.1] * 7},
    ],
)
def test_bad_input_is_a_noether_sym_error(tanh_net, kwargs):
    args = {"theta": 0.1 * BASE, **kwargs}
    theta = args.pop("theta")
    with pytest.raises(ns.NoetherSymError):
        ns.approximate_symmetries(tanh_net, theta, **args)
    with pytest.raises(ns.InvalidArgumentError):
        ns.approximate_symmetries(tanh_net, theta, **args)
