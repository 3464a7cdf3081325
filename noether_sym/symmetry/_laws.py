"""Symmetries: every conservation law of gradient flow -- the rank of the Lie algebra of the gradient fields.

Marcotte, Gribonval and Peyré (NeurIPS 2023) count the independent conservation laws of
gradient flow for a loss family as n - dim Lie(V)(θ) at a generic θ, where V is the span of
the per-sample gradient fields θ ↦ ∇ℓ(θ, x) over all samples x, and Lie(V) the Lie algebra
of vector fields they generate under [X, Y] = DY·X - DX·Y. Quadratic charges θᵀAθ are
among these laws; a count above ``Symmetries.n_independent_charges`` means laws that are
not quadratic (ℓ = (x(θ₁ + θ₂²) - y)² conserves θ₂e^{-2θ₁} and has no generator).

Method
------
* Samples. S random data points x_s (as the finder draws them: data are free variables),
  S grown until the fields ∇ℓ(·, x_s), stacked at several points θ, stop gaining rank, so
  random combinations Y_c = Σ_s c_s ∇ℓ(·, x_s) are generic members of V as a space of
  functions.
* Points. A piecewise loss has regions of θ of positive volume with laws of their own, for
  every dataset: near θ the fields depend only on the kink-sign patterns (ReLU activation
  patterns) that some sample realises, so a coordinate whose gradient vanishes on every
  sample (the weight between two units never active together) is conserved on the whole
  region, and two units active on exactly the same samples add the laws of their GL(2)
  (W W^T - V^T V, as in a linear layer). The count reported is the one of the regions where
  the fields span the most -- the fewest laws -- which on deep narrow ReLU networks are a
  few per cent of N(0, 1) draws or fewer. Random points are therefore scored (on
  ``SCORE_SAMPLES`` samples) by such coordinates and tied kink pairs, then by the sign
  combinations every pair of kinks takes; for a loss with charges, a quick pass tries the
  best ``QUICK`` of ``QUICK_POOL`` random points, then a longer search over ``MAX_POOL``
  points (batches alternating N(0, 1) and N(``SHIFT``, 1), then perturbations of the best
  points by ``STEP``) tries its best ``SEARCH`` points (at most two per lineage), each with
  ``ENRICH`` candidate samples so that every sign pattern realised at θ has
  ``ENRICH_PER`` samples (small regions of x are missed by a few hundred samples).
* Level 1 is V(θ): the S gradients at θ. Level 2: with m random fields Y_j, one batched
  Hessian-vector pass (complex step, exact to rounding) gives H_s Y_j(θ) for every sample s,
  hence DY_k·Y_j by contraction with the coefficients of Y_k, and all m(m-1)/2 brackets
  [Y_j, Y_k] = DY_k·Y_j - DY_j·Y_k at the cost of m gradient passes. Levels k ≥ 3: random
  left-normed brackets [Y_{c₁}, [Y_{c₂}, ... Y_{c_k}]], evaluated exactly to rounding by
  nested forward-mode dual numbers run through the loss's generated gradient code (one
  perturbation tag per nesting level; about 3^k gradient evaluations per batch), in batches
  of ``BATCH`` until a batch adds no rank: a random bracket of a level whose span is not
  inside the current one falls outside it with probability 1.
* Rank. Unit-normalised values at θ are stacked level by level; the numerical rank is cut
  at the largest singular-value gap (≥ 1e3, below 1e-5 relative). The computation at θ is
  closed by either certificate: (a) a level adds no rank -- if Δ_{k+1} = Δ_k at generic θ
  (constant rank), every bracket with V stays in Δ_k, so Δ_k is Lie(V)(θ); (b) the rank
  reaches n - rank[A₁θ ... A_qθ] for exactly confirmed quadratic charges θᵀA_iθ passed as
  ``quadratic``: every field of V annihilates each charge, hence so does every bracket, so
  Lie(V)(θ) lies in the orthogonal complement of their gradients 2A_iθ. Reaching
  ``MAX_DEPTH`` levels without either is refused.
* Confirmation. A point where the rank meets the charge bound (b) certifies the count at
  once: the numerical rank (with its singular-value gap) bounds dim Lie(V) from below and
  the exact charges bound it from above. For a piecewise loss with charges this is the only
  certificate (the points searched are perturbations of one another, so their agreement
  proves nothing): when no point meets the bound the count is refused, naming the region-wise
  laws. Without charges a piecewise loss is counted only when the rank reaches n (no law):
  agreement between points does not tell the regions without laws of their own apart
  (deep narrow ReLU networks agree at three random points on a count one too high). A loss
  without kinks needs ``points`` points that all agree (closure (a) at each): a
  disagreement is a failure of the numerical rank (the Lie algebra has one dimension at
  generic θ) and is refused, never counted.
* Threads. OpenBLAS runs on one thread during the count (restored after): the work is many
  SVDs of a few hundred rows, where a second thread only contends.
"""


from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import (
    CertificationError,
    InvalidArgumentError,
    UnsupportedExpressionError,
)
from .._validate import Integer, Seed, validate
from ..compile._compiled import CompiledLoss, compiled
from ..loss._loss import Loss, as_loss
from ._numeric import KINK_MARGIN, _gap_rank, _svd

