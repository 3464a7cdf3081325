"""Symmetries: exact confirmation of a generator on the part of the expression DAG it moves.

Design
------
The exact engine (:class:`~noether_sym.compile._exact.ExactModel`) proves D_{Aθ}ℓ ≡ 0 in
polynomial arithmetic over QQ (FLINT). FLINT stores every monomial with one exponent field
per variable of its context, so one context over all parameters of a large network (50,000
variables) makes a single 784-term polynomial take seconds and tens of megabytes. A
candidate generator, however, moves few parameters: only the nodes downstream of the
parameters it moves (``affected``) can have a nonzero derivative, and the derivative rules
read values only of the arguments of affected products, powers and functions and of the
affected kink arguments. :func:`local_confirm` builds an exact model on exactly that part
(its ancestors give the variables), so the proof is the same proof -- the derivative of
every other node is zero because it does not depend on a moved parameter -- in a context of
a few hundred or thousand variables. Anything the rules need outside that part raises, and
the candidate then goes to the full model (small losses) or is reported unconfirmed.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from .._errors import UnsupportedExpressionError
from ..compile._compiled import compiled
from ..compile._exact import Confirmation, ExactModel
from ..compile._graph import _ancestors, _descendants
from ..loss._loss import Loss

__all__ = ["LOCAL_FROM_N", "local_confirm"]

#: from this many parameters the finder confirms candidates with :func:`local_confirm`
LOCAL_FROM_N = 200

#: node operations whose derivative rule reads the values of their arguments
_READS_ARGS = ("mul", "pow", "fn")


def _structure(loss: Loss) -> dict[str, Any]:
    """Parents of every node and the node of every parameter (cached on the loss)."""
    st = loss._cache.get("local_structure")
    cl = compiled(loss)
    nodes = cl.graph.nodes
    if st is None or len(st["parents"]) != len(nodes):
        parents: list[list[int]] = [[] for _ in nodes]
        for j, nd in enumerate(nodes):
            for a in set(nd.args):
                parents[a].append(j)
        inputs = {nd.data: i for i, nd in enumerate(nodes) if nd.op == "in"}
        st = {"parents": parents, "inputs": inputs, "kinks": set(cl.graph.kinks)}
        loss._cache["local_structure"] = st
    return st


def local_confirm(loss: Loss, J: dict[tuple[int, int], Fraction]) -> Confirmation:
    """Exact check of D_{Jθ}ℓ ≡ 0 and of the kinks (as :meth:`ExactModel.confirm`) on the
    part of the DAG that the field V(θ) = Jθ moves (module docstring).

    Raises UnsupportedExpressionError when the derivative rules need a value outside that
    part (the caller then uses the full model or reports the candidate)."""
    cl = compiled(loss)
    graph = cl.graph
    nodes = graph.nodes
    st = _structure(loss)
    inputs = st["inputs"]
    moved = {inputs[i] for (i, _), v in J.items() if v != 0}
    sources = {inputs[j] for (_, j), v in J.items() if v != 0}
    affected = _descendants(st["parents"], moved)
    # first the values a vanishing derivative needs (arguments of moved products, kink
    # arguments); powers and functions read their argument's value only when its own
    # derivative is nonzero, so they are added (second try) only if the first one needs them
    for full in (False, True):
        need: set[int] = set(sources)
        for j in affected:
            nd = nodes[j]
            if nd.op == "mul" or (full and nd.op in _READS_ARGS):
                need.update(nd.args)
                need.add(j)
                if nd.op == "fn":
                    need.update(graph.fn_partial(j, k) for k in range(len(nd.args)))
            elif nd.op in ("max", "min"):
                need.add(nd.data)
            if j in st["kinks"]:
                need.add(j)
        within = _ancestors(graph, need) | affected
        try:
            em = ExactModel(graph, cl.root, loss.n, within=within)
            em._parents, em._input_node = st["parents"], inputs
            if len(nodes) != len(st["parents"]):  # the model added derivative nodes
                em._parents = None
            return em.confirm(J)
        except (KeyError, UnsupportedExpressionError) as exc:
            if full:
                raise UnsupportedExpressionError(
                    f"the local check needs a value outside its part of the graph ({exc})") from None
    raise AssertionError("unreachable")
