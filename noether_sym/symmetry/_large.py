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
from sympy import QQ, ZZ
from sympy.polys.matrices import DomainMatrix
from sympy.polys.matrices.sdm import SDM

from ..compile._confirm import exact_model
from ..compile._exact import ExactModel
from ..loss._generators import SPARSE_ABOVE, generator_matrix
from ..loss._loss import Loss
from ._canonical import SparseGen, _canonical, as_entries
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


def canonical_sparse(mats: list[dict[tuple[int, int], Fraction]], n: int, sigma: int,
                     known: dict[int, dict] | None = None) -> list[sp.Matrix]:
    """The canonical basis (as :func:`._canonical._canonical`), without a row reduction when
    the candidates are already in echelon form over the flattened upper triangle.

    ``known``, if given, receives {id(matrix): its entries as Fractions} for the matrices
    built here (the finder passes it on to :func:`summaries`, while the list holds them).
    Candidates given as :class:`~._canonical.SparseGen` take an array path."""
    if mats and all(isinstance(J, SparseGen) for J in mats):
        done = _canonical_gens(mats, n, sigma, known)
        if done is not None:
            return done
    mats = [as_entries(J) for J in mats]
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
        entries: dict[int, dict[int, Any]] = {}
        fr: dict[tuple[int, int], Fraction] = {}
        for c, v in row.items():
            i, j = divmod(c, n)
            q = v if scale == 1 else v / scale
            val = QQ(q.numerator, q.denominator)
            entries.setdefault(i, {})[j] = val
            fr[(i, j)] = q
            if i != j:
                entries.setdefault(j, {})[i] = val if sigma == 1 else -val
                fr[(j, i)] = q if sigma == 1 else -q
        out.append(_sparse_matrix(n, entries))
        if known is not None:
            known[id(out[-1])] = fr
    return out


def _canonical_gens(gens: list[SparseGen], n: int, sigma: int, known: dict | None) -> list[sp.Matrix] | None:
    """:func:`canonical_sparse` for array candidates; None when they are not in echelon form."""
    rows = []
    for G in gens:
        i, j = G.ij[:, 0], G.ij[:, 1]
        up = (i < j) | ((i == j) & (sigma == 1))
        flat = i[up] * n + j[up]
        if not flat.size:
            continue
        k = int(np.argmin(flat))
        rows.append((int(flat[k]), flat, G, G.values[int(G.vidx[up][k])]))
    leads = np.array(sorted(t[0] for t in rows), dtype=np.int64)
    if len(np.unique(leads)) != len(rows) or any(int(np.isin(t[1], leads).sum()) != 1 for t in rows):
        return None
    out = []
    for _, _, G, scale in sorted(rows, key=lambda t: t[0]):
        vals = G.values if scale == 1 else [v / scale for v in G.values]
        dom = ZZ if all(v.denominator == 1 for v in vals) else QQ
        dvals = [ZZ(int(v.numerator)) if dom == ZZ else QQ(int(v.numerator), int(v.denominator)) for v in vals]
        rows_, cols_, vv = G.ij[:, 0].tolist(), G.ij[:, 1].tolist(), [dvals[vi] for vi in G.vidx.tolist()]
        dod: dict[int, dict[int, Any]] = {}
        if len(set(rows_)) == len(rows_):  # one entry per row (typical): one comprehension
            dod = {a: {b: v} for a, b, v in zip(rows_, cols_, vv)}
        else:
            for a, b, v in zip(rows_, cols_, vv):
                row = dod.get(a)
                if row is None:
                    dod[a] = {b: v}
                else:
                    row[b] = v
        out.append(_sparse_matrix(n, dod, dom))
        if known is not None:
            known[id(out[-1])] = SparseGen(G.ij, G.vidx, vals)
    return out


def _sparse_matrix(n: int, entries: dict[int, dict[int, Any]], dom: Any = QQ) -> sp.MatrixBase:
    """The n x n generator with rows {i: {j: value in dom}}: a SymPy SparseMatrix built from
    its domain representation (a quarter of the time of converting every entry), or
    :func:`generator_matrix`'s dense matrix for small n."""
    if n <= SPARSE_ABOVE:
        return generator_matrix(n, {(i, j): dom.to_sympy(v) for i, row in entries.items() for j, v in row.items()})
    try:  # the rows are built here and valid: skip SDM's per-entry index validation
        rep = SDM.__new__(SDM)
        dict.__init__(rep, entries)
        rep.shape = (n, n)
        rep.rows = rep.cols = n
        rep.domain = dom
        M = sp.SparseMatrix._fromrep(DomainMatrix.from_rep(rep))
    except Exception:  # noqa: BLE001 - another SymPy layout: the validating constructor
        M = sp.SparseMatrix._fromrep(DomainMatrix(entries, (n, n), dom))
    return M


