"""Catalog helpers: exact option values and Gaussian data models shared by the families.

Data-model parameters are kept exact: integers, ``fractions.Fraction``, SymPy rationals
(floats are taken at their exact binary value; text is never parsed here -- the command
line turns ``1/2`` into a rational before it reaches a builder).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError
from .._validate import Integer
from ..data._model import _exact_number, gaussian_linear_teacher
from ..loss._loss import Loss

__all__ = ["MAX_WIDTH", "WIDTH", "widths", "exact", "variances", "teacher_data", "cycle"]


def exact(v: Any, what: str) -> sp.Expr:
    """``v`` as an exact real SymPy number (error naming ``what`` otherwise)."""
    if isinstance(v, str):
        raise InvalidArgumentError(f"{what} must be a number (int, Fraction, sympy.Rational); got the text {v!r}")
    e = _exact_number(v, what)
    if not (e.is_number and e.is_real):
        raise InvalidArgumentError(f"{what} must be a real number; got {v!r}")
    return e


#: the largest width (or dimension d) a builder accepts: a layer of width w has w² symbolic
#: weights, and the symbolic stages are far past their limits well before 1000
MAX_WIDTH = 1000

#: a width, dimension or class count of a family: a positive int (bools rejected), bounded
WIDTH = Integer(1, MAX_WIDTH)


def widths(dims: Any, min_len: int = 2) -> list[int]:
    """Layer widths (input -> output): an ordered sequence of at least ``min_len`` widths."""
    if isinstance(dims, (str, bytes, Set, Mapping)) or not isinstance(dims, Iterable):
        raise InvalidArgumentError(
            f"dims must be a list of positive integer widths (input -> output), e.g. dims=[3, 4, 2]; got {dims!r}"
        )
    dims = list(dims)
    if len(dims) < min_len:
        raise InvalidArgumentError(
            f"dims must list at least {min_len} positive integer widths (input -> output); got {dims!r}"
        )
    return [WIDTH(d, f"dims[{i}]") for i, d in enumerate(dims)]


def cycle(values: Sequence[Any], k: int) -> list[sp.Expr]:
    """The first ``k`` entries of ``values`` repeated cyclically, as exact numbers."""
    return [exact(values[i % len(values)], "value") for i in range(k)]


def variances(sigma: Any, k: int, what: str) -> list[sp.Expr]:
    """Diagonal of a covariance given as a number (times I), ``k`` variances, or a diagonal
    ``k x k`` matrix; positive exact numbers.

    Data are independent single-variable random symbols, so a covariance must be diagonal
    (rotate the inputs into its eigenbasis: the families here are rotation-covariant).
    """
    if isinstance(sigma, sp.MatrixBase) or (
        isinstance(sigma, (list, tuple, np.ndarray)) and len(sigma) and isinstance(sigma[0], (list, tuple, np.ndarray))
    ):
        M = sp.Matrix([[exact(v, what) for v in row] for row in (sigma.tolist() if isinstance(sigma, sp.MatrixBase) else sigma)])
        if M.shape != (k, k):
            raise InvalidArgumentError(f"{what} must be {k} x {k}; got shape {M.shape}")
        if any(M[i, j] != 0 for i in range(k) for j in range(k) if i != j):
            raise InvalidArgumentError(
                f"{what} must be diagonal (data are independent random symbols); pass its {k} "
                "eigenvalues and rotate the inputs into its eigenbasis"
            )
        vals = [M[i, i] for i in range(k)]
    elif isinstance(sigma, (list, tuple, np.ndarray)):
        if len(sigma) != k:
            raise InvalidArgumentError(f"{what} must be a number or a list of {k} variances; got {len(sigma)}")
        vals = [exact(v, what) for v in sigma]
    else:
        vals = [exact(sigma, what)] * k
    if any(not v.is_positive for v in vals):
        raise InvalidArgumentError(f"{what}: variances must be positive; got {vals}")
    return vals


def teacher_data(
    loss: Loss,
    inputs: Sequence[sp.Symbol],
    outputs: Sequence[sp.Symbol],
    V: sp.Matrix,
    var_x: Sequence[sp.Expr],
    var_eps: Sequence[sp.Expr],
    name: str,
) -> Loss:
    """x ~ N(0, diag var_x), y = V x + ε, ε ~ N(0, diag var_eps) via :func:`~noether_sym.gaussian_linear_teacher`."""
    return gaussian_linear_teacher(
        loss, inputs, outputs, V,
        input_std=[sp.sqrt(v) for v in var_x], noise_std=[sp.sqrt(v) for v in var_eps], name=name,
    )
