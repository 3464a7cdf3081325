"""Theory: the spectrum of a generator and the drift terms of its balance (THEORY (E14)).

:func:`spectrum` decomposes a symmetric A = Σ_i a_i P_i exactly, block by block (connected
components of A's sparsity graph), into a :class:`Spectrum`; :func:`drift_terms` projects
the noise and the point onto it: s_i = Tr[P_iΣ] and ‖P_iθ‖², the coefficients of G(λ) and
C(λ). Also the symbols η, S, γ, λ used in derived formulas.
"""


from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ['Spectrum', 'spectrum', 'drift_terms']


#: symbols of the hyper-parameters in derived formulas
ETA = sp.Symbol("eta", positive=True)
BATCH = sp.Symbol("S", positive=True)
GAMMA = sp.Symbol("gamma", nonnegative=True)
LAMBDA = sp.Symbol("lambda", real=True)


# ------------------------------------------------------------------------------------------
# Spectrum of a generator
# ------------------------------------------------------------------------------------------


@dataclass
class Spectrum:
    """A = Σ_i a_i P_i: distinct eigenvalues and orthogonal projectors (n x n).

    ``eigenvalues`` are exact SymPy numbers when ``exact`` (rational or algebraic from the
    connected blocks of A), and ``projectors`` exact rational matrices when every
    eigenvalue is rational (else float arrays).
    """

    eigenvalues: list[Any]
    projectors: list[Any]
    exact: bool
    rational: bool

    @property
    def floats(self) -> list[float]:
        return [float(a) for a in self.eigenvalues]

    def is_semidefinite(self) -> bool:
        fl = [a for a in self.floats if a != 0]
        return all(a > 0 for a in fl) or all(a < 0 for a in fl)


_SPECTRUM_CACHE: dict[Any, Spectrum] = {}


def spectrum(A: sp.Matrix) -> Spectrum:
    """Exact eigen-decomposition of a symmetric A, block by block (connected components)."""
    key = (A.shape, tuple(sorted((k, str(v)) for k, v in A.todok().items() if v != 0)))
    if key not in _SPECTRUM_CACHE:
        if len(_SPECTRUM_CACHE) > 256:
            _SPECTRUM_CACHE.clear()
        _SPECTRUM_CACHE[key] = _spectrum(A)
    return _SPECTRUM_CACHE[key]


def _spectrum(A: sp.Matrix) -> Spectrum:

    n = A.shape[0]
    D = {k: v for k, v in A.todok().items() if v != 0}
    rows = [i for i, _ in D] + list(range(n))
    cols = [j for _, j in D] + list(range(n))
    ncomp, labels = connected_components(csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)
    groups: dict[Any, list[tuple[np.ndarray, list]]] = {}
    exact = True
    for c in range(ncomp):
        idx = [int(i) for i in np.nonzero(labels == c)[0]]
        sub = A.extract(idx, idx)
        if len(idx) <= 6 or sub.is_diagonal():
            for val, _, vecs in sub.eigenvects():
                basis = sp.Matrix.hstack(*vecs) if vecs else sp.zeros(len(idx), 0)
                groups.setdefault(sp.nsimplify(val) if val.is_Float else val, []).append((np.array(idx), basis))
        else:
            exact = False
            w, V = np.linalg.eigh(np.array(sub.tolist(), dtype=float))
            order = np.argsort(w)
            w, V = w[order], V[:, order]
            k = 0
            while k < len(w):
                j = k
                while j + 1 < len(w) and abs(w[j + 1] - w[k]) < 1e-9 * max(1.0, abs(w[k])):
                    j += 1
                groups.setdefault(float(np.mean(w[k : j + 1])), []).append((np.array(idx), V[:, k : j + 1]))
                k = j + 1
    # merge numerically equal eigenvalues across blocks
    merged: dict[Any, list] = {}
    for val, parts in groups.items():
        key = None
        for k2 in merged:
            if abs(float(k2) - float(val)) < 1e-12 * max(1.0, abs(float(val))) and (
                not isinstance(k2, sp.Basic) or not isinstance(val, sp.Basic) or sp.simplify(k2 - val) == 0
            ):
                key = k2
                break
        merged.setdefault(val if key is None else key, []).extend(parts)
    eigs = sorted(merged, key=lambda v: float(v))
    rational = exact and all(isinstance(v, sp.Basic) and v.is_Rational for v in eigs)
    projs = []
    for val in eigs:
        if rational:
            P = sp.zeros(n, n)
            for idx, basis in merged[val]:
                B = sp.Matrix(basis)
                Pb = B * (B.T * B).inv() * B.T
                for a, ia in enumerate(idx):
                    for b, ib in enumerate(idx):
                        if Pb[a, b] != 0:
                            P[int(ia), int(ib)] = Pb[a, b]
            projs.append(P)
        else:
            P = np.zeros((n, n))
            for idx, basis in merged[val]:
                B = np.array(sp.Matrix(basis).evalf().tolist(), dtype=float) if isinstance(basis, sp.MatrixBase) else basis
                Q, _ = np.linalg.qr(B)
                P[np.ix_(idx, idx)] += Q @ Q.T
            projs.append(P)
    return Spectrum(eigenvalues=eigs, projectors=projs, exact=exact, rational=rational)


# ------------------------------------------------------------------------------------------
# The drift along the orbit
# ------------------------------------------------------------------------------------------


def drift_terms(spec: Spectrum, Sigma: Any, theta: np.ndarray | sp.Matrix) -> tuple[list, list]:
    """(s_i = Tr[P_i Σ], c_i = ‖P_iθ‖²) per eigenvalue; exact when the inputs are."""
    s, c = [], []
    exact = spec.rational and isinstance(Sigma, sp.MatrixBase) and isinstance(theta, sp.MatrixBase)
    for P in spec.projectors:
        if exact:
            s.append(sp.Add(*[P[i, j] * Sigma[j, i] for (i, j) in P.todok()]))
            Pt = P * theta
            c.append(sp.expand((Pt.T * Pt)[0, 0]))
        else:
            Pn = np.array(P.tolist(), dtype=float) if isinstance(P, sp.MatrixBase) else P
            Sn = np.array(Sigma.tolist(), dtype=float) if isinstance(Sigma, sp.MatrixBase) else np.asarray(Sigma, float)
            tn = np.array(theta.tolist(), dtype=float).ravel() if isinstance(theta, sp.MatrixBase) else np.asarray(theta, float)
            s.append(float(np.trace(Pn @ Sn)))
            v = Pn @ tn
            c.append(float(v @ v))
    return s, c
