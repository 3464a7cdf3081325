"""Compile: the gradient code of a loss run in exact rational or high-precision arithmetic.

:func:`precise_value_grad` evaluates the same generated code as
:meth:`~noether_sym.compile._compiled.CompiledLoss.value_grad` (one forward pass, one
reverse pass over the loss's Graph) on object arrays of ``fractions.Fraction`` (``"exact"``:
rational losses at rational points, kinks and all) or of ``mpmath.mpf`` (``"mp"``: any loss
whose functions mpmath knows, at a chosen number of digits).

Design
------
The generated source writes constants as floats (``repr(float(c))``) and the templates use
float literals (``2.0 * a``). Both are rewritten before compiling: each constant node's line
reads its value from a table of exact (or high-precision) constants, and integral float
literals become integers. Any float literal left over (a non-integral exponent, say) or a
function the arithmetic cannot evaluate makes the evaluator refuse with
:class:`~noether_sym._errors.UnsupportedExpressionError`: a float would silently spoil the
precision the caller asked for.
"""


from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .._errors import UnsupportedExpressionError
from ._compiled import CompiledLoss

__all__ = ['precise_value_grad']

#: NumPy names the generated code may use on object arrays in either arithmetic
_SHAPE_NAMES = {"broadcast_shapes", "shape", "broadcast_to", "zeros", "asarray", "sign"}
#: functions evaluated element by element with mpmath in the ``"mp"`` arithmetic
_MP_FUNCTIONS = {
    "exp": mpmath.exp, "log": mpmath.log, "sqrt": mpmath.sqrt, "sin": mpmath.sin, "cos": mpmath.cos,
    "tan": mpmath.tan, "sinh": mpmath.sinh, "cosh": mpmath.cosh, "tanh": mpmath.tanh,
    "arcsin": mpmath.asin, "arccos": mpmath.acos, "arctan": mpmath.atan,
}
_CONST_LINE = re.compile(r"^    v(\d+) = (.*)$")
_INTEGRAL_FLOAT = re.compile(r"(?<![\w.])(\d+)\.0(?![\d\w.])")
_ANY_FLOAT = re.compile(r"(?<![\w.])\d+\.\d|(?<![\w.])\d+e[-+]?\d")
_NP_NAME = re.compile(r"_np\.(\w+)")


class _Shim:
    """The ``_np`` of the generated code, for object arrays."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    broadcast_shapes = staticmethod(np.broadcast_shapes)
    shape = staticmethod(np.shape)

    @staticmethod
    def broadcast_to(v: Any, shape: tuple) -> Any:
        return np.broadcast_to(np.asarray(v, dtype=object), shape)

    @staticmethod
    def zeros(shape: tuple) -> Any:
        out = np.empty(shape, dtype=object)
        out.fill(0)
        return out

    @staticmethod
    def asarray(v: Any) -> Any:
        return np.asarray(v, dtype=bool)

    @staticmethod
    def sign(v: Any) -> Any:
        return np.sign(np.asarray(v, dtype=object))

    def __getattr__(self, name: str) -> Any:
        if self.mode == "mp" and name in _MP_FUNCTIONS:
            return np.frompyfunc(_MP_FUNCTIONS[name], 1, 1)
        raise UnsupportedExpressionError(f"the {self.mode} arithmetic cannot evaluate {name}")


def _real(v: Any) -> Any:
    return v


def _program(cl: CompiledLoss, mode: str, dps: int) -> Any:
    key = (mode, dps if mode == "mp" else 0)
    cache = cl.__dict__.setdefault("_precise", {})
    if key in cache:
        return cache[key]
    consts: dict[int, Any] = {}
    lines = []
    for line in cl._value_grad.source.splitlines():
        m = _CONST_LINE.match(line)
        if m and cl.graph.nodes[int(m.group(1))].op == "const":
            i = int(m.group(1))
            consts[i] = _constant(cl.graph.nodes[i].data, mode, dps)
            line = f"    v{i} = _C[{i}]"
        lines.append(_INTEGRAL_FLOAT.sub(r"\1", line))
    source = "\n".join(lines) + "\n"
    left = _ANY_FLOAT.search(source)
    names = set(_NP_NAME.findall(source)) - _SHAPE_NAMES
    if left is not None or "_fn_" in source or (names - (set(_MP_FUNCTIONS) if mode == "mp" else set())):
        what = left.group(0) if left is not None else ", ".join(sorted(names)) or "a user function"
        raise UnsupportedExpressionError(
            f"the loss's gradient code uses {what}, which the {mode} arithmetic cannot evaluate exactly"
        )
    ns: dict[str, Any] = {"_np": _Shim(mode), "_where": np.where, "_real": _real, "_C": consts}
    exec(compile(source, "<noether_sym:precise>", "exec"), ns)  # noqa: S102 - compile_graph's own source, never user text
    cache[key] = ns["value_grad"]
    return cache[key]


def _constant(c: Any, mode: str, dps: int) -> Any:
    c = sp.sympify(c)
    if mode == "exact":
        if not c.is_Rational:
            raise UnsupportedExpressionError(f"the constant {c} is not rational; exact arithmetic cannot hold it")
        return Fraction(int(c.p), int(c.q))
    with mpmath.workdps(dps + 10):
        return mpmath.mpf(sp.N(c, dps + 10)) if not c.is_Rational else mpmath.mpf(int(c.p)) / int(c.q)


def precise_value_grad(
    cl: CompiledLoss, theta: np.ndarray, x: np.ndarray | None, *, mode: str = "exact", dps: int = 50
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ℓ, ∇_θ ℓ, kink arguments) at the rows of ``theta`` (m, n) and ``x`` (m, d).

    Parameters
    ----------
    cl
        The compiled loss.
    theta, x
        Object arrays of ``Fraction`` (``mode="exact"``) or of numbers mpmath accepts
        (``mode="mp"``).
    mode
        ``"exact"`` or ``"mp"``.
    dps
        Decimal digits of the ``"mp"`` arithmetic.

    Returns
    -------
    Object arrays of shapes (m,), (m, n), (m, n_kinks).

    Raises
    ------
    UnsupportedExpressionError
        The code needs something the arithmetic cannot represent (an irrational constant or a
        transcendental function in exact arithmetic, a user function in either).
    ZeroDivisionError
        A sample hits a pole (exact arithmetic); pick other points.
    """
    f = _program(cl, mode, dps)
    theta = np.asarray(theta, dtype=object)
    cols = [theta[:, i] for i in range(cl.n)]
    if cl.d:
        x = np.asarray(x, dtype=object)
        cols += [x[:, j] for j in range(cl.d)]
    if mode == "mp":
        with mpmath.workdps(dps):
            cols = [np.array([mpmath.mpf(v) if not isinstance(v, Fraction) else mpmath.mpf(v.numerator) / v.denominator
                              for v in c], dtype=object) for c in cols]
            (val,), grads, kinks = f(*cols)
    else:
        (val,), grads, kinks = f(*cols)
    m = theta.shape[0]
    g = np.empty((m, cl.n), dtype=object)
    for i, gi in enumerate(grads):
        g[:, i] = np.broadcast_to(np.asarray(gi, dtype=object), (m,))
    k = np.empty((m, len(kinks)), dtype=object)
    for i, ki in enumerate(kinks):
        k[:, i] = np.broadcast_to(np.asarray(ki, dtype=object), (m,))
    return np.broadcast_to(np.asarray(val, dtype=object), (m,)), g, k
