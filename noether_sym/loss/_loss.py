"""Loss: a per-sample loss as a scalar SymPy expression, its ordered parameters and its data.

A :class:`Loss` is the input of every stage of the pipeline (loss -> symmetries -> charges
-> equilibrium -> compile -> simulate -> verify -> report). It validates eagerly and keeps
a *real* copy of the expression (every parameter and data symbol replaced by a real Symbol
of the same name) that the other stages differentiate and compile.

Parameter blocks
----------------
``params`` may mix single symbols with blocks: any SymPy ``Matrix`` of symbols (for
example from :func:`vector` or :func:`matrix`) or any sequence of symbols. Blocks are
flattened in **row-major order** (``W[0,0], W[0,1], ..., W[1,0], ...``), blocks in the
order given. Every generator matrix and every parameter vector of noether_sym uses that
flattened order.
"""


from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from sympy.stats.rv import RandomSymbol

from .._errors import (
    InvalidArgumentError,
    InvalidDataError,
    InvalidLossError,
    InvalidParameterError,
    ResourceLimitError,
)
from .._validate import Integer

__all__ = ['vector', 'matrix', 'ParamBlock', 'Loss', 'as_real_number', 'replace_symbols', 'as_loss']

#: one side of a parameter block: each entry is a SymPy symbol, so a million is already far
#: beyond what the symbolic stages can handle
_BLOCK_SIZE = Integer(1, 10**6)


def vector(name: str, n: int, *, start: int = 0) -> sp.Matrix:
    """A column of ``n`` symbols ``name_0 ... name_{n-1}``, to use as a parameter block.

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.vector("w", 3).T
    Matrix([[w_0, w_1, w_2]])
    """
    _check_name(name)
    n = _BLOCK_SIZE(n, "n")
    return sp.Matrix(n, 1, [sp.Symbol(f"{name}_{i}") for i in range(start, start + int(n))])


def matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    """A ``rows x cols`` matrix of symbols ``name_i_j``; it flattens row-major in a Loss.

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.matrix("W", 2, 2)
    Matrix([
    [W_0_0, W_0_1],
    [W_1_0, W_1_1]])
    """
    _check_name(name)
    rows, cols = _BLOCK_SIZE(rows, "rows"), _BLOCK_SIZE(cols, "cols")
    if rows * cols > _BLOCK_SIZE.high:
        raise ResourceLimitError(
            f"a {rows} x {cols} matrix would create {rows * cols} symbols, over the budget of {_BLOCK_SIZE.high} "
            "symbols per block (the symbolic stages could not handle it anyway): use smaller blocks"
        )
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}_{j}"))


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise InvalidArgumentError(f"a block name must be an identifier string, got {name!r}")


@dataclass(frozen=True)
class ParamBlock:
    """A named block of the flattened parameter vector (``slice`` into it, original ``shape``)."""

    name: str
    shape: tuple[int, ...]
    slice: slice


def _flatten_params(params: Any) -> tuple[list[sp.Symbol], list[ParamBlock]]:
    if isinstance(params, (sp.Symbol, sp.MatrixBase)):
        params = [params]
    if isinstance(params, (str, bytes)) or not isinstance(params, Iterable):
        raise InvalidParameterError(
            f"params must be a list of SymPy symbols (or matrices of symbols), got {params!r}; "
            "for example params=[u, w] or params=[ns.vector('w', 3)]"
        )
    flat: list[sp.Symbol] = []
    blocks: list[ParamBlock] = []
    for item in params:
        start = len(flat)
        if isinstance(item, sp.MatrixBase):
            entries = list(item)  # row-major
            shape = tuple(item.shape)
            name = _common_prefix([str(e) for e in entries])
        elif isinstance(item, (list, tuple)):
            entries = list(item)
            shape = (len(entries),)
            name = _common_prefix([str(e) for e in entries])
        else:
            entries = [item]
            shape = ()
            name = str(item)
        for e in entries:
            if isinstance(e, RandomSymbol):
                raise InvalidParameterError(
                    f"parameter {e} is a random symbol (sympy.stats); parameters must be plain "
                    "SymPy symbols and random symbols are data"
                )
            if not isinstance(e, sp.Symbol):
                raise InvalidParameterError(
                    f"every parameter must be a SymPy Symbol; got {e!r} of type {type(e).__name__}. "
                    "Create parameters with sympy.symbols('a b c') or ns.vector / ns.matrix"
                )
            flat.append(e)
        blocks.append(ParamBlock(name or f"block{len(blocks)}", shape, slice(start, len(flat))))
    return flat, blocks


