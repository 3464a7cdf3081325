"""Symmetries: the ``blocks`` route -- generators in the row/column ansatz of the declared parameter blocks.

Design
------
Every layer-wise GL symmetry, per-neuron rescaling and norm symmetry acts on a parameter
matrix W (a block declared with :func:`~noether_sym.matrix`, flattened row-major) from the
left or from the right: W -> e^{λM} W e^{λN}. Its generator is block diagonal,

    A = ⊕_b (M_b ⊗ I_{c_b} + I_{r_b} ⊗ N_b),

with small unknown matrices M_b (r_b x r_b, acting on the rows of block b) and N_b
(c_b x c_b, acting on its columns); vector blocks have only the row side, scalars only a
multiple of themselves. For a sample with gradient blocks G_b the equation (E4) reads

    Σ_b ⟨M_b, G_b W_bᵀ⟩ + ⟨N_b, W_bᵀ G_b⟩ = 0,

one linear equation in Σ_b (r_b² + c_b²)/2 unknowns (A maps W_b to M_b W_b + W_b N_bᵀ) instead of n(n+1)/2 (for the linear
network 784-64-10: about 5,000 instead of 1.3·10⁹). The redundancy M = tI, N = −tI is
removed by dropping N_b[0, 0]. When the full ansatz exceeds :data:`BLOCK_MAX_UNKNOWNS`, the
largest sides are restricted to diagonal operators (per-row / per-column rescalings), and
the certificate says which sides were restricted.

The system is solved numerically at random points: one set of sample points gives the
equations of both signs (symmetric generators and rotations); the null space of the stacked
equations comes from a Cholesky factorization with complete pivoting of their Gram matrix
(BLAS-3, a fraction of a dense eigen-decomposition), cut at the largest gap of its pivots as
singular values are; the null vectors are put in reduced row echelon form, rounded to
rationals and expanded into sparse n x n candidates (:class:`~._canonical.SparseGen`
arrays), which the finder confirms exactly like every other route -- by orbit when
permutation symmetries of the loss relate them (:mod:`._orbits`; the route proposes the
groups of coupled sides, ``linked_sides``). A loss that supplies a vectorized per-sample
gradient (``loss.fast_grad``) is sampled through it. Memory is estimated before anything is
allocated; a loss beyond :data:`BLOCK_MAX_BYTES` is refused with the estimate.

Completeness certificate. The ansatz can miss a symmetry that mixes blocks or acts on a
restricted side. At random points θ, every direction Aθ (A a generator or a rotation) lies
in the null space of the stacked per-sample gradients; :func:`block_completeness` compares
the rank of the found directions with the dimension of that null space. Equal: nothing was
missed at these points. Different, or too large to measure: the certificate says so, and
``route="structured"`` or ``"dense"`` is the general route to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.linalg import blas, lapack, solve_triangular

from .._errors import UnsupportedExpressionError
from ..compile._compiled import CompiledLoss
from ..loss._loss import Loss
from ._canonical import SparseGen, _round_rational
from ._numeric import (
    COMPLETENESS_MAX_BYTES,
    KINK_MARGIN,
    MIN_GAP,
    _gap_rank,
    _generic_points,
    _null_from_svd,
    _sample_rows,
    completeness_verdict,
)

__all__ = ["BLOCK_MAX_BYTES", "BLOCK_MAX_UNKNOWNS", "block_completeness", "block_memory_estimate", "has_matrix_blocks"]

#: the full ansatz is used while it has at most this many unknowns; beyond, the largest
#: sides are restricted to diagonal operators (the pivoted Cholesky solve grows as unknowns³)
BLOCK_MAX_UNKNOWNS = 6_000
#: memory the blocks route may use: the equation rows, their Gram matrix and its factor,
#: one chunk of sample points; also the bound on the exact generators it returns
BLOCK_MAX_BYTES = 4 * 2**30
#: the blocks route's sample points share each random θ among this many data points x
#: (drawing θ is the larger cost for networks; with many data symbols the equations at one
#: θ and different x are as good as fresh ones, and every candidate is proven exactly)
SAMPLES_PER_THETA = 4
#: ... when the loss has at least this many data symbols (with few, the equations at one θ
#: span few directions, and without data they would repeat)
SHARED_THETA_FROM_D = 8
#: memory one chunk of sample points may use (θ, x and the gradients)
_CHUNK_BYTES = 256 * 2**20


@dataclass
class _Side:
    """One side of a block: the operator acting on its rows (``axis=0``) or columns (1)."""

    block: int
    axis: int
    size: int
    full: bool
    offset: int = 0  # first unknown
    count: int = 0  # number of unknowns
    drop_first: bool = False  # N[0, 0] is fixed to 0 (identity redundancy)


def _block_shapes(loss: Loss) -> list[tuple[int, int, int]]:
    """(start, rows, cols) of every declared block; vectors are columns, scalars 1 x 1."""
    out = []
    for blk in loss.blocks:
        start = blk.slice.start
        if len(blk.shape) == 2:
            r, c = blk.shape
        elif len(blk.shape) == 1:
            r, c = blk.shape[0], 1
        else:
            r, c = 1, 1
        out.append((start, int(r), int(c)))
    return out


def has_matrix_blocks(loss: Loss) -> bool:
    """Whether some declared block is a matrix with at least two rows and two columns."""
    return any(r > 1 and c > 1 for _, r, c in _block_shapes(loss))


def _count(size: int, full: bool, sigma: int, drop_first: bool) -> int:
    if sigma == 1:
        k = size * (size + 1) // 2 if full else size
        return k - int(drop_first)
    return size * (size - 1) // 2 if full else 0


def _plan(loss: Loss, sigma: int) -> tuple[list[_Side], list[str]]:
    """The sides of the ansatz, with sides restricted to diagonal operators until the
    symmetric ansatz fits :data:`BLOCK_MAX_UNKNOWNS` (the same plan for both signs)."""
    shapes = _block_shapes(loss)
    sides: list[_Side] = []
    for b, (_, r, c) in enumerate(shapes):
        sides.append(_Side(b, 0, r, True))
        if c > 1:
            sides.append(_Side(b, 1, c, True, drop_first=True))
    restricted: list[str] = []

    def total() -> int:
        return sum(_count(s.size, s.full, 1, s.drop_first) for s in sides)

    while total() > BLOCK_MAX_UNKNOWNS:
        big = [s for s in sides if s.full and s.size > 1]
        if not big:
            break
        s = max(big, key=lambda t: t.size)
        s.full = False
        restricted.append(f"{loss.blocks[s.block].name} {'rows' if s.axis == 0 else 'columns'} ({s.size})")
    off = 0
    for s in sides:
        s.count = _count(s.size, s.full, sigma, s.drop_first)
        s.offset = off
        off += s.count
    return sides, restricted


def block_memory_estimate(n: int, n_unknowns: int, n_systems: int = 1) -> int:
    """Peak bytes of the blocks route: the equation rows (m x u) of each of ``n_systems``
    systems (both signs are sampled together), the Gram matrix, its factor and the null
    basis (u x u each at most), one chunk of sample points."""
    m = n_unknowns + max(48, n_unknowns // 10 + 8)
    return int(8 * (n_systems * m * n_unknowns + 3 * n_unknowns**2) + _CHUNK_BYTES + 8 * 4 * n)


def _pairs_of(size: int, full: bool, sigma: int, drop_first: bool) -> tuple[np.ndarray, np.ndarray]:
    if full:
        ia, ib = np.triu_indices(size, 0 if sigma == 1 else 1)
    else:
        ia = ib = np.arange(size) if sigma == 1 else np.zeros(0, dtype=int)
    if drop_first and sigma == 1:
        ia, ib = ia[1:], ib[1:]
    return ia, ib


def _equation_rows(sides: list[_Side], shapes: list, theta: np.ndarray, g: np.ndarray, sigma: int, nu: int) -> np.ndarray:
    """Coefficients of the unknowns in g(θ,x)ᵀAθ for a chunk of samples: (m, nu)."""
    m = theta.shape[0]
    rows = np.zeros((m, nu))
    for s in sides:
        if s.count == 0:
            continue
        start, r, c = shapes[s.block]
        W = theta[:, start : start + r * c].reshape(m, r, c)
        G = g[:, start : start + r * c].reshape(m, r, c)
        ia, ib = _pairs_of(s.size, s.full, sigma, s.drop_first)
        if not s.full:
            P = np.einsum("mij,mij->mi" if s.axis == 0 else "mij,mij->mj", G, W)
            rows[:, s.offset : s.offset + s.count] = P[:, ia]
            continue
        # ⟨M, G Wᵀ⟩ on the rows, ⟨N, Gᵀ W⟩ on the columns (A maps W to M W + W Nᵀ)
        P = G @ np.swapaxes(W, 1, 2) if s.axis == 0 else np.swapaxes(G, 1, 2) @ W
        if sigma == 1:
            P = P + np.swapaxes(P, 1, 2)
            P[:, np.arange(s.size), np.arange(s.size)] *= 0.5
        else:
            P = P - np.swapaxes(P, 1, 2)
        rows[:, s.offset : s.offset + s.count] = np.take(P.reshape(m, -1), ia * s.size + ib, axis=1)
    return rows


def _side_pairs(sides: list[_Side], sigma: int) -> list[tuple[_Side, np.ndarray, np.ndarray]]:
    return [(s, *_pairs_of(s.size, s.full, sigma, s.drop_first)) for s in sides]


def _expand(u: dict[int, Fraction], by_side: list, shapes: list, sigma: int, n: int) -> SparseGen:
    """The sparse n x n generator of an unknown vector (both triangles) as a
    :class:`SparseGen`; ``by_side`` from :func:`_side_pairs`. Built with array operations
    (an unknown acts on a whole row or column of a block); positions that two unknowns
    share are summed exactly."""
    parts_a, parts_b, parts_v = [], [], []
    values: list[Fraction] = []
    for k, v in u.items():
        if v == 0:
            continue
        for s, ia, ib in by_side:
            if s.offset <= k < s.offset + s.count:
                i, j = int(ia[k - s.offset]), int(ib[k - s.offset])
                start, r, c = shapes[s.block]
                if s.axis == 0:
                    t = np.arange(c)
                    a, b = start + i * c + t, start + j * c + t
                else:
                    t = np.arange(r)
                    a, b = start + t * c + i, start + t * c + j
                values.append(v)
                parts_a.append(a)
                parts_b.append(b)
                parts_v.append(np.full(len(a), len(values) - 1))
                if i != j:
                    values.append(v if sigma == 1 else -v)
                    parts_a.append(b)
                    parts_b.append(a)
                    parts_v.append(np.full(len(a), len(values) - 1))
                break
    if not parts_a:
        return SparseGen(np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64), [])
    A, B, V = np.concatenate(parts_a), np.concatenate(parts_b), np.concatenate(parts_v)
    key = A * n + B
    uniq, inv = np.unique(key, return_inverse=True)
    if len(uniq) == len(key):
        return _dedup_values(SparseGen(np.stack([A, B], axis=1), V, values))
    acc: dict[int, Fraction] = {}
    for q, vi in zip(inv.tolist(), V.tolist()):
        acc[q] = acc[q] + values[vi] if q in acc else values[vi]
    J = {divmod(int(uniq[q]), n): val for q, val in acc.items() if val != 0}
    return SparseGen.from_dict(J)


def _dedup_values(G: SparseGen) -> SparseGen:
    """The same matrix with each distinct value listed once."""
    index: dict[Fraction, int] = {}
    remap = np.array([index.setdefault(v, len(index)) for v in G.values], dtype=np.int64)
    return SparseGen(G.ij, remap[G.vidx], list(index))


def sample_gradients(loss: Loss, cl: CompiledLoss, rng: np.random.Generator, k: int,
                     theta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Up to k random sample points (θ, per-sample gradient), dropping points where the loss
    is not finite or (with the compiled code) too close to a kink; θ fixed if given.

    A loss that supplies a vectorized per-sample gradient (``loss.fast_grad``, the Loss
    protocol; only without constants, whose values it does not take) is sampled through it:
    for a network with 10⁵ parameters the generated scalar code is slower by a large factor
    and takes seconds to compile. The gradients only propose candidates; every candidate is
    proven exactly on the expression itself."""
    n = loss.n
    if theta is not None:
        th = np.broadcast_to(theta, (k, n))
    else:  # a few data points per random θ when the data are rich (drawing θ dominates for large n)
        per = SAMPLES_PER_THETA if cl.d >= SHARED_THETA_FROM_D else 1
        th = np.repeat(rng.standard_normal((-(-k // per), n)), per, axis=0)[:k]
    x = rng.standard_normal((k, cl.d))
    fg = getattr(loss, "fast_grad", None)
    with np.errstate(all="ignore"):
        if fg is not None and not len(loss.c):
            g = np.asarray(fg(th, x), dtype=float)
            ok = np.all(np.isfinite(g), axis=-1)
        else:
            val, g, kinks = cl.value_grad(th, x)
            ok = np.isfinite(val) & np.all(np.isfinite(g), axis=-1)
            if kinks.shape[-1]:
                ok &= np.all(np.abs(kinks) > KINK_MARGIN, axis=-1)
    if theta is not None:
        ok &= np.linalg.norm(g, axis=-1) > 0
    if not ok.all():
        th, g = th[ok], g[ok]
    return th, g


def _sample_chunks(loss: Loss, cl: CompiledLoss, rng: np.random.Generator, m: int):
    """Random sample points (θ, g) in chunks that fit :data:`_CHUNK_BYTES` (points where the
    loss is not finite or too close to a kink are dropped and replaced)."""
    n = loss.n
    chunk = max(16, int(_CHUNK_BYTES // (8 * 4 * (n + cl.d + 1))))
    have = 0
    for _ in range(64):
        if have >= m:
            return
        th, g = sample_gradients(loss, cl, rng, min(chunk, m - have + 8))
        have += len(th)
        yield th, g
    if have < m:  # the finder's general sampler (positive data, its error message)
        yield _sample_rows(loss, cl, rng, None, m - have)[0::2]


def block_rows(loss: Loss, cl: CompiledLoss, rng: np.random.Generator, signs: tuple[int, ...]) -> dict:
    """The equation rows of the ansatz for each sign in ``signs``, from one set of sample
    points: ``{sigma: (rows, sides, restricted)}`` (rows normalized to unit length)."""
    shapes = _block_shapes(loss)
    plans = {sg: _plan(loss, sg) for sg in signs}
    nus = {sg: sum(s.count for s in plans[sg][0]) for sg in signs}
    check_block_memory(loss, max(nus.values()), n_systems=len(signs))
    top = max(nus.values())
    m = top + max(40, top // 10)
    rows = {sg: np.empty((m + 8, nus[sg])) for sg in signs}
    filled = 0
    for th, g in _sample_chunks(loss, cl, rng, m):
        th, g = th[: m - filled], g[: m - filled]
        for sg in signs:
            R = _equation_rows(plans[sg][0], shapes, th, g, sg, nus[sg])
            rows[sg][filled : filled + len(R)] = R
        filled += len(th)
    out = {}
    for sg in signs:
        R = rows[sg][:filled]
        norms = np.linalg.norm(R, axis=1)
        R = R[norms > 0] / norms[norms > 0, None]
        out[sg] = (R, plans[sg][0], plans[sg][1])
    return out


def block_candidates(
    loss: Loss, cl: CompiledLoss, sigma: int, rng: np.random.Generator, tol: float, shared: dict | None = None
) -> tuple[list, dict]:
    """Candidates of the blocks route (module docstring): ``(cands, info)`` in the finder's
    candidate format (``("exact", {(i, j): Fraction})`` or ``("float", matrix, reason)``).

    The sample points are drawn once for both signs and kept in ``shared`` (the rows of the
    other sign are used by the next call)."""
    shared = {} if shared is None else shared
    if sigma not in shared.setdefault("block_rows", {}):
        shared["block_rows"].update(block_rows(loss, cl, rng, (1, -1) if loss.n > 1 else (1,)))
    rows, sides, restricted = shared["block_rows"].pop(sigma)
    shapes = _block_shapes(loss)
    nu = sum(s.count for s in sides)
    info: dict[str, Any] = {"route": "blocks", "n_unknowns": nu, "numeric": True,
                            "ansatz": "⊕_b (M_b ⊗ I + I ⊗ N_b) over the declared parameter blocks"}
    if restricted:
        info["diagonal_sides"] = restricted
    if nu == 0:
        return [], info
    info["n_equations"] = int(rows.shape[0])
    null, sv = _null_space(rows, tol)
    info.update(sv)
    del rows
    k = null.shape[0]
    if not k:
        return [], info
    rref, pivots = _greedy_rref(null)
    info["pivots"] = len(pivots)
    err = info.get("largest_null_singular_value", 0.0) / max(info.get("smallest_kept_singular_value", 1.0), 1e-300)
    rtol = float(min(max(100 * err, 1e-9), 1e-4))
    info["rounding_tolerance"] = rtol
    _check_result_memory(loss, rref, sides, shapes)
    by_side = _side_pairs(sides, sigma)
    info["linked_sides"] = _linked_sides(rref, sides, loss)
    cands: list = []
    for row in rref:
        q = _round_rational(row, rtol)
        if q is None:
            u = {int(i): Fraction(float(row[i])) for i in np.nonzero(row)[0]}
            dense = _dense(_expand(u, by_side, shapes, sigma, loss.n).as_dict(), loss.n)
            cands.append(("float", dense, "entries are not rationals with small denominators"))
        else:
            cands.append(("exact", _expand(q, by_side, shapes, sigma, loss.n)))
    return cands, info


#: memory per entry of a generator as the finder returns it (index arrays, a SymPy sparse
#: matrix's dict-of-dicts entry), used to estimate the result before it is built
_BYTES_PER_ENTRY = 160


def _check_result_memory(loss: Loss, rref: np.ndarray, sides: list[_Side], shapes: list) -> None:
    """Refuse (with the estimate) when the candidates' entries would not fit
    :data:`BLOCK_MAX_BYTES`: an unknown of a row operator fills a row pair of its block (c
    entries per triangle), one of a column operator a column pair (r entries)."""
    per = np.concatenate([np.full(s.count, shapes[s.block][2] if s.axis == 0 else shapes[s.block][1])
                          for s in sides]) if sides else np.zeros(0)
    entries = int(2 * ((np.abs(rref) > 0) @ per).sum())
    need = entries * _BYTES_PER_ENTRY
    if need > BLOCK_MAX_BYTES:
        raise UnsupportedExpressionError(
            f"the blocks route's {rref.shape[0]} generators of this loss (n = {loss.n}) would have about "
            f"{entries:,} nonzero entries, about {need / 2**30:.1f} GiB as exact sparse matrices; the limit is "
            f"{BLOCK_MAX_BYTES / 2**30:.0f} GiB (noether_sym.symmetry._blocks.BLOCK_MAX_BYTES)"
        )


def _linked_sides(rref: np.ndarray, sides: list[_Side], loss: Loss) -> list[list[tuple[int, int]]]:
    """Groups of sides of equal size that appear together in some candidate, as lists of
    (block, axis): the index sets a permutation of the finder's orbit proofs acts on
    (:mod:`._orbits`; a proposal only -- every permutation is proven before it is used)."""
    parent = list(range(len(sides)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    nz = np.abs(rref) > 0
    touched = np.stack([nz[:, s.offset : s.offset + s.count].any(axis=1) for s in sides], axis=1)
    for row in touched:
        idx = np.nonzero(row)[0]
        for a in idx[1:]:
            if sides[a].size == sides[idx[0]].size:
                parent[find(a)] = find(idx[0])
    groups: dict[int, list[tuple[int, int]]] = {}
    for a, s in enumerate(sides):
        if touched[:, a].any() and s.size >= 3:
            groups.setdefault(find(a), []).append((s.block, s.axis))
    return [g for g in groups.values()]


def _greedy_rref(V: np.ndarray, tol: float = 1e-7, block: int = 64) -> tuple[np.ndarray, list[int]]:
    """Reduced row echelon form of the rows of ``V`` (k x u, rank k): the same pivots as
    :func:`._canonical._numeric_rref` (columns taken in order, a column is a pivot when its
    part outside the span of the earlier pivot columns exceeds ``tol``), found by blocked
    Gram-Schmidt on the columns (matrix products instead of k rank-one updates of the whole
    matrix), then RREF = V[:, pivots]⁻¹ V."""
    A = np.array(V, dtype=float)
    k, u = A.shape
    if k == 0:
        return A, []
    A /= np.max(np.abs(A))
    Q = np.zeros((k, 0))
    pivots: list[int] = []
    for s in range(0, u, block):
        C = A[:, s : s + block]
        if Q.shape[1]:
            C = C - Q @ (Q.T @ C)
            C = C - Q @ (Q.T @ C)  # twice is enough (Kahan)
        new = np.zeros((k, 0))
        for j in range(C.shape[1]):
            c = C[:, j]
            if new.shape[1]:
                c = c - new @ (new.T @ c)
                c = c - new @ (new.T @ c)
            nrm = float(np.linalg.norm(c))
            if nrm > tol:
                new = np.concatenate([new, (c / nrm)[:, None]], axis=1)
                pivots.append(s + j)
                if len(pivots) == k:
                    break
        if new.shape[1]:
            Q = np.concatenate([Q, new], axis=1)
        if len(pivots) == k:
            break
    R = np.linalg.solve(A[:, pivots], A) if pivots else A[:0]
    R[np.abs(R) < 1e-12] = 0.0
    R[np.arange(len(pivots)), pivots] = 1.0
    return R, pivots


def _dense(J: dict, n: int) -> np.ndarray:
    out = np.zeros((n, n)) if n <= 4096 else np.zeros((0, 0))
    if out.size:
        for (i, j), v in J.items():
            out[i, j] = float(v)
    return out


def _null_space(rows: np.ndarray, tol: float) -> tuple[np.ndarray, dict]:
    """A basis (k x u, rows) of the null space of ``rows`` and its certificate.

    The columns are scaled to unit norm and the Gram matrix G = RᵀR is factored by
    Cholesky with complete pivoting (LAPACK ``dpstrf``, BLAS-3, a fraction of a dense
    eigen-decomposition): G[p, p] = L Lᵀ. Its diagonal |L_ii| is non-increasing and reveals
    the rank like singular values do; the cut is placed at the largest gap as for singular
    values (:func:`._numeric._null_from_svd`). With S the first r pivots and F the rest,
    the null vectors are x_F = I, x_S = -G_SS⁻¹ G_SF = -L₁₁⁻ᵀ L₂₁ᵀ. The certificate
    reports the pivots as ``smallest_kept_singular_value`` (|L_rr|, relative) and, as
    ``largest_null_singular_value``, the largest of |L_ii| beyond the cut and the residual
    ‖R x‖/‖x‖ of random combinations x of the null vectors, measured on R itself."""
    nu = rows.shape[1]
    colscale = 1.0 / np.sqrt(np.maximum(np.einsum("ij,ij->j", rows, rows), 1e-300))
    rows *= colscale
    G = blas.dsyrk(1.0, rows, trans=1, lower=1)  # the lower triangle of RᵀR, Fortran order
    C, piv, rank_c, _ = lapack.dpstrf(G, lower=1, overwrite_a=1)
    del G
    piv = piv - 1
    d = np.abs(np.diag(C))[:rank_c]
    s = np.concatenate([d, np.zeros(nu - rank_c)])
    k, sv = _null_from_svd(s, nu, tol)
    r = nu - k
    sv["method"] = "pivoted Cholesky of the Gram matrix (|L_ii| in place of singular values)"
    if not k:
        return np.zeros((0, nu)), sv
    X = np.zeros((k, nu))
    X[np.arange(k), piv[r:]] = 1.0
    if r:
        L11 = np.tril(C[:r, :r])
        X[:, piv[:r]] = -solve_triangular(L11, C[r:, :r].T, lower=True, trans="T", check_finite=False).T
    del C
    probe = np.random.default_rng(0).standard_normal((k, 8))
    W = X.T @ probe
    res = np.linalg.norm(rows @ W, axis=0) / np.maximum(np.linalg.norm(W, axis=0), 1e-300)
    top = max(float(s[0]), 1e-300)
    sv["largest_null_singular_value"] = max(sv.get("largest_null_singular_value", 0.0), float(np.max(res)) / top)
    if r:
        sv["gap"] = sv["smallest_kept_singular_value"] / max(sv["largest_null_singular_value"], 1e-300)
        sv["clear_gap"] = bool(sv["gap"] >= MIN_GAP)
    return X * colscale[None, :], sv


def check_block_memory(loss: Loss, nu: int | None = None, n_systems: int = 2) -> None:
    """Raise UnsupportedExpressionError (with the estimate) when the blocks route would
    need more than :data:`BLOCK_MAX_BYTES`."""
    if nu is None:
        nu = sum(s.count for s in _plan(loss, 1)[0])
    need = block_memory_estimate(loss.n, nu, n_systems)
    if need > BLOCK_MAX_BYTES:
        raise UnsupportedExpressionError(
            f"the blocks route would need about {need / 2**30:.1f} GiB for this loss (n = {loss.n} "
            f"parameters, {nu} unknowns in the row/column ansatz of its blocks); the limit is "
            f"{BLOCK_MAX_BYTES / 2**30:.0f} GiB (noether_sym.symmetry._blocks.BLOCK_MAX_BYTES)"
        )


def block_completeness(
    loss: Loss, cl: CompiledLoss, generators: list, rotations: list, rng: np.random.Generator, points: int = 2,
    known: dict | None = None,
) -> dict[str, Any]:
    """Completeness certificate of the blocks route: the finder's completeness check (as
    :func:`._numeric.gradient_null_completeness`: at random θ, is the rank of the found
    directions Aθ the dimension of the null space of n + 16 per-sample gradients?), with
    both ranks from a pivoted Cholesky factorization of a Gram matrix (|L_ii| in place of
    singular values, the same cuts) instead of dense eigenvalues, and the blocks route's
    advice added when it does not certify (a symmetry outside the row/column ansatz of the
    blocks is then possible)."""
    n = loss.n
    p = n + 16
    need = 8 * (2 * p * n + 2 * n * n)
    if need > COMPLETENESS_MAX_BYTES:
        out: dict[str, Any] = {
            "complete": None,
            "statement": (
                f"completeness not checked: measuring the gradient null space needs about "
                f"{need / 2**30:.1f} GiB (limit {COMPLETENESS_MAX_BYTES / 2**30:.0f} GiB, "
                "noether_sym.symmetry._numeric.COMPLETENESS_MAX_BYTES)"
            ),
        }
    else:
        out = _completeness(loss, cl, [*generators, *rotations], rng, points, p, known or {})
    if out["complete"] is not True:
        out["statement"] = out.get("statement", "completeness not certified") + (
            "; a symmetry outside the row/column ansatz of the parameter blocks would be missed -- "
            "run route='structured' or 'dense' (on a smaller instance if needed) to check"
        )
    return out


def _completeness(loss: Loss, cl: CompiledLoss, mats: list, rng: np.random.Generator, points: int, p: int,
                  known: dict) -> dict[str, Any]:
    n = loss.n
    coo = _coo(mats, known)
    dims: list[int] = []
    found: list[int] = []
    for theta0 in _generic_points(cl, rng, points, p):
        G = _gradients_at(loss, cl, rng, theta0, p)
        if G is None:
            continue
        G /= np.linalg.norm(G, axis=1)[:, None]
        s = _pivot_values(G.T @ G)
        rank, _ = _gap_rank(s, 1e-5)
        dims.append(n - rank)
        if mats:
            k, i, j, v = coo
            D = np.zeros((len(mats), n))
            np.add.at(D, (k, i), v * theta0[j])
            D /= np.maximum(np.linalg.norm(D, axis=1)[:, None], 1e-300)
            sd = _pivot_values(D @ D.T)
            found.append(int(np.sum(sd > 1e-6 * max(sd[0], 1e-300))))
        else:
            found.append(0)
        if found[-1] >= dims[-1]:
            break
    return completeness_verdict(dims, found, method="ranks from pivoted Cholesky of Gram matrices")


def _pivot_values(G: np.ndarray) -> np.ndarray:
    """|L_ii| of the pivoted Cholesky factor of the PSD matrix G (non-increasing; zeros
    past the numerical rank), the analogue of its square-root eigenvalues."""
    C, _, rank, _ = lapack.dpstrf(G.T, lower=1, overwrite_a=1)
    return np.concatenate([np.abs(np.diag(C)[:rank]), np.zeros(G.shape[0] - rank)])


def _gradients_at(loss: Loss, cl: CompiledLoss, rng: np.random.Generator, theta0: np.ndarray, p: int) -> np.ndarray | None:
    """p per-sample gradients at θ₀ (finite, away from kinks, nonzero), or None."""
    out, have = [], 0
    for _ in range(12):
        _, g = sample_gradients(loss, cl, rng, p - have + 8, theta0)
        out.append(g)
        have += len(g)
        if have >= p:
            return np.concatenate(out)[:p]
    return None


def _coo(mats: list, known: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(matrix index, row, column, float value) of every nonzero entry of ``mats`` (SymPy
    matrices, dicts or :class:`SparseGen`; ``known``: exact entries by id(matrix), read
    first when present)."""
    parts = []
    for k, A in enumerate(mats):
        G = known.get(id(A), A)
        if not isinstance(G, SparseGen):
            rep = getattr(G, "_rep", None)
            if rep is not None and (rep.domain.is_QQ or rep.domain.is_ZZ):
                D = {(i, j): Fraction(int(v.numerator), int(v.denominator))
                     for i, row in rep.to_sdm().items() for j, v in row.items()}
            else:
                D = {(int(i), int(j)): Fraction(sp_rational(v)) for (i, j), v in
                     (G.todok() if hasattr(G, "todok") else G).items() if v != 0}
            G = SparseGen.from_dict(D) if D else SparseGen(np.zeros((0, 2)), np.zeros(0), [])
        vals = np.array([float(v) for v in G.values])[G.vidx] if len(G) else np.zeros(0)
        parts.append((np.full(len(G), k, dtype=np.int64), G.ij[:, 0], G.ij[:, 1], vals))
    if not parts:
        return (np.zeros(0, dtype=np.int64),) * 3 + (np.zeros(0),)
    return tuple(np.concatenate([p[t] for p in parts]) for t in range(4))


def sp_rational(v: Any) -> Fraction:
    """An exact SymPy or Python number as a Fraction."""
    if isinstance(v, Fraction):
        return v
    if isinstance(v, int):
        return Fraction(v)
    return Fraction(int(v.p), int(v.q))
