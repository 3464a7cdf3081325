"""The blocks route of the finder: counts against the theory, its certificate, its refusal."""

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

import noether_sym as ns
from noether_sym._errors import UnsupportedExpressionError
from noether_sym.compile._confirm import exact_model
from noether_sym.symmetry import _blocks
from noether_sym.symmetry._large import LazyCharges, canonical_sparse, inertia_sparse
from noether_sym.symmetry._local import local_confirm
from noether_sym.symmetry._modular import modular_generic_rank, rank_mod_p


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


# ---- the large-model bookkeeping: each piece against an independent computation ------------


def test_rank_mod_p_matches_rational_rank():
    rng = np.random.default_rng(3)
    p = 1_048_573
    for _ in range(10):
        m, c, r = (int(v) for v in rng.integers(1, 20, size=3))
        A = rng.integers(-4, 5, (m, r)) @ rng.integers(-4, 5, (r, c))
        assert rank_mod_p(A % p, p, block=int(rng.integers(1, 9))) == sp.Matrix(A).rank()


def test_modular_charge_rank_is_the_rank_of_the_directions():
    # generators diag(1,-1,0), diag(0,1,-1), diag(1,0,-1): rank 2 at every generic point
    gens = [{(0, 0): Fraction(1), (1, 1): Fraction(-1)}, {(1, 1): Fraction(1), (2, 2): Fraction(-1)},
            {(0, 0): Fraction(1), (2, 2): Fraction(-1)}]
    assert modular_generic_rank(gens, 3) == 2
    assert modular_generic_rank(gens[:1] + [{(0, 1): Fraction(1, 3), (1, 0): Fraction(1, 3)}], 3) == 2


def _hand_rescaling(loss, unit):
    """+1 on hidden unit ``unit``'s in-weights and bias, -1 on its out-weights (by name)."""
    J = {}
    for k, p in enumerate(loss.params):
        nm = str(p)
        if nm.startswith(f"W1_{unit}_") or nm == f"b1_{unit}":
            J[(k, k)] = Fraction(1)
        if nm.startswith("W2_") and nm.endswith(f"_{unit}"):
            J[(k, k)] = Fraction(-1)
    return J


def test_local_confirmation_agrees_with_the_full_engine():
    loss = ns.families.relu_net((4, 5, 3), bias=True)
    em = exact_model(loss)
    good = _hand_rescaling(loss, 2)
    assert local_confirm(loss, good).confirmed and em.confirm(good).confirmed
    rng = np.random.default_rng(0)
    for _ in range(6):  # random sparse symmetric candidates: both engines must agree
        J = {}
        for i, j in rng.integers(0, loss.n, size=(3, 2)):
            v = Fraction(int(rng.integers(-2, 3)))
            J[(int(i), int(j))] = J[(int(j), int(i))] = v
        J = {k: v for k, v in J.items() if v}
        if J:
            assert local_confirm(loss, J).confirmed == em.confirm(J).confirmed
    bad = dict(good)
    bad[(0, 0)] = Fraction(2)  # breaks the balance of unit 0's row
    assert not local_confirm(loss, bad).confirmed


def test_inertia_on_the_support_matches_numpy_eigenvalues():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = 9
        A = np.zeros((n, n), dtype=int)
        for i, j in rng.integers(0, n, size=(5, 2)):
            v = int(rng.integers(-3, 4))
            A[i, j] += v
            if i != j:
                A[j, i] += v
        ev = np.linalg.eigvalsh(A.astype(float))
        want = (int(np.sum(ev > 1e-9)), int(np.sum(ev < -1e-9)), int(np.sum(np.abs(ev) <= 1e-9)))
        D = {(int(i), int(j)): Fraction(int(A[i, j])) for i, j in zip(*np.nonzero(A))}
        assert inertia_sparse(D, n) == want


def test_canonical_sparse_is_the_rref_of_the_upper_triangle():
    n = 4
    mats = [{(0, 1): Fraction(2), (1, 0): Fraction(2), (3, 3): Fraction(1)},
            {(1, 1): Fraction(3), (2, 2): Fraction(-3)},
            {(0, 1): Fraction(1), (1, 0): Fraction(1), (1, 1): Fraction(1), (2, 2): Fraction(-1)}]
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    M = sp.Matrix([[sp.Rational(m.get(p, 0).numerator, m.get(p, 0).denominator) if p in m else 0 for p in pairs]
                   for m in mats])
    R, piv = M.rref()
    got = canonical_sparse(mats, n, 1)
    assert len(got) == len(piv)
    for k, A in enumerate(got):
        assert [A[i, j] for i, j in pairs] == list(R.row(k))


