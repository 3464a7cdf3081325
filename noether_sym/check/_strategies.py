"""Check: public Hypothesis strategies -- points θ, data models and random members of a generator space."""


from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp
from hypothesis import strategies as st
from sympy.stats import Normal, Rademacher, Uniform
from sympy.stats.rv import RandomSymbol

from .._errors import InvalidArgumentError
from ..loss._loss import Loss
from ._planted import PlantedLoss

__all__ = ['points', 'data_models', 'generators']



# ------------------------------------------------------------------------------------------
# Small strategies
# ------------------------------------------------------------------------------------------


def _n_of(obj: Any, what: str) -> int:
    if isinstance(obj, PlantedLoss):
        return obj.loss.n
    if isinstance(obj, Loss):
        return obj.n
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool) and obj >= 1:
        return int(obj)
    raise InvalidArgumentError(
        f"{what} takes a Loss, a PlantedLoss or a positive number of parameters; got {obj!r}"
    )


def points(
    loss: Any,
    *,
    bounds: tuple[float, float] = (-2.0, 2.0),
    rational: bool = False,
    min_magnitude: float = 0.0,
) -> st.SearchStrategy:
    """A strategy of parameter points θ of a loss.

    Parameters
    ----------
    loss
        A Loss, a PlantedLoss or the number of parameters n.
    bounds
        (low, high): every entry lies in this closed interval.
    rational
        Return a list of SymPy Rationals (denominators ≤ 12) instead of a float array.
    min_magnitude
        Every entry has |θ_i| ≥ min_magnitude (to stay away from 0, e.g. for 1/‖θ‖).

    Returns
    -------
    strategy of ``numpy.ndarray`` of shape (n,) (or ``list[sympy.Rational]``), in
    ``loss.params`` order.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> import noether_sym.testing as nst
    >>> @settings(max_examples=5, deadline=None, database=None)
    ... @given(nst.points(3, bounds=(1, 2)))
    ... def test_in_bounds(theta):
    ...     assert theta.shape == (3,) and ((1 <= theta) & (theta <= 2)).all()
    >>> test_in_bounds()
    """
    n = _n_of(loss, "points")
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"bounds must be a pair (low, high) of numbers; got {bounds!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InvalidArgumentError(f"bounds must be finite with low < high; got {bounds!r}")
    try:
        mm = float(min_magnitude)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"min_magnitude must be a number ≥ 0; got {min_magnitude!r}") from None
    if not mm >= 0 or mm >= max(abs(lo), abs(hi)) or (lo > -mm and hi < mm):
        raise InvalidArgumentError(
            f"min_magnitude={min_magnitude!r} leaves no admissible value in bounds {bounds!r}; lower it "
            "or widen bounds"
        )
    # |v| ≥ min_magnitude as a union of (at most) two intervals: no filtering, no rejections
    parts = [(max(lo, mm), hi)] if hi >= mm else []
    if lo <= -mm:
        parts.append((lo, min(hi, -mm)))
    if mm == 0:
        parts = [(lo, hi)]
    if rational:
        def frac(a: float, b: float) -> st.SearchStrategy:
            fa, fb = Fraction(a), Fraction(b)
            return st.fractions(min_value=fa, max_value=fb, max_denominator=12).filter(lambda v: fa <= v <= fb)
        entry = st.one_of([frac(a, b) for a, b in parts])
        return st.lists(entry, min_size=n, max_size=n).map(
            lambda vs: [sp.Rational(v.numerator, v.denominator) for v in vs]
        )
    entry = st.one_of([st.floats(a, b, allow_nan=False, allow_infinity=False) for a, b in parts])
    return st.lists(entry, min_size=n, max_size=n).map(lambda vs: np.array(vs, dtype=float))


_LAWS = ("normal", "uniform", "rademacher")


