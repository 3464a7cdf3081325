"""Sample: draw data rows for a Loss -- its random symbols, or rows of its finite dataset.

A :class:`Sampler` turns the data model of a :class:`~noether_sym.Loss` into NumPy arrays
that feed straight into ``compiled(loss).value_grad(theta, x)``: the last axis holds the
values of ``loss.x`` in order, then the numeric values of the constants ``loss.c``.

* Random symbols (``sympy.stats``) are independent single-variable distributions; Normal,
  Uniform, Bernoulli and Rademacher are drawn with NumPy directly, any other one through
  its SymPy distribution's ``sample`` (SciPy), seeded by the same Generator. Every symbolic
  distribution parameter needs a numeric value (``values=`` or a valued constant).
* A finite dataset of N rows is sampled uniformly *with* replacement by :meth:`Sampler.draw`;
  :meth:`Sampler.take` returns given rows (for epochs without replacement).

Everything is vectorized (no Python loop over samples) and deterministic given the
Generator: the same ``rng`` state always gives the same array.
"""


from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import sympy as sp
from sympy.stats.crv_types import NormalDistribution, UniformDistribution
from sympy.stats.frv_types import BernoulliDistribution, RademacherDistribution
from sympy.stats.rv import RandomSymbol, SinglePSpace

from .._errors import InvalidArgumentError, InvalidDataError
from ..loss._loss import Loss, as_loss

__all__ = ['Draw', 'Sampler', 'make_sampler']


#: draws one column: (rng, shape) -> float array of that shape
Draw = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


class Sampler:
    """Draws data rows ``(*shape, d)`` for a Loss, ``d = len(loss.x) + len(loss.c)``.

    Build it with :func:`make_sampler`. Columns are ``loss.x`` in order, then the constants'
    numeric values (broadcast), so a draw can be passed to
    ``compiled(loss).value_grad(theta, x)`` as it is.

    Attributes
    ----------
    loss
        The Loss.
    d
        Width of a row: number of data symbols plus number of constants.
    dataset_size
        N for a finite dataset, else None.
    """

    def __init__(
        self,
        loss: Loss,
        columns: list[Draw] | None,
        constants: np.ndarray,
        rows: np.ndarray | None,
    ) -> None:
        self.loss = loss
        self._columns = columns
        self._constants = constants
        self._rows = rows  # (N, d) for a dataset, constants included
        self.d = len(loss.x) + len(loss.c)

    @property
    def dataset_size(self) -> int | None:
        """N for a finite dataset, else None."""
        return None if self._rows is None else int(self._rows.shape[0])

    def draw(self, rng: np.random.Generator, shape: Any) -> np.ndarray:
        """Independent draws of the data, an array of shape ``(*shape, d)``.

        For a dataset: rows chosen uniformly with replacement. Deterministic given ``rng``.

        Examples
        --------
        >>> import numpy as np, sympy as sp, noether_sym as ns
        >>> from sympy.stats import Normal
        >>> w = sp.Symbol("w")
        >>> x = Normal("x", 1, 2)
        >>> s = ns.make_sampler(ns.Loss((w * x - 1) ** 2, [w]))
        >>> s.draw(np.random.default_rng(0), (1000, 3)).shape
        (1000, 3, 1)
        """
        if not isinstance(rng, np.random.Generator):
            raise InvalidArgumentError(
                f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}"
            )
        shape = _check_shape(shape)
        if self._rows is not None:
            return self.take(rng.integers(0, self._rows.shape[0], size=shape))
        out = np.empty(shape + (self.d,), dtype=float)
        assert self._columns is not None
        for j, col in enumerate(self._columns):
            out[..., j] = col(rng, shape)
        k = len(self._columns)
        out[..., k:] = self._constants
        return out

    def take(self, indices: Any) -> np.ndarray:
        """Rows of the finite dataset at integer ``indices`` (any shape): ``(*indices.shape, d)``.

        Examples
        --------
        >>> import numpy as np, sympy as sp, noether_sym as ns
        >>> w, x = sp.symbols("w x")
        >>> loss = ns.Loss((w * x - 1) ** 2, [w], data={x: [1.0, 2.0, 3.0]})
        >>> ns.make_sampler(loss).take(np.array([2, 0]))
        array([[3.],
               [1.]])
        """
        if self._rows is None:
            raise InvalidArgumentError(
                "take() selects rows of a finite dataset; this loss draws its data from random "
                "symbols: use draw(rng, shape)"
            )
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise InvalidArgumentError(f"indices must be integers; got dtype {idx.dtype}")
        N = self._rows.shape[0]
        if idx.size and (idx.min() < -N or idx.max() >= N):
            raise InvalidArgumentError(f"indices must lie in [0, {N}) for a dataset of {N} rows")
        return self._rows[idx]

    def __repr__(self) -> str:
        what = f"dataset of {self.dataset_size} rows" if self._rows is not None else "random symbols"
        return f"Sampler({self.loss.name!r}, {what}, d={self.d})"