def _common_prefix(names: list[str]) -> str:
    if not names:
        return ""
    p = names[0]
    for s in names[1:]:
        while not s.startswith(p):
            p = p[:-1]
    return p.rstrip("_") or names[0]


def _real_symbol(s: sp.Symbol) -> sp.Symbol:
    return sp.Symbol(s.name, real=True)


class Loss:
    """A per-sample loss ℓ(θ, x): a scalar SymPy expression, ordered parameters and data.

    Parameters
    ----------
    expr
        Scalar SymPy expression of the parameters and the data.
    params
        The parameters θ, in order: symbols, or blocks (matrices / sequences of symbols)
        flattened row-major (see the module docstring).
    data
        How the data x enters. One of

        * ``None`` (default): the data are the ``sympy.stats`` random symbols found in
          ``expr`` (for example ``x = Normal("x", 0, 1)``); expectations are over their joint
          law (independent unless built from each other, like ``y = 2*x + eps``);
        * a sequence of plain symbols: data symbols with no distribution attached (enough
          for the symmetry finder; expectations need a distribution or a dataset);
        * a mapping ``{symbol: array}`` (or ``{tuple of symbols: 2-D array}``, one column
          per symbol): a finite dataset of N samples; expectations are empirical means.
    constants
        Other free symbols of ``expr`` (symbolic hyper-parameters), optionally with values:
        a sequence of symbols or a mapping ``{symbol: value or None}``.
    name
        A short name used in reports.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x = Normal("x", 0, 1)
    >>> loss = ns.Loss((u * w * x - x) ** 2, params=[u, w])
    >>> loss.n, [str(s) for s in loss.data_symbols]
    (2, ['x'])
    """

    def __init__(
        self,
        expr: Any,
        params: Any,
        data: Any = None,
        *,
        constants: Any = None,
        name: str | None = None,
        description: str | None = None,
    ) -> None:
        self.expr = _validate_expr(expr)
        free = self.expr.free_symbols
        self.params, self.blocks = _checked_params(params, free)
        self.name = name or "loss"
        self.description = description or ""
        self.dataset, self.data_symbols, self.random_symbols = _checked_data(data, free, set(self.params))
        self.constants: dict[sp.Symbol, Any] = _checked_constants(constants, {*self.params, *self.data_symbols})
        _check_no_stray_symbols(free, {*self.params, *self.data_symbols, *self.constants})
        self._make_real_copy()
        #: optional hand-vectorized per-sample gradient ``(theta (..., n), x (..., d)) ->
        #: (..., n)`` (families with matrix structure supply one; tests check it against the
        #: gradient compiled from the expression)
        self.fast_grad: Any = None
        self._cache: dict[str, Any] = {}

    def _make_real_copy(self) -> None:
        """theta, x, c and sample_expr: every symbol replaced by a real Symbol of the same name
        (the compiler and the exact engine rely on realness, and names must be unique for it)."""
        names = [str(s) for s in (*self.params, *self.data_symbols, *self.constants)]
        seen: set[str] = set()
        clash = sorted({n for n in names if n in seen or seen.add(n)})
        if clash:
            raise InvalidLossError(
                f"two different symbols share the name(s) {', '.join(clash)}; give every parameter, "
                "data symbol and constant a distinct name"
            )
        self.theta: tuple[sp.Symbol, ...] = tuple(_real_symbol(p) for p in self.params)
        self.x: tuple[sp.Symbol, ...] = tuple(_real_symbol(s) for s in self.data_symbols)
        self.c: tuple[sp.Symbol, ...] = tuple(_real_symbol(s) for s in self.constants)
        rep = dict(zip(self.params, self.theta))
        rep.update(zip(self.data_symbols, self.x))
        rep.update(zip(self.constants, self.c))
        self.sample_expr: sp.Expr = replace_symbols(self.expr, rep)

    # ------------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of parameters (length of the flattened θ)."""
        return len(self.params)

    @property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        """All real symbols of :attr:`sample_expr`: θ, then x, then constants."""
        return (*self.theta, *self.x, *self.c)

    def index(self, symbol: sp.Symbol) -> int:
        """Position of a parameter symbol in the flattened θ."""
        for i, (p, t) in enumerate(zip(self.params, self.theta)):
            if symbol == p or symbol == t:
                return i
        raise InvalidParameterError(f"{symbol} is not a parameter of this loss; parameters: {self.params}")

    def theta_vector(self, theta: Any, *, what: str = "theta") -> np.ndarray:
        """Validate a point θ (mapping symbol -> number, or sequence in params order)."""
        if isinstance(theta, Mapping):
            vals = [None] * self.n
            for k, v in theta.items():
                vals[self.index(k)] = v
            missing = [str(p) for p, v in zip(self.params, vals) if v is None]
            if missing:
                raise InvalidArgumentError(f"{what} gives no value for parameter(s) {', '.join(missing)}")
            arr = _to_float_array(vals, what)
        else:
            if isinstance(theta, sp.MatrixBase):
                theta = list(theta)
            arr = _to_float_array(theta, what)
            if arr.ndim != 1 or arr.shape[0] != self.n:
                raise InvalidArgumentError(
                    f"{what} must have one entry per parameter ({self.n}, in params order "
                    f"{[str(p) for p in self.params]}); got shape {arr.shape}"
                )
        if not np.all(np.isfinite(arr)):
            raise InvalidArgumentError(f"{what} has non-finite entries: {arr}")
        return arr

    def constant_values(self) -> dict[sp.Symbol, float]:
        """Numeric values of the constants (error if one has none)."""
        out = {}
        for c, rc in zip(self.constants, self.c):
            v = self.constants[c]
            if v is None:
                raise InvalidLossError(
                    f"constant {c} has no numeric value; pass constants={{{c}: value}} to the Loss"
                )
            out[rc] = float(v)
        return out

    def __repr__(self) -> str:
        data = (
            "random symbols " + ", ".join(s.name for s in self.random_symbols)
            if self.random_symbols
            else (f"dataset of {self.n_samples} samples" if self.dataset is not None else "symbols")
        )
        return f"Loss({self.name!r}, n_params={self.n}, data={data}: {sp.sstr(self.expr)[:80]})"

    @property
    def n_samples(self) -> int | None:
        """Number of samples of the finite dataset, or None."""
        if self.dataset is None:
            return None
        return len(next(iter(self.dataset.values())))


