"""confirm: split from noether_sym._symmetry (docstring to write)."""


from __future__ import annotations

from fractions import Fraction
from typing import Any

import sympy as sp

from .._errors import (
    InvalidGeneratorError,
    UnsupportedExpressionError,
)
from ..loss._loss import Loss, as_loss, matrix_from_user
from ._compiled import compiled
from ._exact import ExactModel

__all__ = ['exact_model', 'confirm_generator']



# ------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------


def exact_model(loss: Loss) -> ExactModel:
    """The exact engine of a loss (cached on it)."""
    em = loss._cache.get("exact")
    if em is None:
        cl = compiled(loss)
        em = ExactModel(cl.graph, cl.root, loss.n)
        loss._cache["exact"] = em
    return em


def confirm_generator(loss: Loss, A: Any) -> tuple[bool, str]:
    """Exactly confirm that ``A`` (rational n x n) satisfies g(θ,x)ᵀAθ ≡ 0 (E4) and (E3).

    Returns (confirmed, reason).
    """
    loss = as_loss(loss)
    J = _as_rational_matrix(A, loss.n)
    try:
        res = exact_model(loss).confirm(J)
    except UnsupportedExpressionError as exc:
        return False, f"cannot confirm exactly: {exc}"
    return res.confirmed, res.reason


#: above this size generators are returned as sparse SymPy matrices (still ``sympy.Matrix``
#: instances with the same printing and equality; a dense 2400 x 2400 SymPy matrix per
#: generator would not fit in memory)
SPARSE_ABOVE = 64


def _matrix(n: int, entries: dict[tuple[int, int], Any]) -> sp.Matrix:
    """An exact n x n SymPy matrix from its nonzero entries (sparse storage for large n)."""
    if n > SPARSE_ABOVE:
        return sp.SparseMatrix(n, n, entries)
    A = sp.zeros(n, n)
    for (i, j), v in entries.items():
        A[i, j] = v
    return A


def _as_rational_matrix(A: Any, n: int) -> dict[tuple[int, int], Fraction]:
    """Validate a user generator: an n x n matrix of rational numbers -> sparse dict."""

    A = matrix_from_user(A)
    if A.shape != (n, n):
        raise InvalidGeneratorError(
            f"a generator must be {n}x{n} (one row and column per parameter); got {A.shape[0]}x{A.shape[1]}"
        )
    out: dict[tuple[int, int], Fraction] = {}
    for (i, j), v in A.todok().items():
        v = sp.sympify(v)
        if isinstance(v, sp.Float):
            v = sp.Rational(v)  # exact value of the binary float
        if not v.is_Rational:
            raise InvalidGeneratorError(f"generator entry ({i},{j}) = {v} is not a rational number")
        if v != 0:
            out[(i, j)] = Fraction(int(v.p), int(v.q))
    return out
