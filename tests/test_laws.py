"""All conservation laws of gradient flow (Lie-bracket rank), against hand-derived counts.

The expected counts are derived by hand, never from the implementation: for
ℓ = (x(θ₁ + θ₂²) - y)² every per-sample gradient is a multiple of (1, 2θ₂), so V and its
brackets span one direction and θ₂e^{-2θ₁} is the one law (checked below along a
hand-written gradient flow); for linear regression the fields span Rⁿ (no law); for linear
networks W_L⋯W_1 the laws are the quadratic ones, Σ d(d+1)/2 over hidden widths d, and
for ReLU networks one per hidden neuron (Marcotte, Gribonval, Peyré 2023).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import noether_sym as ns


def test_non_quadratic_law_on_a_dataset():
    a, b, x, y = sp.symbols("a b x y")
    rng = np.random.default_rng(0)
    X = rng.standard_normal(20)
    Y = 2 * X + 0.1 * rng.standard_normal(20)
    loss = ns.Loss((x * (a + b**2) - y) ** 2, params=[a, b], data={x: X, y: Y})
    sym = ns.find_symmetries(loss)
    assert sym.generators == []
    assert sym.n_independent_charges == 0
    assert sym.n_conservation_laws == 1
    # the law, by hand: along θ̇ = -∇L (full-batch, hand-written), θ₂e^{-2θ₁} stays put
    th = np.array([0.3, 0.8])
    law0 = th[1] * np.exp(-2 * th[0])
    dt = 1e-4
    for _ in range(2000):  # RK2 in small steps: drift O(dt²) per unit time
        def grad(t):
            r = X * (t[0] + t[1] ** 2) - Y
            return np.array([np.mean(2 * r * X), np.mean(2 * r * X * 2 * t[1])])
        mid = th - 0.5 * dt * grad(th)
        th = th - dt * grad(mid)
    assert abs(th[1] * np.exp(-2 * th[0]) - law0) < 1e-6 * abs(law0)


def test_no_law_for_linear_regression():
    a, b, x, y = sp.symbols("a b x y")
    laws = ns.conservation_laws(ns.Loss((a * x + b * x**2 - y) ** 2, params=[a, b], data=[x, y]))
    assert laws.n_laws == 0 and laws.lie_rank == 2


@pytest.mark.parametrize("dims", [[2, 3, 2], [3, 2, 4], [2, 2, 2, 2], [3, 3, 3]])
def test_linear_networks_have_only_quadratic_laws(dims):
    expected = sum(d * (d + 1) // 2 for d in dims[1:-1])
    laws = ns.conservation_laws(ns.families.linear_net(dims))
    assert laws.n_laws == expected
    assert laws.certificate["points_agree"]


@pytest.mark.parametrize("dims,bias", [([2, 3, 2], True), ([3, 4, 2], False), ([4, 5, 3], True)])
def test_relu_networks_one_law_per_neuron(dims, bias):
    assert ns.conservation_laws(ns.families.relu_net(dims, bias=bias)).n_laws == sum(dims[1:-1])


def test_brackets_are_needed_for_deep_linear_nets():
    # V alone spans less than Lie(V): the count needs the brackets (depth ≥ 2)
    laws = ns.conservation_laws(ns.families.linear_net([2, 3, 2]))
    assert laws.depth >= 2


def test_transcendental_loss():
    # ℓ = (v·tanh(w x) - y)²: no symmetry of tanh's argument beyond w -> -w (discrete), so
    # the fields of two samples already span R² off a null set: no law
    v, w, x, y = sp.symbols("v w x y")
    assert ns.conservation_laws(ns.Loss((v * sp.tanh(w * x) - y) ** 2, params=[v, w], data=[x, y])).n_laws == 0


def test_bad_points_argument():
    u, w, x = sp.symbols("u w x")
    with pytest.raises(ns.InvalidArgumentError, match="points"):
        ns.conservation_laws(ns.Loss((u * w * x - x) ** 2, params=[u, w], data=[x]), points=0)


def test_disagreeing_ranks_are_refused_not_counted(monkeypatch):
    """A rank that differs between random points is a numerical failure (the Lie algebra has
    one generic dimension): the count must be refused, never reported from one of them."""
    import noether_sym as ns
    from noether_sym.symmetry import _laws

    calls = iter([5, 6, 5, 6])
    monkeypatch.setattr(_laws, "_lie_rank", lambda *a, **k: (next(calls), 1, 1e3, False))
    u, w = sp.symbols("u w")
    x = sp.Symbol("x")
    loss = ns.Loss((u * w * x - x) ** 2, params=[u, w], data={x: np.linspace(-1, 1, 5)})
    with pytest.raises(ns.CertificationError, match="not certified"):
        _laws.conservation_laws(loss)
