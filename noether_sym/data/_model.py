"""Data: attaching and describing a data model -- minibatch factor, attach_data, Gaussian linear teacher, exact points.

Turns a Loss with plain data symbols into one whose data are ``sympy.stats`` random
symbols, and reads user points θ and constant values exactly (floats at their exact binary
value, text never parsed) for the exact moment computations of :mod:`._moments`.
"""


from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp
from sympy.stats import Normal
from sympy.stats.rv import RandomSymbol

from .._errors import InvalidArgumentError, InvalidDataError
from .._validate import Boolean, Integer, Optional, validate
from ..compile._matrix_grads import DataMapGradient
from ..loss._loss import Loss, as_loss, replace_symbols
from ._polynomial import _SUPPORTED, _check_random_symbol

__all__ = ['minibatch_factor', 'attach_data', 'gaussian_linear_teacher']

_MINIBATCH = {"batch_size": Integer(1), "n_samples": Optional(Integer(1)), "replace": Boolean()}



def minibatch_factor(batch_size: int, n_samples: int | None = None, *, replace: bool = True) -> sp.Rational:
    """c with Cov ĝ = c · Σ for a minibatch of S = ``batch_size`` samples (THEORY §1).

    Independent draws (an infinite population, or ``replace=True``, the default, which is
    how ``simulate`` samples a dataset): c = 1/S. Without replacement (``replace=False``)
    from N = ``n_samples`` points: c = (N − S)/(S (N − 1)) (finite-population correction;
    0 for the full batch).

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.minibatch_factor(4), ns.minibatch_factor(4, 10), ns.minibatch_factor(4, 10, replace=False)
    (1/4, 1/4, 1/6)
    """
    opts = validate(_MINIBATCH, batch_size=batch_size, n_samples=n_samples, replace=replace)
    S, N = opts["batch_size"], opts["n_samples"]
    if N is None or opts["replace"]:
        return sp.Rational(1, S)
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


def _teacher_matrix(V: Any) -> sp.Matrix:
    """V as an exact SymPy matrix; entries are read one by one, since ``sp.Matrix`` would
    sympify (evaluate) a string entry."""
    if isinstance(V, sp.MatrixBase):
        rows = V.tolist()
    else:
        try:
            arr = np.asarray(V, dtype=object)
        except Exception:  # noqa: BLE001 - ragged or not array-like
            raise InvalidArgumentError(f"V must be a matrix of numbers (a list of equal-length rows); got {V!r}") from None
        if arr.ndim not in (1, 2):
            raise InvalidArgumentError(f"V must be a matrix of numbers (2-D); got an object of shape {arr.shape}")
        rows = arr.reshape(len(arr), -1).tolist()
    return sp.Matrix([[_exact_number(v, "V") for v in row] for row in rows]) if rows else sp.zeros(0, 0)


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
    convert to their exact binary value; pass ``sp.Rational`` or ``fractions.Fraction``
    for decimal fractions; text is never parsed); stds may be symbols (declare a positive symbol).

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

    loss = as_loss(loss)
    inputs = list(inputs)
    outputs = list(outputs)
    if not inputs or not outputs:
        raise InvalidArgumentError("inputs and outputs must each list at least one data symbol")
    Vm = _teacher_matrix(V)
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
