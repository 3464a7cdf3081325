"""The simulator (THEORY §1 (E1), §4 (E9)-(E10)): exact per-step identities, reproducibility,
divergence handling, schedules, matrix-form gradients and bad input.

References never come from the simulator itself: per-step identities are checked against
gradients computed here (``sympy.diff`` + ``lambdify``, or the closed form of the model),
deterministic runs against hand-written recurrences.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import sympy as sp
from helpers import rescaling_loss, scale_invariant_loss
from sympy.stats import Normal

import noether_sym as ns
from noether_sym._errors import (
    InvalidArgumentError,
    InvalidGeneratorError,
    NoetherSymError,
)
from noether_sym.compile._compiled import compiled
from noether_sym.data._sample import make_sampler
from noether_sym.simulate._observables import generator_arrays
from noether_sym.simulate._result import OVERFLOW
from noether_sym.simulate._run import block_steps, simulate
from noether_sym.simulate._schedule import Cosine, StepDecay, Warmup

# ------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------


def linear_net_dataset(dims=(2, 2, 2), N=12, seed=3) -> ns.Loss:
    """The catalog linear network with a small finite dataset (x, y = x + noise)."""
    net = ns.families.linear_net(list(dims))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, dims[0]))
    Y = X[:, : dims[-1]] + 0.3 * rng.standard_normal((N, dims[-1]))
    xs = sp.ImmutableMatrix(net.data_symbols[: dims[0]])
    ys = sp.ImmutableMatrix(net.data_symbols[dims[0] :])
    return ns.Loss(net.expr, [b_ for b_ in _blocks(net)], data={xs: X, ys: Y}, name="linear-net data")


def _blocks(loss: ns.Loss) -> list:
    out = []
    for blk in loss.blocks:
        entries = list(loss.params[blk.slice])
        out.append(sp.Matrix(blk.shape[0], blk.shape[1], entries) if len(blk.shape) == 2 else entries)
    return out


def quartic_loss() -> ns.Loss:
    """ℓ = (w x)⁴ / 4, x ~ N(0, 1): heavy-tailed gradient w³x⁴, unstable at large η."""
    w = sp.Symbol("w")
    x = Normal("x", 0, 1)
    return ns.Loss((w * x) ** 4 / 4, [w], name="quartic")


def reference_grad(loss: ns.Loss):
    """Per-sample gradient by sympy.diff + lambdify (independent of our compiler)."""
    g = [sp.diff(loss.sample_expr, t) for t in loss.theta]
    f = sp.lambdify([list(loss.theta), list(loss.x)], g, modules="numpy")

    def grad(theta, rows):
        shape = np.broadcast_shapes(theta.shape[:-1], rows.shape[:-1])
        out = f([theta[..., i] for i in range(loss.n)], [rows[..., j] for j in range(rows.shape[-1])])
        return np.stack([np.broadcast_to(v, shape) for v in out], axis=-1)

    return grad


def same(a, b) -> bool:
    """Bit-identical results (θ, flags, every observable)."""
    if not (np.array_equal(a.theta, b.theta) and np.array_equal(a.divergence_step, b.divergence_step)):
        return False
    if sorted(a.observables) != sorted(b.observables):
        return False
    return all(np.array_equal(a.observables[k], b.observables[k], equal_nan=True) for k in a.observables)


# ------------------------------------------------------------------------------------------
# (E10) exactly, every step
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_scale_invariant_norm_grows_exactly_by_E10(weight_decay):
    """‖θ_{k+1}‖² = (1 − ηγ)²‖θ_k‖² + η²‖ĝ_k‖² at every step, to 1e-12 relative (E10, A = I)."""
    loss = scale_invariant_loss()
    lr = 0.2
    res = simulate(loss, [1.0, -0.5], lr=lr, batch_size=3, steps=300, replicas=16, weight_decay=weight_decay,
                   record=["norm2", "grad_norm2", "theta"], every=1, seed=11)
    n2, g2 = res["norm2"], res["grad_norm2"]
    assert np.allclose(n2, np.sum(res["theta"] ** 2, axis=-1), rtol=1e-15, atol=0)
    pred = (1 - lr * weight_decay) ** 2 * n2[:-1] + lr**2 * g2[:-1]
    assert np.max(np.abs(n2[1:] / pred - 1)) < 1e-12
    if weight_decay == 0:
        assert np.all(np.diff(n2, axis=0) > 0)  # divergent class: ‖θ‖ only grows under SGD
    # the gradient really is the batch gradient: ĝᵀθ = 0 per step (E4 with A = I) gives
    # ‖ĝ‖ = ‖θ_k − θ_{k+1}‖/η exactly in exact arithmetic; compare in floating point
    th = res["theta"]
    step = (1 - lr * weight_decay) * th[:-1] - th[1:]
    assert np.allclose(np.sum(step**2, axis=-1), lr**2 * g2[:-1], rtol=1e-9)


def test_gd_on_dataset_moves_charges_by_E10_only():
    """GD on a dataset (γ = 0): C_{k+1} − C_k = η² ∇Lᵀ A ∇L exactly (E10), so O(η²) per step (E9)."""
    loss = linear_net_dataset()
    sym = ns.find_symmetries(loss)
    assert sym.n_generators == 3
    A = [np.array(G.tolist(), dtype=float) for G in sym.generators]
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal(loss.n)
    rows = make_sampler(loss).take(np.arange(loss.n_samples))
    grad = reference_grad(loss)
    drifts = []
    for lr, steps in ((0.02, 50), (0.01, 100)):
        res = simulate(loss, theta0, lr=lr, batch_size=1, steps=steps, replicas=2, optimizer="gd",
                       record=["charges", "theta"], every=1, generators=sym.generators)
        C, th = res["charges"][:, 0], res["theta"][:, 0]
        G = grad(th[:, None, :], rows[None]).mean(axis=1)  # full-batch ∇L at each θ_k
        for i, Ai in enumerate(A):
            dC = np.diff(C[:, i])
            pred = lr**2 * np.einsum("kn,nm,km->k", G[:-1], Ai, G[:-1])
            assert np.allclose(dC, pred, rtol=1e-6, atol=1e-13)
        assert np.array_equal(res.theta[0], res.theta[1])  # GD draws nothing: replicas agree
        drifts.append(np.abs(C[-1] - C[0]).max())
    # O(η²) per step, so O(η) over a fixed time ηk: halving η halves the drift (GF conserves C)
    assert 1.7 < drifts[0] / drifts[1] < 2.3


def test_gd_on_random_data_uses_exact_mean_gradient():
    """GD on random symbols: ℓ = (w x − y)², y = 2x + ε, so ∇L = 2(w − 2) and w_{k+1} − 2 = (1 − 2η)(w_k − 2)."""
    w = sp.Symbol("w")
    x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    loss = ns.Loss((w * x - (2 * x + e)) ** 2, [w])
    res = simulate(loss, [5.0], lr=0.1, batch_size=1, steps=30, replicas=3, optimizer="gd", record=["grad_norm2"], every=10)
    expected = 2 + 3 * 0.8**30
    assert np.allclose(res.theta[:, 0], expected, rtol=1e-12)
    assert np.allclose(res["grad_norm2"][0], 36.0)


# ------------------------------------------------------------------------------------------
# reproducibility
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["random", "dataset-epochs", "fast-grad", "momentum-schedule", "divergence"],
)
def test_chunking_does_not_change_a_single_bit(case):
    if case == "random":
        loss, th0 = rescaling_loss(), [2.0, 0.5, -0.25, 1.0]
        kw = dict(lr=0.01, batch_size=2, steps=120, record=["loss", "charges", "orbit", "sharpness"], every=7,
                  generators=[np.diag([1.0, -1, -1, -1])])
    elif case == "dataset-epochs":
        loss, th0 = linear_net_dataset(), np.linspace(-1, 1, 8)
        kw = dict(lr=0.05, batch_size=5, steps=60, replace=False, record=["theta", "loss"], every=3)
    elif case == "fast-grad":
        loss, th0 = ns.families.relu_net([3, 4, 2], bias=True), np.linspace(-1, 1, 24)
        kw = dict(lr=0.05, batch_size=4, steps=60, sampler=_Gaussian(5), record=["loss", "norm2", "sharpness"],
                  every=6)
    elif case == "momentum-schedule":
        loss, th0 = scale_invariant_loss(), [1.0, 0.3]
        kw = dict(lr=0.1, batch_size=3, steps=90, momentum=0.9, weight_decay=0.01, schedule=Cosine(warmup=10),
                  record=["norm2"], every=9)
    else:
        loss, th0 = quartic_loss(), [1.0]
        kw = dict(lr=0.3, batch_size=1, steps=200, record=["loss"], every=10)
    ref = simulate(loss, th0, replicas=7, seed=5, **kw)
    for chunk in (1, 2, 5):
        assert same(ref, simulate(loss, th0, replicas=7, seed=5, chunk_size=chunk, **kw)), chunk
    if case == "divergence":
        assert 0 < ref.n_diverged < 7


def test_same_seed_same_numbers_and_replica_streams_are_prefix_stable():
    loss = rescaling_loss()
    kw = dict(lr=0.01, batch_size=1, steps=300, record=["loss"], every=30)
    a = simulate(loss, [2.0, 0.5, -0.25, 1.0], replicas=6, seed=9, **kw)
    b = simulate(loss, [2.0, 0.5, -0.25, 1.0], replicas=6, seed=9, **kw)
    c = simulate(loss, [2.0, 0.5, -0.25, 1.0], replicas=6, seed=10, **kw)
    d = simulate(loss, [2.0, 0.5, -0.25, 1.0], replicas=3, seed=9, **kw)
    assert same(a, b)
    assert not np.array_equal(a.theta, c.theta)
    assert np.array_equal(a.theta[:3], d.theta)  # replica r's stream is spawn key (r,)
    assert len({tuple(t) for t in a.theta}) == 6  # replicas see different data
    assert a.seed == 9


def test_recording_does_not_change_the_trajectory():
    loss = rescaling_loss()
    kw = dict(lr=0.01, batch_size=2, steps=100, replicas=4, seed=1)
    plain = simulate(loss, [2.0, 0.5, -0.25, 1.0], **kw)
    rec = simulate(loss, [2.0, 0.5, -0.25, 1.0], record=["loss", "sharpness", "theta"], every=7, **kw)
    assert np.array_equal(plain.theta, rec.theta)
    assert rec.times.tolist() == list(range(0, 101, 7))


# ------------------------------------------------------------------------------------------
# divergence
# ------------------------------------------------------------------------------------------


def test_divergent_replicas_are_frozen_flagged_and_do_not_affect_the_others():
    loss = quartic_loss()
    R, steps = 40, 400
    kw = dict(lr=0.3, batch_size=1, steps=steps, replicas=R, seed=2, record=["loss", "norm2"], every=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not a single warning, from anywhere
        res = simulate(loss, np.ones((R, 1)), **kw)
    assert 0 < res.n_diverged < R
    div = res.diverged
    assert np.all((res.divergence_step[div] >= 1) & (res.divergence_step[div] <= steps))
    assert np.all(res.divergence_step[~div] == -1)
    assert np.all(np.isfinite(res.theta)) and np.all(np.abs(res.theta) <= OVERFLOW)
    # records stop at divergence (NaN afterwards), stay finite before
    n2 = res["norm2"]
    for r in np.nonzero(div)[0]:
        after = res.times >= res.divergence_step[r]
        assert np.all(np.isnan(n2[after, r])) and np.all(np.isfinite(n2[~after, r]))
    assert np.all(np.isfinite(n2[:, ~div]))
    assert f"diverged: {res.n_diverged} of {R}" in res.summary()
    # the others are unaffected: tame the diverging replicas' starts and re-run
    th0 = np.ones((R, 1))
    th0[div] = 0.0
    tame = simulate(loss, th0, **kw)
    assert tame.n_diverged == 0
    assert np.array_equal(tame.theta[~div], res.theta[~div])
    assert np.array_equal(tame["norm2"][:, ~div], res["norm2"][:, ~div])


def test_all_replicas_diverging_ends_cleanly():
    w = sp.Symbol("w")
    loss = ns.Loss(w**4, [w])  # no data: GD on w⁴ at a huge rate explodes at once
    res = simulate(loss, [3.0], lr=10.0, batch_size=1, steps=50, replicas=3, record=["norm2"], every=1)
    assert res.n_diverged == 3 and np.all(res.divergence_step == res.divergence_step[0])
    assert np.all(np.isfinite(res.theta))


# ------------------------------------------------------------------------------------------
# optimizers and schedules against hand-written recurrences (no data: ℓ = ½ h w²)
# ------------------------------------------------------------------------------------------


def quadratic():
    w = sp.Symbol("w")
    return ns.Loss(sp.Rational(3, 2) * w**2, [w])  # gradient 3w


@pytest.mark.parametrize(
    "schedule",
    [None, Warmup(steps=10), Warmup(steps=5, start=0.5), StepDecay(milestones=(7, 15), factor=0.5),
     StepDecay(every=6, factor=0.3), Cosine(), Cosine(steps=18, final=0.1, warmup=4)],
)
@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.0, 0.1), (0.8, 0.0), (0.5, 0.2)])
def test_update_rules_match_hand_written_recurrences(schedule, momentum, wd):
    steps, lr = 20, 0.05
    res = simulate(quadratic(), [2.0], lr=lr, batch_size=1, steps=steps, replicas=2, momentum=momentum,
                   weight_decay=wd, schedule=schedule)
    if schedule is None:
        fac = np.ones(steps)
    elif isinstance(schedule, Cosine):
        fac = schedule.factors(np.arange(steps), total=steps)
    else:
        fac = schedule.factors(np.arange(steps))
    th, v = 2.0, 0.0
    for k in range(steps):
        eta = lr * fac[k]
        g = 3.0 * th
        if momentum:
            v = momentum * v + g + wd * th
            th = th - eta * v
        else:
            th = (1 - eta * wd) * th - eta * g
    assert np.allclose(res.theta, th, rtol=1e-13, atol=0)


def test_schedule_factors():
    assert Warmup(steps=4).factors(np.arange(6)).tolist() == [0.25, 0.5, 0.75, 1, 1, 1]
    assert StepDecay(milestones=(2, 4), factor=0.5).factors(np.arange(6)).tolist() == [1, 1, 0.5, 0.5, 0.25, 0.25]
    c = Cosine(steps=10, final=0.2, warmup=2).factors(np.arange(12))
    assert c[0] == 0.5 and c[1] == 1.0 and c[2] == 1.0 and np.isclose(c[10], 0.2) and np.isclose(c[11], 0.2)
    assert np.all(np.diff(c[2:]) <= 1e-15)


@pytest.mark.parametrize(
    "schedule,steps",
    [(Warmup(steps=100), 50), (StepDecay(milestones=(10, 60)), 50), (StepDecay(every=50), 50),
     (Cosine(steps=80), 50), (Cosine(warmup=60), 50)],
)
def test_schedule_that_does_not_fit_is_rejected(schedule, steps):
    with pytest.raises(InvalidArgumentError, match="does not fit"):
        simulate(quadratic(), [1.0], lr=0.1, batch_size=1, steps=steps, replicas=1, schedule=schedule)


@pytest.mark.parametrize(
    "make",
    [lambda: Warmup(steps=0), lambda: Warmup(steps=3, start=2), lambda: StepDecay(),
     lambda: StepDecay(milestones=(5, 3)), lambda: StepDecay(milestones=(3,), every=2),
     lambda: StepDecay(every=3, factor=0), lambda: Cosine(final=-1), lambda: Cosine(steps=5, warmup=5)],
)
def test_bad_schedules_are_rejected(make):
    with pytest.raises(InvalidArgumentError):
        make()


# ------------------------------------------------------------------------------------------
# datasets
# ------------------------------------------------------------------------------------------


def test_epochs_without_replacement_visit_every_point_once():
    """ℓ = w·x: ĝ is the batch mean of x, so after one epoch every replica moved by −η Σx / S."""
    w, x = sp.symbols("w x")
    N, S, lr = 12, 4, 0.1
    X = np.arange(1.0, N + 1) ** 2
    loss = ns.Loss(w * x, [w], data={x: X})
    res = simulate(loss, [0.0], lr=lr, batch_size=S, steps=2 * N // S, replicas=5, replace=False,
                   record=["theta"], every=1, seed=4)
    th = res["theta"][:, :, 0]
    epoch = N // S
    assert np.allclose(th[epoch], -lr * X.sum() / S, rtol=1e-14)
    assert np.allclose(th[2 * epoch], -2 * lr * X.sum() / S, rtol=1e-14)
    assert len({tuple(np.round(th[1:epoch, r], 12)) for r in range(5)}) > 1  # own permutation each
    steps_taken = -np.diff(th, axis=0) / lr * S  # batch sums
    for r in range(5):
        assert np.isclose(steps_taken[:epoch, r].sum(), X.sum())


def test_dataset_with_replacement_and_full_batch():
    loss = linear_net_dataset()
    res = simulate(loss, np.linspace(-1, 1, 8), lr=0.05, batch_size=30, steps=20, replicas=3, record=["loss"], every=5)
    assert res.theta.shape == (3, 8) and not res.diverged.any()
    gd = simulate(loss, np.linspace(-1, 1, 8), lr=0.05, batch_size=1, steps=20, replicas=2, optimizer="gd",
                  record=["loss"], every=5)
    full = compiled(loss).value(np.linspace(-1, 1, 8), make_sampler(loss).take(np.arange(12))).mean()
    assert np.isclose(gd["loss"][0, 0], full, rtol=1e-13)


# ------------------------------------------------------------------------------------------
# observables
# ------------------------------------------------------------------------------------------


def test_charges_orbit_and_sharpness_observables():
    loss = rescaling_loss()
    A = np.diag([1.0, -1, -1, -1])
    res = simulate(loss, [2.0, 0.5, -0.25, 1.0], lr=0.01, batch_size=2, steps=50, replicas=3,
                   record=["theta", "charges", "orbit", "norm2"], every=10, generators=[sp.diag(1, -1, -1, -1)])
    th = res["theta"]
    C = th[..., 0] ** 2 - np.sum(th[..., 1:] ** 2, axis=-1)
    assert np.allclose(res["charges"][..., 0], C, rtol=1e-14)
    lam = 0.25 * np.log(th[..., 0] ** 2 / np.sum(th[..., 1:] ** 2, axis=-1))
    assert np.allclose(res["orbit"][..., 0], lam - lam[0], atol=1e-13)
    assert np.allclose(res["norm2"], np.sum(th**2, axis=-1))
    assert np.all(res["orbit"][0] == 0)
    # the orbit coordinate moves by exactly μ along e^{μA}
    gens = generator_arrays([A], 4)
    th0 = np.array([[2.0, 0.5, -0.25, 1.0]])
    mu = 0.37
    moved = th0 * np.exp(mu * np.diag(A))
    assert np.isclose(gens.orbit(moved)[0, 0] - gens.orbit(th0)[0, 0], mu)


@pytest.mark.parametrize("n", [3, 20])
def test_sharpness_is_the_hessian_trace(n):
    """ℓ = ½ Σ h_i θ_i² x² with x = ±1: Tr H = Σ h_i exactly (exact trace for n ≤ 16,
    Hutchinson with Rademacher probes above, also exact for a diagonal H)."""
    th = ns.vector("t", n)
    x = sp.Symbol("x")
    h = np.arange(1, n + 1)
    loss = ns.Loss(sp.Add(*[sp.Rational(int(h[i]), 2) * th[i] ** 2 * x**2 for i in range(n)]), [th],
                   data={x: np.array([1.0, -1.0])})
    res = simulate(loss, np.ones(n) * 0.1, lr=0.01, batch_size=2, steps=3, replicas=2, record=["sharpness"], every=1)
    assert np.allclose(res["sharpness"], h.sum(), rtol=1e-12)


@pytest.mark.parametrize("dims,exact", [([2, 3, 1], True), ([3, 4, 2], False)])
def test_sharpness_of_a_network_matches_a_dense_hessian(dims, exact):
    """One data row, so the batch Hessian is H(θ, row): exact trace for n ≤ 16, Hutchinson
    (unbiased, 8 probes per replica) above, averaged over many replicas at the same θ."""
    loss = ns.families.relu_net(dims, bias=True)
    assert (loss.n <= 16) == exact
    rng = np.random.default_rng(1)
    row = rng.standard_normal((1, dims[0] + dims[-1]))
    theta0 = rng.standard_normal(loss.n)
    c = compiled(loss)
    assert np.all(np.abs(c.value_grad(theta0, row[0])[2]) > 1e-3)  # away from kinks
    H = np.empty((loss.n, loss.n))
    for i in range(loss.n):
        e = np.zeros(loss.n)
        e[i] = 1e-6
        H[i] = (c.grad(theta0 + e, row[0]) - c.grad(theta0 - e, row[0])) / 2e-6
    R = 1 if exact else 400
    res = simulate(loss, theta0, lr=0.0, batch_size=2, steps=0, replicas=R, record=["sharpness"], every=1,
                   sampler=_Rows(row))
    est = res["sharpness"][0]
    if exact:
        assert np.isclose(est[0], np.trace(H), rtol=1e-6, atol=1e-8)
    else:
        assert len(set(est.tolist())) > 1  # probes differ per replica
        sem = est.std() / np.sqrt(R)
        assert abs(est.mean() - np.trace(H)) < 4 * sem + 1e-8


class _Rows:
    """A tiny dataset sampler (the Sampler protocol) over fixed rows."""

    def __init__(self, rows):
        self.rows = np.asarray(rows, dtype=float)
        self.d = self.rows.shape[1]
        self.dataset_size = len(self.rows)

    def draw(self, rng, shape):
        return self.take(rng.integers(0, len(self.rows), size=shape))

    def take(self, idx):
        return self.rows[np.asarray(idx)]


class _Gaussian:
    """Standard normal rows of width d (the Sampler protocol)."""

    dataset_size = None

    def __init__(self, d):
        self.d = d

    def draw(self, rng, shape):
        return rng.standard_normal(tuple(shape) + (self.d,))

    def take(self, idx):  # pragma: no cover
        raise AssertionError


# ------------------------------------------------------------------------------------------
# matrix-form gradients of the catalog (loss.fast_grad)
# ------------------------------------------------------------------------------------------


NETS = [
    dict(dims=[3, 2], activation="linear"),
    dict(dims=[3, 4, 2], activation="linear"),
    dict(dims=[4, 3, 2, 3], activation="linear"),
    dict(dims=[3, 4, 2], activation="relu"),
    dict(dims=[3, 4, 2], activation="relu", bias=True),
    dict(dims=[2, 3, 3, 2], activation="relu", bias=True),
    dict(dims=[2, 3, 2], activation="leaky_relu", bias=True),
    dict(dims=[2, 3, 2], activation="leaky_relu", option=sp.Rational(1, 4)),
    dict(dims=[2, 3, 2], activation="monomial", option=3, bias=True),
    dict(dims=[2, 3, 2], activation="tanh", bias=True),
    dict(dims=[2, 3, 2], activation="softplus"),
    dict(dims=[2, 3, 2], activation="sigmoid", bias=True),
]


@pytest.mark.parametrize("spec", NETS, ids=lambda s: f"{s['activation']}-{'-'.join(map(str, s['dims']))}{'-b' if s.get('bias') else ''}")
def test_fast_grad_matches_the_compiled_gradient(spec):
    loss = ns.families.mlp(**spec)
    fg = loss.fast_grad
    assert fg is not None and fg.n == loss.n
    c = compiled(loss)
    rng = np.random.default_rng(7)
    d = len(loss.x)
    R, B = 5, 6
    theta = rng.standard_normal((R, 1, loss.n))
    x = rng.standard_normal((R, B, d))
    _, g_ref, kinks = c.value_grad(theta, x)
    keep = np.all(np.abs(kinks) > 1e-3, axis=-1) if kinks.shape[-1] else np.ones((R, B), bool)
    assert keep.mean() > 0.5
    g = fg(theta, x)
    assert g.shape == (R, B, loss.n)
    scale = np.abs(g_ref).max()
    assert np.allclose(g[keep], g_ref[keep], rtol=1e-10, atol=1e-12 * scale)
    # batch mean, without per-sample arrays (rows away from kinks only)
    xs = np.where(keep[..., None], x, x[:, :1])  # replace kink rows by a kink-free row
    if keep[:, 0].all():
        bm = fg.batch_mean(theta[:, 0], xs)
        ref = c.grad(theta, xs).mean(axis=1)
        assert np.allclose(bm, ref, rtol=1e-10, atol=1e-12 * scale)
    # per-sample loss and complex-step Hessian-vector products
    assert np.allclose(fg.value(theta, x), c.value(theta, x), rtol=1e-12)
    v = rng.standard_normal((R, 1, loss.n))
    hv, hv_ref = fg.hvp(theta, v, x), c.hvp(theta, v, x)
    assert np.allclose(hv[keep], hv_ref[keep], rtol=1e-8, atol=1e-10 * np.abs(hv_ref).max())
    # broadcasting: one θ for all samples, one sample for all θ
    assert np.allclose(fg(theta[0, 0], x[0]), c.grad(theta[0, 0], x[0]), rtol=1e-10, atol=1e-12 * scale)
    assert np.allclose(fg(theta[:, 0], x[0, 0]), c.grad(theta[:, 0], x[0, 0]), rtol=1e-10, atol=1e-12 * scale)


def test_fast_grad_and_compiled_gradient_give_the_same_simulation():
    fast = linear_net_dataset()
    fast.fast_grad = ns.families.linear_net([2, 2, 2]).fast_grad
    slow = linear_net_dataset()
    assert slow.fast_grad is None
    kw = dict(lr=0.05, batch_size=4, steps=100, replicas=4, record=["loss", "norm2"], every=10, seed=3)
    a = simulate(fast, np.linspace(-1, 1, 8), **kw)
    b = simulate(slow, np.linspace(-1, 1, 8), **kw)
    assert a.settings["gradient"] == "fast" and b.settings["gradient"] == "compiled"
    assert np.allclose(a.theta, b.theta, rtol=1e-9)
    assert np.allclose(a["loss"], b["loss"], rtol=1e-9)


def _hoist_cases():
    a, b = sp.symbols("a b")
    x, y, e = Normal("x", 0, 1), Normal("y", 0, 1), Normal("e", 0, 1)
    return [
        rescaling_loss(),
        ns.Loss(sp.exp(a * x) * (x**2 + 1) + sp.Max(0, b * x - y) ** 2 / (1 + e**2), [a, b]),
        ns.Loss(sp.Piecewise((a * x, x > 0), (b * x**2 + sp.sin(y), True)) ** 2 + a * b * (x + y), [a, b]),
        ns.Loss(sp.Abs(a * x - 2 * y + e) + sp.log(1 + (b * e) ** 2), [a, b]),
    ]


@pytest.mark.parametrize("k", range(4))
def test_step_gradient_hoists_data_terms_and_equals_the_compiled_gradient(k):
    """The step loop's gradient (data-only parts evaluated per block, outputs unbroadcast)
    is the compiled gradient up to the rounding of regrouped sums."""
    from noether_sym.simulate._kernels import step_gradient

    loss = _hoist_cases()[k]
    sg = step_gradient(loss)
    assert "broadcast_to" not in sg.source.strip().splitlines()[-1]  # bare outputs
    if k == 0:
        assert sg.m == 1 and "_shape" not in sg.source  # βᵀx + ε: once per block of draws
    rng = np.random.default_rng(k)
    th, x = rng.standard_normal((50, loss.n)), rng.standard_normal((50, len(loss.x)))
    zs = () if sg.m == 0 else sg.derive(x)
    g = np.stack([np.broadcast_to(v, (50,)) for v in sg.f(*th.T, *x.T, *zs)[1]], axis=-1)
    assert np.allclose(g, compiled(loss).grad(th, x), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------


def _sim(**over):
    loss = over.pop("loss", rescaling_loss())
    kw = dict(lr=0.01, batch_size=1, steps=10, replicas=2)
    kw.update(over)
    theta0 = kw.pop("theta0", [2.0, 0.5, -0.25, 1.0])
    return simulate(loss, theta0, **kw)


@pytest.mark.parametrize(
    "over,match",
    [
        (dict(theta0=[1.0, 2.0]), "theta0"),
        (dict(theta0=[1.0, np.nan, 0, 0]), "theta0"),
        (dict(theta0=[1.0, np.inf, 0, 0]), "theta0"),
        (dict(theta0=np.ones((3, 4))), "theta0"),
        (dict(theta0=np.full((2, 4), np.nan)), "theta0"),
        (dict(theta0="abc"), "theta0"),
        (dict(theta0=[1e200, 0, 0, 0]), "theta0"),
        (dict(replicas=0), "replicas"),
        (dict(replicas=2.5), "replicas"),
        (dict(steps=-1), "steps"),
        (dict(lr=-0.1), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(lr="fast"), "lr"),
        (dict(batch_size=0), "batch_size"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(momentum=1.0), "momentum"),
        (dict(optimizer="adam"), "optimizer"),
        (dict(record=["energy"]), "record"),
        (dict(record=["charges"]), "generators"),
        (dict(every=0), "every"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(seed=-3), "seed"),
        (dict(schedule="cosine"), "schedule"),
        (dict(replace=False), "replace"),
        (dict(steps=5, schedule=Warmup(steps=10)), "does not fit"),
    ],
)
def test_bad_arguments_raise_clear_errors(over, match):
    with pytest.raises(InvalidArgumentError, match=match):
        _sim(**over)


def test_bad_dataset_batch_and_generators():
    loss = linear_net_dataset(N=12)
    with pytest.raises(InvalidArgumentError, match="batch_size=13 exceeds the dataset size N=12"):
        simulate(loss, np.zeros(8), lr=0.1, batch_size=13, steps=3, replicas=1, replace=False)
    simulate(loss, np.zeros(8), lr=0.1, batch_size=13, steps=3, replicas=1)  # with replacement: fine
    with pytest.raises(InvalidGeneratorError, match="8x8"):
        simulate(loss, np.zeros(8), lr=0.1, batch_size=1, steps=3, replicas=1, record=["charges"],
                 generators=[np.eye(3)])
    asym = np.zeros((8, 8))
    asym[0, 1] = 1.0
    with pytest.raises(InvalidGeneratorError, match="symmetric"):
        simulate(loss, np.zeros(8), lr=0.1, batch_size=1, steps=3, replicas=1, record=["charges"], generators=[asym])
    with pytest.raises(NoetherSymError, match="distribution"):
        simulate(ns.families.linear_net([2, 2]), np.zeros(4), lr=0.1, batch_size=1, steps=3, replicas=1)
    w = sp.Symbol("w")
    x = Normal("x", 0, 1)
    with pytest.raises(InvalidArgumentError, match="gd"):
        simulate(ns.Loss((w * x) ** 2, [w]), [1.0], lr=0.1, batch_size=1, steps=3, replicas=1, optimizer="gd",
                 record=["loss"])


# ------------------------------------------------------------------------------------------
# result, progress bar, command line, plot
# ------------------------------------------------------------------------------------------


def test_result_summary_and_json():
    res = _sim(record=["loss", "charges"], generators=[np.diag([1.0, -1, -1, -1])], every=5, progress=True)
    d = res.to_dict()
    json.dumps(d)
    assert d["n_diverged"] == 0 and d["times"] == [0, 5, 10]
    assert set(d["observables"]) == {"loss", "charges"}
    assert "charges" in res.summary() and "simulate" in res.summary()
    assert res["loss"].shape == (3, 2) and res["charges"].shape == (3, 2, 1)
    with pytest.raises(KeyError, match="not recorded"):
        res["sharpness"]


def test_progress_bar_is_optional(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    res = _sim(progress=True)
    assert res.theta.shape == (2, 4)
    assert capsys.readouterr().err == ""


def _cli(argv):
    from noether_sym.cli._common import _Parser
    from noether_sym.cli.simulate import add_parser, run

    p = _Parser(prog="noether-sym")
    add_parser(p.add_subparsers(dest="command"))
    return run(p.parse_args(argv))


def test_cli_family_json(capsys):
    assert _cli(["simulate", "linear-net", "--dims", "2,2,2", "--lr", "0.05", "--batch-size", "2", "--steps", "200",
                 "--replicas", "8", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # NumPy runs the matrix-form gradient; the fused kernel runs a net this small (8 parameters,
    # batch 2) through the straight-line code of its expression DAG
    want = "fast" if doc["settings"]["backend"] == "numpy" else "compiled"
    assert doc["n_generators"] == 3 and doc["settings"]["gradient"] == want
    assert len(doc["observables"]["charges"]["mean"]) == len(doc["times"])


def test_cli_loss_with_distributions_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "charges.png"
    argv = ["simulate", "--loss", "(u*w*x - (x + e))^2", "--params", "u,w", "--data", "x,e", "--dist",
            "x=normal:0:1", "--dist", "e=normal:0:1/2", "--theta0", "u=2,w=0.5", "--lr", "0.01", "--batch-size",
            "1", "--steps", "300", "--replicas", "8", "--plot", str(out)]
    assert _cli(argv) == 0
    assert out.stat().st_size > 1000
    assert "figure" in capsys.readouterr().out


def test_cli_usage_errors():
    from noether_sym.cli._common import _UsageError

    with pytest.raises(_UsageError, match="--dist"):
        _cli(["simulate", "--loss", "(u*x)^2", "--params", "u", "--data", "x", "--theta0", "1", "--lr", "0.1",
              "--batch-size", "1", "--steps", "3", "--replicas", "1"])
    with pytest.raises(_UsageError, match="theta0"):
        _cli(["simulate", "--loss", "(u*x)^2", "--params", "u", "--data", "x", "--dist", "x=normal:0:1", "--lr",
              "0.1", "--batch-size", "1", "--steps", "3", "--replicas", "1"])
    with pytest.raises(_UsageError, match="dist"):
        _cli(["simulate", "--loss", "(u*x)^2", "--params", "u", "--data", "x", "--dist", "x=cauchy", "--theta0",
              "1", "--lr", "0.1", "--batch-size", "1", "--steps", "3", "--replicas", "1"])
    with pytest.raises(SystemExit, match="2"):  # refused by the flag's own check: exit status 2
        _cli(["simulate", "linear-net", "--dims", "2,2", "--lr", "0.1", "--batch-size", "1", "--steps", "3",
              "--replicas", "0"])


def test_plot_charges_writes_a_figure(tmp_path):
    pytest.importorskip("matplotlib")
    from noether_sym.report._plot import plot_charges

    res = _sim(record=["charges"], generators=[np.diag([1.0, -1, -1, -1])], every=2, steps=20, replicas=4)
    fig = plot_charges(res, predicted=[3.0], path=tmp_path / "c.png")
    assert (tmp_path / "c.png").exists() and fig.axes


def test_block_steps_depends_only_on_batch_and_width():
    assert block_steps(1, 4) == 1024
    assert block_steps(16, 60) == 68
    assert block_steps(10**6, 10) == 1


# ------------------------------------------------------------------------------------------
# the worked example of THEORY §7.1 (the simulation part; predictions come from the
# equilibrium stage)
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_rescaling_worked_example_reaches_the_balance_of_section_7_1():
    """u² at equilibrium ≈ 0.7559 (THEORY §7.1) at η = 0.01: within 3%, from u² = 4."""
    loss = rescaling_loss()
    beta = np.array([1.0, -0.5, 2.0])
    res = simulate(loss, np.concatenate([[2.0], beta / 2]), lr=0.01, batch_size=1, steps=60_000, replicas=200,
                   record=["theta"], every=1000, seed=0)
    assert res.n_diverged == 0
    u2 = res["theta"][45:, :, 0] ** 2  # last quarter
    assert abs(u2.mean() / 0.7559 - 1) < 0.03


# ------------------------------------------------------------------------------------------
# options and generated code
# ------------------------------------------------------------------------------------------


def test_simulation_options_validate_and_revalidate_on_replace():
    import dataclasses

    from noether_sym.simulate._options import SimulationOptions

    opts = SimulationOptions(lr=1, batch_size=np.int64(2), steps=100, replicas=3, record="norm2",
                             schedule=Warmup(steps=50))
    assert type(opts.batch_size) is int and type(opts.lr) is float
    assert opts.record == ("norm2",) and opts.record_every == 1
    with pytest.raises(InvalidArgumentError, match="does not fit"):
        dataclasses.replace(opts, steps=20)
    with pytest.raises(InvalidArgumentError, match="momentum"):
        dataclasses.replace(opts, momentum=1.0)
    with pytest.raises(InvalidArgumentError, match="replace"):
        dataclasses.replace(opts, replace="no")


def test_compile_graph_without_broadcast_returns_bare_outputs_with_the_same_values():
    from noether_sym.compile._codegen import compile_graph
    from noether_sym.compile._graph import Graph

    a, b, c = sp.symbols("a b c")
    g = Graph((a, b, c))
    r = g.add(3 * a**2 + b)
    wide = compile_graph(g, [r], grad_of=r, wrt=[0, 1, 2], kinks=True)
    bare = compile_graph(g, [r], grad_of=r, wrt=[0, 1, 2], kinks=True, broadcast=False)
    assert "broadcast_to" in wide.source and "broadcast" not in bare.source
    A, B, C = np.array([[0.5], [-1.0]]), np.array([2.0, 3.0, 4.0]), np.zeros(1)
    (v1,), g1, _ = wide(A, B, C)
    (v2,), g2, _ = bare(A, B, C)
    assert v1.shape == (2, 3) and all(np.shape(x) == (2, 3) for x in g1)
    assert np.shape(g2[0]) == (2, 1) and np.shape(g2[1]) == () and g2[2] == 0.0  # as computed
    assert np.array_equal(v1, v2)
    assert all(np.array_equal(x, np.broadcast_to(y, x.shape)) for x, y in zip(g1, g2))
