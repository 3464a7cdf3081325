"""Simulate: the charges and orbit coordinates of symmetry generators, on batches of θ.

:func:`generator_arrays` reads user-given generators (through the one reader,
:func:`~noether_sym.loss._generators.as_generators`) into float matrices; the resulting
``_Generators`` evaluates the charges C_i = θᵀA_iθ (E8) of all generators as one sparse
product and the orbit coordinate λ(θ) of each (THEORY E14-E17) on ``(R, n)`` arrays.

Design
------
Above ``SPARSE_ABOVE`` parameters the matrices stay scipy sparse: a dense float copy of
the 820 generators of a 2400-parameter network would need 37 GB.
"""


from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp
from scipy.sparse import coo_matrix, csr_matrix, issparse

from ..loss._generators import SPARSE_ABOVE, as_generators

__all__ = ['generator_arrays']



# ------------------------------------------------------------------------------------------
# Observables
# ------------------------------------------------------------------------------------------


class _Generators:
    """Generator matrices as float arrays, their charges θᵀAθ (E8) as one sparse product, and
    the orbit coordinate of each (built lazily)."""

    def __init__(self, mats: list[Any]) -> None:

        # dense arrays, or scipy sparse matrices for large n (a dense float copy of 820
        # generators of the 2400-parameter network would need 37 GB)
        self.mats = mats
        self.k = len(mats)
        rows, cols, vals, which = [], [], [], []
        for g, A in enumerate(mats):
            if issparse(A):
                C = A.tocoo()
                keep = C.data != 0
                i, j, v = C.row[keep], C.col[keep], C.data[keep]
            else:
                i, j = np.nonzero(A)
                v = A[i, j]
            rows.append(i)
            cols.append(j)
            vals.append(v)
            which.append(np.full(len(i), g))
        self.I = np.concatenate(rows) if rows else np.zeros(0, int)
        self.J = np.concatenate(cols) if cols else np.zeros(0, int)
        v = np.concatenate(vals) if vals else np.zeros(0)
        w = np.concatenate(which) if which else np.zeros(0, int)
        self.S = csr_matrix((v, (np.arange(len(v)), w)), shape=(len(v), self.k))
        self._orbit: list[tuple[np.ndarray, np.ndarray | None, float]] | None = None

    def charges(self, theta: np.ndarray) -> np.ndarray:
        """(R, n) -> (R, k)."""
        return np.asarray(self.S.T @ (theta[:, self.I] * theta[:, self.J]).T).T

    def _orbit_parts(self) -> list[tuple[np.ndarray, np.ndarray | None, float]]:
        if self._orbit is None:
            parts = []
            for A in self.mats:
                a, V = np.linalg.eigh(A.toarray() if hasattr(A, "toarray") else A)
                tol = 1e-9 * max(1.0, float(np.abs(a).max()))
                hi, lo = float(a.max()), float(a.min())
                if hi > tol and lo < -tol:
                    parts.append((V[:, np.abs(a - hi) <= tol], V[:, np.abs(a - lo) <= tol], 2.0 * (hi - lo)))
                else:
                    top = hi if abs(hi) >= abs(lo) else lo
                    parts.append((V[:, np.abs(a - top) <= tol], None, 2.0 * top))
            self._orbit = parts
        return self._orbit

    def orbit(self, theta: np.ndarray) -> np.ndarray:
        """Orbit coordinate λ(θ) per generator, with λ(e^{μA}θ) = λ(θ) + μ: (R, n) -> (R, k).

        With P₊, P₋ the eigenspaces of the largest and smallest eigenvalues a₊ > 0 > a₋ of A,
        λ = (log‖P₊θ‖² − log‖P₋θ‖²) / (2(a₊ − a₋)) (for the rescaling A = diag(I, −I):
        ¼ log(‖u‖²/‖w‖²), as in (E17)); for a semidefinite A, λ = log‖P θ‖² / (2a) with the
        eigenvalue a of largest modulus (for A = I: ½ log‖θ‖²).
        """
        out = np.empty((theta.shape[0], self.k))
        for g, (Pp, Pm, scale) in enumerate(self._orbit_parts()):
            lp = np.log(np.sum((theta @ Pp) ** 2, axis=1))
            if Pm is not None:
                lp = lp - np.log(np.sum((theta @ Pm) ** 2, axis=1))
            out[:, g] = lp / scale
        return out


def generator_arrays(generators: Any, n: int) -> _Generators:
    """User-given generators (read by :func:`~noether_sym.loss._generators.as_generators`:
    n x n, symmetric, real) as float matrices: dense up to ``SPARSE_ABOVE`` parameters,
    scipy sparse above (no dense n x n copy)."""
    mats = as_generators(generators, n, symmetry="symmetric", rational=False)
    return _Generators([_float_matrix(A, n) for A in mats])


def _float_matrix(A: sp.MatrixBase, n: int) -> Any:
    if n <= SPARSE_ABOVE:
        return np.array(A.tolist(), dtype=float)
    items = [(i, j, float(v)) for (i, j), v in A.todok().items()]
    r = np.array([t[0] for t in items], dtype=np.int64)
    c = np.array([t[1] for t in items], dtype=np.int64)
    v = np.array([t[2] for t in items], dtype=float)
    return coo_matrix((v, (r, c)), shape=(n, n)).tocsr()