def data_models(symbols: Any, *, laws: Sequence[str] = _LAWS) -> st.SearchStrategy[dict]:
    """A strategy of data models: a mapping from each data symbol to an independent
    sympy.stats random symbol of the same name with rational parameters.

    Parameters
    ----------
    symbols
        Data symbols: a Loss or PlantedLoss (its plain data symbols) or a sequence of symbols.
    laws
        Laws to draw from: ``"normal"`` (mean in [-2, 2], std in [1/4, 2]), ``"uniform"``
        (on [a, b], a < b rationals) and ``"rademacher"`` (±1).

    Examples
    --------
    >>> import sympy as sp, sympy.stats, noether_sym.testing as nst
    >>> from hypothesis import given, settings
    >>> x = sp.Symbol("x")
    >>> @settings(max_examples=5, deadline=None, database=None)
    ... @given(nst.data_models([x]))
    ... def test_same_name_random(model):
    ...     assert model[x].name == "x" and isinstance(model[x], sp.stats.rv.RandomSymbol)
    >>> test_same_name_random()
    """

    if isinstance(symbols, PlantedLoss):
        symbols = symbols.loss
    if isinstance(symbols, Loss):
        symbols = [s for s in symbols.data_symbols if not isinstance(s, RandomSymbol)]
    if isinstance(symbols, sp.Symbol):
        symbols = [symbols]
    if isinstance(symbols, (str, bytes)) or not isinstance(symbols, (Sequence, tuple, set, frozenset)):
        raise InvalidArgumentError(f"data_models takes a Loss or a sequence of SymPy symbols; got {symbols!r}")
    symbols = list(symbols)
    for s in symbols:
        if not isinstance(s, sp.Symbol) or isinstance(s, RandomSymbol):
            raise InvalidArgumentError(
                f"data_models: {s!r} is not a plain SymPy symbol; pass the data symbols to give a law"
            )
    if isinstance(laws, str):
        laws = (laws,)
    laws = tuple(laws)
    if not laws or any(l not in _LAWS for l in laws):
        raise InvalidArgumentError(f"laws must be a non-empty subset of {list(_LAWS)}; got {list(laws)!r}")
    small = st.fractions(min_value=-2, max_value=2, max_denominator=4)
    positive = st.fractions(min_value=Fraction(1, 4), max_value=2, max_denominator=4)

    def q(v: Fraction) -> sp.Rational:
        return sp.Rational(v.numerator, v.denominator)

    def law_of(s: sp.Symbol) -> st.SearchStrategy:
        choices = []
        if "normal" in laws:
            choices.append(st.tuples(small, positive).map(lambda ms: Normal(s.name, q(ms[0]), q(ms[1]))))
        if "uniform" in laws:
            choices.append(st.tuples(small, positive).map(lambda aw: Uniform(s.name, q(aw[0]), q(aw[0] + aw[1]))))
        if "rademacher" in laws:
            choices.append(st.just(None).map(lambda _: Rademacher(s.name)))
        return st.one_of(choices)

    return st.tuples(*[law_of(s) for s in symbols]).map(lambda rs: dict(zip(symbols, rs)))


def generators(basis: Any, *, max_denominator: int = 4, bound: int = 3) -> st.SearchStrategy[sp.Matrix]:
    """A strategy of nonzero members Σ c_i A_i of a space of generators, c_i rational.

    Parameters
    ----------
    basis
        A :class:`~noether_sym.Symmetries` result, a :class:`PlantedLoss` or a non-empty
        sequence of n×n matrices.
    max_denominator, bound
        The coefficients c_i are fractions with denominator ≤ max_denominator in
        [-bound, bound], not all zero.

    Examples
    --------
    >>> import sympy as sp, noether_sym.testing as nst
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, deadline=None, database=None)
    ... @given(nst.generators([sp.diag(1, -1)]))
    ... def test_multiple(A):
    ...     assert A[0, 0] == -A[1, 1] != 0
    >>> test_multiple()
    """
    mats = getattr(basis, "generators", basis)
    if isinstance(mats, sp.MatrixBase):
        mats = [mats]
    try:
        mats = [sp.Matrix(A) for A in mats]
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"generators takes a Symmetries, a PlantedLoss or a list of matrices; got {basis!r}"
        ) from None
    if not mats:
        raise InvalidArgumentError(
            "generators: the basis is empty (the loss has no symmetric generator); draw from a "
            "loss with symmetries, e.g. planted_losses(min_generators=1)"
        )
    shapes = {A.shape for A in mats}
    if len(shapes) != 1 or next(iter(shapes))[0] != next(iter(shapes))[1]:
        raise InvalidArgumentError(
            f"generators: the basis matrices must all be n×n of one size; got shapes {sorted(shapes)}"
        )
    for v, name in ((max_denominator, "max_denominator"), (bound, "bound")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer; got {v!r}")
    coeff = st.fractions(min_value=-bound, max_value=bound, max_denominator=max_denominator)
    k = len(mats)

    def combine(args: tuple[list[Fraction], int]) -> sp.Matrix:
        cs, lead = args
        if not any(cs):  # keep it nonzero: the basis is linearly independent
            cs = list(cs)
            cs[lead] = Fraction(1)
        out = sp.zeros(*mats[0].shape)
        for c, A in zip(cs, mats):
            if c:
                out += sp.Rational(c.numerator, c.denominator) * A
        return out

    return st.tuples(st.lists(coeff, min_size=k, max_size=k), st.integers(0, k - 1)).map(combine)
