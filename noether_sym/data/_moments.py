"""Data: exact expectations over the data -- ∇L = E[g], M(θ) = E[g gᵀ], Σ(θ) = M − ∇L∇Lᵀ (THEORY §1).

The noise covariance Σ(θ) drives the motion of every Noether charge under SGD ((E11),
(E12)) and fixes the noise equilibrium ((E13)-(E17)); this module computes it.

Exact routes (the per-sample loss is a polynomial in the data; its coefficients may be any
expressions of θ):

``gaussian moments (Isserlis)``
    All random symbols are ``sympy.stats`` Normals (any mean and std, symbolic allowed).
    Closed-form moments E[x^k] = Σ_j C(k,2j) μ^{k−2j} σ^{2j} (2j−1)!!, one table per
    (distribution, k).
``sympy moments``
    Other independent single-variable distributions (Uniform, Bernoulli, Rademacher,
    Exponential, ...): E[x^k] from ``sympy.stats.moment``, once per (distribution, k).
``dataset (exact empirical mean)``
    A finite dataset: each float is converted exactly (it is a dyadic rational) and each
    data monomial is averaged over the rows in exact integer arithmetic.

How (fast, and never ``sympy.stats.E`` on a whole expression): the per-sample gradient is
expanded with FLINT as g_i = Σ_α c_iα(θ) x^α (α runs over data monomials). Independence
gives E[x^α] = Π_k E[x_k^{α_k}], so E[g_i] = Σ_α c_iα m_α and
E[g_i g_j] = Σ_{α,β} c_iα c_jβ m_{α+β}, a bilinear form in the coefficient vectors: the
moment "matrix" m_{α+β} is applied once per gradient component and every entry of M costs
one short sum of polynomial products. No ``simplify`` anywhere.

Numeric routes (the loss is not polynomial in the data, or ``method="numeric"``), always
labelled ``exact=False``, at a point θ:

``gaussian cones (deterministic cubature)``
    Piecewise-linear units (ReLU, leaky ReLU, Abs: ``Max``/``Min``/``Abs``/``Heaviside``/
    ``sign`` pieces with arguments affine in the data) on Gaussian data, ``method="auto"``:
    a deterministic cubature over the cones of constant activation pattern
    (``data/_piecewise.py``); the same numbers for every seed, ``standard_error`` holds its
    error estimates.
``monte carlo``
    Everything else on random symbols (and ``method="numeric"``), with standard errors.
``dataset (empirical mean at θ, numeric)``
    The empirical mean over all rows of a dataset.

Helpers: :func:`attach_data` (turn plain data symbols into random expressions),
:func:`gaussian_linear_teacher` (x ~ N(μ, diag s²), y = V x + ε),
:func:`minibatch_factor` (Cov ĝ = factor · Σ, with or without replacement, THEORY §1) and
:func:`compiled_moments` (NumPy functions of θ, vectorized over a batch of points).

Symbols: exact results are expressions in the user's parameter symbols ``loss.params`` and
constants (as declared), plus any symbolic distribution parameters (``s`` in
``Normal("x", 0, s)``).
"""


from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from dataclasses import replace as _dc_replace
from typing import Any

import flint
import numpy as np
import sympy as sp
from scipy.sparse import csr_matrix

from .._errors import InvalidArgumentError, UnsupportedExpressionError
from .._validate import Integer, Optional, Options, Seed, validate
from ..compile._compiled import compiled
from ..loss._loss import Loss, as_loss, replace_symbols
from ._model import _exact_point, _exact_values, _float_point
from ._polynomial import (
    _data_kind,
    _DatasetMoments,
    _NoMoments,
    _NotPolynomial,
    _PolyBuilder,
    _RandomMoments,
    _real_map,
)
from ._piecewise import METHOD_CONES, _cone_moments_or_none
from ._sample import make_sampler