def _reject_unordered(value: Any, what: str, error: type[Exception], example: str) -> None:
    """A set (or a dict's keys view) iterates in an order that follows the hash seed, so the
    flattened order would change from run to run: refuse it and name the fix."""
    if isinstance(value, AbstractSet):
        raise error(
            f"{what} must be an ordered sequence (a list or tuple); got {type(value).__name__}, whose "
            f"order follows Python's hash seed and changes between runs. Pass a list, for example {example}"
        )


def _checked_params(params: Any, free: set) -> tuple[tuple[sp.Symbol, ...], tuple[ParamBlock, ...]]:
    """The flattened parameters and their blocks: ordered, non-empty, distinct, all in ``free``."""
    _reject_unordered(params, "params", InvalidParameterError, "params=[u, w]")
    flat, blocks = _flatten_params(params)
    if not flat:
        raise InvalidParameterError(
            "the parameter list is empty: pass the symbols the loss is trained over, "
            "for example params=[u, w]"
        )
    seen: set[sp.Symbol] = set()
    for p in flat:
        if p in seen:
            raise InvalidParameterError(f"parameter {p} is listed twice; list each parameter once")
        seen.add(p)
    absent = [p for p in flat if p not in free]
    if absent:
        raise InvalidParameterError(
            f"parameter(s) {', '.join(map(str, absent))} do not appear in the loss expression; "
            "remove them from params or check the expression"
        )
    return tuple(flat), tuple(blocks)


