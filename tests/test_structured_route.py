"""Every numeric route of find_symmetries finds the same, independently counted, generators.

The expected counts are derived by hand, not by the package: a ReLU network with generic
weights has one rescaling per hidden unit (scale its incoming weights and bias by e^λ and its
outgoing weights by e^-λ), so dim 𝒜 = Σ hidden widths and there are no rotations; a linear
network has GL(d_i) at every hidden layer, whose symmetric part has Σ d_i(d_i+1)/2 and
whose antisymmetric part Σ d_i(d_i-1)/2 generators.
"""

import numpy as np
import pytest

import noether_sym as ns
import noether_sym.symmetry._finder as finder
import noether_sym.symmetry._structured as structured
from noether_sym.symmetry._numeric import NULL_FLOOR, _gap_rank

# (4, 2, 2, 5, 2) with biases takes ~30 s per route on the shared 2-core machine: slow
RELU_DIMS = [(3, 4, 2, 2), (2, 3, 3, 1), pytest.param((4, 2, 2, 5, 2), marks=pytest.mark.slow)]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dims", RELU_DIMS)
def test_relu_routes_agree_with_hidden_width_count(dims, bias):
    loss = ns.families.relu_net(list(dims), bias=bias)
    expected = sum(dims[1:-1])
    for route in ("dense", "structured", "auto"):
        sym = ns.find_symmetries(loss, route=route)
        assert sym.n_generators == expected, (route, sym.certificate)
        assert len(sym.rotations) == 0, route
        assert not sym.unconfirmed, route
        comp = sym.certificate["completeness"]
        # narrow networks are degenerate at every point (functional dimension below n minus
        # the generators): the check may fail, but then it must say so, and the structured
        # route must have been cross-checked by the dense one
        if comp["complete"] is not True:
            assert comp["complete"] is False and comp["statement"], route
            if sym.certificate["route"] == "structured":
                assert comp["dense_cross_check"]["n_generators"] == expected
        # the structured route solved it itself, without the dense cross-check
        assert "fallback_from_structured" not in sym.certificate, route


@pytest.mark.parametrize("dims", [(3, 4, 2, 2), (2, 3, 3, 1)])
def test_linear_routes_agree_with_gl_count(dims):
    loss = ns.families.linear_net(list(dims))
    hidden = dims[1:-1]
    expected = sum(d * (d + 1) // 2 for d in hidden)
    expected_rot = sum(d * (d - 1) // 2 for d in hidden)
    for route in ("exact", "dense", "structured", "auto"):
        sym = ns.find_symmetries(loss, route=route)
        assert sym.n_generators == expected, (route, sym.certificate)
        assert len(sym.rotations) == expected_rot, route


def test_gap_rank_ignores_gaps_inside_rounding_noise():
    # the singular values of per-sample gradients of a bias-free ReLU network at a point
    # with a dead unit: 13 real values, then rounding noise whose exact-zero columns make a
    # larger ratio (1e16) far below the floor than the real gap (1e14)
    s = np.array([1.0, 0.69, 0.52, 0.41, 0.34, 0.33, 0.25, 0.2, 0.16, 0.11, 0.082, 0.051, 0.033,
                  1.0e-16, 5.9e-17, 4.3e-17, 4.0e-17, 2.9e-17, 2.8e-18, 2.2e-32, 4.9e-33, 2.5e-33,
                  8.7e-49, 3.4e-65])
    assert _gap_rank(s, 1e-5)[0] == 13
    # nothing at or above the floor may ever be called null, nor anything below it kept
    rank, _ = _gap_rank(s, 1e-5)
    assert np.all(s[:rank] / s[0] >= NULL_FLOOR) and np.all(s[rank:] / s[0] < 1e-5)


def test_incomplete_structured_result_falls_back_to_dense(monkeypatch):
    """A structured route that loses generators is caught by the completeness check."""

    def broken(loss, geo, sigma, tol):
        return [], {"route": "structured", "n_unknowns": 0}

    monkeypatch.setattr(finder, "_structured_null", broken)
    loss = ns.families.relu_net([3, 4, 2, 2])
    sym = ns.find_symmetries(loss, route="structured")
    assert sym.n_generators == 4 + 2
    assert "fallback_from_structured" in sym.certificate
    assert sym.certificate["completeness"]["complete"] is True


def test_incomplete_result_is_recorded_when_no_cross_check(monkeypatch):
    """Above the dense cross-check's size the shortfall is stated, never silent."""

    def broken(loss, geo, sigma, tol):
        return [], {"route": "structured", "n_unknowns": 0}

    monkeypatch.setattr(finder, "_structured_null", broken)
    monkeypatch.setattr(finder, "DENSE_CROSS_CHECK_MAX", 0)
    sym = ns.find_symmetries(ns.families.relu_net([3, 4, 2, 2]), route="structured")
    comp = sym.certificate["completeness"]
    assert sym.n_generators == 0
    assert comp["complete"] is False and "missing" in comp["statement"]
    assert min(d - f for d, f in zip(comp["gradient_null_dims"], comp["found_directions"])) >= 6


def test_structured_module_uses_the_fixed_rank():
    assert structured._gap_rank is _gap_rank
