"""Symmetries: find every exponential symmetry ℓ(e^{λA}θ, x) = ℓ(θ, x) of a loss (THEORY §2, §8).

The generators form the linear space 𝒜(ℓ) = {A = Aᵀ : g(θ,x)ᵀAθ ≡ 0} (E4). Three routes
solve that linear problem, all generic (no family is special-cased) and all ending in the
same exact confirmation:

``exact``
    The loss is a rational function P/Q of (θ, x). The coefficients of
    Σ A_ij (∂_iP·Q − P·∂_iQ) θ_j in every monomial are linear forms in the entries of A;
    the sparse system is solved over QQ. Used when the expanded system is small.
``dense``
    Random points (θ, x) away from kinks; each gives one equation ⟨A, sym(g θᵀ)⟩ = 0 in the
    n(n+1)/2 unknowns; numerical null space by SVD with an explicit tolerance and a
    singular-value-gap certificate.
``structured``
    For large models. At a base point θ₀ let N = null(G) of the stacked per-sample
    gradients (n - ρ = r dimensions) with Jθ₀ = B c ∈ N. Differentiating the identity
    g_sᵀJθ ≡ 0 in θ gives J g_s = -σ H_s J θ₀ = -σ H_s B c, so the action of J on the
    gradient span is fixed by the r numbers c (σ = +1 for symmetric, -1 for antisymmetric
    J). A few base points pin J down completely: the unknowns drop from n(n+1)/2 to about
    K·r (K base points), e.g. 36–83 (by base points) instead of 34,191 for the 261-parameter ReLU network
    9-9-9-9 with biases.
    Hessian-vector products come from the complex step, exact to rounding.
    The candidates are then polished on their support, split into independent parts (the
    columns coupled by a row of their echelon form; accepted only when the dimensions add
    up), so the polish costs Σ (part size)³ instead of (support)³.
    Limits: each unknown is an n x n matrix, so time grows like n⁴ and memory like n³ for
    networks; beyond STRUCTURED_MAX_BYTES (6 GiB) the route refuses with
    UnsupportedExpressionError (the 2400-parameter 30-40-30 linear network would need about
    500 GiB) instead of running out of memory.

Numeric candidates are put in reduced row echelon form over the flattened upper triangle
(row-major, i ≤ j), rounded to rationals, and each is confirmed exactly by
:class:`~noether_sym._exact.ExactModel` (branch by branch for piecewise losses). A candidate
that fails is reported in ``Symmetries.unconfirmed`` and never returned as a generator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import math
import numpy as np
import scipy.linalg as sla
import sympy as sp
from sympy import QQ
from sympy.polys.matrices import DomainMatrix

from ._compile import CompiledLoss, compiled
from ._errors import InvalidArgumentError, NoDifferentiablePointError, UnsupportedExpressionError
from ._exact import ExactModel
from ._loss import Loss, as_loss

__all__ = ["find_symmetries", "Symmetries", "Candidate", "exact_model", "confirm_generator"]

#: largest relative singular value that may count as null; the cut is placed at the
#: largest gap below it (and anything below NULL_FLOOR is null regardless)
NULL_TOL = 1e-6
NULL_FLOOR = 1e-11
#: a gap (ratio of consecutive singular values) at least this large is a clear cut
MIN_GAP = 1e3
#: a kink argument closer than this to zero disqualifies a sample point
KINK_MARGIN = 1e-6
#: largest denominator accepted when rounding numeric generator entries to rationals
MAX_DENOMINATOR = 10_000


@dataclass
class Candidate:
    """A numeric candidate that could not be confirmed exactly (never returned as a generator)."""

    matrix: np.ndarray
    reason: str
    kind: str  # "symmetric" | "antisymmetric"


@dataclass
class Symmetries:
    """Exponential symmetries of a loss (the result of :func:`find_symmetries`).

    Attributes
    ----------
    loss
        The Loss.
    generators
        Canonical basis of 𝒜(ℓ) (symmetric, exact rational ``sympy.Matrix``, n x n, rows and
        columns in ``loss.params`` order): reduced row echelon form over the flattened upper
        triangle, so the same loss always gives the same basis. For n > 64 they are stored
        sparsely (``sympy.SparseMatrix``, which prints and compares like a dense Matrix).
    rotations
        Canonical basis of the antisymmetric part of the symmetry algebra 𝔤(ℓ) (rotations;
        symmetries that carry no quadratic charge). Empty when not computed.
    charges
        Noether charges θᵀAθ (E8), SymPy expressions in the user's parameter symbols.
    n_independent_charges
        Generic rank of [A_1θ ... A_kθ] (§3), computed exactly at random integer points.
    classes
        ``"indefinite"`` or ``"semidefinite"`` per generator (the dichotomy of §5).
    inertia
        (n_positive, n_negative, n_zero) eigenvalue counts per generator, exact.
    unconfirmed
        Numeric candidates that failed exact confirmation, with the reason.
    certificate
        How the answer was obtained: route, sample counts, tolerances and singular-value
        gaps, confirmation method.
    """

    loss: Loss
    generators: list[sp.Matrix]
    rotations: list[sp.Matrix]
    charges: list[sp.Expr]
    n_independent_charges: int
    classes: list[str]
    inertia: list[tuple[int, int, int]]
    unconfirmed: list[Candidate] = field(default_factory=list)
    certificate: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.generators)

    @property
    def n_generators(self) -> int:
        """Dimension of 𝒜(ℓ)."""
        return len(self.generators)

    def __repr__(self) -> str:
        return (
            f"Symmetries({self.loss.name!r}: {self.n_generators} generators, "
            f"{self.n_independent_charges} independent charges, {len(self.rotations)} rotations, "
            f"{len(self.unconfirmed)} unconfirmed, route={self.certificate.get('route')})"
        )

    def to_dict(self, *, with_matrices: bool = True) -> dict[str, Any]:
        """A JSON-ready summary (generators as sparse lists of [i, j, "p/q"])."""
        out: dict[str, Any] = {
            "loss": self.loss.name,
            "n_params": self.loss.n,
            "params": [str(p) for p in self.loss.params],
            "n_generators": self.n_generators,
            "n_independent_charges": self.n_independent_charges,
            "n_rotations": len(self.rotations),
            "classes": self.classes,
            "inertia": [list(t) for t in self.inertia],
            "n_unconfirmed": len(self.unconfirmed),
            "certificate": _jsonable(self.certificate),
            "seconds": round(self.seconds, 4),
        }
        if with_matrices:
            out["generators"] = [_sparse_entries(A) for A in self.generators]
            out["rotations"] = [_sparse_entries(A) for A in self.rotations]
        return out

    def latex(self, symbol_names: Any = None) -> str:
        """Generators and charges as LaTeX (see :func:`noether_sym.to_latex`)."""
        from ._latex import to_latex

        return to_latex(self, symbol_names=symbol_names)


def _sparse_entries(A: sp.Matrix) -> list[list[Any]]:
    return [[int(i), int(j), str(v)] for (i, j), v in sorted(A.todok().items()) if v != 0]


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


# ------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------


def exact_model(loss: Loss) -> ExactModel:
    """The exact engine of a loss (cached on it)."""
    em = loss._cache.get("exact")
    if em is None:
        cl = compiled(loss)
        em = ExactModel(cl.graph, cl.root, loss.n)
        loss._cache["exact"] = em
    return em


def confirm_generator(loss: Loss, A: Any) -> tuple[bool, str]:
    """Exactly confirm that ``A`` (rational n x n) satisfies g(θ,x)ᵀAθ ≡ 0 (E4) and (E3).

    Returns (confirmed, reason).
    """
    loss = as_loss(loss)
    J = _as_rational_matrix(A, loss.n)
    try:
        res = exact_model(loss).confirm(J)
    except UnsupportedExpressionError as exc:
        return False, f"cannot confirm exactly: {exc}"
    return res.confirmed, res.reason


def find_symmetries(
    loss: Loss,
    *,
    route: str = "auto",
    rotations: bool = True,
    seed: int = 0,
    tol: float = NULL_TOL,
) -> Symmetries:
    """Find a basis of the exponential symmetries of ``loss`` (THEORY (E3), (E4), §8).

    Parameters
    ----------
    loss
        The loss. Data symbols are treated as free variables: a symmetry must hold for
        every sample x (E3).
    route
        ``"auto"`` (default), ``"exact"``, ``"dense"`` or ``"structured"`` (module docstring).
    rotations
        Also compute the antisymmetric part of the symmetry algebra.
    seed
        Seed of the random sample points (the result does not depend on it when the
        certificate's gaps are large).
    tol
        Largest relative singular value that may count as null in the numerical null
        spaces; the cut is placed at the largest gap (≥ 1e3) below it.

    Returns
    -------
    Symmetries

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> u, w, x, y = sp.symbols("u w x y")
    >>> sym = ns.find_symmetries(ns.Loss((u * w * x - y) ** 2, params=[u, w], data=[x, y]))
    >>> sym.generators
    [Matrix([
    [1,  0],
    [0, -1]])]
    >>> sym.charges, sym.n_independent_charges, sym.classes
    ([u**2 - w**2], 1, ['indefinite'])
    """
    loss = as_loss(loss)
    if route not in ("auto", "exact", "dense", "structured"):
        raise InvalidArgumentError(f"route must be 'auto', 'exact', 'dense' or 'structured'; got {route!r}")
    if not (NULL_FLOOR < tol < 1e-3):
        raise InvalidArgumentError(f"tol must be in ({NULL_FLOOR}, 1e-3); got {tol}")
    t0 = time.perf_counter()
    cl = compiled(loss)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    cert: dict[str, Any] = {}
    em = exact_model(loss)

    chosen = _choose_route(loss, em, route)
    cert["route"] = chosen
    results: dict[int, list[sp.Matrix]] = {}
    unconfirmed: list[Candidate] = []
    shared: dict[str, Any] = {}
    for sigma in (1, -1) if rotations else (1,):
        name = "symmetric" if sigma == 1 else "antisymmetric"
        cands, info = _candidates(loss, cl, em, chosen, sigma, rng, tol, shared)
        cert[name] = info
        mats, bad = _confirm_all(loss, em, cands, sigma, info)
        if bad and info.get("numeric"):
            # one retry with fresh points before reporting candidates as unconfirmed
            cands2, info2 = _candidates(loss, cl, em, chosen, sigma, rng, tol, {})
            mats2, bad2 = _confirm_all(loss, em, cands2, sigma, info2)
            if len(bad2) < len(bad) or (len(bad2) == len(bad) and len(mats2) >= len(mats)):
                mats, bad, info = mats2, bad2, info2
                cert[name] = info
            cert[name]["retried"] = True
        results[sigma] = mats
        unconfirmed += bad

    gens = results[1]
    rots = results.get(-1, [])
    from ._charges import charge_expressions, generic_rank, inertia_of

    inert = [inertia_of(A) for A in gens]
    classes = ["semidefinite" if (p == 0 or q == 0) else "indefinite" for p, q, _ in inert]
    charges = charge_expressions(loss, gens)
    rank = generic_rank(gens, loss.n, seed=seed)
    cert["confirmation"] = "exact: D_{Aθ}ℓ ≡ 0 over QQ(θ, x) (FLINT), kinks preserved by the flow"
    return Symmetries(
        loss=loss,
        generators=gens,
        rotations=rots,
        charges=charges,
        n_independent_charges=rank,
        classes=classes,
        inertia=inert,
        unconfirmed=unconfirmed,
        certificate=cert,
        seconds=time.perf_counter() - t0,
    )


def _choose_route(loss: Loss, em: ExactModel, route: str) -> str:
    if route != "auto":
        if route == "exact" and em.has_helpers:
            raise UnsupportedExpressionError(
                "the exact route needs a polynomial or rational loss; this one has kinks or "
                "transcendental pieces; use route='auto'"
            )
        return route
    n = loss.n
    if not em.has_helpers and n <= 40 and _estimate_exact_terms(loss, em) <= 5_000:
        return "exact"
    if n <= 20:
        return "dense"
    return "structured"


def _estimate_exact_terms(loss: Loss, em: ExactModel) -> int:
    """Number of (term, column) pairs the exact system would touch (capped early)."""
    if len(em.reach) > 4000:
        return 10**9
    try:
        f = em.rational_value()
    except UnsupportedExpressionError:
        return 10**9
    size = len(f.n) + (len(f.d) if f.d is not None else 0)
    return size * loss.n * 2


# ------------------------------------------------------------------------------------------
# Candidates
# ------------------------------------------------------------------------------------------


def _pairs(n: int, sigma: int) -> list[tuple[int, int]]:
    if sigma == 1:
        return [(i, j) for i in range(n) for j in range(i, n)]
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def _candidates(
    loss: Loss,
    cl: CompiledLoss,
    em: ExactModel,
    route: str,
    sigma: int,
    rng: np.random.Generator,
    tol: float,
    shared: dict,
) -> tuple[list, dict]:
    """Return (list of candidate rational matrices or float matrices, info)."""
    n = loss.n
    if sigma == -1 and n < 2:
        return [], {"route": route, "n_unknowns": 0}
    if route == "exact":
        return _exact_candidates(loss, em, sigma)
    if route == "structured":
        try:
            if "geometry" not in shared:
                shared["geometry"] = _structured_geometry(loss, cl, rng)
            vecs, info = _structured_null(loss, shared["geometry"], sigma, tol)
            if vecs:
                vecs, pinfo = _polish_on_support(loss, cl, vecs, sigma, rng, tol)
                info.update(pinfo)
                if pinfo.get("polished"):
                    for key in ("largest_null_singular_value", "smallest_kept_singular_value"):
                        info.pop(key, None)
                        if f"polish_{key}" in pinfo:
                            info[key] = pinfo[f"polish_{key}"]
        except _FallBack as fb:
            vecs, info = _dense_null(loss, cl, sigma, rng, tol)
            info["fallback_from_structured"] = str(fb)
    else:
        vecs, info = _dense_null(loss, cl, sigma, rng, tol)
    info["numeric"] = True
    if not vecs:
        return [], info
    pairs = _pairs(n, sigma)
    iu = np.triu_indices(n, 0 if sigma == 1 else 1)
    flat = np.array([J[iu] for J in vecs])
    rref, pivots = _numeric_rref(flat)
    info["pivots"] = len(pivots)
    # accuracy of the null vectors ~ (noise level) / (smallest kept singular value)
    err = info.get("largest_null_singular_value", 0.0) / max(info.get("smallest_kept_singular_value", 1.0), 1e-300)
    rtol = float(min(max(100 * err, 1e-9), 1e-4))
    info["rounding_tolerance"] = rtol
    cands = []
    for row in rref:
        q = _round_rational(row, rtol)
        if q is None:
            cands.append(("float", _unflatten_float(row, pairs, n, sigma), "entries are not rationals with small denominators"))
        else:
            cands.append(("exact", _unflatten(q, pairs, sigma)))
    return cands, info


class _FallBack(Exception):
    pass


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
    """
    if s.size == 0 or s[0] == 0:
        return 0, None
    rel = s / s[0]
    idx = np.nonzero(rel < upper)[0]
    idx = idx[idx > 0]
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
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

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


def _structured_null(loss: Loss, geo: dict, sigma: int, tol: float) -> tuple[list, dict]:
    sections, Js, info = _structured_system(loss, geo, sigma)
    if sections is None:
        return [], info
    s, V, colscale = _null_space_sections(sections)
    m_u = Js.shape[0]
    k, sv = _null_from_svd(s, m_u, tol)
    info.pop("_bases", None)
    info.update(sv)
    vecs = []
    if k:
        # one matrix product for all null vectors (Js is read once)
        n = Js.shape[1]
        C = (V[:, m_u - k :] * colscale[:, None]).T
        Jall = (C @ Js.reshape(m_u, -1)).reshape(k, n, n)
        vecs = [(J + sigma * J.T) / 2 for J in Jall]
    return vecs, info


def _null_space_sections(sections: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Singular values (descending) and right singular vectors (columns) of the tall matrix
    M = [T_1ᵀ; T_2ᵀ; ...] with its columns scaled to unit norm; also the column scaling.

    The Gram matrix MᵀM = Σ T Tᵀ (BLAS-3 products; M is never formed) and its eigenvectors
    are much cheaper than a Householder QR of M. Squaring loses accuracy only for singular
    values below ~1e-7 relative, so the small ones are re-measured directly as ‖M v‖; if a
    kept value is that small, the accurate QR + SVD route is used instead.
    """
    G = sum(T @ T.T for T in sections)
    colscale = 1.0 / np.sqrt(np.maximum(np.diag(G), 1e-300))
    G = G * colscale[:, None] * colscale[None, :]
    w, V = np.linalg.eigh(G)
    w, V = w[::-1], V[:, ::-1]
    smax = float(np.sqrt(max(w[0], 0.0)))
    s = np.sqrt(np.maximum(w, 0.0))
    small = np.nonzero(s < 1e-4 * smax)[0]
    if small.size:
        W = V[:, small] * colscale[:, None]
        s[small] = np.sqrt(sum(np.sum((T.T @ W) ** 2, axis=0) for T in sections))
    order = np.argsort(s)[::-1]
    rank, _ = _gap_rank(s[order], NULL_TOL)
    if rank and s[order][rank - 1] < 1e-6 * smax:  # below what the Gram matrix resolves
        M = np.concatenate([T.T for T in sections], axis=0) * colscale
        s, Vt = _svd_right(M)
        return s, Vt.T, colscale
    order = np.argsort(s)[::-1]
    return s[order], V[:, order], colscale


def _structured_geometry(loss: Loss, cl: CompiledLoss, rng: np.random.Generator) -> dict:
    """Base points with their null spaces, spans and Hessian-vector products.

    Shared by the symmetric and the antisymmetric solve (only a sign differs)."""
    n = loss.n
    nu_dense = len(_pairs(n, 1))
    bases = []
    C_blocks = []
    ranks: list[int] = []
    h = 1e-30
    for k in range(64):
        # best of a few random points (largest gradient span: fewest dead units)
        best = None
        for _try in range(4 if k == 0 else 2):
            theta0 = rng.standard_normal(n)
            p = n + 16
            try:
                _, X, G = _sample_rows(loss, cl, rng, theta0, p)
            except _FallBack:
                continue
            scale = 1.0 / np.linalg.norm(G, axis=1)
            Gs = G * scale[:, None]
            U, s, Vt = _svd(Gs, full_matrices=True)
            rho, _ = _gap_rank(s, 1e-5)
            if k == 0 and _try == 0 and 0 < rho < n:
                # hopeless sizes are refused after one base point, not four (a better point
                # has a few more live units, not a different order of magnitude)
                _check_structured_memory(n, rho, p, slack=8.0)
            if best is None or rho > best[0]:
                best = (rho, theta0, X, G, scale, Gs, U, s, Vt)
        if best is None:
            raise _FallBack("no base point with enough differentiable samples")
        rho, theta0, X, G, scale, Gs, U, s, Vt = best
        if p > rho + 16:  # keep just enough samples for the consistency conditions
            keep = rho + 16
            X, G, scale = X[:keep], G[:keep], scale[:keep]
            Gs = G * scale[:, None]
            U, s, Vt = _svd(Gs, full_matrices=True)
            rho, _ = _gap_rank(s, 1e-5)
        r = n - rho
        if k == 0:
            est = (int(np.ceil(n / max(rho, 1))) + 1) * r
            if est > nu_dense // 2 or rho == 0:
                raise _FallBack(f"gradients span only {rho} of {n} directions")
            # fail fast with the reason instead of running for a long time or out of memory
            _check_structured_memory(n, rho, p)
        B = Vt[rho:].T
        C = Vt[:rho].T
        Ur, Sr, Up = U[:, :rho], s[:rho], U[:, rho:]
        if r:
            with np.errstate(all="ignore"):
                th_c = theta0[None, None, :] + 1j * h * B.T[:, None, :]  # (r, 1, n)
                gc = cl.value_grad(th_c, X[None, :, :])[1].imag / h  # (r, p, n)
            if not np.all(np.isfinite(gc)):
                raise _FallBack("non-finite Hessian-vector product")
            Kmat = np.transpose(gc * scale[None, :, None], (0, 2, 1))  # (r, n, p): cols H_s b_j
            L = -(Kmat @ (Ur / Sr))  # (r, n, rho), for sigma = +1 (L scales with sigma)
            Kperp = Kmat @ Up  # (r, n, p - rho)
        else:
            L = np.zeros((0, n, rho))
            Kperp = np.zeros((0, n, 0))
        bases.append({"theta": theta0, "B": B, "C": C, "L": L, "Kperp": Kperp, "r": r, "rho": rho})
        C_blocks.append(C)
        Call = np.concatenate(C_blocks, axis=1)
        sc = _svd(Call, compute_uv=False)
        rank_c, _ = _gap_rank(sc, 1e-5)
        ranks.append(rank_c)
        if len(bases) >= 2 and Call.shape[1] >= n + min(n, 8) and rank_c == n:
            break
        if len(ranks) >= 4 and ranks[-1] == ranks[-3]:  # directions common to every null space
            break
    Call = np.concatenate(C_blocks, axis=1)
    Uc, sc, Vct = _svd(Call, full_matrices=True)
    rank_c, _ = _gap_rank(sc, 1e-5)
    Cpinv = (Vct[:rank_c].T / sc[:rank_c]) @ Uc[:, :rank_c].T  # (sum rho, n)
    Ncal = Vct[rank_c:].T  # (sum rho, sum rho - rank_c): the overlaps of the base spans
    q2 = Ncal.shape[1]
    t2 = min(q2, max(32, 8 + 2 * (sum(b["r"] for b in bases) // max(n, 1))))
    if t2 < q2:
        # consistency on a random t2-dimensional part of the overlap: the full overlap can be
        # hundreds of dimensions and would dominate the cost (exactness is restored by the
        # exact confirmation of every candidate)
        omega, _ = np.linalg.qr(rng.standard_normal((q2, t2)))
        Ncal = Ncal @ omega
    Z = Uc[:, rank_c:]  # directions in every null space (n, z)
    m_u = sum(b["r"] for b in bases) + n * Z.shape[1]
    if m_u > nu_dense:
        raise _FallBack(f"structured unknowns {m_u} exceed dense unknowns {nu_dense}")
    return {"bases": bases, "Cpinv": Cpinv, "Ncal": Ncal, "Z": Z}


#: memory the structured route may use (its unknowns are n x n matrices: the cost grows as
#: (unknowns) x n², about n⁴ for networks); larger problems raise UnsupportedExpressionError
STRUCTURED_MAX_BYTES = 6 * 2**30


def _structured_bytes(n: int, m_u: int, r: int, p: int) -> int:
    """Peak memory estimate of the structured route: the unknowns' n x n matrices plus the
    symmetry section (upper triangle) and the complex Hessian-vector products of one base."""
    return int(8 * m_u * n * n * 1.5 + 16 * r * p * n)


def _check_structured_memory(n: int, rho: int, p: int, slack: float = 1.0) -> None:
    """Raise UnsupportedExpressionError when the structured route cannot fit in memory."""
    r = n - rho
    est = (int(np.ceil(n / max(rho, 1))) + 1) * r
    need = _structured_bytes(n, est, r, p)
    if need > slack * STRUCTURED_MAX_BYTES:
        raise UnsupportedExpressionError(
            f"the structured route would need about {need / 2**30:.0f} GiB for this loss "
            f"(n = {n} parameters, {r}-dimensional gradient null space at a base point, about "
            f"{est} unknowns, each an n x n matrix); the limit is "
            f"{STRUCTURED_MAX_BYTES / 2**30:.0f} GiB (noether_sym._symmetry.STRUCTURED_MAX_BYTES)"
        )


def _structured_system(loss: Loss, geo: dict, sigma: int) -> tuple[list | None, np.ndarray, dict]:
    """Assemble the constraint sections over the unknowns c (module docstring)."""
    n = loss.n
    nu_dense = len(_pairs(n, sigma))
    bases, Cpinv, Ncal, Z = geo["bases"], geo["Cpinv"], geo["Ncal"], geo["Z"]
    zdim = Z.shape[1]
    ru = [b["r"] for b in bases]
    m_u = sum(ru) + n * zdim
    offsets = np.cumsum([0] + [b["rho"] for b in bases])
    uoff = np.cumsum([0] + ru)
    # J for each unknown direction: J_u = L_u C⁺ (block of its base point), or e_a z_zᵀ
    Js = np.zeros((m_u, n, n))
    for kb, b in enumerate(bases):
        if b["r"]:
            Js[uoff[kb] : uoff[kb + 1]] = sigma * (b["L"] @ Cpinv[offsets[kb] : offsets[kb + 1], :])
    for a in range(n):
        for zz in range(zdim):
            Js[uoff[-1] + a * zdim + zz, a, :] = Z[:, zz]
    if m_u == 0:
        return None, Js, {"route": "structured", "n_unknowns": 0, "base_points": len(bases)}
    # Constraint sections, stored transposed: T (m_u x rows), so M = [T_1ᵀ; T_2ᵀ; ...].
    # They are not rescaled one by one: a section that vanishes identically (for example
    # the consistency conditions of some models) must stay at rounding level.
    sections: list[np.ndarray] = []
    # (1) per-base consistency: K(c) U_perp = 0
    for kb, b in enumerate(bases):
        q = b["Kperp"].shape[2]
        if q and b["r"]:
            T = np.zeros((m_u, n * q))
            T[uoff[kb] : uoff[kb + 1]] = b["Kperp"].reshape(b["r"], -1)
            sections.append(T)
    # (2) global consistency on the overlaps of the base spans: L(c) Ncal = 0
    if Ncal.shape[1]:
        T = np.zeros((m_u, n * Ncal.shape[1]))
        for kb, b in enumerate(bases):
            if b["r"]:
                T[uoff[kb] : uoff[kb + 1]] = (b["L"] @ Ncal[offsets[kb] : offsets[kb + 1], :]).reshape(b["r"], -1)
        sections.append(T)
    # (3) J = σJᵀ on the pairs a < b (and the diagonal for σ = −1); the off-diagonal rows
    # carry a factor √2, so the Gram matrix equals that of all n² entries (half the memory)
    ia, ib = np.triu_indices(n, 0 if sigma == -1 else 1)
    flatJ = Js.reshape(m_u, -1)
    w = np.where(ia == ib, 1.0, np.sqrt(2.0))
    sections.append((flatJ[:, ia * n + ib] - sigma * flatJ[:, ib * n + ia]) * w)
    # (4) J θ_l = B_l c_l
    for lb, b in enumerate(bases):
        T = Js @ b["theta"]  # (m_u, n)
        T[uoff[lb] : uoff[lb + 1]] -= b["B"].T
        sections.append(T)
    info = {
        "_bases": bases,
        "route": "structured",
        "n_unknowns": int(m_u),
        "n_unknowns_dense": int(nu_dense),
        "n_equations": int(sum(T.shape[1] for T in sections)),
        "base_points": len(bases),
        "null_dims_at_base_points": ru,
        "common_null_directions": int(zdim),
    }
    return sections, Js, info


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


# ------------------------------------------------------------------------------------------
# Exact route
# ------------------------------------------------------------------------------------------


def _exact_candidates(loss: Loss, em: ExactModel, sigma: int) -> tuple[list, dict]:
    n = loss.n
    f = em.rational_value()
    P, Q = f.n, f.d
    pairs = _pairs(n, sigma)
    col = {p: c for c, p in enumerate(pairs)}
    nums = []
    for i in range(n):
        v = em.var_of_input[i]
        dP = P.derivative(v)
        nums.append(dP if Q is None else dP * Q - P * Q.derivative(v))
    rows: dict[tuple, dict[int, Any]] = {}
    for i in range(n):
        terms = list(nums[i].terms())
        if not terms:
            continue
        for j in range(n):
            if sigma == 1:
                c, sgn = col[(min(i, j), max(i, j))], 1
            else:
                if i == j:
                    continue
                c, sgn = (col[(i, j)], 1) if i < j else (col[(j, i)], -1)
            vj = em.var_of_input[j]
            for mono, coeff in terms:
                m = list(mono)
                m[vj] += 1
                key = tuple(m)
                r = rows.setdefault(key, {})
                r[c] = r.get(c, 0) + sgn * coeff
    sdm = {}
    for r in rows.values():
        rr = {c: QQ(int(v.p), int(v.q)) for c, v in r.items() if v != 0}
        if rr:
            sdm[len(sdm)] = rr
    nu = len(pairs)
    info = {"route": "exact", "n_unknowns": nu, "n_equations": len(sdm), "numeric": False}
    if nu == 0:
        return [], info
    M = DomainMatrix(sdm, (max(len(sdm), 1), nu), QQ)
    null = M.nullspace()
    if null.shape[0] == 0:
        return [], info
    basis, _ = null.rref()
    cands = []
    for r in basis.to_sdm().values():
        q = {c: _frac(x) for c, x in r.items()}
        cands.append(("exact", _unflatten(q, pairs, sigma)))
    return cands, info


def _frac(x: Any) -> Fraction:
    """A QQ domain element (gmpy, flint or python) as a Fraction."""
    r = QQ.to_sympy(x)
    return Fraction(int(r.p), int(r.q))


# ------------------------------------------------------------------------------------------
# Confirmation and canonical form
# ------------------------------------------------------------------------------------------


def _confirm_all(loss: Loss, em: ExactModel, cands: list, sigma: int, info: dict) -> tuple[list[sp.Matrix], list[Candidate]]:
    kind = "symmetric" if sigma == 1 else "antisymmetric"
    ok: list[dict[tuple[int, int], Fraction]] = []
    bad: list[Candidate] = []
    for c in cands:
        if c[0] == "float":
            bad.append(Candidate(c[1], c[2], kind))
            continue
        J = c[1]
        bad_numeric = _numeric_precheck(loss, J)
        if bad_numeric is not None:
            dense = np.zeros((loss.n, loss.n))
            for (i, j), v in J.items():
                dense[i, j] = float(v)
            bad.append(Candidate(dense, bad_numeric, kind))
            continue
        try:
            res = em.confirm(J)
            confirmed, reason = res.confirmed, res.reason
        except UnsupportedExpressionError as exc:
            confirmed, reason = False, f"cannot confirm exactly: {exc}"
        if confirmed:
            ok.append(J)
        else:
            dense = np.zeros((loss.n, loss.n))
            for (i, j), v in J.items():
                dense[i, j] = float(v)
            bad.append(Candidate(dense, reason, kind))
    info["n_candidates"] = len(cands)
    info["n_confirmed"] = len(ok)
    return _canonical(ok, loss.n, sigma), bad


def _numeric_precheck(loss: Loss, J: dict[tuple[int, int], Fraction], points: int = 16) -> str | None:
    """Cheap filter before the exact check: (E4) at random points, relative to the sizes.

    A candidate with |gᵀJθ| > 1e-10 ‖g‖‖Jθ‖ somewhere is certainly not a generator, and the
    exact check of a non-generator can be expensive (nothing cancels)."""
    key = f"precheck_points_{points}"
    if key not in loss._cache:  # the same deterministic points for every candidate
        cl = compiled(loss)
        rng = np.random.default_rng(np.random.SeedSequence([7, loss.n]))
        th, _, g = _sample_rows(loss, cl, rng, None, points)
        loss._cache[key] = (th, g)
    th, g = loss._cache[key]
    v = np.zeros_like(th)
    for (i, j), q in J.items():
        v[:, i] += float(q) * th[:, j]
    lhs = np.abs(np.sum(g * v, axis=1))
    scale = np.linalg.norm(g, axis=1) * np.linalg.norm(v, axis=1)
    # a true generator leaves only rounding error, ~1e-15 relative; 1e-10 is far above it
    if np.any(lhs > 1e-10 * np.maximum(scale, 1e-300)):
        worst = float(np.max(lhs / np.maximum(scale, 1e-300)))
        return f"fails (E4) numerically at random points: max |gᵀJθ|/(‖g‖‖Jθ‖) = {worst:.2e}"
    return None


def _canonical(mats: list[dict[tuple[int, int], Fraction]], n: int, sigma: int) -> list[sp.Matrix]:
    """Exact RREF over the flattened upper triangle; returns sympy matrices."""
    if not mats:
        return []
    pairs = _pairs(n, sigma)
    col = {p: c for c, p in enumerate(pairs)}
    sdm = {}
    for J in mats:
        row = {}
        for (i, j), v in J.items():
            if (i < j or (i == j and sigma == 1)) and v:
                row[col[(i, j)]] = QQ(v.numerator, v.denominator)
        if row:
            sdm[len(sdm)] = row
    if not sdm:
        return []
    M = DomainMatrix(sdm, (len(sdm), len(pairs)), QQ)
    R, pivots = M.rref()
    out = []
    rows = R.to_sdm()
    for r in range(len(pivots)):
        entries: dict[tuple[int, int], Any] = {}
        for c, v in rows.get(r, {}).items():
            i, j = pairs[c]
            val = QQ.to_sympy(v)
            entries[(i, j)] = val
            if i != j:
                entries[(j, i)] = sigma * val
        out.append(_matrix(n, entries))
    return out


#: above this size generators are returned as sparse SymPy matrices (still ``sympy.Matrix``
#: instances with the same printing and equality; a dense 2400 x 2400 SymPy matrix per
#: generator would not fit in memory)
SPARSE_ABOVE = 64


def _matrix(n: int, entries: dict[tuple[int, int], Any]) -> sp.Matrix:
    """An exact n x n SymPy matrix from its nonzero entries (sparse storage for large n)."""
    if n > SPARSE_ABOVE:
        return sp.SparseMatrix(n, n, entries)
    A = sp.zeros(n, n)
    for (i, j), v in entries.items():
        A[i, j] = v
    return A


def _as_rational_matrix(A: Any, n: int) -> dict[tuple[int, int], Fraction]:
    """Validate a user generator: an n x n matrix of rational numbers -> sparse dict."""
    from ._errors import InvalidGeneratorError

    from ._loss import matrix_from_user

    A = matrix_from_user(A)
    if A.shape != (n, n):
        raise InvalidGeneratorError(
            f"a generator must be {n}x{n} (one row and column per parameter); got {A.shape[0]}x{A.shape[1]}"
        )
    out: dict[tuple[int, int], Fraction] = {}
    for (i, j), v in A.todok().items():
        v = sp.sympify(v)
        if isinstance(v, sp.Float):
            v = sp.Rational(v)  # exact value of the binary float
        if not v.is_Rational:
            raise InvalidGeneratorError(f"generator entry ({i},{j}) = {v} is not a rational number")
        if v != 0:
            out[(i, j)] = Fraction(int(v.p), int(v.q))
    return out
