"""Symmetries: approximate exponential symmetries near a point -- generators that hold up to a small breaking.

A loss without an exact symmetry can still be almost invariant under e^{λA} near a point θ:
a two-layer tanh network with small weights behaves like a linear network there, and the
GL(d) generators of the linear network break only at order ‖θ‖². The paper's claim that
its result "remains applicable even when the symmetry is not present in the loss" rests on
such generators; this module finds them and says how broken they are.

Method
------
(E4) is linear in A. Sample points θ' in a neighbourhood of θ and data x; each pair gives
one equation gᵀAθ' = 0 over the n(n+1)/2 entries of a symmetric A. The least broken A
minimise the pooled relative residual

    β(A)² = Σ_rows (g_rowᵀ A θ'_row / ‖g_row‖)² / Σ_rows ‖A θ'_row‖²,

a ratio of two quadratic forms in A: a generalized eigenproblem. Dividing each row by ‖g‖
and the whole by ‖Aθ'‖ makes the answer scale-free (rescaling the loss, the data or θ
changes nothing but the neighbourhood's shape); normalising by ‖Aθ'‖ rather than ‖A‖‖θ'‖
keeps directions with Aθ ≈ 0 from looking unbroken merely because they barely move θ. The
denominator is Tr(A P A) with P = Σ θ'θ'ᵀ, positive definite once the points span Rⁿ; it
is whitened by a Cholesky factor and the smallest singular values of the whitened,
QR-reduced row stack are the pooled breakings, with the generators as their vectors.

Neighbourhood: θ' = θ + r‖θ‖ ξ/√n, ξ ~ N(0, I), so the typical distance is the radius r
*relative* to ‖θ‖ (r = 0.1 means 10%); the first point is θ itself. At θ = 0 the radius is
absolute. A larger radius asks the symmetry to hold on a larger region and so reports
more breaking for an approximate symmetry; an exact one is unaffected. The default
r = 0.5 is a compromise measured on the tanh 2-2-2 network: with r = 0.1 the points are
so close that the equations barely differ from those at θ alone, and many directions
with Aθ nearly orthogonal to the gradients look unbroken (no gap, generators unrelated to
GL(2)); with r = 0.5 or 1 the three GL(2) directions stand out by a gap of about 10 at
weights of size 0.1. Charge drifts along an orbit move θ by O(‖θ‖), so a neighbourhood of
that order is the one that matters.

Exactness: directions whose pooled breaking is at rounding level (below ``EXACT_TOL``) are
put in reduced row echelon form, rounded to rationals and confirmed exactly by the same
engine as :func:`~noether_sym.find_symmetries`; confirmed ones come back as exact rational
matrices with breaking exactly 0. Everything else is a float matrix (unit Frobenius norm,
largest entry positive) with its measured breaking: the RMS over rows of the per-row ratio
|gᵀAθ'|/(‖g‖‖Aθ'‖).

Data: the loss's data model (random symbols or dataset); a loss whose data are plain symbols
without a distribution gets standard normal data, as in the finder (a symmetry must hold
for every x).
"""


from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.linalg as sla
import sympy as sp
from scipy import sparse

from .._errors import (
    InvalidArgumentError,
    InvalidDataError,
    NoDifferentiablePointError,
    UnsupportedExpressionError,
)
from .._validate import Integer, Optional, Real, Seed, validate
from ..compile._compiled import compiled
from ..compile._confirm import exact_model
from ..data._moments import moments
from ..data._sample import make_sampler
from ..loss._loss import Loss, as_loss
from ._canonical import _canonical, _numeric_rref, _pairs, _round_rational, _unflatten
from ._charges import charge_expressions

__all__ = ["ApproximateSymmetries", "ApproximateSymmetry", "ChargeDrift", "approximate_symmetries"]

#: pooled breaking below which a direction is tried as an exact generator (rounding lives
#: near 1e-15; an approximate symmetry with breaking this small would need ‖θ‖ ~ 1e-4)
EXACT_TOL = 1e-9
#: a ratio of consecutive singular values at least this large separates the returned
#: approximate directions from the rest
MIN_GAP = 3.0
#: the largest number of unknowns n(n+1)/2 (n = 63 parameters): the dense solve costs
#: (unknowns)³ and its memory (unknowns)²
MAX_UNKNOWNS = 2016
#: the largest number of equations (rows) sampled; rows are reduced by QR in chunks
MAX_ROWS = 400_000
#: rows per QR chunk (memory: chunk x unknowns doubles)
_CHUNK = 4096
#: a kink argument closer than this to zero disqualifies a row
_KINK_MARGIN = 1e-6

