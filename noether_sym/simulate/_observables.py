"""observables: split from noether_sym._simulate (docstring to write)."""


from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp
from scipy.sparse import coo_matrix, csr_matrix, issparse

from .._errors import InvalidArgumentError, InvalidGeneratorError
from ._result import OBSERVABLES

__all__ = []



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


def _as_generators(generators: Any, n: int) -> _Generators:
    if hasattr(generators, "generators") and not isinstance(generators, (list, tuple, np.ndarray)):
        generators = generators.generators  # a Symmetries
    if isinstance(generators, (sp.MatrixBase, np.ndarray)) and np.ndim(np.asarray(generators, dtype=object)) == 2:
        generators = [generators]
    if not isinstance(generators, (list, tuple)) or not generators:
        raise InvalidGeneratorError(
            "generators must be a non-empty list of symmetric n x n matrices (sympy or numpy), or the "
            f"result of ns.find_symmetries; got {generators!r}"
        )
    mats = []
    for k, A in enumerate(generators):
        if isinstance(A, sp.MatrixBase) and n > 64:
            mats.append(_sparse_generator(A, n, k))
            continue
        try:
            M = np.array(A.tolist() if isinstance(A, sp.MatrixBase) else A, dtype=float)
        except (TypeError, ValueError):
            raise InvalidGeneratorError(f"generators[{k}] must be a numeric matrix") from None
        if M.shape != (n, n):
            raise InvalidGeneratorError(f"generators[{k}] must be {n} x {n} (one row per parameter); got {M.shape}")
        if not np.all(np.isfinite(M)):
            raise InvalidGeneratorError(f"generators[{k}] has non-finite entries")
        if not np.allclose(M, M.T, rtol=0, atol=1e-12 * max(1.0, float(np.abs(M).max()))):
            raise InvalidGeneratorError(f"generators[{k}] must be symmetric (exponential symmetries, E3)")
        mats.append(M)
    return _Generators(mats)


def _sparse_generator(A: sp.MatrixBase, n: int, k: int) -> Any:
    """A SymPy generator as a scipy sparse float matrix (no dense n x n copy), validated."""

    if A.shape != (n, n):
        raise InvalidGeneratorError(f"generators[{k}] must be {n} x {n} (one row per parameter); got {A.shape}")
    try:
        items = [(i, j, float(v)) for (i, j), v in A.todok().items() if v != 0]
    except (TypeError, ValueError):
        raise InvalidGeneratorError(f"generators[{k}] must be a numeric matrix") from None
    r = np.array([t[0] for t in items], dtype=np.int64)
    c = np.array([t[1] for t in items], dtype=np.int64)
    v = np.array([t[2] for t in items], dtype=float)
    if not np.all(np.isfinite(v)):
        raise InvalidGeneratorError(f"generators[{k}] has non-finite entries")
    M = coo_matrix((v, (r, c)), shape=(n, n)).tocsr()
    big = float(np.abs(v).max()) if len(v) else 0.0
    asym = abs(M - M.T)
    if asym.nnz and float(asym.max()) > 1e-12 * max(1.0, big):
        raise InvalidGeneratorError(f"generators[{k}] must be symmetric (exponential symmetries, E3)")
    return M


def _record_names(record: Any) -> list[str]:
    if record is None:
        return []
    if isinstance(record, str):
        record = [record]
    try:
        names = list(record)
    except TypeError:
        raise InvalidArgumentError(f"record must be a list of observable names; got {record!r}") from None
    for nm in names:
        if nm not in OBSERVABLES:
            raise InvalidArgumentError(f"record: unknown observable {nm!r}; choose among {list(OBSERVABLES)}")
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"record lists an observable twice: {names}")
    return names