__all__ = ['ConservationLaws', 'conservation_laws']

#: deepest bracket level evaluated (3^depth gradient evaluations per batch)
MAX_DEPTH = 6
#: relative singular value below which a direction may count as dependent (cut at the gap)
RANK_TOL = 1e-5
#: largest number of data samples per field
MAX_SAMPLES = 400
#: memory the bracket evaluation may hold at once (the batch is split to stay below it)
MEMORY_BUDGET = 1 << 30
#: random points scored by kink signs before the rank is computed at the best of them
POOL = 24
#: random brackets per batch at levels ≥ 3
BATCH = 6
#: most random points drawn while looking for points where every kink changes sign
MAX_POOL = 960
#: mean of every other batch of random points for a piecewise loss (units active on most samples)
SHIFT = 0.5
#: samples on which random points of a piecewise loss are scored
SCORE_SAMPLES = 64
#: standard deviation of the perturbations of the best points
STEP = 0.3
#: random points drawn, and best of them tried, before the longer search (piecewise loss with charges)
QUICK_POOL = 48
QUICK = 2
#: most points at which levels 1-2 are computed while looking for one that meets the charge bound
SEARCH = 8
#: candidate samples drawn at each point where the rank of a piecewise loss is computed
ENRICH = 2048
#: samples per sign pattern (patterns with fewer get new samples from the candidates)
ENRICH_PER = 4


@dataclass
class ConservationLaws:
    """The number of independent conservation laws of gradient flow (see :func:`conservation_laws`).

    Attributes
    ----------
    n_laws
        n - dim Lie(V)(θ) at generic θ (for a piecewise loss: in the regions of largest rank).
    lie_rank
        dim Lie(V)(θ), the largest over the points tried.
    ranks
        The rank at each random point θ tried, in order.
    depth
        Bracket level at which the computation closed (1: V alone), the largest over points.
    certificate
        Samples, tolerances, smallest singular-value gap, how each point closed, whether the
        points agreed, and the charge bound when ``quadratic`` was given.
    seconds
        Wall time.
    """

    n_laws: int
    lie_rank: int
    ranks: list[int]
    depth: int
    certificate: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


_OPTIONS = {"seed": Seed(), "points": Integer(1, 20)}


def conservation_laws(loss: Loss, *, seed: int = 0, points: int = 3,
                      quadratic: Sequence[Any] | None = None) -> ConservationLaws:
    """Count the independent conservation laws of gradient flow of ``loss`` (module docstring).

    Parameters
    ----------
    loss
        The loss; data symbols are free variables (the laws hold for every dataset).
    seed
        Seed of the random points, samples and coefficients.
    points
        Number of independent random points θ whose ranks must agree when no ``quadratic``
        bound is given (with the bound, a piecewise loss is searched until one point meets it).
    quadratic
        Optional n x n symmetric matrices A_i whose charges θᵀA_iθ are exactly confirmed
        conservation laws (``Symmetries.generators``); they bound the rank from above, so the
        bracket levels stop as soon as the rank reaches the bound. A matrix that is not such
        a law makes the bound wrong: pass only confirmed generators.

    Returns
    -------
    ConservationLaws

    Raises
    ------
    CertificationError
        When the points do not confirm one generic rank, the bracket depth budget is reached
        before the rank closes, or (piecewise loss with ``quadratic``) no point searched meets
        the charge bound: the loss has regions with laws of their own and the regions without
        them were not found.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> a, b, x, y = sp.symbols("a b x y")
    >>> ns.conservation_laws(ns.Loss((x * (a + b**2) - y) ** 2, params=[a, b], data=[x, y])).n_laws
    1
    """
    loss = as_loss(loss)
    opts = validate(_OPTIONS, seed=seed, points=points)
    Q = _quadratic_matrices(quadratic, loss.n)
    with _one_blas_thread():
        return _count(loss, opts, Q)