def qq_entries(A: Any) -> dict[tuple[int, int], Fraction]:
    """The nonzero entries of an exact matrix as Fractions (read from the QQ representation
    of a SymPy matrix when it has one, else through ``todok``)."""
    rep = getattr(A, "_rep", None)
    if rep is not None and rep.domain in (QQ, ZZ):
        out = {}
        for i, row in rep.to_sdm().items():
            for j, v in row.items():
                if v:
                    out[(i, j)] = Fraction(int(v.numerator), int(v.denominator))
        return out
    return {(int(i), int(j)): Fraction(int(v.p), int(v.q)) for (i, j), v in A.todok().items() if v != 0}


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
    return qq_entries(A)


def _relabelled_key(D: Any) -> tuple:
    """The entries of D (a dict or a SparseGen) with its support renumbered 0, 1, ... in
    order: an order-preserving relabelling is a permutation similarity, so equal keys mean
    equal inertia (generators of a network that differ only by which units they act on
    share one key)."""
    G = D if isinstance(D, SparseGen) else SparseGen.from_dict(D)
    support = np.unique(G.ij)
    loc = np.searchsorted(support, G.ij)
    order = np.lexsort((loc[:, 1], loc[:, 0]))
    return ("relabelled", loc[order].tobytes(), G.vidx[order].tobytes(), tuple(G.values))


def inertia_sparse(D: dict[tuple[int, int], Any], n: int, memo: dict | None = None) -> tuple[int, int, int]:
    """(n₊, n₋, n₀) of a sparse symmetric rational matrix, component by component of its
    support (as :func:`._charges.inertia_of`, without an n x n matrix); ``memo`` keeps the
    inertia of components already seen (keyed by their relabelled entries: generators of a
    network repeat the same small blocks thousands of times)."""
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
        key = None
        if small is None and memo is not None:
            at = {g: k for k, g in enumerate(idx)}
            key = tuple(sorted((at[i], at[j], v) for (i, j), v in entries[lab].items()))
            small = memo.get(key)
        if small is None:
            at = {g: k for k, g in enumerate(idx)}
            local = {(at[i], at[j]): v for (i, j), v in entries[lab].items()}
            small = inertia_of(generator_matrix(len(idx), local))[:2]
        if key is not None:
            memo[key] = small
        pos += small[0]
        neg += small[1]
    return pos, neg, n - pos - neg


def summaries(loss: Loss, gens: list[sp.Matrix], seed: int, known: dict[int, dict] | None = None) -> tuple[list, list, Any, int, str]:
    """(inertia, classes, charges, number of independent charges, how that number was
    computed) of the generators; the large-model equivalents (module docstring) above
    :data:`LARGE_FROM_ENTRIES` entries. ``known``: entries by id(matrix), as
    :func:`canonical_sparse` records them."""
    known = known or {}
    sparse = [known[id(A)] if id(A) in known else qq_entries(A) for A in gens]
    large = sum(len(D) for D in sparse) > LARGE_FROM_ENTRIES
    if large:
        memo: dict = {}
        inert = []
        for D in sparse:
            key = _relabelled_key(D)
            if key not in memo:
                memo[key] = inertia_sparse(as_entries(D), loss.n, memo)
            inert.append(memo[key])
        charges: Any = LazyCharges(loss, gens)
        rank = modular_generic_rank(sparse, loss.n, seed=seed)
    else:
        sparse = [as_entries(D) for D in sparse]
        inert = [inertia_of(A) for A in gens]
        charges = charge_expressions(loss, gens)
        rank = generic_rank(gens, loss.n, seed=seed)
    classes = ["semidefinite" if (p == 0 or q == 0) else "indefinite" for p, q, _ in inert]
    how = ("rank modulo a prime of the Gram matrix of [A_1θ ... A_kθ] at random points: a certified lower "
           "bound, exact when it equals the number of generators" if large else
           "exact rank over QQ of [A_1θ ... A_kθ] at random integer points")
    return inert, classes, charges, rank, how
