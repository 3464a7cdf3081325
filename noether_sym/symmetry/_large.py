"""Symmetries: the finder's bookkeeping for large models -- canonical form, charges, ranks and inertia without n x n work.

Design
------
For a network with tens of thousands of parameters and thousands of generators the
generic bookkeeping of the finder dominates everything else: the full exact engine's FLINT
context over all parameters, the rational row reduction over all n(n+1)/2 pairs, thousands
of charge polynomials, a rational rank of an n x k matrix. Each has a cheaper equivalent
that gives the same answer:

* the exact engine is built only when something asks for it (:class:`LazyExactModel`);
  large candidates are confirmed by :func:`~noether_sym.symmetry._local.local_confirm`;
* a candidate set whose leading entries are distinct and absent from the other candidates
  is already in reduced row echelon form up to scaling and order (:func:`canonical_sparse`;
  otherwise the exact row reduction runs as before);
* charges are built on first access (:class:`LazyCharges`, a read-only sequence);
* the number of independent charges is a certified lower bound modulo a prime, exact when
  it reaches the number of generators (:mod:`._modular`);
* the inertia of a generator is computed on its support only (:func:`inertia_sparse`).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from ..compile._confirm import exact_model
from ..compile._exact import ExactModel
from ..loss._generators import generator_matrix
from ..loss._loss import Loss
from ._canonical import _canonical
from ._charges import _small_inertia, charge_expressions, generic_rank, inertia_of
from ._modular import modular_generic_rank

__all__ = ["LARGE_FROM_ENTRIES", "LazyCharges", "LazyExactModel", "canonical_sparse", "inertia_sparse", "summaries"]

#: above this many generator entries in all, charges are built lazily and the number of
#: independent charges is computed modulo a prime
LARGE_FROM_ENTRIES = 20_000


class LazyExactModel:
    """The loss's :class:`ExactModel`, built on first attribute access."""

    def __init__(self, loss: Loss) -> None:
        self._loss = loss
        self._em: ExactModel | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._em is None:
            self._em = exact_model(self._loss)
        return getattr(self._em, name)


def canonical_sparse(mats: list[dict[tuple[int, int], Fraction]], n: int, sigma: int) -> list[sp.Matrix]:
    """The canonical basis (as :func:`._canonical._canonical`), without a row reduction when
    the candidates are already in echelon form over the flattened upper triangle."""
    rows = []
    for J in mats:
        row = {i * n + j: v for (i, j), v in J.items() if v and (i < j or (i == j and sigma == 1))}
        if not row:
            continue
        lead = min(row)
        rows.append((lead, row))
    leads = {lead for lead, _ in rows}
    if len(leads) != len(rows) or any(len(leads.intersection(row)) != 1 for _, row in rows):
        return _canonical(mats, n, sigma)
    out = []
    for lead, row in sorted(rows, key=lambda t: t[0]):
        scale = row[lead]
        entries: dict[tuple[int, int], Any] = {}
        for c, v in row.items():
            i, j = divmod(c, n)
            q = v / scale
            val = sp.Rational(q.numerator, q.denominator)
            entries[(i, j)] = val
            if i != j:
                entries[(j, i)] = sigma * val
        out.append(generator_matrix(n, entries))
    return out


class LazyCharges(Sequence):
    """The charges θᵀAθ of many generators, each built on first access (a list's interface:
    indexing, ``len``, iteration, comparison with a list)."""

    def __init__(self, loss: Loss, generators: list[sp.Matrix]) -> None:
        self._loss = loss
        self._gens = generators
        self._done: dict[int, sp.Expr] = {}

    def __len__(self) -> int:
        return len(self._gens)

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        k = range(len(self))[k]
        if k not in self._done:
            self._done[k] = charge_expressions(self._loss, [self._gens[k]])[0]
        return self._done[k]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"LazyCharges({len(self)} charges, built on access)"


def _entries(A: sp.Matrix) -> dict[tuple[int, int], Fraction]:
    return {(int(i), int(j)): Fraction(int(v.p), int(v.q)) for (i, j), v in A.todok().items() if v != 0}


def inertia_sparse(D: dict[tuple[int, int], Any], n: int) -> tuple[int, int, int]:
    """(n₊, n₋, n₀) of a sparse symmetric rational matrix, component by component of its
    support (as :func:`._charges.inertia_of`, without an n x n matrix)."""
    D = {k: v for k, v in D.items() if v != 0}
    if not D:
        return (0, 0, n)
    support = sorted({i for i, _ in D} | {j for _, j in D})
    where = {g: k for k, g in enumerate(support)}
    m = len(support)
    rows = [where[i] for i, _ in D]
    cols = [where[j] for _, j in D]
    _, labels = connected_components(csr_matrix((np.ones(len(D)), (rows, cols)), shape=(m, m)), directed=False)
    comps: dict[int, list[int]] = {}
    for g in support:
        comps.setdefault(int(labels[where[g]]), []).append(g)
    entries: dict[int, dict] = {}
    for (i, j), v in D.items():
        entries.setdefault(int(labels[where[i]]), {})[(i, j)] = v
    pos = neg = 0
    for lab, idx in comps.items():
        small = _small_inertia(entries.get(lab, {}), idx)
        if small is None:
            at = {g: k for k, g in enumerate(idx)}
            local = {(at[i], at[j]): v for (i, j), v in entries[lab].items()}
            small = inertia_of(generator_matrix(len(idx), local))[:2]
        pos += small[0]
        neg += small[1]
    return pos, neg, n - pos - neg


def summaries(loss: Loss, gens: list[sp.Matrix], seed: int) -> tuple[list, list, Any, int, str]:
    """(inertia, classes, charges, number of independent charges, how that number was
    computed) of the generators; the large-model equivalents (module docstring) above
    :data:`LARGE_FROM_ENTRIES` entries."""
    sparse = [A.todok() for A in gens]
    large = sum(len(D) for D in sparse) > LARGE_FROM_ENTRIES
    if large:
        inert = [inertia_sparse(D, loss.n) for D in sparse]
        charges: Any = LazyCharges(loss, gens)
        rank = modular_generic_rank([{k: Fraction(int(v.p), int(v.q)) for k, v in D.items() if v != 0} for D in sparse],
                                    loss.n, seed=seed)
    else:
        inert = [inertia_of(A) for A in gens]
        charges = charge_expressions(loss, gens)
        rank = generic_rank(gens, loss.n, seed=seed)
    classes = ["semidefinite" if (p == 0 or q == 0) else "indefinite" for p, q, _ in inert]
    how = ("rank modulo a prime of the Gram matrix of [A_1θ ... A_kθ] at random points: a certified lower "
           "bound, exact when it equals the number of generators" if large else
           "exact rank over QQ of [A_1θ ... A_kθ] at random integer points")
    return inert, classes, charges, rank, how