def _check_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"shape must be a tuple of non-negative integers; got {shape!r}") from None
    if any(s < 0 for s in out) or any(float(a) != float(b) for a, b in zip(out, shape)):
        raise InvalidArgumentError(f"shape must be a tuple of non-negative integers; got {shape!r}")
    return out


def _value_map(loss: Loss, values: Mapping | None) -> dict[sp.Basic, sp.Basic]:
    """Numeric values for symbols that may appear in distribution parameters."""
    out: dict[sp.Basic, sp.Basic] = {}
    for c, v in loss.constants.items():
        if v is not None:
            out[c] = sp.sympify(v, strict=True)  # validated numbers; strict: a string is refused, never parsed
    for k, v in (values or {}).items():
        if not isinstance(k, sp.Symbol):
            raise InvalidArgumentError(f"values must map SymPy symbols to numbers; got key {k!r}")
        try:
            vv = sp.sympify(v, strict=True)
        except (sp.SympifyError, TypeError):
            raise InvalidArgumentError(f"values[{k}] must be a real number; got {v!r}") from None
        if not (vv.is_number and vv.is_real):
            raise InvalidArgumentError(f"values[{k}] must be a real number; got {v!r}")
        out[k] = vv
    return out


def _numeric_args(X: RandomSymbol, vals: Mapping) -> list[float]:
    dist = X.pspace.distribution
    args = [sp.sympify(a).xreplace(vals) for a in dist.args]
    free = sorted({str(s) for a in args for s in a.free_symbols})
    if free:
        raise InvalidDataError(
            f"the distribution of random symbol {X} ({dist}) has symbolic parameter(s) "
            f"{', '.join(free)} without numeric value; sampling needs numbers: pass "
            f"values={{{free[0]}: ...}} or declare it as a constant with a value"
        )
    try:
        return [float(a) for a in args]
    except TypeError:
        raise InvalidDataError(f"the parameters of random symbol {X} ({dist}) must be real numbers") from None