__all__ = ['Moments', 'MomentFunctions', 'expectation', 'moments', 'compiled_moments']

#: moments' options (a Monte Carlo estimate needs two samples for its standard error)
_MOMENTS_OPTIONS = {
    "method": Options(("auto", "exact", "numeric")),
    "n_samples": Optional(Integer(2)),
    "seed": Seed(),
}


METHOD_GAUSSIAN = "gaussian moments (Isserlis)"
METHOD_SYMPY = "sympy moments"
METHOD_DATASET = "dataset (exact empirical mean)"
METHOD_NONE = "no data (deterministic)"
METHOD_MC = "monte carlo"
METHOD_DATASET_NUMERIC = "dataset (empirical mean at θ, numeric)"

#: default number of Monte Carlo samples of the numeric route
DEFAULT_SAMPLES = 100_000
#: samples per call of the compiled gradient: memory is (graph nodes) x chunk floats, and
#: the per-call Python overhead is already negligible at this size
_MC_CHUNK = 8192


# ------------------------------------------------------------------------------------------
# Result objects
# ------------------------------------------------------------------------------------------


@dataclass
class Moments:
    """Mean gradient, second moment and noise covariance of a loss over its data (THEORY §1).

    Attributes
    ----------
    loss
        The Loss.
    mean_grad
        ∇L = E[g]. Exact: ``sp.Matrix`` (n x 1). Numeric: ``np.ndarray`` (n,).
    second_moment
        M(θ) = E[g gᵀ]. Exact: ``sp.Matrix`` (n x n). Numeric: ``np.ndarray`` (n, n).
    covariance
        Σ(θ) = M − ∇L∇Lᵀ. Exact: ``sp.Matrix``. Numeric: ``np.ndarray`` (unbiased estimate
        for Monte Carlo).
    exact
        True for exact (symbolic or exact-at-a-point) results, False for numeric ones.
    method
        One of ``"gaussian moments (Isserlis)"``, ``"sympy moments"``,
        ``"dataset (exact empirical mean)"``, ``"no data (deterministic)"`` (exact) or
        ``"gaussian cones (deterministic cubature)"``, ``"monte carlo"``,
        ``"dataset (empirical mean at θ, numeric)"`` (numeric).
    standard_error
        Numeric results: ``{"mean_grad": (n,), "second_moment": (n, n), "covariance": (n, n)}``
        standard errors (Monte Carlo; plug-in estimates, the covariance one to first order),
        absolute error estimates of the deterministic cone cubature, or zeros (a dataset
        mean is exact up to rounding). None for exact results.
    theta
        The point (numeric results, or exact results evaluated at a point), else None.
    n_samples
        Number of samples averaged (numeric results).
    seconds
        Wall time of the computation.
    """

    loss: Loss
    mean_grad: Any
    second_moment: Any
    covariance: Any
    exact: bool
    method: str
    standard_error: dict[str, np.ndarray] | None = None
    theta: Any = None
    n_samples: int | None = None
    seconds: float = 0.0
    #: the exact polynomials behind the symbolic matrices (builder, E[g], M, Σ), for compiling
    _polys: Any = field(default=None, repr=False, compare=False)

    def at(self, theta: Any, *, values: Mapping | None = None) -> "Moments":
        """The exact moments evaluated exactly at θ (floats are converted exactly).

        ``values`` gives numbers for other symbols (symbolic distribution parameters);
        constants with declared values are substituted too.

        Examples
        --------
        >>> import sympy as sp, noether_sym as ns
        >>> from sympy.stats import Normal
        >>> w = sp.Symbol("w")
        >>> x = Normal("x", 0, 1)
        >>> m = ns.moments(ns.Loss((w * x - x) ** 2, [w]))
        >>> m.covariance, m.at([3]).covariance
        (Matrix([[8*w**2 - 16*w + 8]]), Matrix([[32]]))
        """
        if not self.exact:
            raise InvalidArgumentError("at() evaluates exact moments; these are numeric (already at a point)")
        rep = _exact_point(self.loss, theta)
        rep.update(_exact_values(self.loss, values))
        if self._polys is not None:
            mean, M, S = _evaluate_polys(self._polys, self.loss.n, rep)
        else:
            mean, M, S = (m.xreplace(rep) for m in (self.mean_grad, self.second_moment, self.covariance))
        return _dc_replace(
            self,
            mean_grad=mean,
            second_moment=M,
            covariance=S,
            theta=tuple(rep[p] for p in self.loss.params),
            _polys=None,
        )

    def with_values(self, values: Mapping | None) -> "Moments":
        """Exact moments with numbers substituted for other symbols (constants' declared
        values, and ``values`` for symbolic distribution parameters)."""
        if not self.exact:
            raise InvalidArgumentError("with_values() substitutes into exact moments; these are numeric")
        rep = _exact_values(self.loss, values)
        if not rep:
            return self
        if self._polys is not None:
            mean, M, S = _evaluate_polys(self._polys, self.loss.n, rep)
        else:
            mean, M, S = (m.xreplace(rep) for m in (self.mean_grad, self.second_moment, self.covariance))
        return _dc_replace(self, mean_grad=mean, second_moment=M, covariance=S, _polys=None)

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "numeric"
        where = "" if self.theta is None else " at a point"
        return f"Moments({self.loss.name!r}, n={self.loss.n}, {kind}{where}, method={self.method!r})"


