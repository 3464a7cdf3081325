"""Catalog: architectures practitioners use -- an attention head, a normalized MLP, a residual block, a 1-D convolution.

Each builder returns an ordinary :class:`~noether_sym.Loss` with squared loss on a finite,
seeded Gaussian dataset (inputs N(0, 1), targets N(0, 1)), its weights declared as matrix
blocks (so the ``blocks`` route of the finder applies), and documents the theory count of
symmetric generators derived on paper in its docstring. :func:`theory_count` returns those
counts; nothing here runs the finder.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError
from .._validate import Integer, Options, Seed
from ..loss._loss import Loss, matrix
from ._common import WIDTH

__all__ = ["attention_head", "normalized_mlp", "residual_block", "conv1d_net", "theory_count"]

_SAMPLES = Integer(2, 100_000)


def _relu(z: sp.Expr) -> sp.Expr:
    return sp.Max(0, z, evaluate=False)


def _dataset(symbols: list[sp.Symbol], n_samples: int, seed: int) -> dict[sp.Symbol, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2024]))
    cols = rng.standard_normal((_SAMPLES(n_samples, "n_samples"), len(symbols)))
    return {s: cols[:, i] for i, s in enumerate(symbols)}


def attention_head(tokens: int = 2, d: int = 2, k: int = 2, d_out: int = 1, *, n_samples: int = 32, seed: int = 0) -> Loss:
    """One softmax attention head read out at the last token, squared loss.

    Tokens x_1..x_T ∈ R^d (data), scores s_t = (W_Qᵀx_T)·(W_Kᵀx_t), weights
    a = softmax(s), output f = W_Oᵀ Σ_t a_t W_Vᵀ x_t ∈ R^{d_out}; ℓ = ‖f − y‖².
    Parameters (matrix blocks): W_Q, W_K, W_V (d x k each), W_O (k x d_out).

    Theory count (on paper): ℓ depends on W_Q, W_K only through B = W_Q W_Kᵀ (d x d) and
    on W_V, W_O only through C = W_V W_O. For every symmetric M ∈ Sym(k),
    (W_Q, W_K) -> (W_Q e^{λM}, W_K e^{−λM}) keeps B, and (W_V, W_O) -> (W_V e^{λM}, e^{−λM} W_O)
    keeps C: each factorization is a two-layer linear network (widths d, k, d and
    d, k, d_out), whose symmetric generators are the k(k+1)/2 of GL(k) (THEORY §7.2) when
    an outer width is at least 2. Total k(k+1) for d ≥ 2.

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.attention_head().n
    14
    """
    tokens = Integer(2, 16)(tokens, "tokens")
    d = Integer(2, 64)(d, "d")
    k, d_out = WIDTH(k, "k"), WIDTH(d_out, "d_out")
    WQ, WK, WV, WO = matrix("WQ", d, k), matrix("WK", d, k), matrix("WV", d, k), matrix("WO", k, d_out)
    X = sp.Matrix(tokens, d, lambda t, i: sp.Symbol(f"x{t}_{i}"))
    y = [sp.Symbol(f"y_{o}") for o in range(d_out)]
    q = (X[tokens - 1, :] * WQ).T
    scores = [(q.T * (X[t, :] * WK).T)[0, 0] for t in range(tokens)]
    e = [sp.exp(s) for s in scores]
    v = sum(((X[t, :] * WV) * e[t] for t in range(tokens)), sp.zeros(1, k)) / sp.Add(*e)
    f = v * WO
    expr = sp.Add(*[(f[0, o] - y[o]) ** 2 for o in range(d_out)])
    data = _dataset(list(X) + y, n_samples, Seed()(seed, "seed"))
    return Loss(expr, [WQ, WK, WV, WO], data=data, name=f"attention-head T={tokens} d={d} k={k}",
                description="softmax attention head, squared loss")


def normalized_mlp(dims: Any = (2, 3, 1), norm: str = "rms", *, n_samples: int = 32, seed: int = 0) -> Loss:
    """Two-layer MLP with a normalization after the first layer: f = W_2 relu(N(W_1 x)).

    N is RMSNorm (h -> h/√(mean h²)) or LayerNorm without gain and epsilon
    (h -> (h − mean h)/√(var h)); ℓ = ‖f − y‖².

    Theory count (on paper): N(e^λ h) = N(h), so A = I on the W_1 block (0 elsewhere) is a
    generator: scale invariance of the normalized weights, semidefinite (divergent class,
    THEORY §7.5). RMSNorm has no other: a symmetric operator on the hidden units with
    N(e^{λM}h) = N(h) for all h is a multiple of I, and after the ReLU only equal
    per-unit scalings would survive N. LayerNorm also ignores the component of h along
    1 = (1, ..., 1): for every S ∈ Sym(d_in), A: W_1 -> 1 1ᵀ W_1 S (the Kronecker product
    11ᵀ ⊗ S, symmetric) moves h = W_1 x along 1 only, which the centering removes:
    d_in(d_in+1)/2 more. Counts: 1 (RMSNorm, hidden width ≥ 2), 1 + d_in(d_in+1)/2
    (LayerNorm, hidden width ≥ 3). The LayerNorm generators 11ᵀ ⊗ S are not of the
    row/column form of the ``blocks`` route: its completeness certificate fails there,
    as it should.

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.normalized_mlp().n
    9
    """
    dims = [WIDTH(v, "dims") for v in dims]
    if len(dims) != 3:
        raise InvalidArgumentError(f"normalized_mlp takes dims = (input, hidden, output); got {dims}")
    norm = Options(("rms", "layer"))(norm, "norm")
    if dims[1] < (2 if norm == "rms" else 3):
        raise InvalidArgumentError("the hidden width must be at least 2 (RMSNorm) or 3 (LayerNorm)")
    W1, W2 = matrix("W1", dims[1], dims[0]), matrix("W2", dims[2], dims[1])
    x = sp.Matrix([sp.Symbol(f"x_{i}") for i in range(dims[0])])
    y = [sp.Symbol(f"y_{o}") for o in range(dims[2])]
    h = W1 * x
    if norm == "layer":
        mu = sp.Add(*h) / dims[1]
        h = h - sp.ones(dims[1], 1) * mu
    scale = sp.sqrt(sp.Add(*[hi**2 for hi in h]) / dims[1])
    z = sp.Matrix([_relu(hi / scale) for hi in h])
    f = W2 * z
    expr = sp.Add(*[(f[o] - y[o]) ** 2 for o in range(dims[2])])
    data = _dataset(list(x) + y, n_samples, Seed()(seed, "seed"))
    return Loss(expr, [W1, W2], data=data, name=f"{norm}norm-mlp {'-'.join(map(str, dims))}",
                description=f"two-layer MLP with {norm} normalization, squared loss")


def residual_block(d: int = 2, k: int = 2, *, n_samples: int = 32, seed: int = 0) -> Loss:
    """A residual block f = x + W_2 relu(W_1 x) (W_1: k x d, W_2: d x k), ℓ = ‖f − y‖².

    Theory count (on paper): the skip connection adds no parameter, so the symmetries are
    those of W_2 relu(W_1 x): one rescaling per hidden unit, (row i of W_1, column i of W_2)
    -> (e^λ ·, e^{−λ} ·) (THEORY §7.4): k generators.

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.residual_block().n
    8
    """
    d, k = WIDTH(d, "d"), WIDTH(k, "k")
    W1, W2 = matrix("W1", k, d), matrix("W2", d, k)
    x = sp.Matrix([sp.Symbol(f"x_{i}") for i in range(d)])
    y = [sp.Symbol(f"y_{i}") for i in range(d)]
    f = x + W2 * sp.Matrix([_relu(z) for z in W1 * x])
    expr = sp.Add(*[(f[i] - y[i]) ** 2 for i in range(d)])
    data = _dataset(list(x) + y, n_samples, Seed()(seed, "seed"))
    return Loss(expr, [W1, W2], data=data, name=f"residual-block d={d} k={k}", description="x + W2 relu(W1 x)")


def conv1d_net(length: int = 4, channels: Any = (1, 2, 1), kernel: int = 2, *, n_samples: int = 32, seed: int = 0) -> Loss:
    """Two 1-D convolutions (valid padding, no bias) with a ReLU between them, ℓ = ‖f − y‖².

    h[c, t] = relu(Σ_{i,s} W_1[c, (i, s)] x[i, t+s]), f[o, t] = Σ_{c,s} W_2[o, (c, s)] h[c, t+s];
    W_1 is declared C_h x (C_in·K), W_2 C_out x (C_h·K) (entry (c, s) at column c·K + s).

    Theory count (on paper): scaling hidden channel c by e^λ in W_1 (row c) and by e^{−λ}
    in W_2 (its K columns (c, ·)) commutes with the convolution and the ReLU: C_h
    generators (channel-wise rescaling, THEORY §7.4; with a linear activation it would be
    the channel-wise GL(C_h)).

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.conv1d_net().n
    8
    """
    c_in, c_h, c_out = [WIDTH(v, "channels") for v in channels]
    kernel = WIDTH(kernel, "kernel")
    length = Integer(2 * kernel - 1, 1000)(length, "length")
    W1, W2 = matrix("W1", c_h, c_in * kernel), matrix("W2", c_out, c_h * kernel)
    x = sp.Matrix(c_in, length, lambda i, t: sp.Symbol(f"x{i}_{t}"))
    L1, L2 = length - kernel + 1, length - 2 * kernel + 2
    h = [[_relu(sp.Add(*[W1[c, i * kernel + s] * x[i, t + s] for i in range(c_in) for s in range(kernel)]))
          for t in range(L1)] for c in range(c_h)]
    y = sp.Matrix(c_out, L2, lambda o, t: sp.Symbol(f"y{o}_{t}"))
    f = [[sp.Add(*[W2[o, c * kernel + s] * h[c][t + s] for c in range(c_h) for s in range(kernel)])
          for t in range(L2)] for o in range(c_out)]
    expr = sp.Add(*[(f[o][t] - y[o, t]) ** 2 for o in range(c_out) for t in range(L2)])
    data = _dataset(list(x) + list(y), n_samples, Seed()(seed, "seed"))
    return Loss(expr, [W1, W2], data=data, name=f"conv1d {'-'.join(map(str, channels))} K={kernel}",
                description="two 1-D convolutions with ReLU")


def theory_count(family: str, **options: Any) -> int:
    """The on-paper generator counts of the builders above (their docstrings)."""
    if family == "attention-head":
        k = options.get("k", 2)
        return k * (k + 1)
    if family == "normalized-mlp":
        d_in = list(options.get("dims", (2, 3, 1)))[0]
        return 1 if options.get("norm", "rms") == "rms" else 1 + d_in * (d_in + 1) // 2
    if family == "residual-block":
        return options.get("k", 2)
    if family == "conv1d":
        return list(options.get("channels", (1, 2, 1)))[1]
    raise InvalidArgumentError(f"no theory count for {family!r}")
