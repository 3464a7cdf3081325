"""Symmetries: canonical form of a generator basis -- reduced row echelon form over QQ and rational rounding.

Numeric candidates are put in reduced row echelon form over the flattened upper triangle
(row-major, i ≤ j) and rounded to small rationals, so every route returns the same basis
for the same space; the matrices are built with :func:`~noether_sym.loss._generators.generator_matrix`.
"""


from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp
from sympy import QQ
from sympy.polys.matrices import DomainMatrix

from ..loss._generators import generator_matrix

__all__ = []

#: largest denominator the fast float rounding tries; it is no bound on the answer: a
#: candidate that does not round (or whose rounding fails exact confirmation) is refined in
#: exact or high-precision arithmetic (``_refine``), whatever its denominators
MAX_DENOMINATOR = 10_000


def _numeric_rref(V: np.ndarray, tol: float = 1e-7) -> tuple[np.ndarray, list[int]]:
    """Reduced row echelon form with columns taken in order (canonical up to rounding)."""
    A = np.array(V, dtype=float)
    k = A.shape[0]
    if k == 0:
        return A, []
    scale = np.max(np.abs(A))
    A /= scale
    support = np.nonzero(np.max(np.abs(A), axis=0) > tol)[0]
    # eliminate on the support columns only (the other columns are below tol everywhere and
    # stay below 1e-12 relative after elimination only if they were: keep them in a second
    # block updated by the same row operations)
    full = A
    A = np.ascontiguousarray(full[:, support])
    pivots: list[int] = []
    ops: list[tuple[int, int, np.ndarray]] = []
    row = 0
    for lc, col in enumerate(support):
        if row == k:
            break
        piv = row + int(np.argmax(np.abs(A[row:, lc])))
        if abs(A[piv, lc]) < tol:
            continue
        if piv != row:
            A[[row, piv]] = A[[piv, row]]
        p = A[row, lc]
        A[row] /= p
        others = np.arange(k) != row
        f = A[others, lc].copy()
        A[others] -= np.outer(f, A[row])
        ops.append((row, piv, np.concatenate([[p], f])))
        pivots.append(int(col))
        row += 1
    rest = np.ones(full.shape[1], dtype=bool)
    rest[support] = False
    if rest.any() and np.any(full[:, rest]):
        # replay the row operations on the (tiny) off-support columns
        B = full[:, rest]
        for r, piv, pf in ops:
            if piv != r:
                B[[r, piv]] = B[[piv, r]]
            B[r] /= pf[0]
            others = np.arange(k) != r
            B[others] -= np.outer(pf[1:], B[r])
        full[:, rest] = B
    full[:, support] = A
    A = full[:row]
    A[np.abs(A) < 1e-12] = 0.0
    return A, pivots


def _round_rational(row: np.ndarray, rtol: float = 1e-9) -> dict[int, Fraction] | None:
    """Round a numeric RREF row to rationals; None if some entry is not recognisable.

    Each entry gets the smallest denominator q <= 64 with |x - p/q| <= rtol·max(1, |x|),
    else the best fraction with denominator <= max(MAX_DENOMINATOR, 1/√(2 rtol)) (the
    largest the accuracy resolves) if it is within rtol.
    A wrong guess is harmless: every candidate is confirmed exactly afterwards.
    """
    nz = np.nonzero(row)[0]
    vals = row[nz]
    tol = rtol * np.maximum(1.0, np.abs(vals))
    num = np.zeros(len(vals))
    den = np.zeros(len(vals), dtype=np.int64)
    todo = np.ones(len(vals), dtype=bool)
    for q in range(1, 65):
        if not todo.any():
            break
        scaled = vals[todo] * q
        near = np.abs(scaled - np.round(scaled)) <= tol[todo] * q
        idx = np.nonzero(todo)[0][near]
        num[idx] = np.round(scaled[near])
        den[idx] = q
        todo[idx] = False
    # the largest denominator the accuracy can still resolve: two fractions with
    # denominators <= q are at least 1/q² apart, so q² · 2·tolerance < 1
    qmax = max(MAX_DENOMINATOR, min(10**6, int(math.sqrt(1.0 / (2.0 * max(rtol, 1e-15))))))
    out: dict[int, Fraction] = {}
    for k in range(len(vals)):
        if todo[k]:
            v = float(vals[k])
            fr = Fraction(v).limit_denominator(qmax)
            if abs(float(fr) - v) > max(rtol, 1e-12) * max(1.0, abs(v)):
                return None
        else:
            fr = Fraction(int(num[k]), int(den[k]))
        if fr:
            out[int(nz[k])] = fr
    return out


