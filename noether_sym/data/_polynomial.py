"""Data: polynomial expectations -- the sparse polynomial builder and the moment sources (random symbols, datasets).

Expectations over the data are exact when the expression is polynomial in the data: a
polynomial is split into data monomials whose moments come from a source (independent
random symbols, or the empirical moments of a finite dataset).
"""


from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from functools import cache
from typing import Any

import flint
import numpy as np
import sympy as sp
from sympy import S
from sympy.core.basic import ordering_of_classes
from sympy.stats import moment
from sympy.stats.crv_types import NormalDistribution
from sympy.stats.rv import RandomSymbol, SinglePSpace

from .._errors import InvalidDataError, UnsupportedExpressionError
from ..loss._loss import Loss, replace_symbols

__all__ = []



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
        coeffs: dict[tuple[Any, Any], sp.Rational] = {}
        coeff_keys: dict[sp.Rational, Any] = {}
        fast = True
        for exp, c in p.to_dict().items():
            ck = (c.p, c.q)  # FLINT integers hash ~7x faster than the rational (a Fraction hash)
            coeff = coeffs.get(ck)
            if coeff is None:
                q = int(c.q)
                coeff = coeffs[ck] = sp.Integer(int(c.p)) if q == 1 else sp.Rational(int(c.p), q)
            f = []
            slow = False
            for k in range(D, len(exp)):
                e = exp[k]
                if e:
                    e = int(e)
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


@cache
def _class_key(cls: type) -> tuple[int, str]:
    """Sort key of a class, as ``sympy.core.basic._cmp_name`` orders them."""

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
