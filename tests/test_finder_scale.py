"""The blocks route of the finder: counts against the theory, its certificate, its refusal."""

import numpy as np
import pytest
import sympy as sp

import noether_sym as ns
from noether_sym._errors import UnsupportedExpressionError
from noether_sym.symmetry import _blocks


def gl_count(dims):
    return sum(d * (d + 1) // 2 for d in dims[1:-1])


@pytest.mark.parametrize("dims", [(3, 4, 2), (2, 3, 3, 2), (4, 2, 5)])
def test_blocks_route_linear_counts(dims):
    sym = ns.find_symmetries(ns.families.linear_net(dims), route="blocks")
    assert sym.n_generators == gl_count(dims) and not sym.unconfirmed
    assert sym.certificate["completeness"]["complete"] is True


def test_blocks_route_relu_with_bias_matches_hand_rescaling():
    dims = (3, 4, 2)
    loss = ns.families.relu_net(dims, bias=True)
    sym = ns.find_symmetries(loss, route="blocks")
    assert sym.n_generators == sym.n_independent_charges == 4
    # hand-written rescaling of hidden unit 0: +1 on row 0 of W1 and b1_0, -1 on column 0 of W2
    A = np.zeros((loss.n, loss.n))
    names = [str(p) for p in loss.params]
    for k, nm in enumerate(names):
        if nm.startswith("W1_0_") or nm == "b1_0":
            A[k, k] = 1
        if nm.startswith("W2_") and nm.endswith("_0"):
            A[k, k] = -1
    span = np.array([np.array(G, dtype=float).ravel() for G in sym.generators])
    coef, *_ = np.linalg.lstsq(span.T, A.ravel(), rcond=None)
    assert np.allclose(span.T @ coef, A.ravel(), atol=1e-12)


def test_blocks_certificate_fails_outside_the_ansatz():
    # LayerNorm's generators 11ᵀ ⊗ S are not row/column operators: the certificate must say so
    loss = ns.families.normalized_mlp((2, 3, 1), norm="layer")
    sym = ns.find_symmetries(loss, route="blocks")
    comp = sym.certificate["completeness"]
    assert comp["complete"] is False and "structured" in comp["statement"]
    assert ns.find_symmetries(loss).n_generators == 4  # the general route: 1 + 2·3/2


def test_too_large_for_the_blocks_route_is_refused_with_the_estimate(monkeypatch):
    monkeypatch.setattr(_blocks, "BLOCK_MAX_BYTES", 2**20)
    with pytest.raises(UnsupportedExpressionError, match=r"blocks route would need about .* GiB"):
        ns.find_symmetries(ns.families.linear_net((3, 4, 2)), route="blocks")


def test_restricted_sides_are_reported(monkeypatch):
    monkeypatch.setattr(_blocks, "BLOCK_MAX_UNKNOWNS", 30)
    sym = ns.find_symmetries(ns.families.relu_net((6, 3, 2)), route="blocks")
    assert sym.certificate["symmetric"]["diagonal_sides"]
    assert sym.n_generators == 3  # per-neuron rescalings are diagonal: still found


@pytest.mark.parametrize("name", ["attention-head", "normalized-mlp", "residual-block", "conv1d"])
def test_architecture_families_on_both_routes(name):
    fam = ns.families.get(name)
    loss = fam.build()
    expected = fam.extra["n_generators"](**fam.options)
    assert ns.find_symmetries(loss).n_generators == expected
    sym = ns.find_symmetries(loss, route="blocks")
    assert sym.n_generators == expected and sym.certificate["completeness"]["complete"] is True


def test_layernorm_count_against_hand_generator():
    loss = ns.families.normalized_mlp((2, 3, 1), norm="layer")
    # 11ᵀ ⊗ S with S = E_00 on W1 (3 x 2, row-major): an exact generator
    A = sp.zeros(loss.n, loss.n)
    for i in range(3):
        for j in range(3):
            A[2 * i, 2 * j] = 1
    assert ns.confirm_generator(loss, A)[0]
