"""Compile: exact confirmation of a generator -- the cached exact engine of a loss and :func:`confirm_generator`."""


from __future__ import annotations

from fractions import Fraction
from typing import Any

import sympy as sp

from .._errors import UnsupportedExpressionError
from ..loss._generators import as_generator
from ..loss._loss import Loss, as_loss
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
    J = _fractions(as_generator(A, loss.n, what="the generator"))
    try:
        res = exact_model(loss).confirm(J)
    except UnsupportedExpressionError as exc:
        return False, f"cannot confirm exactly: {exc}"
    return res.confirmed, res.reason


def _fractions(A: sp.MatrixBase) -> dict[tuple[int, int], Fraction]:
    """The nonzero entries of an exact rational matrix, as Fractions (the exact engine's input)."""
    return {(i, j): Fraction(int(v.p), int(v.q)) for (i, j), v in A.todok().items() if v != 0}