def _evaluate_polys(polys: Any, n: int, rep: Mapping) -> tuple[sp.Matrix, sp.Matrix, sp.Matrix]:
    """The exact matrices with ``rep`` substituted: rational values inside FLINT (fast on
    10⁵-term polynomials), anything else (irrational values, atoms) on the small result."""
    b, mean, M, S = polys
    sub = {}
    for k in range(b.D, len(b.gens)):
        v = rep.get(b.out[k])
        if v is not None and v.is_Rational:
            sub[k] = flint.fmpq(int(v.p), int(v.q))
    rest = {k: v for k, v in rep.items() if not v.is_Rational} or bool(b.atoms)

    def one(p: Any) -> sp.Expr:
        e = b.to_sympy(p.subs(sub) if sub else p)
        return e.xreplace(rep) if rest else e

    mean_m = sp.Matrix(n, 1, [one(p) for p in mean])
    Mm, Sm = sp.zeros(n, n), sp.zeros(n, n)
    for (i, j), p in M.items():
        Mm[i, j] = Mm[j, i] = one(p)
        Sm[i, j] = Sm[j, i] = one(S[i, j])
    return mean_m, Mm, Sm


class MomentFunctions:
    """NumPy functions of θ for exact moments: vectorized over a batch of points.

    Built by :func:`compiled_moments` straight from the exact polynomials: every distinct
    monomial of θ is evaluated once per batch (each as a parent monomial times one
    variable), then one sparse matrix product gives all entries of ∇L, M and Σ. That is
    what ``lambdify(..., cse=True)`` would do, without its cost on 10⁵-term polynomials
    (tens of seconds for a 3-3-3 linear net); non-polynomial pieces of θ (``tanh(w)``) are
    lambdified on their own. ``theta`` has shape ``(..., n)``; outputs ``(..., n)`` and
    ``(..., n, n)``.
    """

    #: largest number of floats in one block of monomial values (batch chunk x monomials)
    BLOCK = 2**22

    def __init__(self, loss: Loss, mom: Moments, values: Mapping | None) -> None:

        if mom._polys is None:
            raise InvalidArgumentError("compiled moments need the symbolic moments of moments(loss)")
        self.loss = loss
        self.n = n = loss.n
        b, mean, M, S = mom._polys
        upper = [(i, j) for i in range(n) for j in range(i, n)]
        polys = list(mean) + [M[ij] for ij in upper] + [S[ij] for ij in upper]
        self._upper = upper

        # numbers for every generator that is not θ (constants, distribution symbols, atoms)
        user = _exact_values(loss, values)
        real_c = dict(zip(loss.constants, loss.c))
        num: dict[sp.Basic, sp.Basic] = {real_c.get(k, k): v for k, v in user.items()}
        theta_pos = {t: i for i, t in enumerate(loss.theta)}
        static: dict[int, float] = {}
        dynamic: list[int] = []  # generator indices evaluated per batch
        self._var_fns: list[Any] = []
        missing: list[str] = []
        for k in range(b.D, len(b.gens)):
            g = b.gens[k]
            if g in theta_pos:
                dynamic.append(k)
                self._var_fns.append(theta_pos[g])
                continue
            e = g.xreplace(num) if g in b.atoms else num.get(g, g)
            free = e.free_symbols
            if free - set(theta_pos):
                missing += [str(x) for x in free - set(theta_pos)]
            elif free:  # an atom that depends on θ: lambdify it alone
                dynamic.append(k)
                self._var_fns.append(sp.lambdify(list(loss.theta), e, modules="numpy"))
            else:
                static[k] = float(e)
        if missing:
            names = sorted(set(missing))
            raise InvalidArgumentError(
                f"the moments depend on symbol(s) {', '.join(names)} besides θ; give them numbers: "
                f"compiled_moments(loss, values={{{names[0]}: ...}})"
            )
        # collect monomials over the dynamic generators, folding static ones into coefficients
        mono_index: dict[tuple[int, ...], int] = {}
        rows, cols, data = [], [], []
        for r, p in enumerate(polys):
            acc: dict[int, float] = {}
            for exp, c in p.to_dict().items():
                coef = float(c)
                for k, v in static.items():
                    if exp[k]:
                        coef *= v ** int(exp[k])
                key = tuple(int(exp[k]) for k in dynamic)
                u = mono_index.setdefault(key, len(mono_index))
                acc[u] = acc.get(u, 0.0) + coef
            for u, coef in acc.items():
                rows.append(r)
                cols.append(u)
                data.append(coef)
        # close the set under "parent" (drop one power of the last variable), then order by degree
        for key in list(mono_index):
            while any(key):
                v = max(i for i, e in enumerate(key) if e)
                key = key[:v] + (key[v] - 1,) + key[v + 1:]
                if key in mono_index:
                    break
                mono_index[key] = len(mono_index)
        plan: list[tuple[int, int, int]] = []  # (monomial, parent monomial or -1, variable)
        for key, u in sorted(mono_index.items(), key=lambda kv: sum(kv[0])):
            if not any(key):
                plan.append((u, -1, -1))
            else:
                v = max(i for i, e in enumerate(key) if e)
                plan.append((u, mono_index[key[:v] + (key[v] - 1,) + key[v + 1:]], v))
        self._plan = plan
        self._coef = csr_matrix((data, (rows, cols)), shape=(len(polys), max(1, len(mono_index))))
        self._n_mono = len(mono_index)

    def _theta(self, theta: Any) -> np.ndarray:
        try:
            th = np.asarray(theta, dtype=float)
        except (TypeError, ValueError):
            raise InvalidArgumentError("theta must be a real array of shape (..., n)") from None
        if th.ndim == 0 or th.shape[-1] != self.n:
            raise InvalidArgumentError(f"theta must have shape (..., {self.n}); got {th.shape}")
        return th

    def _entries(self, th: np.ndarray) -> np.ndarray:
        """All entries, shape (B, n + 2·n(n+1)/2), for a flat batch of points (B, n)."""
        B = th.shape[0]
        out = np.empty((B, self._coef.shape[0]))
        step = max(1, self.BLOCK // max(1, self._n_mono))
        cols = [th[:, i] for i in range(self.n)]
        for a in range(0, B, step):
            part = [c[a:a + step] for c in cols]
            m = len(part[0])
            var = [
                np.broadcast_to(part[f] if isinstance(f, int) else np.asarray(f(*part), dtype=float), (m,))
                for f in self._var_fns
            ]
            mono = np.zeros((self._coef.shape[1], m))
            for u, parent, v in self._plan:
                if parent < 0:
                    mono[u] = 1.0
                else:
                    np.multiply(mono[parent], var[v], out=mono[u])
            out[a:a + step] = (self._coef @ mono).T
        return out

    def _all(self, theta: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        th = self._theta(theta)
        n, batch = self.n, th.shape[:-1]
        m = len(self._upper)
        flat = self._entries(th.reshape(-1, n)).reshape(batch + (n + 2 * m,))
        mean = flat[..., :n]
        M = np.zeros(batch + (n, n))
        S = np.zeros(batch + (n, n))
        for k, (i, j) in enumerate(self._upper):
            M[..., i, j] = M[..., j, i] = flat[..., n + k]
            S[..., i, j] = S[..., j, i] = flat[..., n + m + k]
        return mean, M, S

    def __call__(self, theta: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(∇L (..., n), M (..., n, n), Σ (..., n, n)) at a batch of points."""
        return self._all(theta)

    def mean_grad(self, theta: Any) -> np.ndarray:
        """∇L(θ), shape (..., n)."""
        return self._all(theta)[0]

    def second_moment(self, theta: Any) -> np.ndarray:
        """M(θ) = E[g gᵀ], shape (..., n, n)."""
        return self._all(theta)[1]

    def covariance(self, theta: Any) -> np.ndarray:
        """Σ(θ), shape (..., n, n)."""
        return self._all(theta)[2]


def _setup(loss: Loss) -> tuple[str, _PolyBuilder, Any]:
    kind = _data_kind(loss)
    b = _PolyBuilder(loss.x, (*loss.theta, *loss.c), (*loss.params, *loss.constants))
    if kind == "dataset":
        src: Any = _DatasetMoments(loss, b)
    elif kind == "none":
        src = _NoMoments(b)
    else:
        src = _RandomMoments(loss, b)
    return kind, b, src


def _expect(src: Any, parts: dict[tuple[int, ...], Any], zero: Any) -> Any:
    out = zero
    for alpha, c in parts.items():
        m = src.monomial(alpha)
        if not m.is_zero():
            out = out + c * m
    return out


_METHOD = {"gaussian": METHOD_GAUSSIAN, "sympy": METHOD_SYMPY, "dataset": METHOD_DATASET, "none": METHOD_NONE}


# ------------------------------------------------------------------------------------------
# Exact moments
# ------------------------------------------------------------------------------------------


def _exact_moments(loss: Loss) -> Moments:
    t0 = time.perf_counter()
    kind, b, src = _setup(loss)
    n, D = loss.n, len(loss.x)
    deg = b.scan(loss.sample_expr)
    theta_set = set(loss.theta)
    grads_sym = None
    if any(a.free_symbols & theta_set for a in b.atoms):
        # θ hides inside an atom (tanh(w), 1/w): differentiate with SymPy, not in FLINT
        grads_sym = [sp.diff(loss.sample_expr, t) for t in loss.theta]
        for gexpr in grads_sym:
            b.scan(gexpr)
    src.prepare(None if deg is None else tuple(2 * k for k in deg))
    b.freeze()
    if grads_sym is None:
        ell = b.convert(loss.sample_expr)
        grads = [ell.derivative(D + i) for i in range(n)]
    else:
        grads = [b.convert(gexpr) for gexpr in grads_sym]
    parts = [b.split(g) for g in grads]

    mean = [_expect(src, p, b.zero) for p in parts]
    # E[g_i g_j] = Σ_α c_iα h_jα with h_jα = Σ_β m_{α+β} c_jβ (one moment pass per j)
    support = sorted({a for p in parts for a in p})
    h: list[dict[tuple[int, ...], Any]] = []
    for j in range(n):
        hj: dict[tuple[int, ...], Any] = {}
        for alpha in support:
            acc = b.zero
            for beta, c in parts[j].items():
                m = src.monomial(tuple(x + y for x, y in zip(alpha, beta)))
                if not m.is_zero():
                    acc = acc + c * m
            hj[alpha] = acc
        h.append(hj)
    M: dict[tuple[int, int], Any] = {}
    for i in range(n):
        for j in range(i, n):
            acc = b.zero
            hj = h[j]
            for alpha, c in parts[i].items():
                acc = acc + c * hj[alpha]
            M[i, j] = acc
    to = b.to_sympy
    mean_m = sp.Matrix(n, 1, [to(p) for p in mean])
    Mm = sp.zeros(n, n)
    Sm = sp.zeros(n, n)
    S: dict[tuple[int, int], Any] = {}
    for (i, j), p in M.items():
        S[i, j] = p - mean[i] * mean[j]
        Mm[i, j] = Mm[j, i] = to(p)
        Sm[i, j] = Sm[j, i] = to(S[i, j])
    return Moments(
        loss=loss,
        mean_grad=mean_m,
        second_moment=Mm,
        covariance=Sm,
        exact=True,
        method=_METHOD[kind],
        seconds=time.perf_counter() - t0,
        _polys=(b, mean, M, S),
    )


def expectation(loss: Loss, expr: Any) -> sp.Expr:
    """Exact E[expr] over the data model of ``loss``; ``expr`` must be polynomial in the data.

    ``expr`` may use the loss's own symbols (parameters, constants, data symbols or its
    random symbols) and any other symbols (kept as they are). The result is expanded, in
    the user's symbols.

    Parameters
    ----------
    loss
        A Loss whose data are random symbols or a finite dataset.
    expr
        A SymPy expression.

    Raises
    ------
    InvalidDataError
        No data distribution, joint random symbols, missing moments.
    UnsupportedExpressionError
        ``expr`` is not polynomial in the data.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> w = sp.Symbol("w")
    >>> x = Normal("x", 1, 2)
    >>> loss = ns.Loss((w * x - 1) ** 2, [w])
    >>> ns.expectation(loss, x**4 + w * x)
    w + 73
    """
    loss = as_loss(loss)
    try:
        e = sp.sympify(expr, strict=True)
    except (sp.SympifyError, TypeError):
        raise InvalidArgumentError(f"expr must be a SymPy expression; got {expr!r}") from None
    if not isinstance(e, sp.Expr):
        raise InvalidArgumentError(f"expr must be a scalar SymPy expression; got {type(e).__name__}")
    kind, b, src = _setup(loss)
    e = replace_symbols(e, _real_map(loss))
    try:
        deg = b.scan(e)
    except _NotPolynomial as np_:
        raise UnsupportedExpressionError(
            f"expectation() is exact and needs an expression polynomial in the data; {np_.node} is not. "
            "Use moments(loss, theta=...) for numeric estimates of the gradient moments"
        ) from None
    src.prepare(deg)
    b.freeze()
    return b.to_sympy(_expect(src, b.split(b.convert(e)), b.zero))


# ------------------------------------------------------------------------------------------
# Numeric moments
# ------------------------------------------------------------------------------------------


def _numeric_moments(
    loss: Loss, theta: np.ndarray, n_samples: int | None, seed: int, values: Mapping | None
) -> Moments:
    t0 = time.perf_counter()
    sampler = make_sampler(loss, values=values)
    cl = compiled(loss)
    n = loss.n
    chunk = _MC_CHUNK
    if sampler.dataset_size is not None:
        N = sampler.dataset_size
        s1 = np.zeros(n)
        s2 = np.zeros((n, n))
        for a in range(0, N, chunk):
            g = cl.grad(theta, sampler.take(np.arange(a, min(N, a + chunk))))
            s1 += g.sum(axis=0)
            s2 += g.T @ g
        mean = s1 / N
        M = s2 / N
        S = M - np.outer(mean, mean)
        zero = {"mean_grad": np.zeros(n), "second_moment": np.zeros((n, n)), "covariance": np.zeros((n, n))}
        return Moments(loss, mean, M, S, False, METHOD_DATASET_NUMERIC, zero, theta, N, time.perf_counter() - t0)

    N = DEFAULT_SAMPLES if n_samples is None else n_samples
    rng = np.random.default_rng(seed)
    shift = None
    sg = np.zeros(n)
    sgg = np.zeros((n, n))
    sgg2 = np.zeros((n, n))
    sc = np.zeros(n)
    scc = np.zeros((n, n))
    scc2 = np.zeros((n, n))
    done = 0
    while done < N:
        m = min(chunk, N - done)
        g = cl.grad(theta, sampler.draw(rng, (m,)))
        if not np.all(np.isfinite(g)):
            raise InvalidArgumentError(f"the per-sample gradient is not finite at θ = {theta} for some data")
        if shift is None:
            shift = g.mean(axis=0)  # centring by a pilot mean keeps the sums well conditioned
        sg += g.sum(axis=0)
        sgg += g.T @ g
        sgg2 += (g * g).T @ (g * g)
        c = g - shift
        sc += c.sum(axis=0)
        scc += c.T @ c
        scc2 += (c * c).T @ (c * c)
        done += m
    mean = sg / N
    M = sgg / N
    d = sc / N
    S = (scc - N * np.outer(d, d)) / (N - 1)
    var_g = np.diag(S)
    se = {
        "mean_grad": np.sqrt(np.maximum(var_g, 0) / N),
        "second_moment": np.sqrt(np.maximum(sgg2 / N - M * M, 0) / (N - 1)),
        "covariance": np.sqrt(np.maximum(scc2 / N - (scc / N) ** 2, 0) / (N - 1)),
    }
    return Moments(loss, mean, M, S, False, METHOD_MC, se, theta, N, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------


def moments(
    loss: Loss,
    *,
    theta: Any = None,
    n_samples: int | None = None,
    seed: int = 0,
    method: str = "auto",
    values: Mapping | None = None,
) -> Moments:
    """E[g], M(θ) = E[g gᵀ] and Σ(θ) = M − E[g]E[g]ᵀ of a loss over its data (THEORY §1).

    Exact whenever the per-sample loss is polynomial in the data (Gaussian, other
    ``sympy.stats`` or finite-dataset data): symbolic matrices in θ, cached on the loss.
    Otherwise numeric at the point ``theta``: deterministic for piecewise-linear units on
    Gaussian data (``method`` says ``"gaussian cones (deterministic cubature)"``), else
    Monte Carlo (``"monte carlo"``, with standard errors).

    Parameters
    ----------
    loss
        The Loss, with random symbols or a dataset (see :func:`attach_data`).
    theta
        A point (mapping symbol -> number or sequence in ``loss.params`` order). Required
        for numeric moments; for exact ones, the result is evaluated exactly there.
    n_samples
        Monte Carlo sample count (numeric route, random data); default 100,000.
    seed
        Seed of the Monte Carlo Generator (the deterministic routes ignore it).
    method
        ``"auto"`` (exact when possible, then deterministic cone cubature when possible),
        ``"exact"`` (error if impossible) or ``"numeric"`` (Monte Carlo / numeric dataset
        mean even for polynomial or piecewise-linear losses).
    values
        Numbers for symbolic distribution parameters (needed for sampling; substituted in
        exact results).

    Returns
    -------
    Moments

    Raises
    ------
    InvalidDataError
        No data distribution, joint random symbols, distributions without moments.
    UnsupportedExpressionError
        Non-polynomial in the data and no ``theta`` (or ``method="exact"``).
    InvalidArgumentError
        Non-numeric θ, bad ``n_samples`` or ``method``.

    Examples
    --------
    The rescaling model of THEORY §7.1 in one dimension, x ~ N(0, 1), y = x + ε:

    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x, eps = Normal("x", 0, 1), Normal("eps", 0, sp.Rational(1, 2))
    >>> m = ns.moments(ns.Loss((u * w * x - (x + eps)) ** 2, [u, w]))
    >>> m.method, m.mean_grad.T
    ('gaussian moments (Isserlis)', Matrix([[2*u*w**2 - 2*w, 2*u**2*w - 2*u]]))
    >>> m.at([1, 1]).covariance     # at the minimum uw = 1: Σ = 4σ²(∇f)(∇f)ᵀ E[x²]
    Matrix([
    [1, 1],
    [1, 1]])
    """
    loss = as_loss(loss)
    opts = validate(_MOMENTS_OPTIONS, method=method, n_samples=n_samples, seed=seed)
    method, n_samples, seed = opts["method"], opts["n_samples"], opts["seed"]
    _data_kind(loss)  # fail early on a loss without a data model
    if method != "numeric":
        mom = loss._cache.get("moments")
        if mom is None and "moments_not_polynomial" not in loss._cache:
            try:
                mom = loss._cache["moments"] = _exact_moments(loss)
            except _NotPolynomial as exc:
                loss._cache["moments_not_polynomial"] = exc.node
        if mom is None and (method == "exact" or theta is None):
            raise UnsupportedExpressionError(
                f"the per-sample loss is not polynomial in the data ({loss._cache['moments_not_polynomial']} "
                "is not), so its moments have no exact form; pass theta=... for numeric (Monte Carlo) "
                "moments at a point"
            )
        if mom is not None:
            if theta is None:
                return mom.with_values(values) if values else mom
            return mom.at(theta, values=values)
    if theta is None:
        raise InvalidArgumentError("numeric moments are estimated at a point: pass theta=...")
    th = _float_point(loss, theta)
    if method == "auto" and loss.dataset is None:
        # piecewise-linear units on Gaussian data: deterministic cone cubature, no Monte Carlo
        cm = _cone_moments_or_none(loss, th, values)
        if cm is not None:
            err = {k: cm.error[k] for k in ("mean_grad", "second_moment", "covariance")}
            return Moments(loss, cm.mean_grad, cm.second_moment, cm.covariance, False, METHOD_CONES, err, th,
                           cm.n_nodes, cm.seconds)
    return _numeric_moments(loss, th, n_samples, seed, values)


def compiled_moments(loss: Loss, *, values: Mapping | None = None) -> MomentFunctions:
    """NumPy functions θ -> (∇L, M, Σ) of the exact moments, vectorized over a batch of θ.

    ``lambdify(..., cse=True)`` of the exact matrices; cached on the loss (per ``values``).
    Symbols besides θ (constants, symbolic distribution parameters) take their numbers from
    ``values`` or the constants' declared values.

    Examples
    --------
    >>> import numpy as np, sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x = Normal("x", 0, 1)
    >>> f = ns.compiled_moments(ns.Loss((u * w * x - x) ** 2, [u, w]))
    >>> mean, M, S = f(np.array([[1.0, 1.0], [2.0, 1.0]]))
    >>> mean.shape, S.shape, S[1].round(6).tolist()
    ((2, 2), (2, 2, 2), [[8.0, 16.0], [16.0, 32.0]])
    """
    loss = as_loss(loss)
    key = ("moment_functions", tuple(sorted((str(k), str(v)) for k, v in (values or {}).items())))
    f = loss._cache.get(key)
    if f is None:
        mom = moments(loss, method="exact")
        f = MomentFunctions(loss, mom, values)
        loss._cache[key] = f
    return f