@pytest.mark.slow
def test_large_results_build_charges_on_access():
    # 12-16-12 (384 parameters) goes to the blocks route: GL(16) gives 136 generators and
    # 136 independent charges (W1 has full row rank at generic points)
    loss = ns.families.linear_net((12, 16, 12))
    sym = ns.find_symmetries(loss)
    assert sym.certificate["route"] == "blocks"
    assert sym.n_generators == sym.n_independent_charges == 136 and not sym.unconfirmed
    assert len(sym.rotations) == 120
    if isinstance(sym.charges, LazyCharges):
        th = loss.params
        A = sym.generators[5]
        want = sp.expand(sum(A[i, j] * th[i] * th[j] for (i, j) in A.todok()))
        assert sp.expand(sym.charges[5] - want) == 0


# ---- proofs by orbit (symmetry/_orbits.py) ---------------------------------------------------


def scaled_unit_net(d0, h, d2, special, factor=2):
    """The linear net (W2 D W1 x - y)² with D = diag(1, ..., factor at ``special``, ..., 1):
    the relabelling of hidden units that moves ``special`` is no symmetry of it."""
    x = [sp.Symbol(f"x_{j}") for j in range(d0)]
    y = [sp.Symbol(f"y_{j}") for j in range(d2)]
    W1, W2 = ns.matrix("W1", h, d0), ns.matrix("W2", d2, h)
    hid = [sp.Add(*[W1[i, j] * x[j] for j in range(d0)]) * (factor if i == special else 1) for i in range(h)]
    out = [sp.Add(*[W2[o, i] * hid[i] for i in range(h)]) for o in range(d2)]
    return ns.Loss(sp.Add(*[(out[o] - y[o]) ** 2 for o in range(d2)]), [W1, W2], data=x + y)


def swap_units(d0, h, d2, a, b):
    """{i: π(i)} swapping hidden units a and b (rows of W1, columns of W2), row-major."""
    perm = {}
    for j in range(d0):
        perm[a * d0 + j], perm[b * d0 + j] = b * d0 + j, a * d0 + j
    for o in range(d2):
        perm[h * d0 + o * h + a], perm[h * d0 + o * h + b] = h * d0 + o * h + b, h * d0 + o * h + a
    return perm


def test_permutation_proof_accepts_a_symmetry_and_rejects_a_broken_one():
    from noether_sym.symmetry._orbits import permutation_preserves_loss

    d0, h, d2 = 3, 4, 2
    rng = np.random.default_rng(1)
    for special, expect in ((None, True), (2, False)):
        loss = scaled_unit_net(d0, h, d2, -1 if special is None else special)
        perm = swap_units(d0, h, d2, 1, 2)
        # independent check of what the proof claims: ℓ(θ_π) against ℓ(θ) at a random point
        f = sp.lambdify([*loss.params, *loss.data_symbols], loss.expr)
        th, xy = rng.standard_normal(loss.n), rng.standard_normal(d0 + d2)
        th_p = th[[perm.get(i, i) for i in range(loss.n)]]
        assert bool(np.isclose(f(*th_p, *xy), f(*th, *xy))) is expect
        assert permutation_preserves_loss(loss, perm) is expect
    # a swap of two units that both stay clear of the special one is still a symmetry
    assert permutation_preserves_loss(scaled_unit_net(d0, h, d2, 3), swap_units(d0, h, d2, 0, 1)) is True


def gl_pair(d0, h, d2, a, b):
    """E_ab + E_ba on the rows of W1 and, negated, on the columns of W2 (sparse)."""
    J = {}
    for j in range(d0):
        J[(a * d0 + j, b * d0 + j)] = J[(b * d0 + j, a * d0 + j)] = Fraction(1)
    for o in range(d2):
        p, q = h * d0 + o * h + a, h * d0 + o * h + b
        J[(p, q)] = J[(q, p)] = Fraction(-1)
    return J


def test_orbit_confirmation_does_not_carry_a_proof_across_a_broken_permutation():
    from noether_sym.symmetry._orbits import orbit_confirm

    d0, h, d2, special = 3, 5, 2, 3
    loss = scaled_unit_net(d0, h, d2, special)
    good = gl_pair(d0, h, d2, 0, 1)  # units 0 and 1 are interchangeable: a generator
    image = gl_pair(d0, h, d2, 2, 4)  # its image under a proven relabelling: a generator
    broken = gl_pair(d0, h, d2, 0, special)  # its "image" under the broken swap (1 special): not one
    calls = []

    def prove(J):
        calls.append(J)
        res = local_confirm(loss, J)
        return res.confirmed, res.reason

    groups = [[(0, 0), (1, 1)]]  # rows of W1 with columns of W2
    out, info = orbit_confirm(loss, [good, image, broken], groups, prove)
    assert [ok for ok, _ in out] == [True, True, False]
    assert info["groups"][0]["transpositions_not_proven"] == [special]
    assert len(calls) == 2  # the image needed no proof of its own, the broken one did
    # the hand check of the claims: N = -D M D⁻¹ is the true partner of M on the columns of W2
    assert not local_confirm(loss, broken).confirmed and local_confirm(loss, image).confirmed


