"""Loss: user-given generator matrices read into exact SymPy matrices, one way for every stage.

A generator A is an n x n matrix over the flattened parameter vector θ of a
:class:`~noether_sym.Loss` (row-major blocks, see :mod:`noether_sym.loss._loss`). Every entry
point that takes generators from a user (``confirm_generator``, ``noise_equilibrium``,
``simulate``, the testing helpers) reads them here, so they all accept the same inputs and
fail with the same messages.

Accepted inputs: a SymPy matrix (dense or sparse), a NumPy array, or a nested sequence of
numbers; :func:`as_generators` also takes a sequence of those, a single matrix, or a result
object with a ``generators`` attribute (``ns.find_symmetries(loss)``).

Design
------
Entries go through :func:`~noether_sym.loss._loss.as_real_number` (strict: text is never
sympified, since that would evaluate Python). A floating-point entry becomes the exact
rational value of the binary float, so confirmation is exact about the matrix actually given;
``allow_floats=False`` rejects floats where the caller promised exact input. NumPy arrays are
read by their nonzero entries only, and above :data:`SPARSE_ABOVE` parameters the result is a
``sympy.SparseMatrix``: a dense SymPy copy of a 2400 x 2400 generator would not fit in memory.

Examples
--------
>>> import numpy as np
>>> from noether_sym.loss._generators import as_generator, as_generators
>>> as_generator(np.diag([0.5, -1.0]), 2, symmetry="symmetric")
Matrix([
[1/2,  0],
[  0, -1]])
>>> len(as_generators([[1, 0], [0, -1]], 2))
1
>>> as_generator([[1, 1], [0, 1]], 2, symmetry="symmetric")
Traceback (most recent call last):
...
noether_sym._errors.InvalidGeneratorError: the generator must be symmetric (A = Aᵀ): entry (0,1) = 1 differs from entry (1,0) = 0; exponential symmetries (THEORY E3) use symmetric A, antisymmetric members are rotations and carry no charge
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from typing import Any

import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError, InvalidGeneratorError
from .._validate import Boolean, Integer, Options
from ._loss import as_real_number

__all__ = ["SPARSE_ABOVE", "generator_matrix", "as_generator", "as_generators"]

#: above this many parameters generators are ``sympy.SparseMatrix`` (same printing, equality
#: and ``todok``; a dense SymPy matrix per generator would not fit in memory)
SPARSE_ABOVE = 64

_SYMMETRY = Options((None, "symmetric", "antisymmetric"))


def generator_matrix(n: int, entries: Mapping[tuple[int, int], Any]) -> sp.MatrixBase:
    """An exact n x n SymPy matrix from its nonzero entries (sparse storage above SPARSE_ABOVE)."""
    if n > SPARSE_ABOVE:
        return sp.SparseMatrix(n, n, dict(entries))
    A = sp.zeros(n, n)
    for (i, j), v in entries.items():
        A[i, j] = v
    return A


def as_generator(
    A: Any,
    n: int,
    *,
    what: str = "the generator",
    symmetry: str | None = None,
    rational: bool = True,
    allow_floats: bool = True,
    nonzero: bool = False,
) -> sp.MatrixBase:
    """A user-given n x n generator as an exact SymPy matrix.

    Parameters
    ----------
    A
        SymPy matrix, NumPy array or nested sequence of real numbers.
    n
        The number of parameters (the matrix must be n x n).
    what
        How to name the matrix in error messages (``"generators[2]"``).
    symmetry
        ``"symmetric"`` (A = Aᵀ, the exponential symmetries of THEORY E3),
        ``"antisymmetric"`` (rotations) or ``None`` (not checked).
    rational
        Entries must be rational (the exact engine works over QQ); ``False`` also admits
        real algebraic numbers such as ``sqrt(2)``.
    allow_floats
        Read a floating-point entry as the exact value of the binary float; ``False`` makes
        it an error (for callers whose input must already be exact).
    nonzero
        The zero matrix is an error.

    Returns
    -------
    sympy.Matrix (``sympy.SparseMatrix`` when n > SPARSE_ABOVE).

    Raises
    ------
    InvalidGeneratorError
        The matrix is not n x n, has an entry that is not a real number (or not rational),
        or breaks the requested symmetry.
    InvalidArgumentError
        ``n`` or an option is invalid.
    """
    n = Integer(1)(n, "n")
    symmetry = _SYMMETRY(symmetry, "symmetry")
    for flag, name in ((rational, "rational"), (allow_floats, "allow_floats"), (nonzero, "nonzero")):
        Boolean()(flag, name)
    if not isinstance(what, str):
        raise InvalidArgumentError(f"what must be a string naming the matrix; got {what!r}")
    shape, raw = _read_entries(A, what)
    if shape != (n, n):
        raise InvalidGeneratorError(
            f"{what} must be {n}x{n} (one row and one column per parameter, in params order); "
            f"got {shape[0]}x{shape[1]}"
        )
    entries = {}
    for (i, j), v in raw.items():
        v = _exact_entry(v, f"entry ({i},{j}) of {what}", rational=rational, allow_floats=allow_floats)
        if v != 0:
            entries[(i, j)] = v
    if symmetry is not None:
        _check_symmetry(entries, what, symmetry)
    if nonzero and not entries:
        raise InvalidGeneratorError(f"{what} is the zero matrix; a generator needs at least one nonzero entry")
    return generator_matrix(n, entries)


def as_generators(
    gens: Any, n: int, *, what: str = "generators", empty_ok: bool = False, **options: Any
) -> list[sp.MatrixBase]:
    """User-given generators as a list of exact SymPy matrices (see :func:`as_generator`).

    ``gens`` is one matrix, a sequence of matrices, or a result with a ``generators``
    attribute (``ns.find_symmetries(loss)``). ``empty_ok`` admits an empty sequence; the
    keyword ``options`` (``symmetry``, ``rational``, ``allow_floats``, ``nonzero``) apply to
    every matrix, named ``what[k]`` in error messages.
    """
    Boolean()(empty_ok, "empty_ok")
    if hasattr(gens, "generators") and not isinstance(gens, (list, tuple, np.ndarray, sp.MatrixBase)):
        gens = gens.generators
    if _is_single_matrix(gens):
        gens = [gens]
    if isinstance(gens, (str, bytes, Mapping, Set)) or not isinstance(gens, Iterable):
        kind = "an unordered set" if isinstance(gens, Set) else repr(gens)[:80]
        raise InvalidGeneratorError(
            f"{what} must be a list of n x n matrices (SymPy or NumPy), one matrix, or the result of "
            f"ns.find_symmetries; got {kind}"
        )
    mats = list(gens)
    if not mats and not empty_ok:
        raise InvalidGeneratorError(
            f"{what} is empty: give at least one n x n matrix (or the result of ns.find_symmetries)"
        )
    return [as_generator(A, n, what=f"{what}[{k}]", **options) for k, A in enumerate(mats)]


def _is_single_matrix(x: Any) -> bool:
    """True for one matrix (SymPy, 2-D array, or a list of rows of scalars)."""
    if isinstance(x, sp.MatrixBase):
        return True
    nested = (list, tuple, np.ndarray, sp.MatrixBase)
    if isinstance(x, np.ndarray):
        return x.ndim == 2 and not (x.dtype == object and any(isinstance(v, nested) for v in x.flat))
    if isinstance(x, (list, tuple)) and x:
        return all(
            isinstance(row, (list, tuple, np.ndarray))
            and all(not isinstance(v, nested) for v in row)
            for row in x
        )
    return False


def _read_entries(A: Any, what: str) -> tuple[tuple[int, ...], dict[tuple[int, int], Any]]:
    """(shape, {(i, j): raw nonzero-or-unknown entry}) without a dense SymPy copy."""
    if isinstance(A, sp.MatrixBase):
        return tuple(A.shape), dict(A.todok())
    if isinstance(A, (str, bytes)):
        raise InvalidGeneratorError(
            f"{what} must be a matrix of real numbers (SymPy matrix, NumPy array or nested list); "
            f"got the text {A[:40]!r}, which is never parsed"
        )
    if isinstance(A, np.ndarray) and A.dtype.kind in "iuf":
        if A.ndim != 2:
            raise InvalidGeneratorError(f"{what} must be a 2-D matrix; got an array of shape {A.shape}")
        if not np.all(np.isfinite(A)):
            raise InvalidGeneratorError(f"{what} has non-finite entries (NaN or infinity); give real numbers")
        nz = np.nonzero(A)
        vals = A[nz]
        conv = int if A.dtype.kind in "iu" else float
        return A.shape, {(int(i), int(j)): conv(v) for i, j, v in zip(*nz, vals)}
    try:
        arr = np.asarray(A, dtype=object)
    except Exception:  # noqa: BLE001 - anything that is not array-like (ragged lists included)
        raise InvalidGeneratorError(
            f"cannot read {type(A).__name__} as {what}: give a SymPy matrix, a NumPy array or a list of equal-length rows"
        ) from None
    if arr.ndim != 2:
        raise InvalidGeneratorError(
            f"{what} must be a 2-D matrix (a list of equal-length rows); got an object of {arr.ndim} dimension(s)"
        )
    return arr.shape, {(i, j): arr[i, j] for i in range(arr.shape[0]) for j in range(arr.shape[1])}


def _exact_entry(v: Any, what: str, *, rational: bool, allow_floats: bool) -> sp.Expr:
    try:
        x = as_real_number(v, what)
    except InvalidArgumentError as exc:
        raise InvalidGeneratorError(f"{exc}; give a real number such as 1, -2 or 1/2 (sympy.Rational)") from None
    if isinstance(x, sp.Float):
        if not allow_floats:
            raise InvalidGeneratorError(
                f"{what} is the floating-point number {x}; generators must be exact here: "
                "give integers or sympy.Rational values"
            )
        x = sp.Rational(x)  # the exact value of the binary float
    if rational and not x.is_Rational:
        raise InvalidGeneratorError(f"{what} = {x} is not a rational number; the exact engine works over the rationals")
    return x


def _check_symmetry(entries: Mapping[tuple[int, int], sp.Expr], what: str, symmetry: str) -> None:
    sign = 1 if symmetry == "symmetric" else -1
    for (i, j), v in entries.items():
        w = entries.get((j, i), sp.S.Zero)
        if v != sign * w:
            if sign == 1:
                raise InvalidGeneratorError(
                    f"{what} must be symmetric (A = Aᵀ): entry ({i},{j}) = {v} differs from entry ({j},{i}) = {w}; "
                    "exponential symmetries (THEORY E3) use symmetric A, antisymmetric members are "
                    "rotations and carry no charge"
                )
            raise InvalidGeneratorError(
                f"{what} must be antisymmetric (A = -Aᵀ): entry ({i},{j}) = {v} but entry ({j},{i}) = {w}"
            )
