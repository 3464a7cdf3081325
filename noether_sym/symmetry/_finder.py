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

``blocks``
    For large models with matrix parameter blocks (:mod:`noether_sym.symmetry._blocks`):
    generators in the ansatz ⊕_b (M_b ⊗ I + I ⊗ N_b) of row and column operators of each
    declared block, a small linear system; the certificate's ``completeness`` entry says
    whether the found generators explain the whole gradient null space at random points
    (when it fails, run ``"structured"`` or ``"dense"``). Chosen by ``"auto"`` above
    ``BLOCKS_FROM_N`` parameters.

The ``dense`` and ``structured`` routes end with a completeness check (certificate entry
``completeness``): the directions Aθ of the found generators and rotations must fill the
gradient null space at some random point (the most generic of a pool for piecewise
losses). It is one-sided: a failure means a missed generator or null directions no linear
symmetry explains (narrow networks have them at every point). When the structured route
fails it and the problem has at most ``DENSE_CROSS_CHECK_MAX`` dense unknowns, the dense
route re-solves it and its answer is returned if it finds more; otherwise the shortfall is
stated in the certificate.

Numeric candidates are put in reduced row echelon form over the flattened upper triangle
(row-major, i ≤ j), rounded to rationals, and each is confirmed exactly by
:class:`~noether_sym.compile._exact.ExactModel` (branch by branch for piecewise losses). A candidate
that fails is reported in ``Symmetries.unconfirmed`` and never returned as a generator.
From ``LOCAL_FROM_N`` parameters the same proof runs on the part of the expression DAG the
candidate moves (:mod:`._local`), and the bookkeeping after confirmation (canonical form,
inertia, charges, number of independent charges) avoids n x n work (:mod:`._large`). When
the blocks route proposes groups of coupled sides and there are many candidates, the proofs
go by orbit (:mod:`._orbits`): relabellings of units that leave the loss's expression
unchanged are proven on its DAG, and one exact proof per orbit of candidates under them
proves the whole orbit (P A Pᵀ is a generator when A is and ℓ∘P = ℓ). The finder runs with
one BLAS thread (a second one mostly contends on a shared 2-core machine).
"""


from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp

from .._errors import UnsupportedExpressionError
from .._validate import Boolean, Options, Real, Seed, validate
from ..compile._compiled import CompiledLoss, compiled
from ..compile._exact import ExactModel
from ..loss._loss import Loss, as_loss
from ._blocks import (
    block_candidates,
    block_completeness,
    check_block_memory,
    has_matrix_blocks,
    sample_gradients,
)
from ._canonical import (
    _canonical,
    _numeric_rref,
    _pairs,
    _round_rational,
    _unflatten,
    _unflatten_float,
    as_entries,
)
from ._exact_route import _exact_candidates
from ._large import LazyExactModel, canonical_sparse, summaries
from ._laws import _one_blas_thread
from ._local import LOCAL_FROM_N, local_confirm
from ._numeric import (
    NULL_FLOOR,
    NULL_TOL,
    _dense_null,
    _FallBack,
    _polish_on_support,
    _sample_rows,
    gradient_null_completeness,
)
from ._orbits import ORBIT_FROM_CANDIDATES, orbit_confirm
from ._refine import refine
from ._result import Candidate, Symmetries
from ._structured import _structured_geometry, _structured_null

__all__ = ['find_symmetries']

#: the contract of find_symmetries' options (tol: between the floor where rounding noise
#: lives and 1e-3, above which a real direction could pass as null)
_OPTIONS = {
    "route": Options(("auto", "exact", "dense", "structured", "blocks")),
    "rotations": Boolean(),
    "seed": Seed(),
    "tol": Real(NULL_FLOOR, 1e-3, low_open=True, high_open=True),
}


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
        ``"auto"`` (default), ``"exact"``, ``"dense"``, ``"structured"`` or ``"blocks"``
        (module docstring). A loss too large for the route raises
        UnsupportedExpressionError with the route's memory estimate.
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
    opts = validate(_OPTIONS, route=route, rotations=rotations, seed=seed, tol=tol)
    # one BLAS thread: the dense factorizations here are a few thousand wide, where a second
    # OpenBLAS thread on a shared 2-core machine mostly contends (several times slower)
    with _one_blas_thread():
        return _find(loss, opts["route"], opts["rotations"], opts["seed"], opts["tol"])


def _find(loss: Loss, route: str, rotations: bool, seed: int, tol: float) -> Symmetries:
    t0 = time.perf_counter()
    cl = compiled(loss)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    cert: dict[str, Any] = {}
    em = LazyExactModel(loss)  # built on first use: its context spans every parameter

    chosen = _choose_route(loss, em, route)
    cert["route"] = chosen
    results: dict[int, list[sp.Matrix]] = {}
    unconfirmed: list[Candidate] = []
    shared: dict[str, Any] = {}
    known: dict[int, dict] = {}  # exact entries of the generators built, by id (see canonical_sparse)
    for sigma in (1, -1) if rotations else (1,):
        name = "symmetric" if sigma == 1 else "antisymmetric"
        cands, info = _candidates(loss, cl, em, chosen, sigma, rng, tol, shared)
        cert[name] = info
        mats, bad = _confirm_all(loss, em, cands, sigma, info, known)
        if bad and info.get("numeric") and loss.n <= REFINE_MAX_N:
            mats, bad = _refine_unconfirmed(loss, cl, em, mats, bad, sigma, rng, info)
        if bad and info.get("numeric") and loss.n <= REFINE_MAX_N:
            # one retry with fresh points before reporting candidates as unconfirmed
            cands2, info2 = _candidates(loss, cl, em, chosen, sigma, rng, tol, {})
            mats2, bad2 = _confirm_all(loss, em, cands2, sigma, info2)
            if bad2:
                mats2, bad2 = _refine_unconfirmed(loss, cl, em, mats2, bad2, sigma, rng, info2)
            if len(bad2) < len(bad) or (len(bad2) == len(bad) and len(mats2) >= len(mats)):
                mats, bad, info = mats2, bad2, info2
                cert[name] = info
            cert[name]["retried"] = True
        results[sigma] = mats
        unconfirmed += bad

    gens = results[1]
    rots = results.get(-1, [])
    if chosen in ("dense", "structured"):
        cert["completeness"] = _completeness_guard(loss, cl, em, chosen, gens, rots, rotations, rng, tol, shared)
        if cert["completeness"]["complete"] is False and chosen == "structured" and len(_pairs(loss.n, 1)) <= DENSE_CROSS_CHECK_MAX:
            dense = find_symmetries(loss, route="dense", rotations=rotations, seed=seed, tol=tol)
            if dense.n_generators > len(gens) or len(dense.rotations) > len(rots):
                dense.certificate["fallback_from_structured"] = (
                    f"the structured route found {len(gens)} generators and {len(rots)} rotations and "
                    f"failed the completeness check ({cert['completeness']['gradient_null_dims']} null "
                    f"directions, {cert['completeness']['found_directions']} explained); the dense route "
                    f"found {dense.n_generators} and {len(dense.rotations)}"
                )
                dense.seconds = time.perf_counter() - t0
                return dense
            cert["completeness"]["dense_cross_check"] = {"n_generators": dense.n_generators, "n_rotations": len(dense.rotations)}
            cert["completeness"]["statement"] += (
                "; the dense route finds no more generators, so the unexplained directions come from no "
                "linear symmetry"
            )
    if chosen == "blocks":
        extra = rots if rotations else [c[1] for c in _candidates(loss, cl, em, chosen, -1, rng, tol, shared)[0] if c[0] == "exact"]
        cert["completeness"] = block_completeness(loss, cl, gens, extra, rng, known=known)

    inert, classes, charges, rank, cert["independent_charges"] = summaries(loss, gens, seed, known)
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
    if route == "blocks":
        check_block_memory(loss)
        return route
    if route != "auto":
        if route == "exact" and em.has_helpers:
            raise UnsupportedExpressionError(
                "the exact route needs a polynomial or rational loss; this one has kinks or "
                "transcendental pieces; use route='auto'"
            )
        return route
    n = loss.n
    if n <= 40 and not em.has_helpers and _estimate_exact_terms(loss, em) <= 5_000:
        return "exact"
    if n <= 20:
        return "dense"
    if n > BLOCKS_FROM_N and has_matrix_blocks(loss):
        # the structured route's memory grows as n³ (its unknowns are n x n matrices)
        check_block_memory(loss)
        return "blocks"
    return "structured"


#: refinement and the retry of unconfirmed numeric candidates work on the n(n+1)/2 pairs:
#: above this many parameters unconfirmed candidates are reported as they are
REFINE_MAX_N = 4096
#: from this many parameters, a loss with matrix blocks goes to the blocks route in "auto"
BLOCKS_FROM_N = 300
#: when the structured route fails its completeness check, the dense route re-solves the
#: problem if it has at most this many unknowns (n(n+1)/2, n ≤ 44; a few seconds at the limit)
DENSE_CROSS_CHECK_MAX = 1000


def _completeness_guard(
    loss: Loss, cl: CompiledLoss, em: ExactModel, route: str, gens: list, rots: list, rotations: bool,
    rng: np.random.Generator, tol: float, shared: dict,
) -> dict[str, Any]:
    """Completeness check of a numeric route (:func:`._numeric.gradient_null_completeness`).

    Without ``rotations`` the antisymmetric candidates are computed (not confirmed) only when
    the generators alone fall short, since rotation directions are part of the null space."""
    comp = gradient_null_completeness(loss, cl, [*gens, *rots], rng)
    if comp["complete"] is False and not rotations:
        extra = [c[1] for c in _candidates(loss, cl, em, route, -1, rng, tol, shared)[0] if c[0] == "exact"]
        if extra:
            comp = gradient_null_completeness(loss, cl, [*gens, *extra], rng)
            comp["rotations_unconfirmed"] = True
    return comp


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
    if route == "blocks":
        return block_candidates(loss, cl, sigma, rng, tol, shared)
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
            cands.append(("float", _unflatten_float(row, pairs, n, sigma), "entries do not round to rationals at float precision"))
        else:
            cands.append(("exact", _unflatten(q, pairs, sigma)))
    return cands, info


# ------------------------------------------------------------------------------------------
# Confirmation and canonical form
# ------------------------------------------------------------------------------------------


def _confirm_all(loss: Loss, em: ExactModel, cands: list, sigma: int, info: dict,
                 known: dict | None = None) -> tuple[list[sp.Matrix], list[Candidate]]:
    """Confirm every exact candidate (one exact proof each, or one per orbit when the
    route proposed linked sides, :mod:`._orbits`); return the canonical basis of the
    confirmed ones and the unconfirmed candidates with their reasons."""
    kind = "symmetric" if sigma == 1 else "antisymmetric"
    ok: list[dict[tuple[int, int], Fraction]] = []
    bad: list[Candidate] = []

    def prove(J: Any) -> tuple[bool, str]:
        J = as_entries(J)
        # the exact route's candidates solve (E4) over QQ already: no float filter for them
        bad_numeric = None if info.get("route") == "exact" else _numeric_precheck(loss, J)
        if bad_numeric is not None:
            return False, bad_numeric
        try:
            res = _confirm_one(loss, em, J)
        except UnsupportedExpressionError as exc:
            return False, f"cannot confirm exactly: {exc}"
        return res.confirmed, res.reason

    exact = [c[1] for c in cands if c[0] == "exact"]
    for c in cands:
        if c[0] == "float":
            bad.append(Candidate(c[1], c[2], kind))
    if info.get("linked_sides") and len(exact) >= ORBIT_FROM_CANDIDATES and loss.n >= LOCAL_FROM_N:
        outcomes, info["orbit_proofs"] = orbit_confirm(loss, exact, info["linked_sides"], prove)
    else:
        outcomes = [prove(J) for J in exact]
    for J, (confirmed, reason) in zip(exact, outcomes):
        if confirmed:
            ok.append(J)
        else:
            bad.append(Candidate(_dense_of(J, loss.n), reason, kind))
    info["n_candidates"] = len(cands)
    info["n_confirmed"] = len(ok)
    return canonical_sparse(ok, loss.n, sigma, known), bad


def _dense_of(J: dict[tuple[int, int], Fraction], n: int) -> np.ndarray:
    """The float matrix of an unconfirmed candidate (empty above 4096 parameters)."""
    dense = np.zeros((n, n)) if n <= 4096 else np.zeros((0, 0))
    if dense.size:
        for (i, j), v in as_entries(J).items():
            dense[i, j] = float(v)
    return dense


#: above this many parameters a candidate the local check cannot handle is not sent to the
#: full exact engine (whose context spans every parameter) but reported unconfirmed
FULL_EXACT_MAX_N = 5000


def _confirm_one(loss: Loss, em: Any, J: dict[tuple[int, int], Fraction]) -> Any:
    """Exact confirmation of one candidate: on the part of the graph it moves for large
    losses (:func:`._local.local_confirm`), else (or when that part is not enough) by the
    full exact engine."""
    if loss.n >= LOCAL_FROM_N:
        try:
            return local_confirm(loss, J)
        except UnsupportedExpressionError:
            if loss.n > FULL_EXACT_MAX_N:
                raise
    return em.confirm(J)


def _refine_unconfirmed(
    loss: Loss, cl: CompiledLoss, em: ExactModel, mats: list[sp.Matrix], bad: list[Candidate], sigma: int,
    rng: np.random.Generator, info: dict,
) -> tuple[list[sp.Matrix], list[Candidate]]:
    """Refine unconfirmed numeric candidates exactly or in high precision (no denominator
    bound, see :mod:`._refine`), confirm what comes out, and merge it with ``mats``."""
    n = loss.n
    pairs = _pairs(n, sigma)
    iu = np.triu_indices(n, 0 if sigma == 1 else 1)
    vecs, rinfo = refine(loss, cl, np.array([c.matrix[iu] for c in bad]), pairs, sigma, rng)
    info["refinement"] = rinfo
    new, _ = _confirm_all(loss, em, [("exact", _unflatten(q, pairs, sigma)) for q in vecs], sigma, {}) if vecs else ([], [])
    merged = _canonical([_as_entries(A) for A in [*mats, *new]], n, sigma)
    left = len(mats) + len(bad) - len(merged)
    why = rinfo.get("reason")
    out = [Candidate(c.matrix, f"{c.reason}; refinement: {why}" if why else c.reason, c.kind) for c in bad]
    return merged, out[: max(left, 0)]


def _as_entries(A: sp.Matrix) -> dict[tuple[int, int], Fraction]:
    return {(int(i), int(j)): Fraction(int(v.p), int(v.q)) for (i, j), v in A.todok().items() if v != 0}


def _numeric_precheck(loss: Loss, J: dict[tuple[int, int], Fraction], points: int = 16) -> str | None:
    """Cheap filter before the exact check: (E4) at random points, relative to each term.

    The residual gᵀJθ is compared with Σ_i |g_i (Jθ)_i|, the magnitude of its terms, after
    each sample's g and Jθ are scaled by their largest entry (so nothing overflows, whatever
    the degree of the loss). A true generator leaves only rounding error (~n·1e-16
    relative); a candidate is rejected only when the residual exceeds 1e-6 of the terms at
    some finite sample, far above rounding, since the exact check of a non-generator can be
    expensive (nothing cancels). Samples with non-finite values say nothing and are skipped."""
    key = f"precheck_points_{points}"
    if key not in loss._cache:  # the same deterministic points for every candidate
        cl = compiled(loss)
        rng = np.random.default_rng(np.random.SeedSequence([7, loss.n]))
        if loss.n >= LOCAL_FROM_N:
            th, g = sample_gradients(loss, cl, rng, points)
        else:
            th, _, g = _sample_rows(loss, cl, rng, None, points)
        loss._cache[key] = (th, g)
    th, g = loss._cache[key]
    v = np.zeros_like(th)
    for (i, j), q in J.items():
        v[:, i] += float(q) * th[:, j]
    with np.errstate(all="ignore"):
        gs = g / np.maximum(np.max(np.abs(g), axis=1, keepdims=True), 1e-300)
        vs = v / np.maximum(np.max(np.abs(v), axis=1, keepdims=True), 1e-300)
        terms = gs * vs
        lhs = np.abs(np.sum(terms, axis=1))
        scale = np.sum(np.abs(terms), axis=1)
        rel = lhs / np.maximum(scale, 1e-300)
    rel = rel[np.isfinite(rel) & (scale > 0)]
    if rel.size and np.max(rel) > 1e-6:
        return f"fails (E4) numerically at random points: max |gᵀJθ|/Σ|g_i(Jθ)_i| = {float(np.max(rel)):.2e}"
    return None