def _count(loss: Loss, opts: dict, Q: list[tuple] | None) -> ConservationLaws:
    t0 = time.perf_counter()
    cl = compiled(loss)
    n = loss.n
    rng = np.random.default_rng(np.random.SeedSequence([opts["seed"], 16]))
    xs = _samples(loss, cl, rng)
    need = len(xs) * n * 8 * (POOL + 4)  # the gradients kept per pooled point, and the rank stacks
    if need > MEMORY_BUDGET:
        raise UnsupportedExpressionError(
            f"counting conservation laws needs about {need / 2**30:.1f} GiB for {len(xs)} samples x {n} "
            f"parameters at {POOL} random points, beyond the budget of {MEMORY_BUDGET / 2**30:.0f} GiB"
        )
    want = opts["points"]
    piecewise = cl.n_kinks > 0
    records: list[tuple] = []

    def run(points: Any, depth: int, stop: int, enrich: bool) -> None:
        for theta, good, g, bound in points:
            x = xs[good]
            if enrich:  # more samples for the sign patterns the samples missed at θ
                x, g = _enrich(cl, theta, x, g, rng)
            r1 = _rank(_unit_rows(g))
            r, d, gap, how = _lie_rank(cl, theta, x, g, r1, rng, bound, depth)
            records.append((r, bound, d, gap, how, r1[0]))
            if how in ("charge bound", "full rank") or len(records) >= stop:
                return  # certified: the numerical rank meets the exact upper bound

    done = ("charge bound", "full rank")
    if piecewise:
        # levels 1-2, first at the best QUICK of a few random points (enough for most
        # losses), then at up to SEARCH of the best points of a longer search with
        # perturbations and more samples, until one meets the bound; if none does, every
        # level at the point of largest rank. The points are not independent, so only the
        # bound certifies: agreement does not
        run(_ordered(_point_pool(cl, xs, rng, QUICK, QUICK_POOL, climb=False), Q, n, QUICK), 2, QUICK, False)
        if records[-1][4] not in done and Q is not None:  # without charges only full rank certifies
            points = _ordered(_point_pool(cl, xs, rng, POOL, MAX_POOL), Q, n, SEARCH)
            run(points, 2, len(records) + SEARCH, True)
            if records[-1][4] not in done:
                best = int(np.argmax([r[0] for r in records[QUICK:]]))
                run(points[best:best + 1], MAX_DEPTH, len(records) + 1, True)
    else:
        run(_ordered(_point_pool(cl, xs, rng, POOL, POOL), Q, n, want), MAX_DEPTH, want, False)
    ranks, bounds, depths, gaps, closed, level1 = (list(c) for c in zip(*records)) if records else ([],) * 6
    rank, how = _check_ranks(ranks, bounds, closed, piecewise, want, only_bound=piecewise, charges=Q is not None)
    cert = {
        "samples": len(xs),
        "rank_tolerance": RANK_TOL,
        "smallest_gap": min((g for g in gaps if g is not None), default=None),
        "certified_by": how,
        "points_agree": len(set(ranks)) == 1,
        "closed_by": closed,
        "level1_ranks": level1,
        "charge_bounds": bounds if Q is not None else None,
        "method": "n - rank of V and its brackets at random θ (complex-step HVPs at level 2, nested dual numbers above)",
    }
    if len(set(ranks)) > 1:
        cert["regions"] = ("ranks differ between regions of this piecewise loss (laws of their own there); the count "
                           "is the one of the regions of largest rank (fewest laws), where it meets the bound of the "
                           "quadratic charges")
    return ConservationLaws(n_laws=n - rank, lie_rank=rank, ranks=ranks, depth=max(depths), certificate=cert,
                            seconds=time.perf_counter() - t0)


@contextmanager
def _one_blas_thread() -> Any:
    """OpenBLAS on one thread for the duration (restored after): the count is many SVDs of a
    few hundred rows, where a second BLAS thread only contends -- on a loaded 2-core machine
    it made each SVD about ten times slower. A no-op when the library is not found."""
    lib = _openblas()
    if lib is None:
        yield
        return
    get, put = lib
    old = get()
    put(1)
    try:
        yield
    finally:
        put(old)


_OPENBLAS: list = []


def _openblas() -> tuple[Any, Any] | None:
    """(get, set) thread-count functions of the OpenBLAS NumPy loaded, or None."""
    if not _OPENBLAS:
        found = None
        try:
            with open("/proc/self/maps") as fh:
                paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and ".so" in line})
            for path in paths:
                lib = ctypes.CDLL(path)
                for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
                    get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    if get is not None and put is not None:
                        get.restype = ctypes.c_int
                        put.argtypes = [ctypes.c_int]
                        found = (get, put)
                        break
                if found:
                    break
        except OSError:
            found = None
        _OPENBLAS.append(found)
    return _OPENBLAS[0]


