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

import numpy as np
import sympy as sp
from sympy.stats import Normal

from .._errors import InvalidArgumentError
from .._validate import Integer, Options
from ..compile._matrix_grads import MatrixGradient
from ..data._model import attach_data
from ..loss._loss import Loss
from ._common import exact, teacher_data, variances, widths

__all__ = [
    "mlp", "linear_net", "relu_net", "ACTIVATIONS", "gaussian_teacher", "leaky_relu_net", "monomial_net", "tanh_net",
    "teacher_net", "network_start",
]


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
    dims = widths(dims)
    activation = Options(tuple(ACTIVATIONS))(activation, "activation")
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


# ---- catalog versions: the same networks with a Gaussian linear teacher -----------------

#: default label-noise variance of the catalog's teachers
NOISE_VAR = sp.Rational(1, 2)


def _teacher_matrix(teacher: Any, rows: int, cols: int) -> sp.Matrix:
    """The teacher V (rows x cols): given, or the rectangular identity (y = x when square)."""
    if teacher is None:
        return sp.Matrix(rows, cols, lambda i, j: 1 if i == j else 0)

    try:
        V = sp.Matrix([[exact(v, "teacher") for v in row] for row in np.asarray(teacher, dtype=object).tolist()])
    except (TypeError, ValueError, InvalidArgumentError) as exc:
        raise InvalidArgumentError(f"teacher must be a {rows} x {cols} matrix of numbers: {exc}") from None
    if V.shape != (rows, cols):
        raise InvalidArgumentError(f"teacher must have shape (output, input) = ({rows}, {cols}); got {V.shape}")
    return V


def gaussian_teacher(net: Loss, Sigma_x: Any = 1, Sigma_eps: Any = NOISE_VAR, teacher: Any = None) -> Loss:
    """Attach x ~ N(0, Σ_x), y = V x + ε, ε ~ N(0, Σ_ε) to a network from :func:`mlp`.

    ``Sigma_x``, ``Sigma_eps``: diagonal covariances (a number, the variances, or a diagonal
    matrix); ``teacher``: V (output x input, default the rectangular identity). The matrix
    gradient ``fast_grad`` is kept (through the data map, see :func:`~noether_sym.attach_data`).

    Examples
    --------
    >>> import noether_sym as ns
    >>> loss = ns.families.gaussian_teacher(ns.families.linear_net([2, 2, 1]))
    >>> [str(s) for s in loss.random_symbols], type(loss.fast_grad).__name__
    (['E0', 'X0', 'X1'], 'DataMapGradient')
    """

    xs = [s for s in net.data_symbols if str(s).startswith("x_")]
    ys = [s for s in net.data_symbols if str(s).startswith("y_")]
    if not xs or not ys or len(xs) + len(ys) != len(net.data_symbols):
        raise InvalidArgumentError("gaussian_teacher expects a network from ns.families.mlp (data x_0.., y_0..)")
    V = _teacher_matrix(teacher, len(ys), len(xs))
    return teacher_data(
        net, xs, ys, V, variances(Sigma_x, len(xs), "Sigma_x"), variances(Sigma_eps, len(ys), "Sigma_eps"),
        name=net.name,
    )


def teacher_net(
    dims: Sequence[int],
    activation: str,
    *,
    bias: bool = False,
    option: Any = None,
    Sigma_x: Any = 1,
    Sigma_eps: Any = NOISE_VAR,
    teacher: Any = None,
) -> Loss:
    """:func:`mlp` with the Gaussian linear teacher of :func:`gaussian_teacher`.

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.teacher_net([2, 2, 1], "tanh").n
    6
    """
    return gaussian_teacher(mlp(dims, activation=activation, bias=bias, option=option), Sigma_x, Sigma_eps, teacher)