def test_blocks_route_with_a_broken_unit_matches_the_hand_count():
    # M symmetric with M_{a,s} = 0 (a ≠ s) keeps D M D⁻¹ symmetric: h(h+1)/2 - (h-1) generators,
    # h(h-1)/2 - (h-1) rotations; the permutation proofs must leave unit s out
    d0, h, d2, special = 12, 14, 12, 5
    loss = scaled_unit_net(d0, h, d2, special)
    assert loss.n > 300
    sym = ns.find_symmetries(loss)
    assert sym.certificate["route"] == "blocks" and not sym.unconfirmed
    assert sym.n_generators == h * (h + 1) // 2 - (h - 1)
    assert len(sym.rotations) == h * (h - 1) // 2 - (h - 1)
    groups = sym.certificate["symmetric"]["orbit_proofs"]["groups"]
    assert [g["transpositions_not_proven"] for g in groups if g["units"] == h] == [[special]]
    # every generator checked against the hand-written gradient at random points
    rng = np.random.default_rng(3)
    D = np.ones(h)
    D[special] = 2.0
    for _ in range(3):
        th = rng.standard_normal(loss.n)
        x, y = rng.standard_normal(d0), rng.standard_normal(d2)
        W1, W2 = th[: h * d0].reshape(h, d0), th[h * d0 :].reshape(d2, h)
        hid = D * (W1 @ x)
        r = W2 @ hid - y
        g = np.concatenate([(2 * D[:, None] * (W2.T @ r)[:, None] * x[None, :]).ravel(), (2 * np.outer(r, hid)).ravel()])
        for A in sym.generators:
            At = np.zeros(loss.n)
            for (i, j), v in A.todok().items():
                At[i] += float(v) * th[j]
            assert abs(g @ At) <= 1e-9 * np.abs(g).sum() * np.abs(At).sum()


def test_too_many_result_entries_are_refused_with_the_estimate(monkeypatch):
    # 3-4-2: 10 GL generators of about 10 entries each; at 256 MiB per entry they cannot fit
    loss = ns.families.linear_net((3, 4, 2))
    monkeypatch.setattr(_blocks, "_BYTES_PER_ENTRY", 2**28)
    with pytest.raises(UnsupportedExpressionError, match=r"nonzero entries, about .* GiB as exact sparse"):
        ns.find_symmetries(loss, route="blocks")


@pytest.mark.parametrize("sigma", [1, -1])
def test_array_candidates_give_the_same_canonical_basis_and_rank(sigma):
    # echelon-form candidates with two values each (as the blocks route makes them), on
    # n = 80 > SPARSE_ABOVE; the array path must give the RREF that sympy computes here,
    # and the modular charge rank must equal the exact rank of [A_1θ ... A_kθ]
    from noether_sym.symmetry._canonical import SparseGen

    n, rng = 80, np.random.default_rng(5)
    mats = []
    for a in range(0, 60, 4):
        J = {}
        for t in range(3):
            v = Fraction(int(rng.integers(1, 5)), int(rng.integers(1, 4)))
            i, j = a + t, a + t + 1 + (int(rng.integers(0, 10)) if t else 0)
            J[(i, j)] = v
            J[(j, i)] = sigma * v
        J[(a, a + 1)] = J[(a, a + 1)] * 3  # a non-unit lead: the basis must be rescaled
        J[(a + 1, a)] = sigma * J[(a, a + 1)]
        mats.append(J)
    got = canonical_sparse([SparseGen.from_dict(J) for J in mats], n, sigma)
    pairs = [(i, j) for i in range(n) for j in range(i + (sigma == -1), n)]
    M = sp.Matrix([[sp.Rational(J[p].numerator, J[p].denominator) if p in J else 0 for p in pairs] for J in mats])
    R, piv = M.rref()
    assert len(got) == len(piv)
    for k, A in enumerate(got):
        assert [A[i, j] for i, j in pairs] == list(R.row(k))
        assert A.T == sigma * A
    theta = rng.integers(-5, 6, size=n)
    cols = sp.Matrix.hstack(*[sp.Matrix(n, 1, lambda i, _c, J=J: sum(
        sp.Rational(v.numerator, v.denominator) * int(theta[j]) for (r, j), v in J.items() if r == i)) for J in mats])
    exact = cols.rank()
    assert modular_generic_rank([SparseGen.from_dict(J) for J in mats], n) == exact
