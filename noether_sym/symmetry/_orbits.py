"""Symmetries: exact proofs by orbit -- a proven permutation symmetry carries a proven generator to its images.

Design
------
If a permutation P of the parameters leaves the loss unchanged, ℓ(Pθ, x) ≡ ℓ(θ, x), and A
is a generator (D_{Aθ}ℓ ≡ 0, kinks preserved), then so is P A Pᵀ:
ℓ(e^{λPAPᵀ}θ) = ℓ(P e^{λA} Pᵀθ) = ℓ(e^{λA} Pᵀθ) = ℓ(Pᵀθ) = ℓ(θ), and every kink argument z
of the loss satisfies z∘P = z' for another kink argument z', so D_{PAPᵀθ} z = c·z follows
from the same property of A. Networks have thousands of candidate generators that are
images of a handful of them under relabellings of hidden units; proving a few
representatives and a few permutations then proves all of them.

Permutations are *proposed* from the candidates (sides of equal size that the blocks
route found coupled, ``linked_sides``: for a layer, the rows of one weight matrix, the
entries of its bias and the columns of the next matrix) and *proven* on the compiled DAG of
the loss: every node gets a canonical id by hash-consing (op, data, ids of its arguments,
sorted for sums, flattened and sorted for products); the loss is invariant under P when its
root gets the same id with the inputs relabelled by P. Equal ids mean equal expressions up
to commutativity and associativity, so this is an exact proof; it may fail to prove a true
symmetry (the expression is written differently after the relabelling), never the converse.
Only the nodes downstream of the moved parameters are re-labelled.

For a group of linked sides of size r, the transpositions (0 a), a = 1..r-1, are proven
one by one; those that hold, with 0, form a set U whose full symmetric group is proven.
Each candidate J is normalized: the units of U it touches are mapped, in order, to the
first elements of U (a permutation σ_J of Sym(U)). Candidates with the same normalized form
are one orbit: J = σ_J⁻¹ σ_R (R) for the class representative R, so one exact proof of R
(:func:`._local.local_confirm`) proves the class. A representative that fails takes its
class with it (J is a generator only if R = σ_R⁻¹ σ_J (J) is), with the reason stated.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from ..compile._compiled import compiled
from ..compile._graph import _descendants
from ..loss._loss import Loss
from ._blocks import _block_shapes
from ._canonical import SparseGen
from ._local import _structure

__all__ = ["ORBIT_FROM_CANDIDATES", "orbit_confirm", "permutation_preserves_loss"]

#: the finder proves candidates by orbit when it has at least this many exact candidates
ORBIT_FROM_CANDIDATES = 8
#: at most this many transpositions are proven per group of linked sides
MAX_TRANSPOSITIONS = 4096


def _identity_ids(loss: Loss) -> tuple[list[int], dict, dict]:
    """Canonical ids of every node (cached on the loss), the hash-consing table and the
    flattened factor tuples of product nodes."""
    cache = loss._cache.get("orbit_ids")
    nodes = compiled(loss).graph.nodes
    if cache is not None and len(cache[0]) == len(nodes):
        return cache
    table: dict[Any, int] = {}
    flat: dict[int, tuple] = {}
    ids = [0] * len(nodes)
    for j in range(len(nodes)):
        ids[j] = _node_id(nodes, j, ids.__getitem__, flat.get, flat, table, None)
    cache = (ids, table, flat)
    loss._cache["orbit_ids"] = cache
    return cache


def _node_id(nodes: list, j: int, idof: Callable[[int], int], flatof: Callable[[int], Any], flat_out: dict,
             table: dict, input_id: int | None) -> int:
    """The canonical id of node j given the ids of its arguments (``idof``) and the
    flattened factors of product arguments (``flatof``); ``input_id`` overrides an input."""
    nd = nodes[j]
    op = nd.op
    if op == "in":
        if input_id is not None:
            return input_id
        key: Any = ("in", nd.data)
    elif op == "add":
        key = ("add", tuple(sorted(idof(a) for a in nd.args)))
    elif op == "mul":
        factors: list[int] = []
        for a in nd.args:
            f = flatof(a) if nodes[a].op == "mul" else None
            factors.extend(f if f is not None else (idof(a),))
        fac = tuple(sorted(factors))
        flat_out[j] = fac
        key = ("mul", fac)
    elif op in ("max", "min"):
        key = (op, idof(nd.args[0]), idof(nd.args[1]), idof(nd.data))
    else:
        # a function node is named by its class, not only its name (two user classes may
        # share a name)
        data = (nd.data, type(nd.expr)) if op == "fn" else nd.data
        try:
            hash(data)
        except TypeError:
            data = ("node", j)  # unhashable data: this node matches only itself
        key = (op, data, tuple(idof(a) for a in nd.args))
    got = table.get(key)
    if got is None:
        got = len(table)
        table[key] = got
    return got


def permutation_preserves_loss(loss: Loss, perm: dict[int, int]) -> bool:
    """Exact (one-sided) proof that ℓ(θ_π, x) ≡ ℓ(θ, x) for the parameter permutation
    ``perm`` ({i: π(i)} on the moved indices, a bijection of them): True only when the
    relabelled expression DAG is the same up to commutativity and associativity of sums and
    products (module docstring); False means "not proven", not "not a symmetry"."""
    moved = {i: j for i, j in perm.items() if i != j}
    if not moved:
        return True
    if sorted(moved) != sorted(moved.values()):
        raise ValueError("perm must be a bijection of the indices it moves")
    cl = compiled(loss)
    nodes = cl.graph.nodes
    ids, table, flat = _identity_ids(loss)
    st = _structure(loss)
    inputs = st["inputs"]
    affected = sorted(_descendants(st["parents"], {inputs[i] for i in moved}))
    new: dict[int, int] = {}
    new_flat: dict[int, tuple] = {}

    def idof(a: int) -> int:
        got = new.get(a)
        return ids[a] if got is None else got

    def flatof(a: int) -> Any:
        return new_flat[a] if a in new else flat.get(a)

    for j in affected:
        nd = nodes[j]
        inp = ids[inputs[moved[nd.data]]] if nd.op == "in" and nd.data in moved else None
        new[j] = _node_id(nodes, j, idof, flatof, new_flat, table, inp)
    return idof(cl.root) == ids[cl.root]


def _group_layout(loss: Loss, group: list[tuple[int, int]]) -> tuple[int, dict[int, tuple[int, int, int, set]]]:
    """(unit count r, {block: (start, rows, cols, axes of the block in the group)})."""
    shapes = _block_shapes(loss)
    blocks: dict[int, tuple[int, int, int, set]] = {}
    size = None
    for b, axis in group:
        start, r, c = shapes[b]
        size = (r, c)[axis] if size is None else size
        if b in blocks:
            blocks[b][3].add(axis)
        else:
            blocks[b] = (start, r, c, {axis})
    return int(size or 0), blocks


def _relabel_map(blocks: dict, tau: dict[int, int]) -> dict[int, int]:
    """Parameter permutation of the unit permutation ``tau`` ({unit: unit}) on the blocks."""
    perm: dict[int, int] = {}
    moved = [u for u, v in tau.items() if u != v]
    for start, r, c, axes in blocks.values():
        rows = moved if 0 in axes else []
        cols = moved if 1 in axes else []
        touched = {(i, j) for i in rows for j in range(c)} | {(i, j) for j in cols for i in range(r)}
        for i, j in touched:
            i2 = tau.get(i, i) if 0 in axes else i
            j2 = tau.get(j, j) if 1 in axes else j
            perm[start + i * c + j] = start + i2 * c + j2
    return perm


def orbit_confirm(
    loss: Loss,
    cands: list[Any],
    groups: list[list[tuple[int, int]]],
    prove: Callable[[dict[tuple[int, int], Fraction]], tuple[bool, str]],
) -> tuple[list[tuple[bool, str]], dict[str, Any]]:
    """Confirm exact candidates by orbits (module docstring): ``prove`` (the finder's exact
    check) runs once per class; returns ((confirmed, reason) per candidate, certificate)."""
    layouts = []
    info: dict[str, Any] = {"groups": [], "classes": 0}
    for group in groups:
        r, blocks = _group_layout(loss, group)
        if r < 2 or r - 1 > MAX_TRANSPOSITIONS:
            continue
        good = [0]
        failed = []
        for a in range(1, r):
            if permutation_preserves_loss(loss, _relabel_map(blocks, {0: a, a: 0})):
                good.append(a)
            else:
                failed.append(a)
        info["groups"].append({"sides": [(loss.blocks[b].name, "rows" if ax == 0 else "columns") for b, ax in group],
                               "units": r, "transpositions_proven": len(good) - 1,
                               "transpositions_not_proven": failed[:20], "n_not_proven": len(failed)})
        if len(good) > 1:
            layouts.append((blocks, good))
    where = _Where(loss.n, layouts)
    classes: dict[tuple, list[int]] = {}
    for k, J in enumerate(cands):
        classes.setdefault(where.normal_form(J), []).append(k)
    out: list[tuple[bool, str]] = [(False, "")] * len(cands)
    for members in classes.values():
        ok, reason = prove(cands[members[0]])
        out[members[0]] = (ok, reason)
        for k in members[1:]:
            if ok:
                out[k] = (True, "image P A Pᵀ of a proven generator A under a proven permutation symmetry P")
            else:
                out[k] = (False, f"in the orbit of a candidate that was not confirmed ({reason})")
    info["classes"] = len(classes)
    info["exact_proofs"] = len(classes)
    info["proven_by_orbit"] = sum(1 for ok, why in out if ok and why.startswith("image"))
    return out, info


class _Where:
    """Where each parameter sits in the proven groups: block start, columns, row, column,
    and the group (layout) acting on its rows and on its columns (-1: none)."""

    def __init__(self, n: int, layouts: list) -> None:
        self.layouts = layouts
        self.start = np.zeros(n, dtype=np.int64)
        self.cols = np.ones(n, dtype=np.int64)
        self.row = np.zeros(n, dtype=np.int64)
        self.col = np.zeros(n, dtype=np.int64)
        self.by_axis = (np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64))
        self.good = []
        for li, (blocks, good) in enumerate(layouts):
            for start, r, c, axes in blocks.values():
                idx = np.arange(start, start + r * c)
                self.start[idx], self.cols[idx] = start, c
                self.row[idx], self.col[idx] = np.divmod(idx - start, c)
                for ax in axes:
                    self.by_axis[ax][idx] = li
            size = max((r if 0 in axes else c) for _, r, c, axes in blocks.values())
            mask = np.zeros(size, dtype=bool)
            mask[good] = True
            self.good.append((mask, np.asarray(good, dtype=np.int64)))

    def normal_form(self, J: Any) -> tuple:
        """J relabelled by σ_J (module docstring): its entries in sorted order, with the
        distinct values sorted and indexed (``J``: a dict or a :class:`SparseGen`)."""
        G = J if isinstance(J, SparseGen) else SparseGen.from_dict(J)
        ij = G.ij
        if self.layouts:
            P = ij.ravel()
            row, col = self.row[P].copy(), self.col[P].copy()
            for li in range(len(self.layouts)):
                mask, good = self.good[li]
                on = [self.by_axis[0][P] == li, self.by_axis[1][P] == li]
                units = np.unique(np.concatenate([row[on[0]], col[on[1]]]))
                units = units[mask[units]]
                if not units.size:
                    continue
                sigma = np.arange(mask.size)
                sigma[units] = good[: units.size]
                row[on[0]] = sigma[row[on[0]]]
                col[on[1]] = sigma[col[on[1]]]
            inside = (self.by_axis[0][P] >= 0) | (self.by_axis[1][P] >= 0)
            P = np.where(inside, self.start[P] + row * self.cols[P] + col, P)
            ij = P.reshape(-1, 2)
        order = np.lexsort((ij[:, 1], ij[:, 0]))
        rank = sorted(range(len(G.values)), key=G.values.__getitem__)
        remap = np.empty(len(rank), dtype=np.int64)
        remap[rank] = np.arange(len(rank))
        return (ij[order].tobytes(), remap[G.vidx[order]].tobytes(), tuple(G.values[k] for k in rank))