def _checked_data(
    data: Any, free: set, params: set
) -> tuple[dict[sp.Symbol, np.ndarray] | None, tuple[sp.Symbol, ...], tuple[RandomSymbol, ...]]:
    """(dataset or None, data symbols, random symbols) of the ``data`` argument of a Loss."""
    randoms = sorted((s for s in free if isinstance(s, RandomSymbol)), key=lambda s: s.name)
    dataset: dict[sp.Symbol, np.ndarray] | None = None
    declared: list[sp.Symbol] = []
    _reject_unordered(data, "data", InvalidDataError, "data=[x, y]")
    if data is None:
        declared = []
    elif isinstance(data, Mapping):
        if randoms:
            raise InvalidDataError(
                "the loss contains sympy.stats random symbols "
                f"({', '.join(s.name for s in randoms)}) and a finite dataset was also given; "
                "use one data model: random symbols or plain symbols with a dataset"
            )
        declared, dataset = _validate_dataset(data, free)
    elif isinstance(data, (sp.Symbol, sp.MatrixBase)) or (
        isinstance(data, Iterable) and not isinstance(data, (str, bytes))
    ):
        declared, _ = _flatten_params([data] if isinstance(data, (sp.Symbol, sp.MatrixBase)) else data)
    else:
        raise InvalidDataError(
            f"data must be None, a sequence of data symbols or a mapping symbol -> array; got {data!r}"
        )
    for s in declared:
        if s in params:
            raise InvalidDataError(
                f"symbol {s} is both a parameter and a data symbol; a symbol must be one or the other"
            )
        if s not in free and dataset is None:
            raise InvalidDataError(f"data symbol {s} does not appear in the loss expression")
    counts: dict[sp.Symbol, int] = {}
    for s in declared:
        counts[s] = counts.get(s, 0) + 1
    dups = {s for s, k in counts.items() if k > 1}
    if dups:
        raise InvalidDataError(f"data symbol(s) {', '.join(map(str, dups))} listed twice")
    data_syms = list(randoms) + [s for s in declared if s not in randoms]
    return dataset, tuple(data_syms), tuple(randoms)


def _checked_constants(constants: Any, taken: set) -> dict[sp.Symbol, Any]:
    """``{constant: exact value or None}`` from a sequence or a mapping of plain symbols."""
    _reject_unordered(constants, "constants", InvalidLossError, "constants=[c] or constants={c: 2}")
    const_values: dict[sp.Symbol, Any] = {}
    if constants is None:
        pass
    elif isinstance(constants, Mapping):
        const_values = dict(constants)
    elif isinstance(constants, Iterable) and not isinstance(constants, (str, bytes)):
        const_values = {c: None for c in constants}
    else:
        raise InvalidLossError(f"constants must be a sequence of symbols or a mapping; got {constants!r}")
    for c, v in list(const_values.items()):
        if not isinstance(c, sp.Symbol) or isinstance(c, RandomSymbol):
            raise InvalidLossError(f"constant {c!r} must be a plain SymPy symbol")
        if v is not None:
            const_values[c] = as_real_number(v, f"the value of constant {c}")
        if c in taken:
            raise InvalidLossError(f"symbol {c} is declared both as a constant and as a parameter or data")
    return const_values


def _check_no_stray_symbols(free: set, known: set) -> None:
    """Every free symbol is a parameter, data or a constant; joint random vectors are refused."""
    joint = [s for s in free if isinstance(s, RandomSymbol)
             and (type(s).__name__ != "RandomSymbol" or "Joint" in type(s.pspace).__name__)]
    if joint:
        raise InvalidDataError(
            f"{joint[0]} is an entry of a joint (multivariate) random variable; noether_sym takes "
            "data as independent single-variable sympy.stats random symbols: build correlated "
            "data from independent normals (e.g. y = 2*x + eps)"
        )
    stray = sorted((s for s in free if s not in known), key=str)
    if stray:
        raise InvalidLossError(
            f"free symbol(s) {', '.join(map(str, stray))} are neither parameters nor data: "
            "add them to params, declare them as data (data=[...] or a dataset), or as "
            "constants=[...]"
        )


def _validate_expr(expr: Any) -> sp.Expr:
    if isinstance(expr, sp.MatrixBase):
        if expr.shape == (1, 1):
            expr = expr[0, 0]
        else:
            raise InvalidLossError(
                f"the loss must be a scalar expression; got a {expr.shape[0]}x{expr.shape[1]} matrix. "
                "Reduce it to a scalar first (for example a sum of squares)"
            )
    if isinstance(expr, (int, float, complex, np.number)) and not isinstance(expr, bool):
        raise InvalidLossError(
            f"the loss must be a SymPy expression of the parameters; got the number {expr!r}"
        )
    if isinstance(expr, str):
        raise InvalidLossError(
            "the loss must be a SymPy expression, not a string; parse text with "
            "ns.parse_expression(text, names) (whitelisted) or build it from sympy symbols"
        )
    if not isinstance(expr, sp.Basic):
        raise InvalidLossError(
            f"the loss must be a SymPy expression; got an object of type {type(expr).__name__}"
        )
    if isinstance(expr, (sp.logic.boolalg.Boolean, sp.core.relational.Relational)) or not isinstance(
        expr, sp.Expr
    ):
        raise InvalidLossError(f"the loss must be a scalar algebraic expression; got {type(expr).__name__} {expr}")
    if expr.has(sp.I) or (expr.is_number and expr.is_real is False):
        raise InvalidLossError("the loss must be real-valued; the expression contains the imaginary unit")
    return expr