_OPTIONS = {
    "radius": Real(0.0, None, low_open=True),
    "n_points": Optional(Integer(1, 100_000)),
    "n_samples": Optional(Integer(1, 100_000)),
    "max_breaking": Real(0.0, 1.0, low_open=True),
    "count": Optional(Integer(0, MAX_UNKNOWNS)),
    "seed": Seed(),
}


@dataclass
class ChargeDrift:
    """Predicted drift of an approximate charge C = θᵀAθ at a point, per unit of t = ηk.

    With a broken symmetry gᵀAθ ≠ 0, Itô's lemma on (E2) gives
    dC/dt = −2∇LᵀAθ − 2γC + (η/S) Tr[A Σ(θ)], i.e. the noise drift of (E12) plus a
    breaking term that an exact symmetry sets to zero by (E7). The per-step change is η
    times this, to first order in η. (With a broken symmetry the noise term 2θᵀAΣ^{1/2}dW
    of Itô's lemma no longer vanishes either, so C also diffuses; the drift is its mean.)

    Attributes
    ----------
    noise
        (η/S) Tr[A Σ(θ)], the drift (E12) predicts.
    breaking
        −2 ∇L(θ)ᵀ A θ = −2 E[gᵀAθ], the extra drift of the broken symmetry (exactly 0 for an
        exact one).
    decay
        −2γ C(θ) (weight decay).
    total
        noise + breaking + decay.
    standard_error
        Monte Carlo standard errors {"noise", "breaking"} (per-sample spread of gᵀAθ and gᵀAg
        over √N), 0 for exact moments and dataset means.
    method
        How the expectations were computed: a :class:`~noether_sym.Moments` ``method`` or
        ``"monte carlo"`` / ``"dataset mean"``.
    """

    noise: float
    breaking: float
    decay: float
    total: float
    standard_error: dict[str, float]
    method: str


@dataclass
class ApproximateSymmetry:
    """One generator that is a symmetry of the loss up to a measured breaking near a point.

    Attributes
    ----------
    generator
        Exact rational ``sympy.Matrix`` when the direction rounds and is confirmed exactly
        (then ``breaking == 0``), else a float ``numpy`` array (unit Frobenius norm, largest
        entry positive). Rows and columns in ``loss.params`` order.
    breaking
        RMS over the sampled rows (data x neighbourhood) of |gᵀAθ'|/(‖g‖‖Aθ'‖); 0 exactly
        for an exact symmetry.
    exact
        Whether ``generator`` is a confirmed exact generator.
    charge
        θᵀAθ as a SymPy expression in the parameters (float coefficients when inexact).
    singular_value
        The pooled breaking of this direction from the generalized eigenproblem (module
        docstring); close to ``breaking``.
    gap
        Ratio of the smallest singular value not returned to the largest returned one (the
        separation of the returned set from the rest; ``inf`` when nothing is left out).
    """

    loss: Loss = field(repr=False)
    generator: Any
    breaking: float
    exact: bool
    charge: sp.Expr
    singular_value: float
    gap: float

    def matrix(self) -> np.ndarray:
        """The generator as a float array."""
        return np.array(self.generator, dtype=float)

    def drift(
        self,
        theta: Any,
        lr: float,
        batch_size: int,
        *,
        weight_decay: float = 0.0,
        n_samples: int | None = None,
        seed: int = 0,
    ) -> ChargeDrift:
        """Predicted drift of the charge at ``theta``: the (E12) noise term and the breaking term.

        Parameters
        ----------
        theta
            The point (mapping or sequence in params order).
        lr, batch_size, weight_decay
            η, S and γ of (E1).
        n_samples, seed
            Monte Carlo sample count (default 100,000) and seed when the loss is not
            polynomial in the data (exact moments otherwise, an exact mean over a dataset).

        Returns
        -------
        ChargeDrift
        """
        opts = validate(
            {"lr": Real(0.0, None, low_open=True), "batch_size": Integer(1), "weight_decay": Real(0.0, None)},
            lr=lr, batch_size=batch_size, weight_decay=weight_decay,
        )
        th = self.loss.theta_vector(theta)
        A = self.matrix()
        k = opts["lr"] / opts["batch_size"]
        mom = None
        try:
            mom = moments(self.loss, theta=th, method="exact")
        except UnsupportedExpressionError:
            pass
        if mom is not None:
            mean = np.array(mom.mean_grad, dtype=float).reshape(-1)
            cov = np.array(mom.covariance, dtype=float)
            noise = k * float(np.sum(A * cov))
            breaking = -2.0 * float(mean @ A @ th)
            se = {"noise": 0.0, "breaking": 0.0}
            method = mom.method
        else:
            ms, qs, mean, se_s, se_q, method = _monte_carlo(self.loss, th, A, n_samples, seed)
            noise = k * (qs - float(mean @ A @ mean))
            breaking = -2.0 * ms
            se = {"noise": k * se_q, "breaking": 2.0 * se_s}
        decay = -2.0 * opts["weight_decay"] * float(th @ A @ th)
        return ChargeDrift(noise, breaking, decay, noise + breaking + decay, se, method)


