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

The system is solved numerically at random points (null space of the stacked equations,
cut at a singular-value gap), the null vectors are put in reduced row echelon form,
rounded to rationals and expanded into sparse n x n candidates, which the finder confirms
exactly like every other route. Memory is estimated before anything is allocated; a loss
beyond :data:`BLOCK_MAX_BYTES` is refused with the estimate.

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

from .._errors import UnsupportedExpressionError
from ..compile._compiled import CompiledLoss
from ..loss._loss import Loss
from ._canonical import _round_rational
from ._numeric import _null_from_svd, _sample_rows, gradient_null_completeness

__all__ = ["BLOCK_MAX_BYTES", "BLOCK_MAX_UNKNOWNS", "block_completeness", "block_memory_estimate", "has_matrix_blocks"]

#: the full ansatz is used while it has at most this many unknowns; beyond, the largest
#: sides are restricted to diagonal operators (the dense eigen-solve grows as unknowns³)
BLOCK_MAX_UNKNOWNS = 6_000
#: memory the blocks route may use: the equation rows, their Gram matrix and its
#: eigenvectors, and one chunk of sample points
BLOCK_MAX_BYTES = 4 * 2**30
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


def block_memory_estimate(n: int, n_unknowns: int) -> int:
    """Peak bytes of the blocks route: equation rows (m x u), Gram matrix and eigenvectors
    (u x u each), one chunk of sample points."""
    m = n_unknowns + 64
    return int(8 * (m * n_unknowns + 2 * n_unknowns**2) + _CHUNK_BYTES + 8 * 4 * n)


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
            coef = P[:, ia, ib] + np.where(ia != ib, P[:, ib, ia], 0.0)
        else:
            coef = P[:, ia, ib] - P[:, ib, ia]
        rows[:, s.offset : s.offset + s.count] = coef
    return rows


def _expand(u: dict[int, Fraction], sides: list[_Side], shapes: list, sigma: int) -> dict[tuple[int, int], Fraction]:
    """The sparse n x n generator {(i, j): value} of an unknown vector (both triangles)."""
    J: dict[tuple[int, int], Fraction] = {}
    by_side = []
    for s in sides:
        ia, ib = _pairs_of(s.size, s.full, sigma, s.drop_first)
        by_side.append((s, ia, ib))
    for k, v in u.items():
        for s, ia, ib in by_side:
            if s.offset <= k < s.offset + s.count:
                i, j = int(ia[k - s.offset]), int(ib[k - s.offset])
                start, r, c = shapes[s.block]
                if s.axis == 0:
                    pos = [(start + i * c + t, start + j * c + t) for t in range(c)]
                else:
                    pos = [(start + t * c + i, start + t * c + j) for t in range(r)]
                for a, b in pos:
                    J[(a, b)] = J.get((a, b), Fraction(0)) + v
                    if a != b:
                        J[(b, a)] = J.get((b, a), Fraction(0)) + sigma * v
                break
    return {key: val for key, val in J.items() if val != 0}


