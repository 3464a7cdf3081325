"""Catalog: feed-forward networks (linear, ReLU, leaky ReLU, monomial, tanh...) with squared loss.

Each builder returns an ordinary :class:`~noether_sym.Loss`; nothing downstream knows which
family it came from. Parameters are the weight matrices ``W1, W2, ...`` (``W_l`` has shape
``dims[l] x dims[l-1]``, entries ``W{l}_{i}_{j}``) and, with ``bias=True``, the hidden biases
``b{l}_{i}`` right after their layer's weights; everything flattens row-major in that
order. Data are plain symbols ``x_0.. `` (input) and ``y_0..`` (target).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import sympy as sp

from .._errors import InvalidArgumentError
from .._loss import Loss
from ._matrix_grads import MatrixGradient

__all__ = ["mlp", "linear_net", "relu_net", "ACTIVATIONS"]


def _relu(z: sp.Expr) -> sp.Expr:
    return sp.Max(0, z, evaluate=False)  # evaluating would query assumptions on z: slow


def _leaky(slope: sp.Rational) -> Callable[[sp.Expr], sp.Expr]:
    return lambda z: sp.Max(slope * z, z, evaluate=False)


def _monomial(p: int) -> Callable[[sp.Expr], sp.Expr]:
    return lambda z: z**p


#: activation name -> (function builder taking the option value, description)
ACTIVATIONS: dict[str, Callable[..., Callable[[sp.Expr], sp.Expr]]] = {
    "linear": lambda _=None: (lambda z: z),
    "relu": lambda _=None: _relu,
    "leaky_relu": lambda slope=sp.Rational(1, 10): _leaky(sp.Rational(slope)),
    "monomial": lambda p=2: _monomial(int(p)),
    "tanh": lambda _=None: sp.tanh,
    "softplus": lambda _=None: (lambda z: sp.log(1 + sp.exp(z))),
    "sigmoid": lambda _=None: (lambda z: 1 / (1 + sp.exp(-z))),
}


def _check_dims(dims: Any, min_len: int = 2) -> list[int]:
    try:
        out = [int(d) for d in dims]
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"dims must be a list of positive integers (widths input -> output); got {dims!r}") from None
    if len(out) < min_len or any(d < 1 for d in out) or any(float(a) != float(b) for a, b in zip(out, dims)):
        raise InvalidArgumentError(
            f"dims must list at least {min_len} positive integer widths (input -> output); got {list(dims)!r}"
        )
    return out


def mlp(
    dims: Sequence[int],
    *,
    activation: str = "relu",
    bias: bool = False,
    option: Any = None,
    name: str | None = None,
) -> Loss:
    """A fully connected network f(x) = W_L σ(... σ(W_1 x + b_1) ...) with squared loss.

    ``sum_o (f_o(x) - y_o)^2``; ``activation`` is one of :data:`ACTIVATIONS` (``option`` is
    the leaky slope or the monomial power); hidden layers only carry biases when ``bias``.

    Examples
    --------
    >>> import noether_sym as ns
    >>> loss = ns.families.mlp([2, 2, 1], activation="monomial", option=2)
    >>> loss.n
    6
    """
    dims = _check_dims(dims)
    if activation not in ACTIVATIONS:
        raise InvalidArgumentError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    act = ACTIVATIONS[activation]() if option is None else ACTIVATIONS[activation](option)
    x = [sp.Symbol(f"x_{j}") for j in range(dims[0])]
    y = [sp.Symbol(f"y_{j}") for j in range(dims[-1])]
    h: list[sp.Expr] = list(x)
    params: list[Any] = []
    n_layers = len(dims) - 1
    for l in range(1, n_layers + 1):
        rows, cols = dims[l], dims[l - 1]
        W = sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"W{l}_{i}_{j}"))
        params.append(W)
        z = [sp.Add(*[W[i, j] * h[j] for j in range(cols)]) for i in range(rows)]
        if l < n_layers:
            if bias:
                b = sp.Matrix(rows, 1, [sp.Symbol(f"b{l}_{i}") for i in range(rows)])
                params.append(b)
                z = [zi + b[i] for i, zi in enumerate(z)]
            h = [act(zi) for zi in z]
        else:
            h = z
    expr = sp.Add(*[(h[o] - y[o]) ** 2 for o in range(dims[-1])])
    label = name or f"{activation.replace('_', '-')}-net {'-'.join(map(str, dims))}{' +bias' if bias else ''}"
    loss = Loss(expr, params, data=x + y, name=label, description=f"{activation} network, squared loss")
    # the same gradient as batched matmuls (checked against the compiled one in the tests)
    loss.fast_grad = MatrixGradient(dims, None if activation == "linear" else act, bias)
    return loss


def linear_net(dims: Sequence[int], *, name: str | None = None) -> Loss:
    """Deep linear network f(x) = W_L ... W_1 x with squared loss (THEORY §7.2-7.3).

    ``dims`` are the widths from input to output. Its symmetric generators: one GL(d) per
    hidden layer, Σ d_i(d_i+1)/2 in all.

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.linear_net([5, 3, 2]).n
    21
    """
    return mlp(dims, activation="linear", bias=False, name=name or f"linear-net {'-'.join(map(str, dims))}")


def relu_net(dims: Sequence[int], bias: bool = False, *, name: str | None = None) -> Loss:
    """ReLU network (``Max(0, z)`` on hidden layers), biases on hidden layers if ``bias``.

    One rescaling generator per hidden neuron (THEORY §7.4).

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.relu_net([5, 3, 2], bias=True).n
    24
    """
    return mlp(dims, activation="relu", bias=bias, name=name)
