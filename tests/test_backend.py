"""The fused compiled simulation backend (``backend="numba"``) against independent references.

References are written here: the Philox4x32-10 known-answer vectors of the Random123
distribution; exact laws (a step with η = 1 on ℓ = (w − x)²/2 returns the drawn x itself,
so the simulator's data can be tested against their distribution); closed forms (the
stationary variance η/(2 − η) of SGD on that loss); gradients from ``sympy.diff``;
deterministic runs (full-batch GD on a dataset) of the NumPy backend, the reference engine,
compared to rounding. Stochastic checks use fixed seeds -- each is deterministic -- and
state their tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
import sympy as sp
from helpers import rescaling_loss
from sympy.stats import Bernoulli, Exponential, Normal, Rademacher, Uniform

import noether_sym as ns
from noether_sym._errors import InvalidArgumentError, MissingDependencyError
from noether_sym.compile._compiled import compiled
from noether_sym.compile._graph import Graph
from noether_sym.compile._numba import PHILOX_SOURCE, load_generated, scalar_gradient_source
from noether_sym.data._sample import make_sampler
from noether_sym.simulate import _fused
from noether_sym.simulate._fused import BackendFallbackWarning
from noether_sym.simulate._schedule import Cosine

numba = pytest.importorskip("numba")

W = sp.Symbol("w")


def same(a, b) -> bool:
    """Bit-identical results (θ, divergence flags, every observable)."""
    if not (np.array_equal(a.theta, b.theta) and np.array_equal(a.divergence_step, b.divergence_step)):
        return False
    return sorted(a.observables) == sorted(b.observables) and all(
        np.array_equal(a.observables[k], b.observables[k], equal_nan=True) for k in a.observables
    )


_LOSSES: dict[str, ns.Loss] = {}


def kernel_shapes(loss: ns.Loss) -> set[str]:
    """The shapes ("scalar", "network") of the fused kernels compiled for ``loss`` so far."""
    return {v.shape for k, v in loss._cache.items() if isinstance(k, tuple) and k and k[0] == "fused_kernel"}


def cached(name: str, make) -> ns.Loss:
    """One Loss object per model for the whole file (its compiled kernel is cached on it)."""
    if name not in _LOSSES:
        _LOSSES[name] = make()
    return _LOSSES[name]


def echo_loss() -> ns.Loss:
    """ℓ = (w − x)²/2 with x ~ N(1, 2), u ~ U(−1, 3), b ~ Bernoulli(0.3), r ~ Rademacher as
    extra columns (weights 0): with η = 1 one step gives w₁ = x exactly."""
    w, a, b_, c = sp.symbols("w a p c")
    x, u, b, r = Normal("x", 1, 2), Uniform("u", -1, 3), Bernoulli("bern", sp.Rational(3, 10)), Rademacher("r")
    return ns.Loss((w - x) ** 2 / 2 + (a - u) ** 2 / 2 + (b_ - b) ** 2 / 2 + (c - r) ** 2 / 2, [w, a, b_, c],
                   name="echo")


def quartic_loss() -> ns.Loss:
    """ℓ = (w x)⁴ / 4, x ~ N(0, 1): heavy-tailed gradient w³x⁴, unstable at large η."""
    x = Normal("x", 0, 1)
    return ns.Loss((W * x) ** 4 / 4, [W], name="quartic")


def relu_dataset_net(N=40, seed=1) -> ns.Loss:
    """A ReLU 2-5-1 network with biases on a finite dataset (matrix-form gradient)."""
    net = ns.families.relu_net([2, 5, 1], bias=True)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, 2))
    Y = np.maximum(X[:, :1], 0) - 0.5 * X[:, 1:] + 0.1 * rng.standard_normal((N, 1))
    x0, x1, y0 = net.data_symbols
    loss = ns.Loss(net.expr, list(net.params), data={x0: X[:, 0], x1: X[:, 1], y0: Y[:, 0]}, name="relu data")
    loss.fast_grad = net.fast_grad
    return loss


# ------------------------------------------------------------------------------------------
# random numbers
# ------------------------------------------------------------------------------------------

# Random123's kat_vectors for philox4x32_R(10): (counter, key) -> output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


class _PlainNumba:
    """Stand-in for numba whose njit is the identity: PHILOX_SOURCE run as Python."""

    @staticmethod
    def njit(*args, **kw):
        return args[0] if args and callable(args[0]) else (lambda f: f)


def test_philox_matches_the_random123_known_answers_compiled_and_as_python():
    plain = {"_np": np, "_nb": _PlainNumba}
    exec(PHILOX_SOURCE, plain)
    mod = load_generated("@_nb.njit(cache=True)\ndef kat(c0, c1, c2, c3, k0, k1):\n"
                         "    return philox4x32(c0, c1, c2, c3, k0, k1)\n")
    for ctr, key, expected in KAT:
        assert tuple(int(v) for v in plain["philox4x32"](*ctr, *key)) == expected
        assert tuple(int(v) for v in mod.kat(*ctr, *key)) == expected


def test_drawn_data_follow_their_laws():
    # one step with η = 1 from w = 0 gives w₁ = x: θ₁ of 20,000 replicas are 20,000 draws.
    # KS p-values above 1e-4 (fixed seed: deterministic; a wrong law at this size gives p < 1e-20)
    loss = cached("echo", echo_loss)
    res = ns.simulate(loss, [0, 0, 0, 0], lr=1.0, batch_size=1, steps=1, replicas=20_000, seed=3, backend="numba")
    assert res.settings["backend"] == "numba"
    x, u, b, r = res.theta.T
    assert st.kstest(x, st.norm(1, 2).cdf).pvalue > 1e-4
    assert st.kstest(u, st.uniform(-1, 4).cdf).pvalue > 1e-4
    assert set(np.unique(b)) == {0.0, 1.0} and abs(b.mean() - 0.3) < 4 * np.sqrt(0.21 / 20_000)
    assert set(np.unique(r)) == {-1.0, 1.0} and abs(r.mean()) < 4 / np.sqrt(20_000)
    # columns are independent: sample correlations at the 1/√N scale (4 standard errors)
    assert np.all(np.abs(np.corrcoef(res.theta.T) - np.eye(4)) < 4 / np.sqrt(20_000))
    # successive steps are independent draws: a second step (η = 1) gives a fresh x
    two = ns.simulate(loss, [0, 0, 0, 0], lr=1.0, batch_size=1, steps=2, replicas=20_000, seed=3, backend="numba")
    assert abs(np.corrcoef(res.theta[:, 0], two.theta[:, 0])[0, 1]) < 4 / np.sqrt(20_000)
    # the tail beyond the ziggurat's base strip (|z| > 3.654) has its normal probability
    z = (x - 1) / 2
    p_tail = 2 * st.norm.sf(3.6541528853610088)
    assert abs(np.mean(np.abs(z) > 2.5) - 2 * st.norm.sf(2.5)) < 4 * np.sqrt(2 * st.norm.sf(2.5) / 20_000)
    assert np.mean(np.abs(z) > 3.6541528853610088) < p_tail + 4 * np.sqrt(p_tail / 20_000)


# ------------------------------------------------------------------------------------------
# reproducibility: chunking, threads, number of replicas
# ------------------------------------------------------------------------------------------

CASES = {
    "random": lambda: (cached("rescaling", rescaling_loss), [2.0, 0.5, -0.25, 1.0],
                       dict(lr=0.01, batch_size=2, steps=120, record=["loss", "theta", "grad_norm2", "charges",
                                                                          "orbit", "norm2"], every=7,
                            generators=[np.diag([1.0, -1, -1, -1])])),
    "momentum-schedule": lambda: (cached("rescaling", rescaling_loss), [2.0, 0.5, -0.25, 1.0],
                                  dict(lr=0.05, batch_size=3, steps=90, momentum=0.9, weight_decay=0.01,
                                       schedule=Cosine(warmup=10), record=["norm2"], every=9)),
    "divergence": lambda: (cached("quartic", quartic_loss), [1.0],
                           dict(lr=0.3, batch_size=1, steps=200, record=["loss"], every=10)),
    "network-batch": lambda: (cached("relu-data", relu_dataset_net), np.linspace(-1, 1, 20),
                              dict(lr=0.05, batch_size=6, steps=50, record=["loss", "norm2"], every=5)),
    "network-sample": lambda: (cached("relu-data-sample", relu_dataset_net), np.linspace(-1, 1, 20),
                               dict(lr=0.05, batch_size=1, steps=50, record=["loss"], every=5)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_seed_is_bit_identical_for_any_chunking_thread_count_and_replica_count(case, monkeypatch):
    if case == "network-sample":  # the per-layer code one sample at a time (else: straight-line DAG code)
        monkeypatch.setattr(_fused, "_NETWORK_MIN_N", 0)
    loss, th0, kw = CASES[case]()
    R = 9
    monkeypatch.setenv("NOETHER_SYM_THREADS", "1")
    ref = ns.simulate(loss, th0, replicas=R, seed=5, backend="numba", **kw)
    assert ref.settings["backend"] == "numba"
    assert kernel_shapes(loss) == ({"network"} if case.startswith("network") else {"scalar"})
    for chunk in (1, 4):
        assert same(ref, ns.simulate(loss, th0, replicas=R, seed=5, chunk_size=chunk, backend="numba", **kw)), chunk
    monkeypatch.setenv("NOETHER_SYM_THREADS", "2")
    assert same(ref, ns.simulate(loss, th0, replicas=R, seed=5, backend="numba", **kw))
    # replica r's numbers depend on (seed, r) only: the first 4 of 9 are the 4 of a 4-replica run
    few = ns.simulate(loss, th0, replicas=4, seed=5, backend="numba", **kw)
    assert np.array_equal(few.theta, ref.theta[:4])
    assert all(np.array_equal(few.observables[k], ref.observables[k][:, :4], equal_nan=True) for k in few.observables)
    other = ns.simulate(loss, th0, replicas=R, seed=6, backend="numba", **kw)
    assert not np.array_equal(other.theta, ref.theta)
    if case == "divergence":
        assert 0 < ref.n_diverged < R
        div = ref.diverged
        assert np.all(np.isfinite(ref.theta))
        for r in np.nonzero(div)[0]:  # records stop at divergence (NaN afterwards)
            after = ref.times >= ref.divergence_step[r]
            assert np.all(np.isnan(ref["loss"][after, r])) and np.all(np.isfinite(ref["loss"][~after, r]))


# ------------------------------------------------------------------------------------------
# against references
# ------------------------------------------------------------------------------------------


def reference_grad(expr, theta, data):
    g = [sp.diff(expr, t).replace(sp.DiracDelta, lambda *a: sp.S.Zero) for t in theta]  # away from kinks
    return sp.lambdify([list(theta), list(data)], [expr, *g], modules="numpy")


@pytest.mark.parametrize("expr", [
    "(a*b*x - y)**2", "Max(0, a*x)*b - y", "Abs(a - x)*b + exp(a*y)", "log(1 + a**2*x**2) + sin(b*y)",
    "Piecewise((a*x, x > 0), (b*y, True))**2", "tanh(a*x + b) * y", "(a**2 + b**2)**Rational(1, 2) * x",
    "Heaviside(a - x)*b**2 + Min(a, b*y)",
])
def test_scalar_kernel_code_matches_sympy_diff(expr):
    a, b, x, y = sp.symbols("a b x y", real=True)
    e = sp.sympify(expr, locals={"a": a, "b": b, "x": x, "y": y})
    graph = Graph((a, b, x, y))
    root = graph.add(e)
    mod = load_generated(scalar_gradient_source(graph, root, 2, "f"))
    ref = reference_grad(e, [a, b], [x, y])
    rng = np.random.default_rng(0)
    for _ in range(12):
        th, xy = rng.uniform(-2, 2, 2), rng.uniform(-2, 2, 2)
        if abs(th[0] - xy[0]) < 0.05 or abs(th[0] * xy[0]) < 0.05 or abs(th[0] - th[1] * xy[1]) < 0.05:
            continue  # away from kinks, where the one-sided choices may differ
        g = np.zeros(2)
        val = mod.f(th, xy, g)
        want = ref(list(th), list(xy))
        assert np.allclose([val, *g], want, rtol=1e-12, atol=1e-12), (expr, th, xy)


@pytest.mark.parametrize("which", ["scalar", "network-batch", "network-sample"])
def test_full_batch_gd_agrees_with_the_numpy_backend_to_rounding(which, monkeypatch):
    # no randomness at all: full-batch GD on a dataset; the NumPy backend is the reference
    N = 40 if which == "network-batch" else 3  # 3 rows: below the matmul path's batch size
    loss = cached(f"relu-gd-{which}", lambda: relu_dataset_net(N=N))
    if which == "scalar":
        loss = cached("relu-gd-scalar-nofast", lambda: ns.Loss(loss.expr, list(loss.params), data=dict(loss.dataset)))
    if which == "network-sample":
        monkeypatch.setattr(_fused, "_NETWORK_MIN_N", 0)
    th0 = np.linspace(-1, 1, 20)
    kw = dict(lr=0.05, steps=200, replicas=2, optimizer="gd", record=["loss", "grad_norm2", "sharpness"], every=50,
              momentum=0.5, weight_decay=0.01)
    fused = ns.simulate(loss, th0, backend="numba", **kw)
    ref = ns.simulate(loss, th0, backend="numpy", **kw)
    assert fused.settings["backend"] == "numba" and ref.settings["backend"] == "numpy"
    assert kernel_shapes(loss) == ({"scalar"} if which == "scalar" else {"network"})
    assert np.allclose(fused.theta, ref.theta, rtol=1e-9, atol=1e-12)
    for k in ("loss", "grad_norm2", "sharpness"):
        assert np.allclose(fused[k], ref[k], rtol=1e-9, atol=1e-12)


def test_gd_on_a_linear_network_uses_the_exact_mean_gradient_at_any_size():
    # x ~ N(0, I₃), y = V x + ε: E‖W₂W₁x − y‖² = ‖W₂W₁ − V‖²_F + tr Σ_ε, so
    # ∇_{W₁} = 2 W₂ᵀ(W₂W₁ − V), ∇_{W₂} = 2 (W₂W₁ − V) W₁ᵀ (derived by hand); one GD step
    net = cached("teacher-3-4-2", lambda: ns.families.gaussian_teacher(ns.families.linear_net([3, 4, 2])))
    th0 = np.random.default_rng(0).standard_normal(net.n)
    W1, W2, V = th0[:12].reshape(4, 3), th0[12:].reshape(2, 4), np.eye(2, 3)
    E = W2 @ W1 - V
    want = th0 - 0.05 * np.concatenate([(2 * W2.T @ E).ravel(), (2 * E @ W1.T).ravel()])
    for be in ("numba", "numpy"):
        res = ns.simulate(net, th0, lr=0.05, steps=1, replicas=1, optimizer="gd", backend=be)
        assert "exact E[g]" in res.settings["gd"]
        assert np.allclose(res.theta[0], want, rtol=1e-12, atol=1e-13), be


def test_gd_on_a_relu_network_runs_on_a_stated_dataset_gradient():
    # the exact moments of a ReLU loss are refused: GD runs on fixed draws and says so
    net = cached("relu-teacher", lambda: ns.families.teacher_net([2, 3, 1], "relu"))
    th0 = np.random.default_rng(1).standard_normal(net.n)
    res = ns.simulate(net, th0, lr=0.05, steps=300, replicas=1, optimizer="gd", backend="numba")
    assert "fixed draws" in res.settings["gd"] and res.n_diverged == 0
    # GD on the empirical loss of those draws decreases that loss; a second run is identical
    again = ns.simulate(net, th0, lr=0.05, steps=300, replicas=1, optimizer="gd", backend="numba")
    assert np.array_equal(res.theta, again.theta)
    rows = make_sampler(net).draw(np.random.default_rng(7), (20_000,))
    before, after = (compiled(net).value(np.broadcast_to(t, (20_000, net.n)), rows).mean()
                     for t in (th0, res.theta[0]))
    assert after < before


def test_sgd_stationary_variance_matches_the_closed_form_on_both_backends():
    # ℓ = (w − x)²/2, x ~ N(1, 2): w' = (1 − η) w + η x, stationary Var w = 4 η / (2 − η),
    # mean 1. 4,000 replicas after 400 steps (relaxed: (1 − η)^800 ~ 1e-18); tolerance 5
    # standard errors of the variance (√(2/R) relative) and of the mean.
    loss = cached("echo", echo_loss)
    eta, R = 0.1, 4000
    want_var = 4 * eta / (2 - eta)
    stats = {}
    for be in ("numba", "numpy"):
        res = ns.simulate(loss, [0, 0, 0, 0], lr=eta, batch_size=1, steps=400, replicas=R, seed=11, backend=be)
        w = res.theta[:, 0]
        assert abs(w.mean() - 1) < 5 * np.sqrt(want_var / R), be
        assert abs(w.var() / want_var - 1) < 5 * np.sqrt(2 / R), be
        stats[be] = w
    # the two backends' samples are draws of one law: two-sample KS p > 1e-4
    assert st.ks_2samp(stats["numba"], stats["numpy"]).pvalue > 1e-4


def test_backends_agree_in_distribution_on_the_rescaling_model():
    # different streams, same law: u² after 1,500 steps over 1,500 replicas per backend.
    # Means within 5 standard errors of their difference, variances within 25% (relative
    # standard error √(2/R)·(kurtosis factor) ≈ 5%), two-sample KS p > 1e-4.
    loss = cached("rescaling", rescaling_loss)
    out = {}
    for be in ("numba", "numpy"):
        res = ns.simulate(loss, [2.0, 0.5, -0.25, 1.0], lr=0.01, batch_size=1, steps=1500, replicas=1500, seed=4,
                          backend=be)
        assert res.n_diverged == 0
        out[be] = res.theta[:, 0] ** 2
    a, b = out["numba"], out["numpy"]
    se = np.sqrt(a.var() / a.size + b.var() / b.size)
    assert abs(a.mean() - b.mean()) < 5 * se
    assert abs(a.var() / b.var() - 1) < 0.25
    assert st.ks_2samp(a, b).pvalue > 1e-4


# ------------------------------------------------------------------------------------------
# choosing the backend; bad input
# ------------------------------------------------------------------------------------------


def test_auto_uses_numba_and_falls_back_with_a_reason(monkeypatch):
    loss = cached("rescaling", rescaling_loss)
    kw = dict(lr=0.01, batch_size=1, steps=5, replicas=2)
    # a short run stays on NumPy (compiling would cost more), whatever the replica count
    for R in (2, 3):
        short = ns.simulate(loss, [2.0, 0.5, -0.25, 1.0], backend="auto", **{**kw, "replicas": R})
        assert short.settings["backend"] == "numpy" and "short run" in short.settings["backend_note"]
    monkeypatch.setattr(_fused, "AUTO_MIN_STEPS", 0)
    assert ns.simulate(loss, [2.0, 0.5, -0.25, 1.0], backend="auto", **kw).settings["backend"] == "numba"
    epochs = ns.simulate(cached("relu-data", relu_dataset_net), np.linspace(-1, 1, 20), backend="auto",
                         replace=False, **kw)
    assert epochs.settings["backend"] == "numpy" and "replace=False" in epochs.settings["backend_note"]
    with pytest.raises(InvalidArgumentError, match="replace=False"):
        ns.simulate(cached("relu-data", relu_dataset_net), np.linspace(-1, 1, 20), backend="numba", replace=False,
                    **kw)
    with pytest.raises(InvalidArgumentError, match="backend must be one of"):
        ns.simulate(loss, [2.0, 0.5, -0.25, 1.0], backend="cuda", **kw)


def test_without_numba_numba_is_an_error_and_auto_an_announced_fallback(monkeypatch):
    monkeypatch.setattr(_fused, "AUTO_MIN_STEPS", 0)
    monkeypatch.setattr(_fused, "numba_status", lambda: (False, "numba is not importable (test)"))
    monkeypatch.setattr(_fused, "_WARNED", set())
    loss = cached("rescaling", rescaling_loss)
    kw = dict(lr=0.01, batch_size=1, steps=5, replicas=2)
    with pytest.raises(MissingDependencyError, match="pip install"):
        ns.simulate(loss, [2.0, 0.5, -0.25, 1.0], backend="numba", **kw)
    with pytest.warns(BackendFallbackWarning, match="not importable"):
        res = ns.simulate(loss, [2.0, 0.5, -0.25, 1.0], backend="auto", **kw)
    assert res.settings["backend"] == "numpy"


@pytest.mark.parametrize("kind", ["special-function", "distribution"])
def test_a_loss_the_kernel_cannot_express_is_refused_or_announced(kind, monkeypatch):
    monkeypatch.setattr(_fused, "AUTO_MIN_STEPS", 0)
    monkeypatch.setattr(_fused, "_WARNED", set())
    if kind == "special-function":
        x = Normal("x", 0, 1)
        loss = ns.Loss((sp.erf(W * x) - x) ** 2, [W], name="erf loss")
        match = "no compiled"
    else:
        e = Exponential("e", 2)
        loss = ns.Loss((W - e) ** 2, [W], name="exponential data")
        match = "ExponentialDistribution"
    kw = dict(lr=0.01, batch_size=1, steps=5, replicas=2)
    with pytest.raises(InvalidArgumentError, match=match):
        ns.simulate(loss, [0.5], backend="numba", **kw)
    with pytest.warns(BackendFallbackWarning, match=match):
        res = ns.simulate(loss, [0.5], backend="auto", **kw)
    assert res.settings["backend"] == "numpy" and np.all(np.isfinite(res.theta))