def leaky_relu_net(
    dims: Sequence[int] = (2, 3, 1),
    slope: Any = sp.Rational(1, 10),
    *,
    bias: bool = False,
    Sigma_x: Any = 1,
    Sigma_eps: Any = NOISE_VAR,
    teacher: Any = None,
) -> Loss:
    """Leaky-ReLU network ``Max(slope z, z)`` (0 < slope < 1) with a Gaussian teacher (THEORY §7.4).

    Positive homogeneity gives one rescaling generator per hidden neuron.

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.leaky_relu_net([2, 3, 1]).n
    9
    """

    a = exact(slope, "slope")
    if not (0 < a < 1):
        raise InvalidArgumentError(f"slope must lie strictly between 0 and 1 (Max(slope z, z) is leaky ReLU); got {a}")
    return teacher_net(dims, "leaky_relu", bias=bias, option=a, Sigma_x=Sigma_x, Sigma_eps=Sigma_eps, teacher=teacher)


def monomial_net(
    dims: Sequence[int] = (2, 2, 1),
    p: int = 2,
    *,
    bias: bool = False,
    Sigma_x: Any = 1,
    Sigma_eps: Any = NOISE_VAR,
    teacher: Any = None,
    target: str = "monomial",
) -> Loss:
    """Network with activation σ(z) = z^p (integer p ≥ 2) and a Gaussian teacher (THEORY §7.4).

    Each hidden neuron carries a generator with eigenvalue +1 on its in-weights (and bias)
    and −p on its out-weights; (E17) applies with a = 1, b = p.

    ``target="monomial"`` (default): y_o = Σ_i (−1)^i X_i^p + ε_o over the first
    min(d_in, d_hidden) inputs -- a target the network represents exactly, so its minima
    are proper (with a linear target an even-p network's best fit is f ≡ 0, a degenerate
    minimum with flat directions beyond the symmetries). ``target="linear"``: the Gaussian
    linear teacher V x + ε of :func:`gaussian_teacher`.

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.monomial_net([2, 2, 1], p=3).n
    6
    """
    p = Integer(2)(p, "p")  # p = 1 is the linear network
    target = Options(("monomial", "linear"))(target, "target")
    if target == "linear":
        return teacher_net(dims, "monomial", bias=bias, option=int(p), Sigma_x=Sigma_x, Sigma_eps=Sigma_eps,
                           teacher=teacher)
    if teacher is not None:
        raise InvalidArgumentError("teacher= applies to target='linear'")


    net = mlp(dims, activation="monomial", bias=bias, option=int(p))
    xs = [s_ for s_ in net.data_symbols if str(s_).startswith("x_")]
    ys = [s_ for s_ in net.data_symbols if str(s_).startswith("y_")]
    vx, ve = variances(Sigma_x, len(xs), "Sigma_x"), variances(Sigma_eps, len(ys), "Sigma_eps")
    X = [Normal(f"X{i}", 0, sp.sqrt(v)) for i, v in enumerate(vx)]
    k = min(len(xs), list(dims)[1])
    mapping: dict[Any, Any] = {x: X[i] for i, x in enumerate(xs)}
    for o, y in enumerate(ys):
        mapping[y] = sum((-1) ** i * X[i] ** int(p) for i in range(k)) + Normal(f"E{o}", 0, sp.sqrt(ve[o]))
    return attach_data(net, mapping, name=net.name)


def tanh_net(
    dims: Sequence[int] = (2, 2, 1),
    *,
    bias: bool = False,
    Sigma_x: Any = 1,
    Sigma_eps: Any = NOISE_VAR,
    teacher: Any = None,
) -> Loss:
    """tanh network with a Gaussian teacher: no continuous exponential symmetry (THEORY §7.4).

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.tanh_net([2, 2, 1]).n
    6
    """
    return teacher_net(dims, "tanh", bias=bias, Sigma_x=Sigma_x, Sigma_eps=Sigma_eps, teacher=teacher)


def network_start(loss: Loss, rng: np.random.Generator) -> np.ndarray:
    """A random start for a network from :func:`mlp`: weights N(0, 1/fan_in), biases N(0, 0.1²)."""
    out = np.empty(loss.n)
    for blk in loss.blocks:
        k = blk.slice.stop - blk.slice.start
        is_bias = str(loss.params[blk.slice.start]).startswith("b")
        fan_in = blk.shape[1] if len(blk.shape) == 2 and not is_bias else 1
        out[blk.slice] = (0.1 if is_bias else 1.0 / np.sqrt(fan_in)) * rng.standard_normal(k)
    return out