def _monte_carlo(
    loss: Loss, th: np.ndarray, A: np.ndarray, n_samples: int | None, seed: int
) -> tuple[float, float, np.ndarray, float, float, str]:
    """E[gᵀAθ], E[gᵀAg], E[g] and the standard errors of the first two, by sampling the data."""
    N = Integer(2, 10**8)(100_000 if n_samples is None else n_samples, "n_samples")
    sampler = make_sampler(loss)
    cl = compiled(loss)
    v = A @ th
    rng = np.random.default_rng(np.random.SeedSequence([Seed()(seed, "seed"), 0xD7]))
    if sampler.dataset_size is not None:
        N, draw, method = sampler.dataset_size, lambda a, m: sampler.take(np.arange(a, a + m)), "dataset mean"
    else:
        draw, method = (lambda a, m: sampler.draw(rng, (m,))), "monte carlo"
    s1 = s2 = q1 = q2 = 0.0
    gsum = np.zeros(loss.n)
    for a in range(0, N, _CHUNK * 4):
        m = min(_CHUNK * 4, N - a)
        g = np.asarray(cl.grad(np.broadcast_to(th, (m, loss.n)), draw(a, m)), dtype=float).reshape(m, -1)
        if not np.all(np.isfinite(g)):
            raise InvalidArgumentError(f"the per-sample gradient is not finite at θ = {th} for some data")
        b = g @ v
        q = np.einsum("ki,ij,kj->k", g, A, g)
        s1, s2, q1, q2 = s1 + b.sum(), s2 + (b * b).sum(), q1 + q.sum(), q2 + (q * q).sum()
        gsum += g.sum(axis=0)
    ms, mq = s1 / N, q1 / N
    exact_mean = method == "dataset mean"
    se_s = 0.0 if exact_mean else math.sqrt(max(s2 / N - ms * ms, 0.0) / (N - 1))
    se_q = 0.0 if exact_mean else math.sqrt(max(q2 / N - mq * mq, 0.0) / (N - 1))
    return float(ms), float(mq), gsum / N, se_s, se_q, method


class ApproximateSymmetries(list):
    """The list of :class:`ApproximateSymmetry` returned by :func:`approximate_symmetries`.

    A plain list (exact generators first, then by increasing breaking) with the context of
    the computation as attributes: ``theta``, ``radius``, ``singular_values`` (all pooled
    breakings, ascending), ``gap``, ``n_rows``, ``n_points``.
    """

    theta: np.ndarray
    radius: float
    singular_values: np.ndarray
    gap: float
    n_rows: int
    n_points: int