def _unflatten(q: dict[int, Fraction], pairs: list[tuple[int, int]], sigma: int) -> dict[tuple[int, int], Fraction]:
    """Sparse matrix {(i, j): value} (both triangles) from flattened upper-triangle entries."""
    J: dict[tuple[int, int], Fraction] = {}
    for c, v in q.items():
        i, j = pairs[c]
        J[(i, j)] = v
        if i != j:
            J[(j, i)] = sigma * v
    return J


def _unflatten_float(row: np.ndarray, pairs: list[tuple[int, int]], n: int, sigma: int) -> np.ndarray:
    J = np.zeros((n, n))
    for v, (i, j) in zip(row, pairs):
        J[i, j] = v
        if i != j:
            J[j, i] = sigma * v
    return J


def _frac(x: Any) -> Fraction:
    """A QQ domain element (gmpy, flint or python) as a Fraction."""
    r = QQ.to_sympy(x)
    return Fraction(int(r.p), int(r.q))


def _canonical(mats: list[dict[tuple[int, int], Fraction]], n: int, sigma: int) -> list[sp.Matrix]:
    """Exact RREF over the flattened upper triangle; returns sympy matrices."""
    if not mats:
        return []
    # column i·n + j orders the pairs (i ≤ j) row-major like the flattened upper triangle,
    # without listing all n(n+1)/2 of them
    sdm = {}
    for J in mats:
        row = {}
        for (i, j), v in J.items():
            if (i < j or (i == j and sigma == 1)) and v:
                row[i * n + j] = QQ(v.numerator, v.denominator)
        if row:
            sdm[len(sdm)] = row
    if not sdm:
        return []
    M = DomainMatrix(sdm, (len(sdm), n * n), QQ)
    R, pivots = M.rref()
    out = []
    rows = R.to_sdm()
    for r in range(len(pivots)):
        entries: dict[tuple[int, int], Any] = {}
        for c, v in rows.get(r, {}).items():
            i, j = divmod(c, n)
            val = QQ.to_sympy(v)
            entries[(i, j)] = val
            if i != j:
                entries[(j, i)] = sigma * val
        out.append(generator_matrix(n, entries))
    return out


# ------------------------------------------------------------------------------------------
# Candidates
# ------------------------------------------------------------------------------------------


def _pairs(n: int, sigma: int) -> list[tuple[int, int]]:
    if sigma == 1:
        return [(i, j) for i in range(n) for j in range(i, n)]
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


class SparseGen:
    """A sparse exact n x n matrix as arrays: entry k sits at ``ij[k]`` with the value
    ``values[vidx[k]]`` (a few distinct Fractions shared by thousands of entries).

    The blocks route's candidates for networks have thousands of entries each and only a
    handful of distinct values; keeping them as arrays makes the bookkeeping vectorized
    (normal forms, echelon checks, ranks) instead of one Python object per entry.
    ``as_dict()`` gives the {(i, j): Fraction} form the exact engine takes."""

    __slots__ = ("ij", "values", "vidx")

    def __init__(self, ij: np.ndarray, vidx: np.ndarray, values: list[Fraction]) -> None:
        self.ij = np.asarray(ij, dtype=np.int64).reshape(-1, 2)
        self.vidx = np.asarray(vidx, dtype=np.int64)
        self.values = list(values)

    @classmethod
    def from_dict(cls, J: dict[tuple[int, int], Fraction]) -> SparseGen:
        index: dict[Fraction, int] = {}
        vidx = [index.setdefault(v, len(index)) for v in J.values()]
        return cls(np.array(list(J.keys()), dtype=np.int64), np.array(vidx, dtype=np.int64), list(index))

    def as_dict(self) -> dict[tuple[int, int], Fraction]:
        vals = self.values
        return {(i, j): vals[v] for (i, j), v in zip(self.ij.tolist(), self.vidx.tolist())}

    def items(self) -> Any:
        return self.as_dict().items()

    def __len__(self) -> int:
        return len(self.vidx)


def as_entries(J: Any) -> dict[tuple[int, int], Fraction]:
    """{(i, j): Fraction} of a candidate given as a dict or a :class:`SparseGen`."""
    return J.as_dict() if isinstance(J, SparseGen) else J
