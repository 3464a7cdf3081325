"""The generic symmetry finder (THEORY §2, §3, §8): counts, exactness, canonical form.

Expected values never come from the finder itself: generator counts are the closed forms
of THEORY §7 (Σ d_i(d_i+1)/2 for linear networks, Σ hidden widths for ReLU networks), and
the number of independent charges of a linear network is computed here from the charge
formula W_iW_iᵀ − W_{i+1}ᵀW_{i+1} alone (numerical rank of its Jacobian).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from helpers import gl_count as _gl_count
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm

import noether_sym as ns

# ------------------------------------------------------------------------------------------
# independent references
# ------------------------------------------------------------------------------------------


def linear_charge_rank(dims: list[int], seed: int = 0) -> int:
    """Generic rank of the entries of Q_i = W_iW_iᵀ − W_{i+1}ᵀW_{i+1} (hidden layers i).

    Computed from the formula only: the Jacobian of θ -> (all entries of all Q_i) at random
    θ, numerical rank by SVD (gap is huge for these sizes)."""
    rng = np.random.default_rng(seed)
    Ws = [rng.standard_normal((dims[l + 1], dims[l])) for l in range(len(dims) - 1)]
    sizes = [W.size for W in Ws]
    offs = np.cumsum([0] + sizes)
    n = offs[-1]
    rows = []
    for i in range(len(Ws) - 1):
        A, B = Ws[i], Ws[i + 1]  # Q = A Aᵀ − Bᵀ B, (d x d)
        d = A.shape[0]
        for a in range(d):
            for b in range(a, d):
                g = np.zeros(n)
                gA = np.zeros_like(A)
                gA[a, :] += A[b, :]
                gA[b, :] += A[a, :]
                gB = np.zeros_like(B)
                gB[:, a] -= B[:, b]
                gB[:, b] -= B[:, a]
                g[offs[i] : offs[i + 1]] = gA.ravel()
                g[offs[i + 1] : offs[i + 2]] = gB.ravel()
                rows.append(g)
    if not rows:
        return 0
    s = np.linalg.svd(np.array(rows), compute_uv=False)
    return int(np.sum(s > 1e-9 * s[0]))


def lambdified_loss(loss: ns.Loss):
    """The loss as an independent NumPy function (sympy.lambdify, not our compiler)."""
    f = sp.lambdify([list(loss.theta), list(loss.x)], loss.sample_expr, modules="numpy")
    return f


def check_e3(loss: ns.Loss, A: sp.Matrix, rng: np.random.Generator, trials: int = 20) -> float:
    """max relative |ℓ(e^{λA}θ, x) − ℓ(θ, x)| over random θ, x, λ (E3)."""
    f = lambdified_loss(loss)
    An = np.array(A.tolist(), dtype=float)
    worst = 0.0
    for _ in range(trials):
        th = rng.standard_normal(loss.n)
        x = rng.standard_normal(len(loss.x))
        lam = rng.uniform(-1, 1)
        a = f(th, x)
        b = f(expm(lam * An) @ th, x)
        worst = max(worst, abs(a - b) / max(1.0, abs(a)))
    return worst


def e4_symbolic(loss: ns.Loss, A: sp.Matrix) -> sp.Expr:
    """gᵀAθ expanded with SymPy (independent of the FLINT engine); small losses only."""
    th = sp.Matrix(loss.theta)
    g = sp.Matrix([sp.diff(loss.sample_expr, t) for t in loss.theta])
    return sp.expand((g.T * A * th)[0, 0])


def span_equal(As: list[sp.Matrix], Bs: list[sp.Matrix]) -> bool:
    if len(As) != len(Bs):
        return False
    if not As:
        return True
    MA = sp.Matrix([list(A) for A in As])
    MB = sp.Matrix([list(B) for B in Bs])
    return MA.rank() == MB.rank() == sp.Matrix.vstack(MA, MB).rank()


# ------------------------------------------------------------------------------------------
# counts on the network families
# ------------------------------------------------------------------------------------------

LINEAR = [[3, 2, 3], [5, 3, 2], [2, 4, 3, 2], [4, 2, 2, 5, 2], [2, 3, 4, 3, 2], [5, 5, 4]]
RELU = [([3, 4, 2], False), ([5, 3, 2], True), ([2, 6, 5, 3], False), ([4, 9, 3], True), ([3, 5, 4, 6, 2], True)]


@pytest.mark.parametrize("dims", LINEAR, ids=lambda d: "-".join(map(str, d)))
def test_linear_network_counts(dims):
    sym = ns.find_symmetries(ns.families.linear_net(dims))
    hidden = dims[1:-1]
    assert sym.n_generators == sum(d * (d + 1) // 2 for d in hidden)
    assert sym.n_independent_charges == linear_charge_rank(dims)
    assert len(sym.rotations) == sum(d * (d - 1) // 2 for d in hidden)
    assert not sym.unconfirmed


def test_linear_42252_has_21_generators_and_20_charges():
    sym = ns.find_symmetries(ns.families.linear_net([4, 2, 2, 5, 2]))
    assert sym.n_generators == 21
    assert sym.n_independent_charges == 20  # THEORY §3


@pytest.mark.parametrize("dims,bias", RELU, ids=lambda v: str(v))
def test_relu_network_counts(dims, bias):
    sym = ns.find_symmetries(ns.families.relu_net(dims, bias=bias))
    assert sym.n_generators == sum(dims[1:-1])
    assert sym.n_independent_charges == sum(dims[1:-1])
    assert sym.rotations == []
    assert all(c == "indefinite" for c in sym.classes)
    for A in sym.generators:  # per-neuron rescalings are diagonal with entries ±1
        assert A.is_diagonal()
        assert set(A.diagonal()) <= {-1, 0, 1}


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_random_architectures(seed):
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(2, 5))
    dl = [int(w) for w in rng.integers(2, 6, size=depth + 1)]
    sym = ns.find_symmetries(ns.families.linear_net(dl))
    assert sym.n_generators == sum(d * (d + 1) // 2 for d in dl[1:-1])
    assert sym.n_independent_charges == linear_charge_rank(dl)
    dr = [int(w) for w in rng.integers(2, 10, size=depth + 1)]
    symr = ns.find_symmetries(ns.families.relu_net(dr, bias=bool(seed % 2)))
    assert symr.n_generators == symr.n_independent_charges == sum(dr[1:-1])


# ------------------------------------------------------------------------------------------
# small named cases
# ------------------------------------------------------------------------------------------


def test_product_of_three_has_two_generators():
    a, b, c = sp.symbols("a b c")
    sym = ns.find_symmetries(ns.Loss(a * b * c, [a, b, c]))
    assert sym.n_generators == 2
    for A in sym.generators:  # diagonal, trace zero: the scalings with a1 + a2 + a3 = 0
        assert A.is_diagonal() and A.trace() == 0


def test_monomial_activation_eigenvalues():
    loss = ns.families.mlp([2, 2, 1], activation="monomial", option=2)
    sym = ns.find_symmetries(loss)
    assert sym.n_generators == 2
    for A in sym.generators:
        eig = sorted(set(A.diagonal()) - {0})
        assert A.is_diagonal() and eig == [-2, 1]  # +1 on in-weights, -2 on out-weights (§7.4)


def test_leaky_relu_with_bias():
    sym = ns.find_symmetries(ns.families.mlp([3, 4, 2], activation="leaky_relu", bias=True))
    assert sym.n_generators == sym.n_independent_charges == 4


@pytest.mark.parametrize("act", ["tanh", "softplus", "sigmoid"])
def test_smooth_non_homogeneous_activations_have_none(act):
    sym = ns.find_symmetries(ns.families.mlp([2, 3, 1], activation=act))
    assert sym.n_generators == 0 and sym.n_independent_charges == 0


def test_scale_invariant_loss_identity_generator():
    t1, t2, t3, x, y = sp.symbols("t1 t2 t3 x y")
    r = sp.sqrt(t1**2 + t2**2 + t3**2)
    loss = ns.Loss(((t1 * x + t2 - t3 * x**2) / r - y) ** 2, [t1, t2, t3], data=[x, y])
    sym = ns.find_symmetries(loss)
    assert sym.generators == [sp.eye(3)]
    assert sym.classes == ["semidefinite"] and sym.inertia == [(3, 0, 0)]
    assert check_e3(loss, sp.eye(3), np.random.default_rng(0)) < 1e-10


def test_random_polynomial_has_none():
    rng = np.random.default_rng(3)
    ts = sp.symbols("t0:4")
    x = sp.Symbol("x")
    terms = [int(rng.integers(-3, 4)) * ts[i] ** int(rng.integers(1, 3)) * ts[j] * x ** int(rng.integers(0, 2))
             for i in range(4) for j in range(4)]
    expr = sp.Add(*terms) + ts[0] ** 3 * ts[1] - ts[2] * ts[3] ** 2 + 1
    sym = ns.find_symmetries(ns.Loss(expr, list(ts), data=[x]))
    assert sym.n_generators == 0


def test_shuffled_parameters_permute_generators():
    loss = ns.families.relu_net([3, 3, 2], bias=True)
    perm = np.random.default_rng(1).permutation(loss.n)
    shuffled = ns.Loss(loss.expr, [loss.params[i] for i in perm], data=list(loss.data_symbols))
    a, b = ns.find_symmetries(loss), ns.find_symmetries(shuffled)
    assert a.n_generators == b.n_generators and a.n_independent_charges == b.n_independent_charges
    P = sp.zeros(loss.n, loss.n)
    for new, old in enumerate(perm):
        P[new, old] = 1
    assert span_equal([P * A * P.T for A in a.generators], b.generators)


def test_rational_orthogonal_change_of_variables():
    # Cayley transform of a rational skew matrix: a rational orthogonal Q
    S = sp.Matrix([[0, sp.Rational(1, 2), 0], [-sp.Rational(1, 2), 0, sp.Rational(1, 3)], [0, -sp.Rational(1, 3), 0]])
    Q = (sp.eye(3) - S) * (sp.eye(3) + S).inv()
    assert sp.simplify(Q.T * Q - sp.eye(3)) == sp.zeros(3, 3)
    u, w1, w2, x1, x2, y = sp.symbols("u w1 w2 x1 x2 y")
    base = ns.Loss((u * (w1 * x1 + w2 * x2) - y) ** 2, [u, w1, w2], data=[x1, x2, y])
    p = sp.symbols("p0:3")
    old = Q * sp.Matrix(p)  # θ = Q φ
    rotated = ns.Loss(base.expr.subs(dict(zip([u, w1, w2], old)), simultaneous=True), list(p), data=[x1, x2, y])
    A = sp.diag(1, -1, -1)
    expected = Q.T * A * Q  # ℓ'(e^{λB}φ) = ℓ(Q e^{λB} Qᵀ θ) needs Q B Qᵀ = A
    sym = ns.find_symmetries(rotated)
    assert sym.n_generators == 1
    assert not sym.generators[0].is_diagonal()
    assert span_equal(sym.generators, [expected])


# ------------------------------------------------------------------------------------------
# exactness, (E3), (E4), (E9), determinism
# ------------------------------------------------------------------------------------------


@settings(max_examples=8, deadline=None)
@given(
    dims=st.lists(st.integers(2, 4), min_size=3, max_size=4),
    bias=st.booleans(),
    relu=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_generators_satisfy_e3_numerically_and_e4_exactly(dims, bias, relu, seed):
    loss = ns.families.relu_net(dims, bias=bias) if relu else ns.families.linear_net(dims)
    sym = ns.find_symmetries(loss, rotations=False)
    rng = np.random.default_rng(seed)
    for A in sym.generators:
        assert A.is_symmetric()
        assert all(v.is_Rational for v in A)
        assert check_e3(loss, A, rng, trials=5) < 1e-10
        ok, reason = ns.confirm_generator(loss, A)
        assert ok, reason


def test_e4_exact_by_independent_sympy_expansion():
    loss = ns.families.linear_net([2, 2, 2])
    sym = ns.find_symmetries(loss)
    for A in sym.generators:
        assert e4_symbolic(loss, A) == 0
    # and the check can fail: a non-generator
    B = sp.diag(*([1] * 4 + [0] * 4))
    assert e4_symbolic(loss, B) != 0
    assert not ns.confirm_generator(loss, B)[0]


def test_gradient_flow_conserves_every_charge_e9():
    loss = ns.families.relu_net([3, 3, 2], bias=True)
    sym = ns.find_symmetries(loss)
    for A in sym.generators:
        ok, why = ns.confirm_conservation(loss, A)
        assert ok, why
    ok, _ = ns.confirm_conservation(loss, sp.eye(loss.n))  # ReLU net is not scale invariant
    assert not ok


def test_basis_is_identical_across_seeds_and_routes():
    loss = ns.families.linear_net([3, 3, 2])
    runs = [ns.find_symmetries(loss, seed=s, route=r) for s, r in [(0, "structured"), (1, "structured"), (2, "dense"), (0, "exact")]]
    first = runs[0].generators
    for r in runs[1:]:
        assert r.generators == first


def test_canonical_form_is_rref_over_upper_triangle():
    sym = ns.find_symmetries(ns.families.linear_net([2, 3, 2]))
    n = sym.loss.n
    iu = [(i, j) for i in range(n) for j in range(i, n)]
    rows = [[A[i, j] for (i, j) in iu] for A in sym.generators]
    M = sp.Matrix(rows)
    R, piv = M.rref()
    assert R == M


def test_piecewise_and_heaviside_forms_agree_with_max():
    w, u, x, y = sp.symbols("w u x y")
    z = w * x
    forms = [sp.Max(0, z), sp.Piecewise((z, z > 0), (0, True)), z * sp.Heaviside(z), (z + sp.Abs(z)) / 2]
    for relu in forms:
        sym = ns.find_symmetries(ns.Loss((u * relu - y) ** 2, [u, w], data=[x, y]))
        assert sym.generators == [sp.diag(1, -1)], relu  # RREF: pivot entry +1


def test_unconfirmable_candidates_are_not_returned():
    # sign(θ1)·θ2: the numeric null space contains diag(0, 1)? No: the flow of diag(1, 0)
    # keeps sign(θ1); the finder must return exactly the confirmed ones.
    a, b, x = sp.symbols("a b x")
    sym = ns.find_symmetries(ns.Loss(sp.sign(a) * b * x, [a, b], data=[x]))
    for A in sym.generators:
        assert ns.confirm_generator(sym.loss, A)[0]
    assert sym.generators == [sp.diag(1, 0)]


# ------------------------------------------------------------------------------------------
# larger networks (the counts come from the formula d(d+1)/2, never from the finder)
# ------------------------------------------------------------------------------------------


def test_larger_linear_network_count_and_sparse_generators():
    dims = [8, 10, 8]  # n = 160: the structured route, support split into per-generator parts
    loss = ns.families.linear_net(dims)
    sym = ns.find_symmetries(loss, rotations=False)
    assert sym.n_generators == _gl_count(dims) == 55
    assert not sym.unconfirmed
    assert sym.n_independent_charges == linear_charge_rank(dims)
    # stored sparsely for large n, but still exact symmetric SymPy matrices
    A = sym.generators[0]
    assert isinstance(A, sp.MatrixBase) and A.shape == (loss.n, loss.n)
    entries = A.todok()
    assert all(v.is_Rational for v in entries.values())
    assert all(entries.get((j, i)) == v for (i, j), v in entries.items())
    # every returned generator is confirmed exactly, independently of the finder's own check
    for B in sym.generators[::11]:
        assert ns.confirm_generator(loss, B)[0]
    # the simulator's charges observable takes them without a dense float copy
    from noether_sym.simulate._observables import generator_arrays

    gens = generator_arrays(sym.generators, loss.n)
    th = np.random.default_rng(0).standard_normal((3, loss.n))
    dense = np.stack([np.einsum("ri,ij,rj->r", th, np.array(B.tolist(), dtype=float), th) for B in sym.generators], axis=1)
    assert np.allclose(gens.charges(th), dense, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("dims", [[10, 14, 10], [12, 16, 12]], ids=lambda d: "-".join(map(str, d)))
def test_large_linear_network_counts(dims):
    sym = ns.find_symmetries(ns.families.linear_net(dims), rotations=False)
    assert sym.n_generators == _gl_count(dims)
    assert sym.n_independent_charges == linear_charge_rank(dims)
    assert not sym.unconfirmed


def test_structured_route_refuses_problems_beyond_its_memory_budget(monkeypatch):
    from noether_sym.symmetry import _structured

    monkeypatch.setattr(_structured, "STRUCTURED_MAX_BYTES", 1000)
    with pytest.raises(ns.UnsupportedExpressionError, match="structured route would need"):
        ns.find_symmetries(ns.families.linear_net([3, 4, 3]), route="structured")


def test_inertia_fast_paths_match_eigenvalues():
    from noether_sym.symmetry._charges import inertia_of

    rng = np.random.default_rng(5)
    for _ in range(60):
        n = int(rng.integers(1, 6))
        M = sp.zeros(n, n)
        for i in range(n):
            for j in range(i, n):
                if rng.random() < 0.4:
                    M[i, j] = M[j, i] = sp.Rational(int(rng.integers(-3, 4)), int(rng.integers(1, 3)))
        ev = np.linalg.eigvalsh(np.array(M.tolist(), dtype=float))
        p, q = int(np.sum(ev > 1e-9)), int(np.sum(ev < -1e-9))
        assert inertia_of(M) == inertia_of(sp.SparseMatrix(M)) == (p, q, n - p - q)


# ------------------------------------------------------------------------------------------
# exact at any denominator, robust at any degree
# ------------------------------------------------------------------------------------------


def _cayley3(N):
    """A rational rotation (I - S)(I + S)⁻¹, S integer skew with 1 + a² + b² + c² = N: its
    entries have denominator N (when N is prime)."""
    import math

    for a in range(math.isqrt(N - 1), 0, -1):
        r = N - 1 - a * a
        for b in range(1, math.isqrt(r) + 1):
            c2 = r - b * b
            if c2 > 0 and math.isqrt(c2) ** 2 == c2:
                S = sp.Matrix([[0, a, b], [-a, 0, math.isqrt(c2)], [-b, -math.isqrt(c2), 0]])
                return (sp.eye(3) - S) * (sp.eye(3) + S).inv()
    raise AssertionError(N)


@pytest.mark.parametrize("N", [3701, 10**8 + 7])
@pytest.mark.parametrize("kind", ["relu", "tanh"])
def test_rotated_coordinates_give_exact_generators_at_any_denominator(N, kind):
    # the loss (u w x - y)² + (piece in v) in coordinates θ = Mφ; by hand its one generator
    # is Mᵀ diag(1, -1, 0) M (the rescaling of u, w), with denominators N
    u, w, v, x, y, z, y2 = sp.symbols("u w v x y z y2")
    M = _cayley3(N)
    assert max(sp.Rational(e).q for e in M) == N
    phi = sp.symbols("p0:3")
    sub = dict(zip([u, w, v], M * sp.Matrix(phi)))
    if kind == "relu":
        expr = (u * w * x - y) ** 2 + (sp.Max(0, v * z) - y2) ** 2
    else:
        expr = sp.tanh(u * w * x - y) ** 2 + sp.exp(v * z) * y2
    sym = ns.find_symmetries(ns.Loss(expr.xreplace(sub), params=list(phi), data=[x, y, z, y2]))
    E = M.T * sp.diag(1, -1, 0) * M
    assert sym.generators == [E / E[0, 0]]
    assert not [c for c in sym.unconfirmed if c.kind == "symmetric"]


def test_high_degree_losses_keep_their_generator():
    # (u w x - x)^d: the float pre-check used to overflow and reject diag(1, -1) from d ≈ 165
    u, w, x = sp.symbols("u w x")
    for d in range(150, 257):
        sym = ns.find_symmetries(ns.Loss((u * w * x - x) ** d, params=[u, w], data=[x]), rotations=False)
        assert sym.generators == [sp.diag(1, -1)], d
