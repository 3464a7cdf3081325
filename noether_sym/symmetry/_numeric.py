"""Symmetries: the ``dense`` route's numerics -- sample rows, SVD null spaces with a gap certificate, polishing.

Each random point (θ, x) away from kinks gives one linear equation ⟨A, sym(g θᵀ)⟩ = 0 on
the upper triangle of A; the null space is cut at the largest singular-value gap below
the tolerance (``NULL_TOL``, never below ``NULL_FLOOR`` where rounding noise lives), and
candidates are polished on their support before exact confirmation.
"""


from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .._errors import (
    NoDifferentiablePointError,
    UnsupportedExpressionError,
)
from ..compile._compiled import CompiledLoss
from ..loss._loss import Loss
from ._canonical import (
    _numeric_rref,
    _pairs,
)

__all__ = []


#: largest relative singular value that may count as null; the cut is placed at the
#: largest gap below it (and anything below NULL_FLOOR is null regardless)
NULL_TOL = 1e-6
NULL_FLOOR = 1e-11
#: a gap (ratio of consecutive singular values) at least this large is a clear cut
MIN_GAP = 1e3
#: a kink argument closer than this to zero disqualifies a sample point
KINK_MARGIN = 1e-6


def _sample_rows(
    loss: Loss, cl: CompiledLoss, rng: np.random.Generator, theta: np.ndarray | None, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """m good sample points: (theta (m,n), x (m,d), grad (m,n)); θ fixed if given."""
    n, d = cl.n, cl.d
    th_out, x_out, g_out = [], [], []
    have = 0
    for attempt in range(12):
        k = max(2 * (m - have), 16)
        th = np.broadcast_to(theta, (k, n)).copy() if theta is not None else rng.standard_normal((k, n))
        x = rng.standard_normal((k, d))
        if attempt >= 4:  # domain trouble (log, sqrt of data...): try positive data
            x = np.abs(x) + 0.1
        with np.errstate(all="ignore"):
            val, g, kinks = cl.value_grad(th, x)
        ok = np.isfinite(val) & np.all(np.isfinite(g), axis=-1)
        if kinks.shape[-1]:
            ok &= np.all(np.abs(kinks) > KINK_MARGIN, axis=-1)
        ok &= np.linalg.norm(g, axis=-1) > 0 if theta is not None else True
        th_out.append(th[ok])
        x_out.append(x[ok])
        g_out.append(g[ok])
        have += int(ok.sum())
        if have >= m:
            break
    if have < m:
        if theta is not None:
            raise _FallBack("too few differentiable samples at the base point")
        raise NoDifferentiablePointError(
            f"found only {have} of {m} sample points where the loss is finite and differentiable "
            "(away from kinks); check the expression's domain (logs, roots, divisions) or pass "
            "an explicit route"
        )
    return (np.concatenate(th_out)[:m], np.concatenate(x_out)[:m], np.concatenate(g_out)[:m])


def _gap_rank(s: np.ndarray, upper: float) -> tuple[int, float | None]:
    """Numerical rank from singular values (descending): cut at the largest gap below upper.

    Returns (rank, gap). Values below ``upper`` are candidates for null; the split is put
    at the largest ratio s[i-1]/s[i] among them when that ratio is at least MIN_GAP,
    otherwise only values below NULL_FLOOR count as null (gap None: no clear cut).

    A cut is only placed where the last kept value is at or above NULL_FLOOR: below it
    everything is rounding noise, whose own "gaps" (exact zero columns give values like
    1e-33 next to 1e-49) say nothing and must never outweigh the real gap above the noise.
    """
    if s.size == 0 or s[0] == 0:
        return 0, None
    rel = s / s[0]
    idx = np.nonzero(rel < upper)[0]
    idx = idx[(idx > 0) & (rel[np.maximum(idx - 1, 0)] >= NULL_FLOOR)]
    if idx.size:
        ratios = rel[idx - 1] / np.maximum(rel[idx], 1e-300)
        b = int(np.argmax(ratios))
        if ratios[b] >= MIN_GAP:
            return int(idx[b]), float(ratios[b])
    return int(np.sum(rel >= NULL_FLOOR)), None


def _null_from_svd(s: np.ndarray, n_cols: int, tol: float) -> tuple[int, dict]:
    """Number of null directions given singular values (descending) and a certificate."""
    if s.size == 0 or s[0] == 0:
        return n_cols, {"tolerance": tol, "largest_singular_value": 0.0}
    rank, gap = _gap_rank(s, tol)
    rel = s / s[0]
    info: dict[str, Any] = {"tolerance": tol, "floor": NULL_FLOOR, "rank": rank}
    if rank < len(rel):
        info["largest_null_singular_value"] = float(rel[rank])
    if rank > 0:
        info["smallest_kept_singular_value"] = float(rel[rank - 1])
    info["gap"] = gap
    info["clear_gap"] = gap is not None or rank == len(rel)
    return n_cols - rank, info


def _dense_null(loss: Loss, cl: CompiledLoss, sigma: int, rng: np.random.Generator, tol: float) -> tuple[list, dict]:
    """The dense route: every entry of the upper triangle is an unknown (THEORY §8)."""
    n = loss.n
    pairs = _pairs(n, sigma)
    if len(pairs) > 20_000:
        raise UnsupportedExpressionError(
            f"the dense route would solve for {len(pairs)} unknowns; this loss is too large for it "
            "and its gradients do not allow the structured route"
        )
    vecs, info = _solve_on_pairs(loss, cl, pairs, sigma, rng, tol)
    info["route"] = "dense"
    return vecs, info


def _pair_rows(th: np.ndarray, g: np.ndarray, I: np.ndarray, Jx: np.ndarray, sigma: int) -> np.ndarray:
    """Rows ⟨J, sym(g θᵀ)⟩ (σ = +1) or ⟨J, g θᵀ − θ gᵀ⟩ (σ = −1) over the pairs (I, Jx)."""
    if sigma == 1:
        return g[:, I] * th[:, Jx] + np.where(I != Jx, g[:, Jx] * th[:, I], 0.0)
    return g[:, I] * th[:, Jx] - g[:, Jx] * th[:, I]


def _solve_on_pairs(
    loss: Loss,
    cl: CompiledLoss,
    pairs: list[tuple[int, int]],
    sigma: int,
    rng: np.random.Generator,
    tol: float,
    pool: tuple[np.ndarray, np.ndarray] | None = None,
    flat: bool = False,
) -> tuple[list, dict]:
    """Null space of ⟨J, sym(g θᵀ)⟩ = 0 over random points, J supported on ``pairs``.

    One equation per random point (θ, x) away from kinks; points where the equation
    vanishes identically (a dead network, say) are replaced by fresh ones. ``pool`` is an
    optional set of sample points (θ, g) to use first (shared by independent subproblems).
    With ``flat`` the null vectors are returned as coefficient vectors over ``pairs``
    instead of n x n matrices."""
    n = loss.n
    nu = len(pairs)
    m = nu + max(40, nu // 10)
    I = np.array([p[0] for p in pairs], dtype=np.int64)
    Jx = np.array([p[1] for p in pairs], dtype=np.int64)
    blocks = []
    have = 0
    for attempt in range(9):
        if attempt == 0 and pool is not None:
            th, g = pool
        elif attempt == 0:
            continue
        else:
            th, _, g = _sample_rows(loss, cl, rng, None, m - have + 16)
        rows = _pair_rows(th, g, I, Jx, sigma)
        norms = np.linalg.norm(rows, axis=1)
        scale = np.median(norms) if have == 0 else blocks[0][1]
        good = norms > 1e-12 * max(scale, 1e-300)
        blocks.append((rows[good] / norms[good, None], scale))
        have += int(good.sum())
        if have >= m:
            break
    rows = np.concatenate([b[0] for b in blocks])[: max(m, 1)]
    s, Vt = _svd_right(rows)
    k, info = _null_from_svd(s, nu, tol)
    info.update({"n_unknowns": nu, "n_equations": int(rows.shape[0])})
    vecs = []
    for v in Vt[nu - k :] if k else []:
        if flat:
            vecs.append(np.array(v))
            continue
        J = np.zeros((n, n))
        J[I, Jx] = v
        J[Jx, I] = sigma * v
        vecs.append(J)
    return vecs, info


def _components(rows: np.ndarray, tol: float = 1e-6) -> list[np.ndarray]:
    """Groups of columns coupled by the supports of the rows (connected components)."""

    k, m = rows.shape
    big = np.max(np.abs(rows), axis=1, keepdims=True)
    r, c = np.nonzero(np.abs(rows) > tol * np.maximum(big, 1e-300))
    # bipartite graph rows <-> columns; columns in no row are dropped
    graph = coo_matrix((np.ones(len(r)), (r, k + c)), shape=(k + m, k + m))
    _, labels = connected_components(graph, directed=False)
    used = np.zeros(m, dtype=bool)
    used[c] = True
    cols = np.nonzero(used)[0]
    lab = labels[k + cols]
    order = np.argsort(lab, kind="stable")
    cols, lab = cols[order], lab[order]
    cuts = np.nonzero(np.diff(lab))[0] + 1
    return [np.sort(g) for g in np.split(cols, cuts)] if len(cols) else []


def _polish_on_support(
    loss: Loss, cl: CompiledLoss, vecs: list[np.ndarray], sigma: int, rng: np.random.Generator, tol: float
) -> tuple[list, dict]:
    """Re-solve (E4) directly on the support of the structured candidates.

    The structured solve finds the right entries to the accuracy of its conditioning
    (1e-7 on bad cases); the dense equations restricted to the union of the candidates'
    supports (a few hundred unknowns for networks) give the null space to rounding level,
    with their own gap certificate.

    The support is first split into independent parts: the candidates are put in reduced
    row echelon form and the columns coupled by a common row are grouped (connected
    components). 𝒜 restricted to each part is solved separately (tiny systems: 60 unknowns
    per generator class of a linear network instead of the whole support); the split is
    accepted only when the dimensions add up to the structured null dimension, otherwise
    the whole support is solved at once."""
    n = loss.n
    k = len(vecs)
    stack = np.abs(np.array(vecs))
    big = stack.max()
    mask = np.max(stack, axis=0) > 1e-6 * big
    pairs = [(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(mask, 0 if sigma == 1 else 1)))]
    if not pairs:
        return vecs, {"polished": False, "support": 0}
    I = np.array([p[0] for p in pairs], dtype=np.int64)
    Jx = np.array([p[1] for p in pairs], dtype=np.int64)
    flat = np.array([V[I, Jx] for V in vecs])
    rref, _ = _numeric_rref(flat, tol=1e-6)
    groups = _components(rref) if rref.shape[0] == k else []
    if len(groups) > 1:
        largest = max(len(g) for g in groups)
        m_pool = largest + max(40, largest // 10) + 16
        th, _, g = _sample_rows(loss, cl, rng, None, m_pool)
        out: list[np.ndarray] = []
        agg: dict[str, Any] = {"n_unknowns": 0, "n_equations": 0}
        gaps, nulls, kept, clear = [], [], [], True
        for grp in groups:
            sub = [pairs[c] for c in grp]
            vs, inf = _solve_on_pairs(loss, cl, sub, sigma, rng, tol, pool=(th, g), flat=True)
            agg["n_unknowns"] += inf["n_unknowns"]
            agg["n_equations"] += inf["n_equations"]
            if inf.get("gap") is not None:
                gaps.append(inf["gap"])
            if "largest_null_singular_value" in inf and vs:
                nulls.append(inf["largest_null_singular_value"])
            if "smallest_kept_singular_value" in inf:
                kept.append(inf["smallest_kept_singular_value"])
            clear = clear and bool(inf.get("clear_gap", True))
            for v in vs:
                J = np.zeros((n, n))
                J[I[grp], Jx[grp]] = v
                J[Jx[grp], I[grp]] = sigma * v
                out.append(J)
        if len(out) == k:
            info = {f"polish_{key}": v for key, v in agg.items()}
            info.update(
                {
                    "polished": True,
                    "support": len(pairs),
                    "polish_components": len(groups),
                    "polish_largest_component": int(largest),
                    "polish_tolerance": tol,
                    "polish_clear_gap": clear,
                    "polish_gap": min(gaps) if gaps else None,
                }
            )
            if nulls:
                info["polish_largest_null_singular_value"] = float(max(nulls))
            if kept:
                info["polish_smallest_kept_singular_value"] = float(min(kept))
            return out, info
    if len(pairs) > 6000:
        return vecs, {"polished": False, "support": len(pairs)}
    new, info = _solve_on_pairs(loss, cl, pairs, sigma, rng, tol)
    info = {f"polish_{k}": v for k, v in info.items()}
    info["polished"] = True
    info["support"] = len(pairs)
    return new, info


def _generic_points(cl: CompiledLoss, rng: np.random.Generator, points: int, p: int, pool: int = 64) -> list[np.ndarray]:
    """``points`` random θ, the most generic of ``pool`` for a piecewise loss.

    At a θ where some kink argument keeps one sign over all samples (a dead or an always
    active ReLU unit, say) the loss is smooth across that kink and the gradient null space
    holds extra local directions; for narrow networks such points are the rule, not the
    exception. The candidates are ranked by how many kink arguments change sign over p
    random samples (one batched forward pass)."""
    # the forward pass also returns the gradients: pool x p x (n + kinks) floats, bounded
    pool = min(pool, max(points, int(2**28 // (8 * p * (cl.n + cl.n_kinks + 1)))))
    thetas = rng.standard_normal((pool if cl.n_kinks else points, cl.n))
    if not cl.n_kinks or pool <= points:
        return list(thetas[:points])
    x = rng.standard_normal((1, p, cl.d))
    with np.errstate(all="ignore"):
        kinks = cl.value_grad(thetas[:, None, :], x)[2]  # (pool, p, kinks)
    score = np.sum(np.any(kinks > 0, axis=1) & np.any(kinks < 0, axis=1), axis=-1)
    return list(thetas[np.argsort(-score, kind="stable")[:points]])


#: the completeness check's gradient matrix (p x n) and Gram matrix (n x n) may use this
COMPLETENESS_MAX_BYTES = 1 * 2**30


def gradient_null_completeness(
    loss: Loss, cl: CompiledLoss, mats: list, rng: np.random.Generator, points: int = 4
) -> dict[str, Any]:
    """Whether the found generators explain the gradient null space at random points.

    Every generator A gives a direction Aθ in the common null space N(θ) of the per-sample
    gradients at θ (E4), so rank{Aθ} ≤ dim N(θ); a route that misses a generator whose
    direction is independent of the others falls short at every θ. At up to ``points``
    random θ (stopping at the first one where nothing is missing, so a point with dead units
    or another non-generic null space does not count against the result) the dimension of
    N(θ) from n + 16 gradients is compared with rank{Aθ} over ``mats`` (generators and
    rotations, as sympy matrices or {(i, j): value} dicts). One-sided: ``complete`` False
    means either a missed generator or null directions no linear symmetry explains (a
    non-linear symmetry, say); True does not prove completeness (a missed generator whose
    direction is a combination of the found ones' passes). Returns a dict with ``complete``
    True, False, or None (not measured, with the reason in ``statement``)."""
    n = loss.n
    p = n + 16
    need = 8 * (3 * p * n + 2 * n * n)
    if need > COMPLETENESS_MAX_BYTES:
        return {
            "complete": None,
            "statement": (
                f"completeness not checked: measuring the gradient null space needs about "
                f"{need / 2**30:.1f} GiB (limit {COMPLETENESS_MAX_BYTES / 2**30:.0f} GiB, "
                "noether_sym.symmetry._numeric.COMPLETENESS_MAX_BYTES)"
            ),
        }
    entries = [A.todok() if hasattr(A, "todok") else A for A in mats]
    dims: list[int] = []
    found: list[int] = []
    for theta0 in _generic_points(cl, rng, points, p):
        try:
            _, _, G = _sample_rows(loss, cl, rng, theta0, p)
        except _FallBack:
            continue
        G = G / np.linalg.norm(G, axis=1)[:, None]
        if n <= 1000:
            s = _svd(G, compute_uv=False)
        else:  # Gram matrix: |eigenvalues| (rounding makes some null ones slightly negative)
            s = np.sort(np.sqrt(np.abs(np.linalg.eigvalsh(G.T @ G))))[::-1]
        s = np.concatenate([s, np.zeros(max(n - len(s), 0))])
        rank, _ = _gap_rank(s, 1e-5)
        dims.append(n - rank)
        if entries:
            D = np.zeros((len(entries), n))
            for k, A in enumerate(entries):
                for (i, j), v in A.items():
                    D[k, int(i)] += float(v) * theta0[int(j)]
            D = D / np.maximum(np.linalg.norm(D, axis=1)[:, None], 1e-300)
            if D.size > 10**6:
                # Gram matrix of the (unit) directions: a fraction of the SVD's time; it
                # resolves singular values down to ~1e-8 relative, so the cut is at 1e-6
                sd = np.sort(np.sqrt(np.abs(np.linalg.eigvalsh(D @ D.T))))[::-1]
                cut = 1e-6
            else:
                sd = _svd(D, compute_uv=False)
                cut = 1e-8
            found.append(int(np.sum(sd > cut * max(sd[0], 1e-300))))
        else:
            found.append(0)
        if found[-1] >= dims[-1]:
            break
    return completeness_verdict(dims, found)


def completeness_verdict(dims: list[int], found: list[int], **extra: Any) -> dict[str, Any]:
    """The completeness certificate from the gradient null-space dimensions at the base
    points and the numbers of them the found generators and rotations explain."""
    if not dims:
        return {"complete": None, "statement": "completeness not checked: no base point with enough differentiable samples"}
    complete = any(f >= d for f, d in zip(found, dims))
    out: dict[str, Any] = {"complete": complete, "gradient_null_dims": dims, "found_directions": found, **extra}
    if not complete:
        out["statement"] = (
            f"completeness check failed: the gradient null space has dimension {dims} at random points "
            f"but the found generators and rotations explain only {found}; a generator may be missing "
            "(or the rest comes from no linear symmetry: a non-linear one, or gradients degenerate at every "
            "sampled point, as in narrow ReLU networks whose functional dimension is below n minus "
            "the number of generators)"
        )
    return out


def _svd(A: np.ndarray, full_matrices: bool = True, compute_uv: bool = True) -> Any:
    """SVD that falls back to LAPACK's gesvd when the default gesdd does not converge."""
    try:
        return np.linalg.svd(A, full_matrices=full_matrices, compute_uv=compute_uv)
    except np.linalg.LinAlgError:
        return sla.svd(A, full_matrices=full_matrices, compute_uv=compute_uv, lapack_driver="gesvd")


def _svd_right(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values and right singular vectors (full set) of a tall or wide matrix."""
    if M.shape[0] > 2 * M.shape[1]:
        R = np.linalg.qr(M, mode="r")
        M = R
    _, s, Vt = _svd(M, full_matrices=True)
    if len(s) < Vt.shape[0]:
        s = np.concatenate([s, np.zeros(Vt.shape[0] - len(s))])
    return s, Vt


class _FallBack(Exception):
    pass