def _check_ranks(ranks: list[int], bounds: list[int], closed: list[str], piecewise: bool, want: int,
                 only_bound: bool = False, charges: bool = True) -> tuple[int, str]:
    """(generic rank, how it is certified), or a refusal (module docstring, Confirmation)."""
    if not ranks:
        raise UnsupportedExpressionError("no random point θ where the gradient fields are defined; check the loss's domain")
    listed = ", ".join(map(str, ranks))
    if any(r > b for r, b in zip(ranks, bounds)):
        raise CertificationError(
            f"the conservation-law count is not certified: a numerical rank ({listed}) exceeds n minus the number "
            f"of independent quadratic charges ({', '.join(map(str, bounds))}), which no exact charge allows"
        )
    hit = [r for r, c in zip(ranks, closed) if c == "charge bound"]
    if hit:  # lower bound (numerical rank) meets the upper bound (exact charges)
        return max(hit), "the rank meets the bound of the quadratic charges"
    if "full rank" in closed:  # the fields span every direction: no law
        return max(ranks), "the rank is n"
    top = max(ranks)
    if only_bound and not charges:
        raise CertificationError(
            f"the conservation-law count is not certified: the Lie-algebra rank at the {len(ranks)} points tried "
            f"({listed}) is below n, and this piecewise loss has regions of θ with laws of their own (a coordinate "
            f"whose gradient vanishes on every sample, two kinks with the same signs on every sample), so ranks "
            f"only bound the count of the regions without them; pass the exact charges as quadratic= (what "
            f"ns.find_symmetries(loss).n_conservation_laws does), which bound the rank from above"
        )
    if only_bound:
        raise CertificationError(
            f"the conservation-law count is not certified: at the {len(ranks)} points tried the Lie-algebra rank "
            f"({listed}) stays below n minus the number of independent quadratic charges ({max(bounds)}). This "
            f"piecewise loss has regions of θ with laws of their own (a coordinate whose gradient vanishes on "
            f"every sample, e.g. the weight between two ReLU units never active together; two units active on "
            f"the same samples), so its count differs between regions; the regions where it meets the bound "
            f"were not found. The count of quadratic laws is n_independent_charges"
        )
    if any(c == "depth budget" and r == top for r, c in zip(ranks, closed)):
        raise CertificationError(
            f"the conservation-law count is not certified: the Lie-algebra rank ({top}) was still growing at the "
            f"bracket depth budget MAX_DEPTH = {MAX_DEPTH}, so the count n - {top} is only an upper bound"
        )
    if len(set(ranks)) > 1:
        # an analytic loss has one Lie-algebra dimension at generic θ: disagreeing ranks mean
        # the numerical rank cut is unreliable; a piecewise loss has regions of different
        # counts, and sampled fields only bound the rank of a region from below, so without
        # the charge bound no count is given
        why = ("ranks from finitely many samples only bound each region's rank from below"
               if piecewise else "the numerical rank cut is unreliable for this loss")
        raise CertificationError(
            f"the conservation-law count is not certified: the Lie-algebra rank differs between random points "
            f"({listed}) and {why}; the count of quadratic laws is n_independent_charges"
        )
    if len(ranks) < min(2, want):
        raise CertificationError(f"the conservation-law count is not certified: one point only (rank {top})")
    return top, f"the rank closes (a bracket level adds none) and agrees at {len(ranks)} points"


def _quadratic_matrices(quadratic: Sequence[Any] | None, n: int) -> list[tuple] | None:
    """The charge matrices as sparse triplets (rows, cols, values), or None."""
    if quadratic is None:
        return None
    mats = []
    for k, A in enumerate(quadratic):
        if hasattr(A, "todok"):  # a SymPy matrix, dense or sparse: read its nonzero entries
            shape = tuple(A.shape)
            entries = {(int(i), int(j)): float(v) for (i, j), v in A.todok().items() if v != 0}
        else:
            try:
                M = np.array(A, dtype=float)
            except (TypeError, ValueError) as exc:
                raise InvalidArgumentError(f"quadratic[{k}] must be an n x n matrix of numbers: {exc}") from None
            shape = M.shape
            entries = {(int(i), int(j)): float(M[i, j]) for i, j in zip(*np.nonzero(M))} if M.ndim == 2 else {}
        if shape != (n, n):
            raise InvalidArgumentError(f"quadratic[{k}] has shape {shape}; it must be n x n = {n} x {n}")
        vals = np.array(list(entries.values()))
        scale = max(1.0, float(np.abs(vals).max())) if len(vals) else 1.0
        if not np.all(np.isfinite(vals)) or any(abs(v - entries.get((j, i), 0.0)) > 1e-12 * scale
                                                for (i, j), v in entries.items()):
            raise InvalidArgumentError(f"quadratic[{k}] must be a finite symmetric matrix (a charge θᵀAθ)")
        ij = np.array(list(entries.keys()), dtype=int).reshape(-1, 2)
        mats.append((ij[:, 0], ij[:, 1], vals))
    return mats


def _charge_rank(Q: list[tuple], theta: np.ndarray) -> int:
    """rank[A₁θ ... A_qθ]: the number of independent charge gradients at θ."""
    if not Q:
        return 0
    B = np.zeros((len(Q), len(theta)))
    for k, (i, j, v) in enumerate(Q):
        np.add.at(B[k], i, v * theta[j])
    norms = np.linalg.norm(B, axis=1)
    B = B[norms > 0] / norms[norms > 0, None]
    if not len(B):
        return 0
    return _gap_rank(_svd(B, compute_uv=False), RANK_TOL)[0]


def _samples(loss: Loss, cl: CompiledLoss, rng: np.random.Generator) -> np.ndarray:
    """Data samples whose gradient fields span V as functions (rank saturated at 3 points)."""
    n = loss.n
    if cl.d == 0:
        return np.zeros((1, 0))
    thetas = rng.standard_normal((3, n))
    S = min(2 * n + 8, MAX_SAMPLES)
    need = max(len(cl.graph.nodes) * 2, 3 * n) * S * 8
    if need > MEMORY_BUDGET:
        raise UnsupportedExpressionError(
            f"counting conservation laws needs about {need / 2**30:.1f} GiB per point for {S} samples "
            f"({len(cl.graph.nodes)} code nodes), beyond the budget of {MEMORY_BUDGET / 2**30:.0f} GiB"
        )
    while True:
        x = rng.standard_normal((S, cl.d))
        with np.errstate(all="ignore"):
            g = np.stack([cl.grad(t[None, :], x) for t in thetas])  # (3, S, n)
        G = np.transpose(g, (0, 2, 1)).reshape(3 * n, S)
        G = G[:, np.all(np.isfinite(G), axis=0)]
        s = _svd(G, compute_uv=False)
        r, _ = _gap_rank(s, RANK_TOL)
        if r < G.shape[1] - 4 or S >= MAX_SAMPLES:
            if cl.n_kinks:
                return x  # a piecewise loss: every sample realises sign patterns
            return x[: min(len(x), r + 8)]  # r + 8 random samples span the same functions
        S = min(2 * S, MAX_SAMPLES)


