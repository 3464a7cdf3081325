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

Numeric routes (the loss is not polynomial in the data, for example ReLU networks, or
``method="numeric"``): Monte Carlo at a point θ with standard errors (random symbols), or
the empirical mean over all rows at θ (datasets); always labelled ``exact=False``.

Helpers: :func:`attach_data` (turn plain data symbols into random expressions),
:func:`gaussian_linear_teacher` (x ~ N(μ, diag s²), y = V x + ε),
:func:`minibatch_factor` (Cov ĝ = factor · Σ, with or without replacement, THEORY §1) and
:func:`compiled_moments` (NumPy functions of θ, vectorized over a batch of points).

Symbols: exact results are expressions in the user's parameter symbols ``loss.params`` and
constants (as declared), plus any symbolic distribution parameters (``s`` in
``Normal("x", 0, s)``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace as _dc_replace
from fractions import Fraction
from functools import lru_cache
from typing import Any

import flint
import numpy as np
import sympy as sp
from sympy import S
from sympy.stats.crv_types import NormalDistribution
from sympy.stats.rv import RandomSymbol, SinglePSpace

from ._compile import compiled
from ._errors import InvalidArgumentError, InvalidDataError, UnsupportedExpressionError
from ._loss import Loss, as_loss, replace_symbols
from ._sample import make_sampler

__all__ = [
    "Moments",
    "MomentFunctions",
    "moments",
    "expectation",
    "compiled_moments",
    "minibatch_factor",
    "attach_data",
    "gaussian_linear_teacher",
]

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
        ``"monte carlo"``, ``"dataset (empirical mean at θ, numeric)"`` (numeric).
    standard_error
        Numeric results: ``{"mean_grad": (n,), "second_moment": (n, n), "covariance": (n, n)}``
        standard errors (Monte Carlo; plug-in estimates, the covariance one to first order)
        or zeros (a dataset mean is exact up to rounding). None for exact results.
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
        from scipy.sparse import csr_matrix

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


# ------------------------------------------------------------------------------------------
# Data model checks
# ------------------------------------------------------------------------------------------

_SUPPORTED = (
    "noether_sym takes expectations over independent single-variable sympy.stats random "
    "symbols (Normal with any mean and std, Uniform, Bernoulli, Rademacher, or any other "
    "distribution whose moments SymPy knows) and polynomials of them (build correlated data "
    "as y = 2*x + eps), or over a finite dataset"
)


class _NotPolynomial(Exception):
    """The expression is not a polynomial in the data symbols."""

    def __init__(self, node: sp.Basic) -> None:
        super().__init__(str(node))
        self.node = node


def _check_random_symbol(loss: Loss, X: sp.Basic) -> None:
    kind = type(getattr(X, "pspace", None)).__name__
    if "Compound" in kind:
        raise InvalidDataError(
            f"random symbol {X} has a compound distribution (random parameters, {kind}); {_SUPPORTED}"
        )
    if not isinstance(X, RandomSymbol) or not isinstance(X.pspace, SinglePSpace) or X.pspace.value != X:
        raise InvalidDataError(f"random symbol {X} has a joint distribution ({kind}); {_SUPPORTED}")
    dist = X.pspace.distribution
    inner = [a for a in sp.preorder_traversal(dist) if isinstance(a, RandomSymbol)]
    if inner:
        raise InvalidDataError(
            f"the distribution of {X} ({dist}) has random parameters (a compound distribution); {_SUPPORTED}"
        )
    tied = sorted({str(s) for s in dist.free_symbols if s in loss.params})
    if tied:
        raise InvalidDataError(
            f"the distribution of {X} ({dist}) depends on the parameter(s) {', '.join(tied)}; the data law "
            "must not depend on θ (g = ∇_θ ℓ would miss that dependence)"
        )


def _data_kind(loss: Loss) -> str:
    """'dataset', 'gaussian', 'sympy' or 'none'; raise for an unusable data model."""
    if loss.dataset is not None:
        return "dataset"
    plain = loss.data_symbols[len(loss.random_symbols):]
    if plain:
        raise InvalidDataError(
            f"this loss has no data distribution (data symbol(s) {', '.join(map(str, plain))}); "
            "attach one with attach_data(...) (e.g. ns.attach_data(loss, {x: Normal('X', 0, 1)}) or "
            "ns.gaussian_linear_teacher) or pass a dataset: ns.Loss(expr, params, data={x: array})"
        )
    for X in loss.random_symbols:
        _check_random_symbol(loss, X)
    if not loss.random_symbols:
        return "none"
    if all(isinstance(X.pspace.distribution, NormalDistribution) for X in loss.random_symbols):
        return "gaussian"
    return "sympy"


# ------------------------------------------------------------------------------------------
# Polynomials in the data with coefficients in θ (FLINT)
# ------------------------------------------------------------------------------------------


class _PolyBuilder:
    """SymPy -> FLINT polynomials over QQ in (data, θ, constants, other symbols, atoms).

    Two passes: :meth:`scan` registers the generators and bounds the data degree of each
    expression (raising :class:`_NotPolynomial` if the data enter non-polynomially), then
    :meth:`freeze` fixes the context and :meth:`convert` builds polynomials. Any
    data-free sub-expression that is not a polynomial (``tanh(w)``, ``1/s``, ``pi``) becomes
    an opaque generator (an *atom*) and is put back unchanged by :meth:`to_sympy`.
    """

    def __init__(self, data: Sequence[sp.Symbol], leading: Sequence[sp.Symbol], output: Sequence[sp.Basic]):
        self.D = len(data)
        self.data_index = {s: i for i, s in enumerate(data)}
        self.gens: list[sp.Basic] = list(data) + list(leading)
        self.index = {g: i for i, g in enumerate(self.gens)}
        # what the leading generators print as in results (the user's symbols for θ and c)
        self._lead_out = list(output)
        self.out: list[sp.Basic] = []
        self.atoms: list[sp.Basic] = []
        self._deg: dict[sp.Basic, tuple[int, ...] | None] = {}
        self._poly: dict[sp.Basic, Any] = {}
        self.ctx: Any = None

    # ---- pass 1 ---------------------------------------------------------------------------
    def scan(self, e: sp.Basic) -> tuple[int, ...] | None:
        """Register generators of ``e``; return an upper bound of its degree in each data symbol."""
        memo = self._deg
        if e in memo:
            return memo[e]
        if e in self.data_index:
            d = [0] * self.D
            d[self.data_index[e]] = 1
            out: tuple[int, ...] | None = tuple(d)
        elif e.is_Rational or isinstance(e, sp.Float):
            out = None
        elif e.is_Add or e.is_Mul:
            degs = [self.scan(a) for a in e.args]
            degs = [g for g in degs if g is not None]
            if not degs:
                out = None
            elif e.is_Add:
                out = tuple(max(col) for col in zip(*degs))
            else:
                out = tuple(sum(col) for col in zip(*degs))
        elif e.is_Pow and e.exp.is_Integer and e.exp >= 0:
            b = self.scan(e.base)
            k = int(e.exp)
            out = None if b is None else tuple(k * v for v in b)
        elif isinstance(e, RandomSymbol):
            raise InvalidDataError(f"random symbol {e} is not part of this loss's data model; {_SUPPORTED}")
        elif e.is_Symbol:
            self._add_gen(e)
            out = None
        else:
            if e.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
                raise UnsupportedExpressionError(f"the expression contains a non-finite value: {e}")
            for a in sp.preorder_traversal(e):
                if isinstance(a, sp.Indexed) and isinstance(a.base, RandomSymbol):
                    raise InvalidDataError(f"{a} is an entry of a joint random vector; {_SUPPORTED}")
                if isinstance(a, RandomSymbol):
                    raise InvalidDataError(f"{e} contains a random symbol that is not part of this loss; {_SUPPORTED}")
            if e.free_symbols & set(self.data_index):
                raise _NotPolynomial(e)
            if e not in self.index:
                self.atoms.append(e)
            self._add_gen(e)
            out = None
        memo[e] = out
        return out

    def _add_gen(self, e: sp.Basic) -> None:
        if e not in self.index:
            self.index[e] = len(self.gens)
            self.gens.append(e)

    # ---- pass 2 ---------------------------------------------------------------------------
    def freeze(self) -> None:
        self._atom_set = set(self.atoms)
        names = tuple(f"v{i}" for i in range(len(self.gens)))
        self.ctx = flint.fmpq_mpoly_ctx.get(names, "lex")
        self._gens = self.ctx.gens()
        self.zero = self.ctx.from_dict({})
        self.one = self.ctx.from_dict({(0,) * len(names): 1})
        back = dict(zip(self.gens[self.D:], self._lead_out))
        self.out = [replace_symbols(g, back) if g in self._atom_set else g for g in self.gens]
        for k, s in enumerate(self._lead_out):
            self.out[self.D + k] = s
        # plain commutative symbols: their powers never evaluate, so terms can be built directly
        self._fast_gen = [isinstance(g, sp.Symbol) and g.is_commutative for g in self.out]
        self._pows: dict[tuple[int, int], sp.Expr] = {}

    def const(self, q: Any) -> Any:
        if isinstance(q, Fraction):
            return self.one * flint.fmpq(q.numerator, q.denominator)
        q = sp.Rational(q)
        return self.one * flint.fmpq(int(q.p), int(q.q))

    def convert(self, e: sp.Basic) -> Any:
        """FLINT polynomial of a scanned expression."""
        memo = self._poly
        if e in memo:
            return memo[e]
        if e in self.index:
            p = self._gens[self.index[e]]
        elif e.is_Rational or isinstance(e, sp.Float):
            p = self.const(e)
        elif e.is_Add:
            p = self.zero
            for a in e.args:
                p = p + self.convert(a)
        elif e.is_Mul:
            p = self.one
            for a in e.args:
                p = p * self.convert(a)
        elif e.is_Pow and e.exp.is_Integer and e.exp >= 0:
            p = self.convert(e.base) ** int(e.exp)
        else:  # pragma: no cover - scan() registered every other node as a generator
            raise UnsupportedExpressionError(f"internal: {e} was not scanned")
        memo[e] = p
        return p

    def split(self, p: Any) -> dict[tuple[int, ...], Any]:
        """{data exponent α: coefficient polynomial (free of data)} of p."""
        D = self.D
        if D == 0:
            return {(): p} if not p.is_zero() else {}
        groups: dict[tuple[int, ...], dict[tuple[int, ...], Any]] = {}
        zero = (0,) * D
        for exp, c in p.to_dict().items():
            groups.setdefault(tuple(int(v) for v in exp[:D]), {})[zero + tuple(exp[D:])] = c
        return {a: self.ctx.from_dict(t) for a, t in groups.items()}

    def to_sympy(self, p: Any) -> sp.Expr:
        """SymPy expression of a data-free polynomial (expanded, canonical).

        Building 10⁵ terms with ``Mul(*)``/``Add(*)`` costs seconds in SymPy's flattening
        and sorting; a polynomial's terms are already collected, so when every factor is a
        plain Symbol power the canonical Mul/Add is assembled directly, ordered by
        :func:`_canonical_key` (SymPy's own ``Basic.compare`` order, hence equal and equally
        hashed). Anything else takes the ordinary constructors.
        """
        D = self.D
        gens = self.out
        fast_gen = self._fast_gen
        pows = self._pows
        terms = []  # numbers, or everything on the slow path
        keyed = []  # (term, canonical key) on the fast path
        mul_key = _class_key(sp.Mul)
        coeffs: dict[Any, sp.Rational] = {}
        coeff_keys: dict[sp.Rational, Any] = {}
        fast = True
        for exp, c in p.to_dict().items():
            coeff = coeffs.get(c)
            if coeff is None:
                q = int(c.q)
                coeff = coeffs[c] = sp.Integer(int(c.p)) if q == 1 else sp.Rational(int(c.p), q)
            f = []
            slow = False
            for k in range(D, len(exp)):
                e = int(exp[k])
                if e:
                    pw = pows.get((k, e))
                    if pw is None:
                        pw = gens[k] ** e
                        pows[k, e] = (pw, _canonical_key(pw) if fast_gen[k] else None)
                    else:
                        pw = pw[0]
                    f.append((k, e))
                    slow = slow or not fast_gen[k]
            if slow:
                fast = False
                terms.append(sp.Mul(coeff, *[pows[t][0] for t in f]))
            elif not f:
                terms.append(coeff)
            else:
                facs = [pows[t] for t in f]
                if len(facs) > 1:
                    facs.sort(key=lambda t: t[1])
                if coeff is not S.One:
                    ck = coeff_keys.get(coeff)
                    if ck is None:
                        ck = coeff_keys[coeff] = _canonical_key(coeff)
                    facs.insert(0, (coeff, ck))
                if len(facs) == 1:
                    keyed.append(facs[0])
                else:
                    term = sp.Mul._from_args([t[0] for t in facs], True)
                    keyed.append((term, (mul_key, len(facs), tuple(t[1] for t in facs))))
        if not fast or len(terms) + len(keyed) < 2:
            return sp.Add(*terms, *[t[0] for t in keyed])
        keyed.sort(key=lambda t: t[1])
        return sp.Add._from_args(terms + [t[0] for t in keyed], True)


@lru_cache(maxsize=None)
def _class_key(cls: type) -> tuple[int, str]:
    """Sort key of a class, as ``sympy.core.basic._cmp_name`` orders them."""
    from sympy.core.basic import ordering_of_classes

    name = cls.__name__
    try:
        return (ordering_of_classes.index(name), "")
    except ValueError:
        return (len(ordering_of_classes) + 1, name)


def _canonical_key(e: Any) -> Any:
    """A sort key equivalent to ``Basic.compare`` (the order of canonical Add/Mul args).

    compare() orders by class, then length of the hashable content, then the content item
    by item (recursively); a lexicographic tuple reproduces exactly that.
    """
    if not isinstance(e, sp.Basic):
        return e
    content = e._hashable_content()
    return (_class_key(type(e)), len(content), tuple(_canonical_key(c) for c in content))


# ------------------------------------------------------------------------------------------
# Moment sources: E[x^α] for a data monomial α
# ------------------------------------------------------------------------------------------


def _double_factorial_odd(j: int) -> int:
    """(2j − 1)!! = 1·3·5···(2j − 1), with (−1)!! = 1."""
    out = 1
    for k in range(1, 2 * j, 2):
        out *= k
    return out


def _normal_moment_coeffs(k: int) -> list[tuple[int, int, int]]:
    """E[x^k] for x ~ N(μ, σ²) as [(coefficient, power of μ, power of σ²)] (Isserlis).

    E[x^k] = Σ_j C(k, 2j) μ^{k−2j} σ^{2j} (2j − 1)!!.
    """
    return [(math.comb(k, 2 * j) * _double_factorial_odd(j), k - 2 * j, j) for j in range(k // 2 + 1)]


#: E[X^k] from sympy.stats, per (distribution, k): equal distributions share their table
_SYMPY_MOMENTS: dict[tuple[sp.Basic, int], sp.Expr] = {}


def _sympy_moment(X: RandomSymbol, k: int) -> sp.Expr:
    """E[X^k] from ``sympy.stats.moment``, cached per (distribution, k), checked to be a closed form."""
    from sympy.stats import moment

    dist = X.pspace.distribution
    key = (dist, k)
    m = _SYMPY_MOMENTS.get(key)
    if m is not None:
        return m
    try:
        m = sp.sympify(moment(X, k))
    except Exception as exc:  # SymPy raises ValueError, NotImplementedError, ... here
        raise InvalidDataError(f"SymPy cannot give E[{X}^{k}] for {dist}: {exc}; {_SUPPORTED}") from None
    if m.has(sp.Integral, sp.Sum) or any(type(a).__name__ == "Expectation" for a in sp.preorder_traversal(m)):
        raise InvalidDataError(f"SymPy has no closed form of E[{X}^{k}] for {dist} (got {m}); {_SUPPORTED}")
    if m.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        raise InvalidDataError(f"the distribution {dist} of {X} has no finite moment of order {k}; {_SUPPORTED}")
    _SYMPY_MOMENTS[key] = m
    return m


class _RandomMoments:
    """Monomial moments of independent random symbols (product of one-variable moments)."""

    def __init__(self, loss: Loss, b: _PolyBuilder) -> None:
        self.b = b
        self.X = list(loss.random_symbols)
        self.rep = _real_map(loss, data=False)
        self._var: dict[tuple[sp.Basic, int], Any] = {}
        self._mono: dict[tuple[int, ...], Any] = {}
        self._normal_pars: dict[sp.Basic, tuple[sp.Expr, sp.Expr]] = {}

    def prepare(self, maxdeg: tuple[int, ...] | None) -> None:
        """Scan every moment expression the monomials up to ``maxdeg`` need."""
        if maxdeg is None:
            return
        for X, k in zip(self.X, maxdeg):
            dist = X.pspace.distribution
            if isinstance(dist, NormalDistribution):
                mu = replace_symbols(sp.sympify(dist.mean), self.rep)
                var = replace_symbols(sp.sympify(dist.std) ** 2, self.rep)
                self._normal_pars[dist] = (mu, var)
                self.b.scan(mu)
                self.b.scan(var)
            else:
                for j in range(1, k + 1):
                    self.b.scan(replace_symbols(_sympy_moment(X, j), self.rep))

    def var_moment(self, i: int, k: int) -> Any:
        X = self.X[i]
        dist = X.pspace.distribution
        key = (dist, k)
        p = self._var.get(key)
        if p is None:
            b = self.b
            if isinstance(dist, NormalDistribution):
                mu, var = (b.convert(e) for e in self._normal_pars[dist])
                p = b.zero
                for c, a, j in _normal_moment_coeffs(k):
                    p = p + (mu**a) * (var**j) * c
            else:
                p = b.convert(replace_symbols(_sympy_moment(X, k), self.rep))
            self._var[key] = p
        return p

    def monomial(self, alpha: tuple[int, ...]) -> Any:
        p = self._mono.get(alpha)
        if p is None:
            p = self.b.one
            for i, k in enumerate(alpha):
                if k:
                    p = p * self.var_moment(i, k)
                    if p.is_zero():
                        break
            self._mono[alpha] = p
        return p


class _DatasetMoments:
    """Exact empirical means of data monomials over a finite dataset.

    Every float is a dyadic rational a/2^e; a column is stored as Python integers over one
    power of two, so the mean of Π x_k^{α_k} is one exact integer sum.
    """

    def __init__(self, loss: Loss, b: _PolyBuilder) -> None:
        self.b = b
        self.N = int(loss.n_samples)
        self.num: list[np.ndarray] = []
        self.exp: list[int] = []
        for s in loss.data_symbols:
            col = [Fraction(float(v)) for v in loss.dataset[s]]
            e = max(f.denominator for f in col).bit_length() - 1  # denominators are powers of 2
            scale = 1 << e
            self.num.append(np.array([f.numerator * (scale // f.denominator) for f in col], dtype=object))
            self.exp.append(e)
        self._pow: dict[tuple[int, int], np.ndarray] = {}
        self._mono: dict[tuple[int, ...], Any] = {}

    def prepare(self, maxdeg: tuple[int, ...] | None) -> None:
        pass

    def _power(self, i: int, k: int) -> np.ndarray:
        key = (i, k)
        a = self._pow.get(key)
        if a is None:
            a = self.num[i] if k == 1 else self._power(i, k - 1) * self.num[i]
            self._pow[key] = a
        return a

    def mean(self, alpha: tuple[int, ...]) -> Fraction:
        """Exact mean over rows of Π x_k^{α_k}."""
        prod = None
        shift = 0
        for i, k in enumerate(alpha):
            if k:
                a = self._power(i, k)
                prod = a if prod is None else prod * a
                shift += k * self.exp[i]
        if prod is None:
            return Fraction(1)
        return Fraction(int(prod.sum()), self.N << shift)

    def monomial(self, alpha: tuple[int, ...]) -> Any:
        p = self._mono.get(alpha)
        if p is None:
            p = self.b.const(self.mean(alpha))
            self._mono[alpha] = p
        return p


class _NoMoments:
    """A loss without data: the only monomial is 1."""

    def __init__(self, b: _PolyBuilder) -> None:
        self.b = b

    def prepare(self, maxdeg: Any) -> None:
        pass

    def monomial(self, alpha: tuple[int, ...]) -> Any:
        return self.b.one


def _real_map(loss: Loss, *, data: bool = True) -> dict[sp.Basic, sp.Basic]:
    """User symbols -> the real symbols of ``loss.sample_expr``."""
    rep: dict[sp.Basic, sp.Basic] = dict(zip(loss.params, loss.theta))
    rep.update(zip(loss.constants, loss.c))
    if data:
        rep.update(zip(loss.data_symbols, loss.x))
    return rep


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
    Otherwise numeric at the point ``theta``.

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
        Seed of the Monte Carlo Generator.
    method
        ``"auto"`` (exact when possible), ``"exact"`` (error if impossible) or
        ``"numeric"`` (Monte Carlo / numeric dataset mean even for polynomial losses).
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
    if method not in ("auto", "exact", "numeric"):
        raise InvalidArgumentError(f"method must be 'auto', 'exact' or 'numeric'; got {method!r}")
    if n_samples is not None:
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
            raise InvalidArgumentError(f"n_samples must be an integer >= 2; got {n_samples!r}")
        n_samples = int(n_samples)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidArgumentError(f"seed must be an integer; got {seed!r}")
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


def minibatch_factor(batch_size: int, n_samples: int | None = None, *, replace: bool = False) -> sp.Rational:
    """c with Cov ĝ = c · Σ for a minibatch of S = ``batch_size`` samples (THEORY §1).

    Independent draws (an infinite population, or ``replace=True``): c = 1/S. Without
    replacement from N = ``n_samples`` points: c = (N − S)/(S (N − 1)) (finite-population
    correction; 0 for the full batch).

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.minibatch_factor(4), ns.minibatch_factor(4, 10), ns.minibatch_factor(10, 10)
    (1/4, 1/6, 0)
    """
    checks = [(batch_size, "batch_size")] + ([] if n_samples is None else [(n_samples, "n_samples")])
    for v, what in checks:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidArgumentError(f"{what} must be a positive integer; got {v!r}")
    S = int(batch_size)
    if n_samples is None or replace:
        return sp.Rational(1, S)
    N = int(n_samples)
    if S > N:
        raise InvalidArgumentError(
            f"batch_size ({S}) exceeds n_samples ({N}): a batch without replacement cannot be larger "
            "than the dataset (use replace=True)"
        )
    if N == 1:
        return sp.Integer(0)
    return sp.Rational(N - S, S * (N - 1))


# ------------------------------------------------------------------------------------------
# Attaching a data model
# ------------------------------------------------------------------------------------------


def _exact_number(v: Any, what: str) -> sp.Expr:
    if isinstance(v, bool):
        raise InvalidArgumentError(f"{what} must be a real number; got {v!r}")
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            raise InvalidArgumentError(f"{what} must be finite; got {v!r}")
        return sp.Rational(float(v))  # exact binary value
    if isinstance(v, Fraction):
        return sp.Rational(v.numerator, v.denominator)
    if isinstance(v, (int, np.integer)):
        return sp.Integer(int(v))
    try:
        e = sp.sympify(v, strict=True)
    except (sp.SympifyError, TypeError):
        raise InvalidArgumentError(f"{what} must be a real number or SymPy expression; got {v!r}") from None
    if not isinstance(e, sp.Expr) or e.has(sp.I):
        raise InvalidArgumentError(f"{what} must be real; got {v!r}")
    if isinstance(e, sp.Float):
        return sp.Rational(e)  # exact binary value
    return e


def _exact_point(loss: Loss, theta: Any) -> dict[sp.Basic, sp.Basic]:
    if isinstance(theta, Mapping):
        vals: list[Any] = [None] * loss.n
        for k, v in theta.items():
            vals[loss.index(k)] = v
        missing = [str(p) for p, v in zip(loss.params, vals) if v is None]
        if missing:
            raise InvalidArgumentError(f"theta gives no value for parameter(s) {', '.join(missing)}")
    else:
        if isinstance(theta, sp.MatrixBase):
            theta = list(theta)
        if isinstance(theta, np.ndarray):
            theta = theta.tolist()
        if isinstance(theta, (str, bytes)) or not isinstance(theta, Sequence):
            raise InvalidArgumentError(f"theta must be a sequence of numbers or a mapping; got {theta!r}")
        vals = list(theta)
        if len(vals) != loss.n:
            raise InvalidArgumentError(
                f"theta must have one entry per parameter ({loss.n}, in params order "
                f"{[str(p) for p in loss.params]}); got {len(vals)}"
            )
    out: dict[sp.Basic, sp.Basic] = {}
    for p, v in zip(loss.params, vals):
        e = _exact_number(v, f"theta[{p}]")
        if not (e.is_number and e.is_real is not False):
            raise InvalidArgumentError(f"theta must be numeric; theta[{p}] = {v!r} is not a number")
        out[p] = e
    return out


def _float_point(loss: Loss, theta: Any) -> np.ndarray:
    try:
        return loss.theta_vector(theta)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidArgumentError):
            raise
        raise InvalidArgumentError(f"theta must be numeric: {exc}") from None


def _exact_values(loss: Loss, values: Mapping | None) -> dict[sp.Basic, sp.Basic]:
    rep: dict[sp.Basic, sp.Basic] = {}
    for c, v in loss.constants.items():
        if v is not None:
            rep[c] = _exact_number(v, f"constant {c}")
    for k, v in (values or {}).items():
        if not isinstance(k, sp.Symbol):
            raise InvalidArgumentError(f"values must map SymPy symbols to numbers; got key {k!r}")
        if k in loss.params:
            raise InvalidArgumentError(f"{k} is a parameter; give its value in theta, not in values")
        rep[k] = _exact_number(v, f"values[{k}]")
    return rep


def _rebuild_params(loss: Loss) -> list[Any]:
    out: list[Any] = []
    for blk in loss.blocks:
        entries = list(loss.params[blk.slice])
        if blk.shape == ():
            out.append(entries[0])
        elif len(blk.shape) == 2:
            out.append(sp.Matrix(blk.shape[0], blk.shape[1], entries))
        else:
            out.append(entries)
    return out


def attach_data(loss: Loss, mapping: Mapping, *, name: str | None = None, constants: Any = None) -> Loss:
    """A new Loss whose plain data symbols are replaced by expressions of random symbols.

    Parameters
    ----------
    loss
        A Loss with plain data symbols (for example from ``ns.families``).
    mapping
        ``{data symbol: expression}`` (or ``{Matrix of data symbols: Matrix of expressions}``);
        expressions use independent ``sympy.stats`` random symbols (``Normal("X0", 0, 1)``),
        numbers, and constants. Unmapped data symbols stay plain data symbols.
    name
        Name of the new Loss (default: the old name + " (data attached)").
    constants
        Extra constants used in the expressions (symbol list or ``{symbol: value}``), merged
        with the loss's constants.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w, x, y = sp.symbols("u w x y")
    >>> loss = ns.Loss((u * w * x - y) ** 2, [u, w], data=[x, y])
    >>> X, E = Normal("X", 0, 1), Normal("E", 0, 1)
    >>> new = ns.attach_data(loss, {x: X, y: 2 * X + E})
    >>> [str(s) for s in new.random_symbols], new.expr
    (['E', 'X'], (u*w*X - E - 2*X)**2)
    """
    loss = as_loss(loss)
    if loss.dataset is not None:
        raise InvalidDataError("this loss already has a finite dataset; attach_data replaces plain data symbols")
    if not isinstance(mapping, Mapping) or not mapping:
        raise InvalidArgumentError(
            "mapping must be a non-empty dict {data symbol: expression of random symbols}; got "
            f"{mapping!r}"
        )
    plain = list(loss.data_symbols[len(loss.random_symbols):])
    by_name = {str(s): s for s in plain}
    rep: dict[sp.Basic, sp.Basic] = {}
    for key, val in mapping.items():
        if isinstance(key, sp.MatrixBase):
            vals = list(val) if isinstance(val, (sp.MatrixBase, list, tuple, np.ndarray)) else None
            if vals is None or len(vals) != len(key):
                raise InvalidArgumentError(f"the value for the block {list(key)} must have {len(key)} entries")
            pairs = list(zip(list(key), vals))
        else:
            pairs = [(key, val)]
        for k, v in pairs:
            plain_key = isinstance(k, str) or (isinstance(k, sp.Symbol) and not isinstance(k, RandomSymbol))
            sym = by_name.get(str(k)) if plain_key else None
            if sym is None:
                raise InvalidDataError(
                    f"{k!r} is not a plain data symbol of this loss; its plain data symbols are "
                    f"{[str(s) for s in plain]}"
                )
            e = _exact_number(v, f"the value for {k}")
            for a in sp.preorder_traversal(e):
                if isinstance(a, RandomSymbol):
                    _check_random_symbol(loss, a)
                if isinstance(a, sp.Indexed) and isinstance(a.base, RandomSymbol):
                    raise InvalidDataError(f"{a} is an entry of a joint random vector; {_SUPPORTED}")
            rep[sym] = e
    const: dict[sp.Basic, Any] = dict(loss.constants)
    if constants is not None:
        if isinstance(constants, Mapping):
            const.update(constants)
        else:
            const.update({c: const.get(c) for c in constants})
    remaining = [s for s in plain if s not in rep]
    new = Loss(
        replace_symbols(loss.expr, rep),
        _rebuild_params(loss),
        data=remaining or None,
        constants=const or None,
        name=name or f"{loss.name} (data attached)",
        description=loss.description,
    )
    if loss.fast_grad is not None:
        # keep the hand-vectorized gradient: it sees the old columns, rebuilt from the new
        # ones by the data map itself (a matrix product for a linear teacher)
        from .families._matrix_grads import DataMapGradient  # noqa: PLC0415 - avoids a cycle

        to_real = dict(zip(new.data_symbols, new.x))
        to_real.update(zip(new.constants, new.c))
        old_columns = [replace_symbols(rep.get(s, s), to_real) for s in (*loss.data_symbols, *loss.constants)]
        new.fast_grad = DataMapGradient(loss.fast_grad, old_columns, (*new.x, *new.c))
    return new


def _per_index(v: Any, k: int, what: str) -> list[sp.Expr]:
    if isinstance(v, (sp.MatrixBase, np.ndarray, list, tuple)):
        vals = list(np.asarray(v, dtype=object).ravel()) if not isinstance(v, sp.MatrixBase) else list(v)
        if len(vals) != k:
            raise InvalidArgumentError(f"{what} must be a number or have {k} entries; got {len(vals)}")
    else:
        vals = [v] * k
    return [_exact_number(x, what) for x in vals]


def gaussian_linear_teacher(
    loss: Loss,
    inputs: Sequence[sp.Symbol],
    outputs: Sequence[sp.Symbol],
    V: Any,
    input_std: Any = 1,
    noise_std: Any = 0,
    *,
    input_mean: Any = 0,
    name: str | None = None,
) -> Loss:
    """Attach Gaussian data from a linear teacher: x_i ~ N(μ_i, s_i²), y = V x + ε, ε_o ~ N(0, t_o²).

    Maps ``inputs[i] -> X{i} = Normal("X{i}", μ_i, s_i)`` and
    ``outputs[o] -> Σ_i V[o, i] X{i} + Normal("E{o}", 0, t_o)`` (no ε when t_o = 0), with
    independent symbols; the setting of THEORY §7.1-§7.2. Numbers are kept exact (floats
    convert to their exact binary value; pass ``sp.Rational`` or strings like ``"1/10"``
    for decimal fractions); stds may be symbols (declare a positive symbol).

    Parameters
    ----------
    loss
        A Loss with plain data symbols, e.g. ``ns.families.linear_net([3, 3, 3])``.
    inputs, outputs
        The input and output data symbols (or their names).
    V
        Teacher matrix, ``len(outputs) x len(inputs)``.
    input_std, noise_std, input_mean
        A number (every index) or one per index.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> net = ns.families.linear_net([2, 1, 1])
    >>> x, y = net.data_symbols[:2], net.data_symbols[2:]
    >>> loss = ns.gaussian_linear_teacher(net, x, y, [[1, 2]], input_std=[1, 2], noise_std=1)
    >>> [str(s) for s in loss.random_symbols]
    ['E0', 'X0', 'X1']
    >>> ns.moments(loss).at([1, 2, 1]).mean_grad.T      # the minimum W2 W1 = V
    Matrix([[0, 0, 0]])
    """
    from sympy.stats import Normal

    loss = as_loss(loss)
    inputs = list(inputs)
    outputs = list(outputs)
    if not inputs or not outputs:
        raise InvalidArgumentError("inputs and outputs must each list at least one data symbol")
    try:
        Vm = sp.Matrix(V)
    except Exception:
        raise InvalidArgumentError(f"V must be a matrix-like of numbers; got {V!r}") from None
    if Vm.shape != (len(outputs), len(inputs)):
        raise InvalidArgumentError(
            f"V must have shape (len(outputs), len(inputs)) = ({len(outputs)}, {len(inputs)}); got {Vm.shape}"
        )
    s = _per_index(input_std, len(inputs), "input_std")
    mu = _per_index(input_mean, len(inputs), "input_mean")
    t = _per_index(noise_std, len(outputs), "noise_std")
    for v, what in [(v, "input_std") for v in s] + [(v, "noise_std") for v in t]:
        if v.is_negative or (what == "input_std" and v.is_zero):
            raise InvalidArgumentError(f"{what} must be positive (noise_std may be 0); got {v}")
    X = [Normal(f"X{i}", mu[i], s[i]) for i in range(len(inputs))]
    mapping: dict[Any, sp.Expr] = {x: X[i] for i, x in enumerate(inputs)}
    for o, y in enumerate(outputs):
        target = sp.Add(*[_exact_number(Vm[o, i], "V") * X[i] for i in range(len(inputs))])
        if not t[o].is_zero:
            target = target + Normal(f"E{o}", 0, t[o])
        mapping[y] = target
    return attach_data(loss, mapping, name=name or f"{loss.name}, gaussian linear teacher")
