"""Charges: Noether charges C_A(θ) = θᵀAθ (E8), their independence and the generators' inertia.

* :func:`charge_expressions` -- the charges as SymPy polynomials in the user's symbols.
* :func:`generic_rank` -- the number of independent charges, the generic rank of
  [A_1θ ... A_kθ] (§3), computed **exactly** (rank over QQ at random integer points; the
  rank at any point is a lower bound of the generic rank and equals it for all but a
  measure-zero set of points, so the maximum over a few points is it with overwhelming
  probability).
* :func:`inertia_of` -- exact (n₊, n₋, n₀) eigenvalue counts of a rational symmetric A,
  component by component of its sparsity graph (Descartes' rule of signs on the
  characteristic polynomial, exact for a real-rooted polynomial).
* :func:`confirm_conservation` -- gradient flow conserves every charge (E9), checked
  exactly: dC/dt + 2γC = -2 D_{Aθ}ℓ ≡ 0.
"""


from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from sympy import QQ
from sympy.polys.matrices import DomainMatrix

from ..compile._confirm import confirm_generator
from ..loss._loss import Loss

__all__ = ['charge_expressions', 'generic_rank', 'inertia_of', 'confirm_conservation']



def charge_expressions(loss: Loss, generators: list[sp.Matrix]) -> list[sp.Expr]:
    """θᵀAθ for each generator, in the user's parameter symbols (expanded polynomial)."""
    th = loss.params
    out = []
    for A in generators:
        # collect θ_iθ_j and θ_jθ_i first: the sum of distinct monomials is already expanded
        coeff: dict[tuple[int, int], Any] = {}
        for (i, j), v in A.todok().items():
            if v != 0:
                key = (i, j) if i <= j else (j, i)
                coeff[key] = coeff.get(key, 0) + v
        terms = [v * th[i] * th[j] for (i, j), v in coeff.items() if v != 0]
        out.append(sp.expand(sp.Add(*terms)) if _needs_expand(th) else sp.Add(*terms))
    return out


def _needs_expand(params: Any) -> bool:
    """Parameters that are not plain symbols (never for a Loss) would need sp.expand."""
    return not all(isinstance(p, sp.Symbol) for p in params)


def generic_rank(generators: list[sp.Matrix], n: int, *, seed: int = 0, points: int = 3) -> int:
    """Generic rank of [A_1θ ... A_kθ] (number of independent charges), exact over QQ."""
    k = len(generators)
    if k == 0:
        return 0
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1729]))
    best = 0
    sparse = [A.todok() for A in generators]
    for _ in range(points):
        theta = [int(t) for t in rng.integers(-10**6, 10**6, size=n)]
        cols: dict[int, dict[int, Any]] = {}
        for c, D in enumerate(sparse):
            for (i, j), v in D.items():
                if v != 0:
                    row = cols.setdefault(i, {})
                    row[c] = row.get(c, QQ(0)) + QQ(int(v.p), int(v.q)) * theta[j]
        sdm = {i: {c: v for c, v in r.items() if v != 0} for i, r in cols.items()}
        sdm = {i: r for i, r in sdm.items() if r}
        if not sdm:
            continue
        M = DomainMatrix(sdm, (n, k), QQ)
        best = max(best, M.rank())
        if best == k:
            break
    return best


def inertia_of(A: sp.Matrix) -> tuple[int, int, int]:
    """Exact (n_positive, n_negative, n_zero) eigenvalue counts of a symmetric rational matrix."""
    n = A.shape[0]
    D = {k: v for k, v in A.todok().items() if v != 0}
    if not D:
        return (0, 0, n)
    rows = [i for i, _ in D]
    cols = [j for _, j in D]
    graph = csr_matrix((np.ones(len(D)), (rows, cols)), shape=(n, n))
    ncomp, labels = connected_components(graph, directed=False)
    pos = neg = 0
    order = np.argsort(labels, kind="stable")
    cuts = np.nonzero(np.diff(labels[order]))[0] + 1
    entries: dict[int, list] = {}  # the entries of each component (one pass over D)
    for (i, j), v in D.items():
        entries.setdefault(int(labels[i]), []).append((i, j, v))
    for idx in np.split(order, cuts):
        if len(idx) == 1 and (int(idx[0]), int(idx[0])) not in D:
            continue
        small = _small_inertia(D, [int(t) for t in idx])
        if small is not None:
            pos += small[0]
            neg += small[1]
            continue
        sub = {}
        where = {int(g): l for l, g in enumerate(idx)}
        for i, j, v in entries.get(int(labels[idx[0]]), []):
            sub.setdefault(where[i], {})[where[j]] = QQ(int(v.p), int(v.q))
        m = len(idx)
        M = DomainMatrix(sub, (m, m), QQ)
        coeffs = M.charpoly()  # det(λI - M), leading coefficient first
        p, q = _descartes(coeffs)
        pos += p
        neg += q
    return (pos, neg, n - pos - neg)


def _small_inertia(D: dict, idx: list[int]) -> tuple[int, int] | None:
    """(n_positive, n_negative) of a 1x1 or 2x2 symmetric block, exactly; None if larger."""
    if len(idx) == 1:
        a = D.get((idx[0], idx[0]), 0)
        return (1, 0) if a > 0 else (0, 1) if a < 0 else (0, 0)
    if len(idx) == 2:
        i, j = idx
        a, c, b = D.get((i, i), 0), D.get((j, j), 0), D.get((i, j), 0)
        det, tr = a * c - b * b, a + c
        if det < 0:
            return (1, 1)
        if det > 0:
            return (2, 0) if tr > 0 else (0, 2)
        return (1, 0) if tr > 0 else (0, 1) if tr < 0 else (0, 0)
    return None


def _descartes(coeffs: list[Any]) -> tuple[int, int]:
    """Positive and negative root counts of a real-rooted polynomial (exact)."""
    c = [QQ.to_sympy(x) for x in coeffs]
    while c and c[-1] == 0:  # factor out λ^k (zero eigenvalues)
        c.pop()

    def changes(seq: list) -> int:
        s = [x for x in seq if x != 0]
        return sum(1 for a, b in zip(s, s[1:]) if (a > 0) != (b > 0))

    deg = len(c) - 1
    neg_coeffs = [x * (-1) ** (deg - i) for i, x in enumerate(c)]
    return changes(c), changes(neg_coeffs)


def confirm_conservation(loss: Loss, A: Any) -> tuple[bool, str]:
    """Exact check of (E9): under gradient flow with weight decay γ, dC/dt = -2γC.

    dC/dt = ∇Cᵀ θ' = 2(Aθ)ᵀ(-g - γθ) = -2 D_{Aθ}ℓ - 2γC, so (E9) holds iff D_{Aθ}ℓ ≡ 0,
    which the exact engine decides.
    """

    ok, reason = confirm_generator(loss, A)
    if ok:
        return True, "dC/dt + 2γC = -2 D_{Aθ}ℓ ≡ 0 (exact)"
    return False, reason