def _point_pool(cl: CompiledLoss, xs: np.ndarray, rng: np.random.Generator, size: int, cap: int,
                climb: bool = True) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The ``size`` best of up to ``cap`` random points θ, each with (good-sample mask,
    gradients at the good samples), best first (module docstring, Points). For a loss
    without kinks: ``size`` standard normal points in random order. For a piecewise loss the
    points are scored by :func:`_score`; half of the budget draws batches alternating
    between N(0, 1) and N(SHIFT, 1), the other half (with ``climb``) alternates such batches
    with perturbations of the best points found so far (steps of STEP); the pool keeps the
    best scores. Points are scored on the first SCORE_SAMPLES samples, and the gradients of
    the points kept are then evaluated on every sample."""
    n = cl.n
    xs_score = xs[:SCORE_SAMPLES] if cl.n_kinks else xs
    S = len(xs_score)
    chunk = min(size, max(1, int(MEMORY_BUDGET // max(1, len(cl.graph.nodes) * S * 8 * 2))))
    pool: list[tuple] = []  # (key, draw number, θ, good-sample mask, gradients, lineage), best first
    drawn, batch = 0, 0
    while drawn < cap:
        if not climb or batch % 4 < 2 or drawn < cap // 2 or not pool:
            th = rng.standard_normal((chunk, n)) + (SHIFT if batch % 2 else 0.0)
            roots = list(range(drawn, drawn + chunk))
        else:  # perturb the best points found so far
            parents = pool[: max(1, chunk // 6)]
            pick = np.arange(chunk) % len(parents)
            th = np.array([parents[i][2] for i in pick]) + STEP * rng.standard_normal((chunk, n))
            roots = [parents[i][5] for i in pick]
        batch += 1
        ok, g, score = _score(cl, th, xs_score)
        for t, gi, oki, sc, root in zip(th, g, ok, score, roots):
            if oki.any():
                pool.append((-int(sc), drawn, t, oki, gi[oki], root))
            drawn += 1
        pool = sorted(pool, key=lambda e: e[:2])[: 4 * size]  # stable: draw order among ties
        if not cl.n_kinks:
            break
    # at most two points of one lineage (a random point and its perturbations) among the first
    seen: dict[int, int] = {}
    first, rest = [], []
    for e in pool:
        seen[e[5]] = seen.get(e[5], 0) + 1
        (first if seen[e[5]] <= 2 else rest).append(e)
    pool = (first + rest)[:size]
    if xs_score is xs:
        return [e[2:5] for e in pool]
    out = []  # the gradients at every sample, for the kept points (in batches within the budget)
    step = max(1, int(MEMORY_BUDGET // max(1, len(cl.graph.nodes) * len(xs) * 8 * 2)))
    for start in range(0, len(pool), step):
        th = np.array([e[2] for e in pool[start:start + step]])
        ok, g, _ = _score(cl, th, xs)
        out += [(t, oki, gi[oki]) for t, oki, gi in zip(th, ok, g) if oki.any()]
    return out


def _score(cl: CompiledLoss, th: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(good-sample mask, gradients, score) for a batch of points θ. The score penalises, per
    point, every coordinate whose gradient vanishes on every sample (a law of that region
    only: the weight between two ReLU units never active together) and every tied pair of
    kinks (:func:`_kink_coverage`), and then counts the sign combinations seen."""
    with np.errstate(all="ignore"):
        val, g, kinks = cl.value_grad(th[:, None, :], xs[None, :, :])
    ok = np.isfinite(val) & np.all(np.isfinite(g), axis=-1)
    if not kinks.shape[-1]:
        return ok, g, np.zeros(len(th), dtype=int)
    ok &= np.all(np.abs(kinks) > KINK_MARGIN, axis=-1)  # a sample on a kink: the fields are not smooth there
    zero = np.sum(np.all((g == 0) | ~ok[..., None], axis=1), axis=-1)
    seen, tied = _kink_coverage(kinks > 0, ok)
    return ok, g, seen - 10**6 * (zero + tied)


