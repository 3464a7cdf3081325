"""Symmetries: exact ranks modulo a prime -- the number of independent charges of large generator sets.

Design
------
The number of independent charges is the generic rank of M(θ) = [A_1θ ... A_kθ] (§3).
For a few hundred generators of a model with tens of thousands of parameters the rational
elimination of :func:`~noether_sym.symmetry._charges.generic_rank` is far too slow, so the
rank is taken modulo a prime p < 2²⁰ at a random integer point θ:

    rank_p(Mᵀ M mod p) ≤ rank_p(M mod p) ≤ rank_QQ(M(θ)) ≤ generic rank ≤ k,

(a minor that vanishes over QQ vanishes modulo p). Every value computed here is therefore
a certified lower bound, and exact when it reaches k. det(MᵀM) is a nonzero polynomial of
degree 2k in θ when M has full generic rank, so a random point of GF(p) loses rank with
probability at most 2k/p; the largest value over a few points and primes is taken.

The Gram matrix is k x k (the sparse product costs Σ_rows nnz², small for block-structured
generators) and its rank comes from a left-looking blocked Gauss-Jordan elimination whose
updates are float64 matrix products: with entries below 2²⁰ every partial sum of at most
4096 products stays below 2⁵² and is computed exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np
from scipy.sparse import csr_matrix

from ._canonical import SparseGen

__all__ = ["modular_generic_rank"]

#: primes below 2²⁰ (float64 products of two residues and sums of 4096 of them are exact)
_PRIMES = (1_048_573, 1_048_571, 1_048_559, 1_048_549)
#: at most this many products are summed before reducing modulo p (4096 · 2⁴⁰ = 2⁵²)
_CHUNK = 4096


def modular_generic_rank(
    generators: Sequence[Mapping[tuple[int, int], Fraction]], n: int, *, seed: int = 0, points: int = 3
) -> int:
    """Certified lower bound of the generic rank of [A_1θ ... A_kθ], exact when it equals k.

    Parameters
    ----------
    generators
        Sparse exact generators {(i, j): Fraction}.
    n
        Number of parameters.
    seed
        Seed of the random points.
    points
        Number of (point, prime) pairs tried; stops early at full rank.
    """
    k = len(generators)
    if k == 0:
        return 0
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2718]))
    best = 0
    for t in range(points):
        p = _PRIMES[t % len(_PRIMES)]
        M = _columns_mod_p(generators, n, p, rng)
        if M is None:
            continue
        G = (M.T @ M).toarray() % p
        best = max(best, rank_mod_p(G.astype(np.float64), p))
        if best == k:
            break
    return best


def _columns_mod_p(generators: Sequence[Mapping[tuple[int, int], Fraction]], n: int, p: int,
                   rng: np.random.Generator) -> csr_matrix | None:
    """M = [A_1θ ... A_kθ] mod p at a random θ in GF(p)ⁿ (None when a denominator is ≡ 0)."""
    theta = rng.integers(0, p, size=n)
    if generators and all(isinstance(A, SparseGen) for A in generators):
        return _columns_mod_p_arrays(generators, n, p, theta)
    rows, cols, vals = [], [], []
    inv: dict[int, int] = {}
    for c, A in enumerate(generators):
        acc: dict[int, int] = {}
        for (i, j), v in A.items():
            d = v.denominator % p
            if d == 0:
                return None
            if d not in inv:
                inv[d] = pow(d, p - 2, p)
            q = (v.numerator % p) * inv[d] % p
            acc[i] = (acc.get(i, 0) + q * int(theta[j])) % p
        for i, val in acc.items():
            if val:
                rows.append(i)
                cols.append(c)
                vals.append(val)
    return csr_matrix((np.array(vals, dtype=np.int64), (rows, cols)), shape=(n, len(generators)))


def _columns_mod_p_arrays(generators: Sequence[SparseGen], n: int, p: int, theta: np.ndarray) -> csr_matrix | None:
    """:func:`_columns_mod_p` for array generators: one residue per distinct value, then
    array products (each below 2⁴⁰) summed by the sparse matrix constructor (fewer than 2²³
    terms per entry, so int64 does not overflow) and reduced modulo p."""
    rows, cols, vals = [], [], []
    for c, G in enumerate(generators):
        res = []
        for v in G.values:
            d = v.denominator % p
            if d == 0:
                return None
            res.append((v.numerator % p) * pow(d, p - 2, p) % p)
        q = np.array(res, dtype=np.int64)[G.vidx]
        rows.append(G.ij[:, 0])
        cols.append(np.full(len(q), c, dtype=np.int64))
        vals.append(q * theta[G.ij[:, 1]] % p)
    M = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, len(generators)))
    M.sum_duplicates()
    M.data %= p
    M.eliminate_zeros()
    return M


def _mod(x: np.ndarray, p: int) -> np.ndarray:
    """x mod p for float64 integers below 2⁵³ (np.fmod is slow for large quotients)."""
    y = x - p * np.floor(x * (1.0 / p))
    y[y < 0] += p
    y[y >= p] -= p
    return y


def _matmul_mod(A: np.ndarray, B: np.ndarray, p: int) -> np.ndarray:
    """(A @ B) mod p for float64 residues, exact (inner dimension in chunks of 4096)."""
    out = np.zeros((A.shape[0], B.shape[1]))
    for s in range(0, A.shape[1], _CHUNK):
        out = _mod(out + _mod(A[:, s : s + _CHUNK] @ B[s : s + _CHUNK], p), p)
    return out


def rank_mod_p(A: np.ndarray, p: int, block: int = 64) -> int:
    """Rank of a matrix of residues modulo the prime p (< 2²⁰), by blocked Gauss-Jordan.

    ``E`` holds the reduced pivot columns (1 at their own pivot row, 0 at the others'); a
    block of new columns is reduced against all of them with one matrix product, then
    eliminated pivot by pivot (one rank-one update of the block each), and the old pivot
    columns are cleared at the new pivot rows with a second product."""
    A = _mod(np.asarray(A, dtype=np.float64), p)
    m, c = A.shape
    E = np.zeros((m, 0))
    piv: list[int] = []
    for s in range(0, c, block):
        C = A[:, s : s + block].copy()
        if piv:
            C = _mod(C - _matmul_mod(E, C[piv], p), p)
        new: list[int] = []
        new_piv: list[int] = []
        for j in range(C.shape[1]):
            # delayed reduction: only the pivot column and row are reduced; each rank-one
            # update adds less than p² = 2⁴⁰, so a block of 64 stays below 2⁵³ exactly
            cj = _mod(C[:, j], p)
            nz = np.nonzero(cj)[0]
            if not nz.size:
                C[:, j] = 0.0
                continue
            r = int(nz[0])
            cj = _mod(cj * float(pow(int(cj[r]), p - 2, p)), p)
            f = _mod(C[r], p)
            f[j] = 0.0
            C[:, j] = cj
            if np.any(f):  # clear row r in every other column of the block
                C -= np.outer(cj, f)
            new.append(j)
            new_piv.append(r)
        if not new:
            continue
        N = _mod(C[:, new], p)
        if piv:
            E = _mod(E - _matmul_mod(N, E[new_piv], p), p)
        E = np.concatenate([E, N], axis=1)
        piv += new_piv
        if len(piv) == m:
            break
    return len(piv)