def approximate_symmetries(
    loss: Loss,
    theta: Any,
    *,
    radius: float = 0.5,
    n_points: int | None = None,
    n_samples: int | None = None,
    max_breaking: float = 0.1,
    count: int | None = None,
    seed: int = 0,
) -> ApproximateSymmetries:
    """Generators A (symmetric) with ℓ(e^{λA}θ', x) ≈ ℓ(θ', x) for θ' near ``theta`` (THEORY (E4)).

    Parameters
    ----------
    loss
        The loss.
    theta
        The point (mapping symbol -> number, or sequence in ``loss.params`` order).
    radius
        Size of the neighbourhood relative to ‖θ‖ (absolute at θ = 0); must be > 0.
    n_points
        Number of points θ' in the neighbourhood (θ itself included); at least n (so the
        points span Rⁿ). Default max(2n, 12).
    n_samples
        Data samples per point. Default max(2n, 16).
    max_breaking
        Largest pooled breaking returned (in (0, 1]). Below it the approximate directions
        are cut at the largest ratio of consecutive singular values when that ratio is at
        least ``MIN_GAP`` (3), so a clearly separated set comes back whole; without such a
        gap every direction below ``max_breaking`` is returned. Exact generators always are.
    count
        Return exactly the ``count`` least broken directions instead (overrides
        ``max_breaking``).
    seed
        Seed of the neighbourhood and data draws (the result is deterministic for a seed).

    Returns
    -------
    ApproximateSymmetries
        A list of :class:`ApproximateSymmetry`: confirmed exact generators first (breaking
        0), then float generators by increasing pooled breaking (singular value).

    Raises
    ------
    InvalidArgumentError
        Non-finite θ, radius ≤ 0, too few points, bad options.
    UnsupportedExpressionError
        More than ``MAX_UNKNOWNS`` unknowns or ``MAX_ROWS`` rows (the budget of the dense solve).
    NoDifferentiablePointError
        Too few rows where the loss is finite, differentiable and has a nonzero gradient.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> u, w, x, y = sp.symbols("u w x y")
    >>> loss = ns.Loss((u * w * x - y) ** 2, params=[u, w], data=[x, y])
    >>> approx = ns.approximate_symmetries(loss, {u: 2, w: 1})
    >>> [(a.generator, a.breaking) for a in approx]
    [(Matrix([
    [1,  0],
    [0, -1]]), 0.0)]
    """
    loss = as_loss(loss)
    opts = validate(_OPTIONS, radius=radius, n_points=n_points, n_samples=n_samples,
                    max_breaking=max_breaking, count=count, seed=seed)
    th0 = loss.theta_vector(theta)
    n = loss.n
    nu = n * (n + 1) // 2
    if nu > MAX_UNKNOWNS:
        raise UnsupportedExpressionError(
            f"approximate_symmetries solves a dense problem in n(n+1)/2 = {nu} unknowns, over the budget "
            f"MAX_UNKNOWNS = {MAX_UNKNOWNS} (n ≤ 63 parameters); restrict the loss to fewer parameters"
        )
    n_pts = opts["n_points"] if opts["n_points"] is not None else max(2 * n, 12)
    if n_pts < n:
        raise InvalidArgumentError(
            f"n_points must be at least the number of parameters ({n}) so the points span Rⁿ; got {n_pts}"
        )
    n_smp = opts["n_samples"] if opts["n_samples"] is not None else max(2 * n, 16)
    if n_pts * n_smp > MAX_ROWS:
        raise UnsupportedExpressionError(
            f"n_points * n_samples = {n_pts * n_smp} rows is over the budget MAX_ROWS = {MAX_ROWS}; use fewer"
        )
    rng = np.random.default_rng(np.random.SeedSequence([opts["seed"], 0xA9]))
    points, th_rows, g_rows, pidx = _sample(loss, th0, opts["radius"], n_pts, n_smp, rng)
    if len(g_rows) < nu:
        raise NoDifferentiablePointError(
            f"only {len(g_rows)} of the sampled rows have a finite, nonzero gradient away from kinks; "
            f"{nu} are needed for {nu} unknowns. Raise n_samples or n_points, or move theta off a "
            "region where the per-sample gradient vanishes"
        )
    counts = np.bincount(pidx, minlength=len(points)).astype(float)
    s, B = _solve(n, th_rows, g_rows, points, counts)
    k = _how_many(s, opts["max_breaking"], opts["count"])
    if k == 0:
        gap = float("nan")
    else:
        gap = float(s[k] / s[k - 1]) if k < len(s) and s[k - 1] > 0 else math.inf
    out = _results(loss, s, B, k, gap, th_rows, g_rows)
    res = ApproximateSymmetries(out)
    res.theta, res.radius, res.singular_values = th0, opts["radius"], s
    res.gap, res.n_rows, res.n_points = gap, len(g_rows), len(points)
    return res


