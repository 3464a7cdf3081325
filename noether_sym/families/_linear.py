"""Catalog: matrix factorization (two-layer linear network) and deep linear networks (THEORY §7.2-7.3).

f(x) = W_L ⋯ W_1 x with squared loss and Gaussian data x ~ N(0, Σ_x), y = V x + ε,
ε ~ N(0, Σ_ε) (diagonal covariances). Parameters flatten as in :func:`~noether_sym.families.mlp`:
``W1`` (the THEORY's W), then ``W2`` (its U), row-major.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError
from ..loss._loss import Loss
from ._common import cycle, variances, widths
from ._networks import (
    NOISE_VAR,
    _teacher_matrix,
    gaussian_teacher,
    linear_net,
)

__all__ = ["matrix_factorization", "deep_linear", "linear_start", "teacher_model", "ANISOTROPIC_X", "ANISOTROPIC_EPS"]

#: anisotropic defaults (cycled over the indices): input and label-noise variances
ANISOTROPIC_X = (sp.Integer(4), sp.Integer(1), sp.Rational(1, 4))
ANISOTROPIC_EPS = (sp.Rational(1, 2), sp.Rational(1, 8))


def teacher_model(
    dims: Sequence[int],
    Sigma_x: Any = None,
    Sigma_eps: Any = None,
    teacher: Any = None,
    anisotropic: bool = False,
) -> dict[str, sp.Matrix]:
    """The exact data model of :func:`deep_linear`: ``{"Sigma_x", "Sigma_eps", "teacher"}``.

    What (E20)-(E21) need (``ns.two_layer_equilibrium(U, W, Sigma_x, Sigma_eps)``), with the
    defaults resolved exactly as the builder resolves them.

    Examples
    --------
    >>> from noether_sym.families import teacher_model
    >>> teacher_model((3, 2, 2), anisotropic=True)["Sigma_x"]
    Matrix([
    [4, 0,   0],
    [0, 1,   0],
    [0, 0, 1/4]])
    """
    dims = widths(dims, min_len=2)
    if Sigma_x is None:
        Sigma_x = cycle(ANISOTROPIC_X, dims[0]) if anisotropic else 1
    if Sigma_eps is None:
        Sigma_eps = cycle(ANISOTROPIC_EPS, dims[-1]) if anisotropic else NOISE_VAR
    return {
        "Sigma_x": sp.diag(*variances(Sigma_x, dims[0], "Sigma_x")),
        "Sigma_eps": sp.diag(*variances(Sigma_eps, dims[-1], "Sigma_eps")),
        "teacher": _teacher_matrix(teacher, dims[-1], dims[0]),
    }


def deep_linear(
    dims: Sequence[int] = (2, 2, 2, 2),
    *,
    Sigma_x: Any = None,
    Sigma_eps: Any = None,
    teacher: Any = None,
    anisotropic: bool = False,
) -> Loss:
    """Deep linear network W_L ⋯ W_1 x with a Gaussian linear teacher (THEORY §7.3).

    One GL(d_i) per hidden layer: Σ_i d_i(d_i+1)/2 symmetric generators.

    Parameters
    ----------
    dims
        Widths from input to output (at least 3 entries: one hidden layer).
    Sigma_x, Sigma_eps
        Diagonal input / label-noise covariances (number, variances or diagonal matrix).
        Default: I and I/2, or with ``anisotropic`` the variances (4, 1, 1/4, ...) and
        (1/2, 1/8, ...) cycled over the indices.
    teacher
        V (output x input); default the rectangular identity (y = x + ε when square).
    anisotropic
        Use the anisotropic default covariances.

    Examples
    --------
    >>> import noether_sym as ns
    >>> loss = ns.families.deep_linear([2, 2, 2, 1])
    >>> loss.n, [str(s) for s in loss.random_symbols]
    (10, ['E0', 'X0', 'X1'])
    """
    dims = widths(dims, min_len=3)
    model = teacher_model(dims, Sigma_x, Sigma_eps, teacher, bool(anisotropic))
    return gaussian_teacher(linear_net(dims), model["Sigma_x"], model["Sigma_eps"], model["teacher"])


def matrix_factorization(
    dims: Sequence[int] = (2, 2, 2),
    *,
    Sigma_x: Any = None,
    Sigma_eps: Any = None,
    teacher: Any = None,
    anisotropic: bool = False,
) -> Loss:
    """Two-layer linear network / matrix factorization f(x) = U W x (THEORY §7.2).

    ``dims = (n, d, m)``: W is d x n, U is m x d. For every symmetric M ∈ Sym(d),
    (W, U) → (e^{λM} W, U e^{−λM}) is a symmetry: d(d+1)/2 generators, charges the entries
    of Q = W Wᵀ − UᵀU, equilibrium (E20)-(E21). The paper's Fig. 2 is
    ``dims=(30, 40, 30)`` with the isotropic defaults (y = x + ε).

    Parameters are as in :func:`deep_linear`.

    Examples
    --------
    >>> import noether_sym as ns
    >>> loss = ns.families.matrix_factorization((2, 3, 2), anisotropic=True)
    >>> loss.n, [str(X.pspace.distribution.std) for X in loss.random_symbols]   # E0, E1, X0, X1
    (12, ['sqrt(2)/2', 'sqrt(2)/4', '2', '1'])
    """
    dims = widths(dims, min_len=3)
    if len(dims) != 3:
        raise InvalidArgumentError(
            f"matrix_factorization takes dims = (input, hidden, output); got {dims}. "
            "Use deep_linear for more layers"
        )
    return deep_linear(dims, Sigma_x=Sigma_x, Sigma_eps=Sigma_eps, teacher=teacher, anisotropic=anisotropic)


def linear_start(loss: Loss, rng: np.random.Generator) -> np.ndarray:
    """An imbalanced random start: layer l ~ N(0, s_l²), s_l = 2/√fan_in on the first layer
    and 1/(2√fan_in) after it, so the charges W Wᵀ − UᵀU start far from balance."""
    out = np.empty(loss.n)
    for k, blk in enumerate(loss.blocks):
        fan_in = blk.shape[1] if len(blk.shape) == 2 else 1
        scale = (2.0 if k == 0 else 0.5) / np.sqrt(fan_in)
        out[blk.slice] = scale * rng.standard_normal(blk.slice.stop - blk.slice.start)
    return out