def _to_float_array(vals: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in vals] if isinstance(vals, list) else vals, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{what} must contain real numbers: {exc}") from None
    return arr


def _validate_dataset(data: Mapping, free: set) -> tuple[list[sp.Symbol], dict[sp.Symbol, np.ndarray]]:
    syms: list[sp.Symbol] = []
    columns: dict[sp.Symbol, np.ndarray] = {}
    length = None
    for key, values in data.items():
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            raise InvalidDataError(f"dataset column for {key} must be numeric") from None
        if isinstance(key, sp.MatrixBase) or (isinstance(key, (list, tuple))):
            keys = list(key)
            if arr.ndim != 2 or arr.shape[1] != len(keys):
                raise InvalidDataError(
                    f"the dataset for the block {list(map(str, keys))} must be a 2-D array with "
                    f"{len(keys)} columns; got shape {arr.shape}"
                )
            cols = [arr[:, j] for j in range(len(keys))]
        else:
            keys = [key]
            if arr.ndim != 1:
                raise InvalidDataError(f"the dataset column for {key} must be 1-D; got shape {arr.shape}")
            cols = [arr]
        for k, col in zip(keys, cols):
            if not isinstance(k, sp.Symbol) or isinstance(k, RandomSymbol):
                raise InvalidDataError(f"dataset keys must be plain SymPy symbols; got {k!r}")
            if k not in free:
                raise InvalidDataError(f"dataset column {k} does not appear in the loss expression")
            if length is None:
                length = len(col)
            elif len(col) != length:
                raise InvalidDataError(
                    f"dataset columns have different lengths ({length} and {len(col)} for {k})"
                )
            if not np.all(np.isfinite(col)):
                raise InvalidDataError(f"dataset column {k} has non-finite values")
            syms.append(k)
            columns[k] = col
    if not columns or not length:
        raise InvalidDataError("the dataset is empty: give at least one column with at least one sample")
    return syms, columns


def as_real_number(v: Any, what: str) -> sp.Expr:
    """A user-supplied number as a SymPy real number; text is never parsed (no sympify of
    strings: that would evaluate Python)."""
    if isinstance(v, (str, bytes)) or isinstance(v, bool):
        raise InvalidArgumentError(f"{what} must be a real number, not {type(v).__name__} {v!r}")
    try:
        out = sp.sympify(v, strict=True)
    except (sp.SympifyError, TypeError, ValueError):
        raise InvalidArgumentError(f"{what} must be a real number; got {v!r}") from None
    if not (isinstance(out, sp.Expr) and out.is_number and out.is_real):
        raise InvalidArgumentError(f"{what} must be a real number; got {v!r}")
    return out


def replace_symbols(expr: sp.Basic, mapping: Mapping[sp.Basic, sp.Basic]) -> sp.Basic:
    """``expr.xreplace(mapping)`` that visits each shared sub-expression once and does not
    re-evaluate ``Max``/``Min`` (whose evaluation queries assumptions and is very slow on
    large arguments)."""
    memo: dict[sp.Basic, sp.Basic] = dict(mapping)
    stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
    while stack:
        e, ready = stack.pop()
        if e in memo:
            continue
        if not e.args:
            memo[e] = e
            continue
        if not ready:
            stack.append((e, True))
            stack.extend((a, False) for a in e.args if a not in memo)
            continue
        new = tuple(memo[a] for a in e.args)
        if all(a is b for a, b in zip(new, e.args)):
            memo[e] = e
        elif isinstance(e, (sp.Max, sp.Min)):
            memo[e] = e.func(*new, evaluate=False)
        else:
            memo[e] = e.func(*new)
    return memo[expr]


def as_loss(obj: Any) -> Loss:
    """Return ``obj`` if it is a Loss, else raise a clear error."""
    if isinstance(obj, Loss):
        return obj
    raise InvalidLossError(
        f"expected an ns.Loss; got {type(obj).__name__}. Wrap the expression: ns.Loss(expr, params=[...])"
    )