def _kink_coverage(pos: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For points × samples × kinks signs ``pos`` (samples masked by ``ok``): the number of
    (kink, kink, sign, sign) combinations seen on some sample, and the number of pairs of
    kinks whose signs agree (or disagree) on every sample. Fields near θ depend only on the
    sign patterns the samples realise; a combination never seen leaves laws of that region
    only (two ReLU units never active together: the weight between them; two units active on
    the same samples: the GL(2) of the pair)."""
    P = (pos & ok[..., None]).astype(float)
    N = (~pos & ok[..., None]).astype(float)
    seen = np.zeros(len(pos), dtype=int)
    count = {}
    for i, A in enumerate((P, N)):
        At = np.transpose(A, (0, 2, 1))
        for j, B in enumerate((P, N)):
            count[i, j] = At @ B
            seen += (count[i, j] > 0).sum(axis=(1, 2))
    same = (count[0, 1] == 0) & (count[1, 0] == 0)
    swap = (count[0, 0] == 0) & (count[1, 1] == 0)
    K = pos.shape[-1]
    tied = np.triu(same | swap, 1).reshape(len(pos), K * K).sum(axis=1)
    return seen, tied


def _enrich(cl: CompiledLoss, theta: np.ndarray, xs: np.ndarray, g: np.ndarray, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """The samples xs (gradients g at θ) plus new samples from ENRICH candidates so that every
    kink-sign pattern the candidates realise at θ has ENRICH_PER samples: the fields
    near θ depend only on the patterns realised, and regions of small volume are missed by a
    few hundred samples. Half the candidates are rescaled by log-normal factors (patterns
    far from the origin, where affine kinks part)."""
    d = xs.shape[1]
    M = min(ENRICH, max(1, int(MEMORY_BUDGET // max(1, len(cl.graph.nodes) * 8 * 2))))
    cand = rng.standard_normal((M, d))
    cand[M // 2:] *= np.exp(1.5 * rng.standard_normal((M - M // 2, 1)))
    with np.errstate(all="ignore"):
        _, _, k0 = cl.value_grad(theta[None, :], xs)
        val, gc, kc = cl.value_grad(theta[None, :], cand)
    ok = np.isfinite(val) & np.all(np.isfinite(gc), axis=-1) & np.all(np.abs(kc) > KINK_MARGIN, axis=-1)
    count: dict[bytes, int] = {}
    for row in k0 > 0:
        count[row.tobytes()] = count.get(row.tobytes(), 0) + 1
    keys = kc > 0
    picked = []
    for i in np.flatnonzero(ok):
        key = keys[i].tobytes()
        if count.get(key, 0) < ENRICH_PER:
            count[key] = count.get(key, 0) + 1
            picked.append(i)
    if not picked:
        return xs, g
    return np.concatenate([xs, cand[picked]]), np.concatenate([g, gc[picked]])


def _ordered(pool: list, Q: list[tuple] | None, n: int, limit: int) -> list[tuple]:
    """The first ``limit`` pooled points as (θ, good-sample mask, gradients, rank bound: n, or
    n minus the number of independent charge gradients at θ)."""
    return [(t, ok, g, n - _charge_rank(Q, t) if Q is not None else n) for t, ok, g in pool[:limit]]


def _lie_rank(cl: CompiledLoss, theta: np.ndarray, xs: np.ndarray, g: np.ndarray, level1: tuple[int, float | None],
              rng: np.random.Generator, bound: int, max_depth: int = MAX_DEPTH) -> tuple[int, int, float | None, str]:
    """(rank, depth, gap, how the computation closed) at one point θ, from the gradients g at
    the samples xs and their rank ``level1``; ``bound`` is an upper bound on the rank (n, or n
    minus the number of independent charge gradients)."""
    n = cl.n
    vecs = _unit_rows(g)
    if not len(vecs):
        return 0, 1, None, "no gradient"
    rank, gap = level1
    for depth in range(2, max_depth + 1):
        if rank >= bound:
            return rank, depth - 1, gap, "charge bound" if bound < n else "full rank"
        grew = False
        while rank < bound:
            # level 2: all brackets of m fields at once (M ≥ n - rank + 4, the most a level
            # adds at θ); above: batches of random brackets until one adds nothing -- a
            # random bracket of a level that is not inside the current span falls outside it
            # with probability 1, so a batch adding nothing closes the level
            if depth == 2:
                V = _level2(cl, theta, xs, g, n - rank + 4, rng)
            else:
                V = _level(_dual_program(cl), cl, theta, xs, min(BATCH, n - rank + 4), depth, rng)
            vecs = np.concatenate([vecs, _unit_rows(V)])
            new, gap2 = _rank(vecs)
            if new == rank:
                break
            rank, gap, grew = new, gap2, True
            if depth == 2:
                break  # the pairs of level 2 already span it
        if not grew:
            return rank, depth - 1, gap, "level adds no rank"
    if rank >= bound:
        return rank, max_depth, gap, "charge bound" if bound < n else "full rank"
    return rank, max_depth, gap, "depth budget" if max_depth == MAX_DEPTH else f"levels 1-{max_depth} only"


def _unit_rows(V: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(V, axis=1)
    keep = (norms > 0) & np.isfinite(norms)
    return V[keep] / norms[keep, None]


def _level2(cl: CompiledLoss, theta: np.ndarray, xs: np.ndarray, g: np.ndarray, M: int,
            rng: np.random.Generator) -> np.ndarray:
    """At least M random brackets [Y_j, Y_k](θ), (≥ M, n), from m batched HVP passes (m(m-1)/2 ≥ M)."""
    n, S = cl.n, len(xs)
    m = 2
    while m * (m - 1) // 2 < M:
        m += 1
    if "_fn_" in cl._value_grad.source:
        _dual_program(cl)  # raises the clear error for user functions
    per_dir = len(cl.graph.nodes) * S * 16 * 2  # complex arrays over the samples, values and adjoints
    chunk = max(1, int(MEMORY_BUDGET // per_dir))
    C = rng.standard_normal((m, S))
    Y = C @ g  # (m, n): the fields Y_j at θ
    D = np.empty((m, S, n))
    for start in range(0, m, chunk):
        Yc = Y[start:start + chunk]
        with np.errstate(all="ignore"):
            D[start:start + chunk] = cl.hvp(theta[None, None, :], Yc[:, None, :], xs[None, :, :])  # H_s Y_j
    P = np.einsum("ks,jsn->jkn", C, D)  # P[j, k] = DY_k · Y_j
    j, k = np.triu_indices(m, 1)
    return P[j, k] - P[k, j]


def _level(f: Any, cl: CompiledLoss, theta: np.ndarray, xs: np.ndarray, M: int, depth: int,
           rng: np.random.Generator) -> np.ndarray:
    """M random left-normed brackets of length ``depth`` at θ, (M, n), in batches that fit
    the memory budget (every node of the gradient code holds 2^depth arrays of batch x S)."""
    n, S = cl.n, len(xs)
    per_row = len(cl.graph.nodes) * S * 8 * 2 ** depth * 2
    if per_row > MEMORY_BUDGET:
        raise UnsupportedExpressionError(
            f"counting conservation laws at bracket depth {depth} needs about {per_row / 2**30:.1f} GiB per "
            f"bracket ({len(cl.graph.nodes)} code nodes x {S} samples), beyond the budget of "
            f"{MEMORY_BUDGET / 2**30:.0f} GiB"
        )
    chunk = max(1, int(MEMORY_BUDGET // per_row))
    out = []
    for start in range(0, M, chunk):
        m = min(chunk, M - start)
        coeffs = [rng.standard_normal((m, S)) for _ in range(depth)]
        with np.errstate(all="ignore"):
            vals = _bracket(f, xs, coeffs, [np.broadcast_to(theta[i], (m,)) for i in range(n)])
        out.append(np.stack([np.broadcast_to(np.asarray(_primal(v), dtype=float), (m,)) for v in vals], axis=1))
    return np.concatenate(out)


def _rank(vecs: np.ndarray) -> tuple[int, float | None]:
    s = _svd(np.asarray(vecs), compute_uv=False)
    return _gap_rank(s, RANK_TOL)


# ------------------------------------------------------------------------------------------
# Fields and brackets
# ------------------------------------------------------------------------------------------


def _field(f: Any, xs: np.ndarray, c: np.ndarray, theta: list) -> list:
    """Y_c(θ) = Σ_s c_s ∇ℓ(θ, x_s) for a batch: θ entries (M,), c (M, S) -> n entries (M,)."""
    ins = [_index(t, (slice(None), None)) for t in theta] + [xs[None, :, j] for j in range(xs.shape[1])]
    grads = f(*ins)[1]
    return [_sum1(gi * c) for gi in grads]


def _bracket(f: Any, xs: np.ndarray, coeffs: list[np.ndarray], theta: list) -> list:
    """[Y_{c₁}, [Y_{c₂}, ... Y_{c_k}]](θ) by nested dual numbers."""
    if len(coeffs) == 1:
        return _field(f, xs, coeffs[0], theta)
    c, rest = coeffs[0], coeffs[1:]
    y = _field(f, xs, c, theta)
    tag = _new_tag()
    z_dual = _bracket(f, xs, rest, [Dual(t, v, tag) for t, v in zip(theta, y)])
    z = [_part(v, tag, 0) for v in z_dual]
    dz_y = [_part(v, tag, 1) for v in z_dual]
    tag2 = _new_tag()
    y_dual = _field(f, xs, c, [Dual(t, v, tag2) for t, v in zip(theta, z)])
    dy_z = [_part(v, tag2, 1) for v in y_dual]
    return [a - b for a, b in zip(dz_y, dy_z)]


_TAGS = [0]


def _new_tag() -> int:
    _TAGS[0] += 1
    return _TAGS[0]


class Dual:
    """a + b·ε with ε² = 0 for one perturbation ``tag``; a and b may be Duals of older tags."""

    __slots__ = ("a", "b", "tag")
    __array_priority__ = 100

    def __init__(self, a: Any, b: Any, tag: int) -> None:
        self.a, self.b, self.tag = a, b, tag

    def _split(self, o: Any) -> tuple[Any, Any]:
        if isinstance(o, Dual) and o.tag == self.tag:
            return o.a, o.b
        return o, 0.0

    def _lead(self, o: Any) -> bool:
        return not (isinstance(o, Dual) and o.tag > self.tag)

    def __add__(self, o: Any) -> Any:
        if not self._lead(o):
            return o.__radd__(self)
        oa, ob = self._split(o)
        return Dual(self.a + oa, self.b + ob, self.tag)

    __radd__ = __add__

    def __neg__(self) -> Dual:
        return Dual(-self.a, -self.b, self.tag)

    def __sub__(self, o: Any) -> Any:
        return self + (-o)

    def __rsub__(self, o: Any) -> Any:
        return (-self) + o

    def __mul__(self, o: Any) -> Any:
        if not self._lead(o):
            return o.__rmul__(self)
        oa, ob = self._split(o)
        return Dual(self.a * oa, self.a * ob + self.b * oa, self.tag)

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Any:
        if not self._lead(o):
            return o.__rtruediv__(self)
        oa, ob = self._split(o)
        q = self.a / oa
        return Dual(q, (self.b - q * ob) / oa, self.tag)

    def __rtruediv__(self, o: Any) -> Any:
        q = o / self.a
        return Dual(q, -q * self.b / self.a, self.tag)

    def __pow__(self, k: Any) -> Dual:
        if isinstance(k, Dual):
            raise UnsupportedExpressionError("a power with a parameter-dependent exponent")
        return Dual(self.a ** k, k * self.a ** (k - 1) * self.b, self.tag)

    def __getitem__(self, idx: Any) -> Dual:
        return Dual(_index(self.a, idx), _index(self.b, idx), self.tag)


def _index(v: Any, idx: Any) -> Any:
    if isinstance(v, Dual):
        return v[idx]
    return v[idx] if np.ndim(v) else v


def _primal(v: Any) -> Any:
    while isinstance(v, Dual):
        v = v.a
    return v


def _part(v: Any, tag: int, k: int) -> Any:
    """Primal (k = 0) or ε-part (k = 1) of v for one tag (v constant in ε: 0)."""
    if isinstance(v, Dual) and v.tag == tag:
        return v.b if k else v.a
    if isinstance(v, Dual) and v.tag > tag:
        return Dual(_part(v.a, tag, k), _part(v.b, tag, k), v.tag)
    return 0.0 if k else v


def _sum1(v: Any) -> Any:
    if isinstance(v, Dual):
        return Dual(_sum1(v.a), _sum1(v.b), v.tag)
    return np.sum(v, axis=1) if np.ndim(v) == 2 else v


def _unary(name: str, d: Any) -> Any:
    def fn(z: Any) -> Any:
        if isinstance(z, Dual):
            return Dual(fn(z.a), d(z.a, fn) * z.b, z.tag)
        return getattr(np, name)(z)
    return fn


_DERIVATIVES = {
    "exp": lambda a, f: f(a),
    "log": lambda a, f: 1.0 / a,
    "sqrt": lambda a, f: 0.5 / f(a),
    "sin": lambda a, f: _FNS["cos"](a),
    "cos": lambda a, f: -_FNS["sin"](a),
    "tanh": lambda a, f: 1.0 - f(a) * f(a),
    "sinh": lambda a, f: _FNS["cosh"](a),
    "cosh": lambda a, f: _FNS["sinh"](a),
    "arctan": lambda a, f: 1.0 / (1.0 + a * a),
}
_FNS: dict[str, Any] = {name: _unary(name, d) for name, d in _DERIVATIVES.items()}


def _where(cond: Any, x: Any, y: Any) -> Any:
    tags = [v.tag for v in (x, y) if isinstance(v, Dual)]
    if not tags:
        return np.where(cond, x, y)
    t = max(tags)
    return Dual(_where(cond, _part(x, t, 0), _part(y, t, 0)), _where(cond, _part(x, t, 1), _part(y, t, 1)), t)


def _broadcast(v: Any, shape: tuple) -> Any:
    if isinstance(v, Dual):
        return Dual(_broadcast(v.a, shape), _broadcast(v.b, shape), v.tag)
    return np.broadcast_to(v, shape)


class _DualNumpy:
    """The ``_np`` of the generated gradient code, for dual numbers."""

    broadcast_shapes = staticmethod(np.broadcast_shapes)
    zeros = staticmethod(np.zeros)
    asarray = staticmethod(np.asarray)
    sign = staticmethod(np.sign)

    @staticmethod
    def shape(v: Any) -> tuple:
        return np.shape(_primal(v))

    broadcast_to = staticmethod(_broadcast)

    def __getattr__(self, name: str) -> Any:
        if name in _FNS:
            return _FNS[name]
        raise UnsupportedExpressionError(
            f"counting conservation laws needs derivatives of {name}, which the dual-number code does not have"
        )


def _dual_program(cl: CompiledLoss) -> Any:
    cache = cl.__dict__.setdefault("_dual", {})
    if "f" not in cache:
        source = cl._value_grad.source
        if "_fn_" in source:
            raise UnsupportedExpressionError(
                "counting conservation laws needs derivatives of a user function the compiler passes as "
                "NumPy code; write it with SymPy's elementary functions"
            )
        ns: dict[str, Any] = {"_np": _DualNumpy(), "_where": _where, "_real": lambda v: np.real(_primal(v))}
        exec(compile(source, "<noether_sym:dual>", "exec"), ns)  # noqa: S102 - compile_graph's own source, never user text
        cache["f"] = ns["value_grad"]
    return cache["f"]