def _column(X: RandomSymbol, vals: Mapping) -> Draw:
    """A vectorized draw function for one independent random symbol."""
    if not isinstance(X.pspace, SinglePSpace) or X.pspace.value != X:
        raise InvalidDataError(
            f"random symbol {X} has a joint or compound distribution ({type(X.pspace).__name__}); "
            "noether_sym samples independent single-variable random symbols with numeric parameters "
            "only (build correlated data as polynomials of independent ones, e.g. y = 2*x + eps)"
        )
    dist = X.pspace.distribution
    a = _numeric_args(X, vals)
    if isinstance(dist, NormalDistribution):
        mean, std = a
        if not std > 0:
            raise InvalidDataError(f"random symbol {X}: the standard deviation must be positive, got {std}")
        return lambda rng, shape: rng.normal(mean, std, size=shape)
    if isinstance(dist, UniformDistribution):
        lo, hi = a
        if not hi > lo:
            raise InvalidDataError(f"random symbol {X}: Uniform needs left < right, got [{lo}, {hi}]")
        return lambda rng, shape: rng.uniform(lo, hi, size=shape)
    if isinstance(dist, BernoulliDistribution):
        p, succ, fail = a
        if not 0 <= p <= 1:
            raise InvalidDataError(f"random symbol {X}: Bernoulli probability must lie in [0, 1], got {p}")
        return lambda rng, shape: np.where(rng.random(size=shape) < p, succ, fail)
    if isinstance(dist, RademacherDistribution):
        return lambda rng, shape: 2.0 * rng.integers(0, 2, size=shape) - 1.0
    num_dist = dist.xreplace(vals)

    def fallback(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        try:
            out = num_dist.sample(size=shape, seed=rng)
        except Exception as exc:  # SymPy raises many kinds here
            raise InvalidDataError(
                f"cannot sample random symbol {X} ({dist}) with sympy.stats: {exc}; noether_sym draws "
                "Normal, Uniform, Bernoulli and Rademacher directly"
            ) from None
        return np.broadcast_to(np.asarray(out, dtype=float), shape)

    fallback(np.random.default_rng(0), (1,))  # fail now, not in the middle of a simulation
    return fallback


def make_sampler(loss: Loss, *, values: Mapping | None = None) -> Sampler:
    """The :class:`Sampler` of a loss's data model (random symbols or finite dataset).

    Parameters
    ----------
    loss
        The Loss.
    values
        Numeric values for symbolic distribution parameters (``{s: 2}`` for
        ``Normal("x", 0, s)``); constants with values are used automatically.

    Raises
    ------
    InvalidDataError
        Plain data symbols without a dataset or distribution, joint random symbols, symbolic
        distribution parameters without values, distributions that cannot be sampled.
    InvalidLossError
        A constant without numeric value (the compiled loss needs it).

    Examples
    --------
    >>> import numpy as np, sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal, Rademacher
    >>> w = sp.Symbol("w")
    >>> x, r = Normal("x", 0, 1), Rademacher("r")
    >>> s = ns.make_sampler(ns.Loss((w * x - r) ** 2, [w]))
    >>> rows = s.draw(np.random.default_rng(0), (4,))
    >>> rows.shape, s.dataset_size, sorted(set(rows[:, 0].tolist()))   # columns: r, then x
    ((4, 2), None, [-1.0, 1.0])
    """
    loss = as_loss(loss)
    vals = _value_map(loss, values)
    const = np.array([float(v) for v in loss.constant_values().values()], dtype=float) if loss.c else np.zeros(0)
    if loss.dataset is not None:
        N = loss.n_samples
        cols = [np.asarray(loss.dataset[s], dtype=float) for s in loss.data_symbols]
        rows = np.empty((N, len(cols) + len(const)), dtype=float)
        for j, c in enumerate(cols):
            rows[:, j] = c
        rows[:, len(cols):] = const
        return Sampler(loss, None, const, rows)
    plain = loss.data_symbols[len(loss.random_symbols):]
    if plain:
        raise InvalidDataError(
            f"this loss has no data distribution for the data symbol(s) {', '.join(map(str, plain))}; "
            "attach one with ns.attach_data(loss, {symbol: random expression}) or pass a dataset "
            "(ns.Loss(expr, params, data={symbol: array}))"
        )
    return Sampler(loss, [_column(X, vals) for X in loss.random_symbols], const, None)


class _TeacherSampler:
    """x ~ N(0, I_{d_in}), y = V x + σ ε, V = eye(d_out, d_in): rows (x_0.., y_0..) of a family."""

    dataset_size = None

    def __init__(self, d_in: int, d_out: int, noise: float) -> None:
        self.d_in, self.d_out, self.noise = d_in, d_out, float(noise)
        self.d = d_in + d_out

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        shape = tuple(shape)
        z = rng.standard_normal(shape + (self.d,))
        x = z[..., : self.d_in]
        m = min(self.d_in, self.d_out)
        out = np.empty_like(z)
        out[..., : self.d_in] = x
        y = out[..., self.d_in :]
        y[...] = self.noise * z[..., self.d_in :]
        y[..., :m] += x[..., :m]
        return out

    def take(self, indices: Any) -> np.ndarray:  # pragma: no cover - not a dataset
        raise InvalidArgumentError("the teacher data model is not a finite dataset")