# ------------------------------------------------------------------------------------------
# Sampling and the linear algebra
# ------------------------------------------------------------------------------------------


def _data_draw(loss: Loss, rng: np.random.Generator, m: int) -> np.ndarray:
    try:
        return make_sampler(loss).draw(rng, (m,))
    except InvalidDataError:
        # plain data symbols without a distribution: standard normal, as in the finder
        x = rng.standard_normal((m, len(loss.x)))
        const = np.array(list(loss.constant_values().values()), dtype=float)
        return np.concatenate([x, np.broadcast_to(const, (m, len(const)))], axis=1)


def _sample(
    loss: Loss, th0: np.ndarray, radius: float, n_pts: int, n_smp: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points θ' (n_pts, n) and the usable rows: θ' per row, g per row, point index per row."""
    n = loss.n
    scale = float(np.linalg.norm(th0)) or 1.0
    xi = rng.standard_normal((n_pts, n))
    xi[0] = 0.0
    points = th0 + radius * scale * xi / math.sqrt(n)
    pidx = np.repeat(np.arange(n_pts), n_smp)
    th = points[pidx]
    x = _data_draw(loss, rng, len(pidx))
    cl = compiled(loss)
    with np.errstate(all="ignore"):
        val, g, kinks = cl.value_grad(th, x)
    g = np.asarray(g, dtype=float).reshape(len(pidx), n)
    ok = np.isfinite(np.asarray(val, dtype=float).reshape(-1)) & np.all(np.isfinite(g), axis=1)
    if kinks.shape[-1]:
        ok &= np.all(np.abs(kinks.reshape(len(pidx), -1)) > _KINK_MARGIN, axis=1)
    gn = np.linalg.norm(np.where(ok[:, None], g, 0.0), axis=1)
    ok &= gn > 1e-300
    return points, th[ok], g[ok], pidx[ok]


def _coords(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle pairs (I, J) and the weights making ‖b‖ = ‖A‖_F (1 on, 1/√2 off the diagonal)."""
    I, J = np.triu_indices(n)
    w = np.where(I == J, 1.0, 1.0 / math.sqrt(2.0))
    return I, J, w


def _to_matrix(b: np.ndarray, n: int) -> np.ndarray:
    I, J, w = _coords(n)
    A = np.zeros((n, n))
    A[I, J] = b * w
    A[J, I] = b * w
    return A


def _solve(
    n: int, th: np.ndarray, g: np.ndarray, points: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled breakings (ascending) and the coordinate vectors b of the directions (columns)."""
    I, J, w = _coords(n)
    nu = len(I)
    # numerator: rows gᵀAθ/‖g‖ over b, reduced by QR chunk by chunk (accurate small singular values)
    R = np.zeros((0, nu))
    for a in range(0, len(g), _CHUNK):
        gg, tt = g[a:a + _CHUNK], th[a:a + _CHUNK]
        rows = (gg[:, I] * tt[:, J] + np.where(I != J, gg[:, J] * tt[:, I], 0.0)) * w
        rows /= np.linalg.norm(gg, axis=1)[:, None]
        R = np.linalg.qr(np.vstack([R, rows]), mode="r")
    # denominator Σ_rows ‖Aθ'‖² = Tr(A P A), P = Σ_points count θ'θ'ᵀ, as a form in b
    P = (points * counts[:, None]).T @ points
    cols = np.arange(nu)
    E = sparse.coo_matrix(
        (np.concatenate([w, w[I != J]]), (np.concatenate([I * n + J, (J * n + I)[I != J]]),
                                          np.concatenate([cols, cols[I != J]]))),
        shape=(n * n, nu),
    ).tocsr()
    K = sparse.kron(sparse.identity(n), sparse.csr_matrix(P)).tocsr()
    D = (E.T @ (K @ E)).toarray()
    try:
        L = np.linalg.cholesky(D)
    except np.linalg.LinAlgError:
        raise InvalidArgumentError(
            "the neighbourhood points do not span the parameter space (Σ θ'θ'ᵀ is singular); "
            "use a larger radius or more n_points"
        ) from None
    W = sla.solve_triangular(L, R.T, lower=True).T  # R L⁻ᵀ
    try:
        _, s, Vt = np.linalg.svd(W, full_matrices=True)
    except np.linalg.LinAlgError:
        _, s, Vt = sla.svd(W, full_matrices=True, lapack_driver="gesvd")
    if len(s) < nu:
        s = np.concatenate([s, np.zeros(nu - len(s))])
    order = np.argsort(s, kind="stable")
    s = s[order]
    C = Vt[order].T
    B = sla.solve_triangular(L.T, C, lower=False)  # b = L⁻ᵀ c
    B /= np.linalg.norm(B, axis=0)
    return s, B


def _how_many(s: np.ndarray, max_breaking: float, count: int | None) -> int:
    """Number of directions returned: the exact ones, then the approximate ones up to the
    largest gap (≥ ``MIN_GAP``) below ``max_breaking``, or all below it when no gap is clear."""
    if count is not None:
        if count > len(s):
            raise InvalidArgumentError(f"count = {count} is more than the {len(s)} symmetric directions there are")
        return int(count)
    e = int(np.sum(s <= EXACT_TOL))
    m = int(np.sum(s <= max_breaking))
    if m <= e:
        return e
    nxt = np.append(s, np.inf)
    ratios = nxt[e + 1 : m + 1] / s[e:m]  # cut after i directions, i = e+1..m
    b = int(np.argmax(ratios))
    return e + 1 + b if ratios[b] >= MIN_GAP else m


def _ratios(A: np.ndarray, th: np.ndarray, g: np.ndarray) -> float:
    v = th @ A  # A symmetric: rows of (Aθ')ᵀ
    num = np.abs(np.sum(g * v, axis=1))
    den = np.linalg.norm(g, axis=1) * np.linalg.norm(v, axis=1)
    r = np.where(den > 0, num / np.maximum(den, 1e-300), 0.0)
    return float(np.sqrt(np.mean(r**2)))


def _results(
    loss: Loss, s: np.ndarray, B: np.ndarray, k: int, gap: float, th: np.ndarray, g: np.ndarray
) -> list[ApproximateSymmetry]:
    n = loss.n
    mats = [_to_matrix(B[:, i], n) for i in range(k)]
    null = [i for i in range(k) if s[i] <= EXACT_TOL]
    exact = _exact_part(loss, [mats[i] for i in null])
    out: list[ApproximateSymmetry] = []
    for A in exact:
        out.append(ApproximateSymmetry(loss, A, 0.0, True, charge_expressions(loss, [A])[0], 0.0, gap))
    if len(exact) == len(null):
        rest = [i for i in range(k) if i not in null]
    else:
        rest = list(range(k))  # the exact subspace did not come out whole: report floats for all
        out = []
    params = loss.params
    for i in rest:
        A = mats[i]
        A = A / np.linalg.norm(A)
        big = np.unravel_index(np.argmax(np.abs(A)), A.shape)
        if A[big] < 0:
            A = -A
        A[np.abs(A) < 1e-15] = 0.0
        charge = sp.Add(*[
            sp.Float(A[a, b] * (1 if a == b else 2), 15) * params[a] * params[b]
            for a in range(n) for b in range(a, n) if A[a, b] != 0
        ])
        out.append(ApproximateSymmetry(loss, A, _ratios(A, th, g), False, charge, float(s[i]), gap))
    return out


def _exact_part(loss: Loss, mats: list[np.ndarray]) -> list[sp.Matrix]:
    """Round the near-null directions to rationals and confirm each exactly; [] on any failure."""
    if not mats:
        return []
    n = loss.n
    iu = np.triu_indices(n)
    rref, _ = _numeric_rref(np.array([A[iu] for A in mats]))
    if rref.shape[0] != len(mats):
        return []
    pairs = _pairs(n, 1)
    em = exact_model(loss)
    ok: list[dict[tuple[int, int], Fraction]] = []
    for row in rref:
        q = _round_rational(row, 1e-8)
        if q is None:
            return []
        J = _unflatten(q, pairs, 1)
        try:
            confirmed = em.confirm(J).confirmed
        except UnsupportedExpressionError:
            confirmed = False
        if not confirmed:
            return []
        ok.append(J)
    return _canonical(ok, n, 1)