def _sample_chunks(loss: Loss, cl: CompiledLoss, rng: np.random.Generator, m: int):
    """Random sample points (θ, g) in chunks that fit :data:`_CHUNK_BYTES`."""
    n = loss.n
    chunk = max(16, int(_CHUNK_BYTES // (8 * 4 * (n + cl.d + 1))))
    have = 0
    while have < m:
        k = min(chunk, m - have)
        th, _, g = _sample_rows(loss, cl, rng, None, k)
        have += k
        yield th, g


def block_candidates(
    loss: Loss, cl: CompiledLoss, sigma: int, rng: np.random.Generator, tol: float
) -> tuple[list, dict]:
    """Candidates of the blocks route (module docstring): ``(cands, info)`` in the finder's
    candidate format (``("exact", {(i, j): Fraction})`` or ``("float", matrix, reason)``)."""
    shapes = _block_shapes(loss)
    sides, restricted = _plan(loss, sigma)
    nu = sum(s.count for s in sides)
    info: dict[str, Any] = {"route": "blocks", "n_unknowns": nu, "numeric": True,
                            "ansatz": "⊕_b (M_b ⊗ I + I ⊗ N_b) over the declared parameter blocks"}
    if restricted:
        info["diagonal_sides"] = restricted
    check_block_memory(loss, nu)
    if nu == 0:
        return [], info
    m = nu + max(40, nu // 10)
    rows = np.empty((m, nu))
    filled = 0
    for th, g in _sample_chunks(loss, cl, rng, m):
        R = _equation_rows(sides, shapes, th, g, sigma, nu)
        norms = np.linalg.norm(R, axis=1)
        R = R[norms > 0] / norms[norms > 0, None]
        rows[filled : filled + len(R)] = R
        filled += len(R)
    rows = rows[:filled]
    info["n_equations"] = int(filled)
    s, V, colscale = _null_space(rows)
    k, sv = _null_from_svd(s, nu, tol)
    info.update(sv)
    del rows
    if not k:
        return [], info
    null = (V[:, nu - k :] * colscale[:, None]).T
    rref, pivots = _greedy_rref(null)
    info["pivots"] = len(pivots)
    err = info.get("largest_null_singular_value", 0.0) / max(info.get("smallest_kept_singular_value", 1.0), 1e-300)
    rtol = float(min(max(100 * err, 1e-9), 1e-4))
    info["rounding_tolerance"] = rtol
    cands: list = []
    for row in rref:
        q = _round_rational(row, rtol)
        if q is None:
            u = {int(i): Fraction(float(row[i])) for i in np.nonzero(row)[0]}
            dense = _dense(_expand(u, sides, shapes, sigma), loss.n)
            cands.append(("float", dense, "entries are not rationals with small denominators"))
        else:
            cands.append(("exact", _expand(q, sides, shapes, sigma)))
    return cands, info


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
        new = []
        for j in range(C.shape[1]):
            c = C[:, j]
            for q in new:
                c = c - q * (q @ c)
            for q in new:
                c = c - q * (q @ c)
            nrm = float(np.linalg.norm(c))
            if nrm > tol:
                new.append(c / nrm)
                pivots.append(s + j)
                if len(pivots) == k:
                    break
        if new:
            Q = np.concatenate([Q, np.stack(new, axis=1)], axis=1)
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


def _null_space(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Singular values (descending), right singular vectors and column scaling of ``rows``
    (columns scaled to unit norm), from the Gram matrix; small singular values are
    re-measured as ‖R v‖ (the Gram matrix resolves them only down to ~1e-8 relative)."""
    colscale = 1.0 / np.sqrt(np.maximum(np.einsum("ij,ij->j", rows, rows), 1e-300))
    rows *= colscale
    G = rows.T @ rows
    w, V = np.linalg.eigh(G)
    del G
    w, V = w[::-1], V[:, ::-1]
    s = np.sqrt(np.maximum(w, 0.0))
    small = np.nonzero(s < 1e-4 * max(s[0], 1e-300))[0]
    if small.size:
        s[small] = np.linalg.norm(rows @ V[:, small], axis=0)
    order = np.argsort(s)[::-1]
    return s[order], V[:, order], colscale


def check_block_memory(loss: Loss, nu: int | None = None) -> None:
    """Raise UnsupportedExpressionError (with the estimate) when the blocks route would
    need more than :data:`BLOCK_MAX_BYTES`."""
    if nu is None:
        nu = sum(s.count for s in _plan(loss, 1)[0])
    need = block_memory_estimate(loss.n, nu)
    if need > BLOCK_MAX_BYTES:
        raise UnsupportedExpressionError(
            f"the blocks route would need about {need / 2**30:.1f} GiB for this loss (n = {loss.n} "
            f"parameters, {nu} unknowns in the row/column ansatz of its blocks); the limit is "
            f"{BLOCK_MAX_BYTES / 2**30:.0f} GiB (noether_sym.symmetry._blocks.BLOCK_MAX_BYTES)"
        )


def block_completeness(
    loss: Loss, cl: CompiledLoss, generators: list, rotations: list, rng: np.random.Generator, points: int = 2
) -> dict[str, Any]:
    """Completeness certificate of the blocks route: the finder's one completeness check
    (:func:`._numeric.gradient_null_completeness`), with the blocks route's advice added when
    it does not certify (a symmetry outside the row/column ansatz is then possible)."""
    out = gradient_null_completeness(loss, cl, [*generators, *rotations], rng, points)
    if out["complete"] is not True:
        out["statement"] = out.get("statement", "completeness not certified") + (
            "; a symmetry outside the row/column ansatz of the parameter blocks would be missed -- "
            "run route='structured' or 'dense' (on a smaller instance if needed) to check"
        )
    return out
