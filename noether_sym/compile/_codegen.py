"""Compile: NumPy source for values, reverse-mode gradients and kink arguments of a Graph.

:func:`compile_graph` writes one plain Python function over NumPy arrays for chosen nodes
of a :class:`~noether_sym.compile._graph.Graph`: the forward pass (one assignment per
needed node, in node order, so shared sub-expressions are computed once), then, when a
gradient is asked for, the reverse pass (one adjoint per node on a path from the inputs to
the differentiated node), and returns the outputs, the gradient and the kink arguments.
:class:`CompiledFunction` compiles that source and keeps it for inspection.

Design
------
One emitter per node operation, in the manner of SymPy's printers (``_print_Add``,
``_print_Pow``): ``_Writer._emit_<op>`` returns the right-hand side of a node's forward
assignment and ``_Writer._adjoint_<op>`` adds the node's contribution to the adjoints of
its arguments; both are looked up by the node's ``op``. An operation without an adjoint
rule has derivative zero (``sign``, ``heaviside``, the boolean helpers of ``Piecewise``).

Every comparison looks at real parts (``_real``), so the gradient code is complex-step safe
(see :mod:`noether_sym.compile._graph`).

``broadcast=True`` (the default) broadcasts every output to the common shape of the inputs,
which callers that stack outputs need. ``broadcast=False`` returns them as computed (a
gradient entry that does not depend on the inputs is the scalar ``0.0``): for the
simulator's step, which assigns the gradient into a preallocated array that broadcasts
anyway, the ``np.broadcast_to`` calls cost about as much as the arithmetic.

The source is built from node ids, numbers and fixed templates only; a user function
without a NumPy name is passed in the namespace under a positional name (``_fn_0``), so
nothing the user wrote is ever executed as text.
"""


from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from .._errors import UnsupportedExpressionError
from ._graph import Graph, Node, _ancestors, _depends_on

__all__ = ['CompiledFunction', 'compile_graph']


class CompiledFunction:
    """Generated NumPy code: ``f(*inputs) -> outputs`` (see :func:`compile_graph`)."""

    def __init__(self, source: str, namespace: dict, name: str) -> None:
        self.source = source
        code = compile(source, f"<noether_sym:{name}>", "exec")
        exec(code, namespace)  # noqa: S102 - executes code generated here, never user text
        self._f = namespace[name]

    def __call__(self, *inputs: Any) -> Any:
        return self._f(*inputs)


#: adjoint of ``fn`` nodes with a hand-written rule ({a}: the node's adjoint, {i}: the node,
#: {z}: its argument); other functions go through SymPy's ``fdiff`` (``Graph.fn_partial``)
_FN_ADJOINT = {
    "exp": "{a} * v{i}",
    "log": "{a} / v{z}",
    "sin": "{a} * _np.cos(v{z})",
    "cos": "(-{a}) * _np.sin(v{z})",
    "tanh": "{a} * (1.0 - v{i} * v{i})",
    "sinh": "{a} * _np.cosh(v{z})",
    "cosh": "{a} * _np.sinh(v{z})",
}


def compile_graph(
    graph: Graph,
    outputs: Sequence[int],
    *,
    grad_of: int | None = None,
    wrt: Sequence[int] = (),
    kinks: bool = False,
    name: str = "_f",
    broadcast: bool = True,
) -> CompiledFunction:
    """Write NumPy code for the given output nodes.

    The function takes one argument per graph input (arrays that broadcast together) and
    returns a tuple: the outputs, then, if ``grad_of`` is given, the gradient of that node
    with respect to the inputs ``wrt`` (a list of arrays), then, if ``kinks``, the list of
    kink arguments (real parts). With ``broadcast`` (the default) every returned array has
    the common shape of the inputs; without, each is returned as computed (broadcastable
    to that shape; ``0.0`` for a gradient entry that does not depend on the inputs).
    """
    w = _Writer(graph, broadcast)
    needed, rev_order = w.plan(outputs, grad_of, wrt, kinks)
    for i in sorted(needed):
        w.forward(i)
    ret = [_tuple([w.out(f"v{o}") for o in outputs])]
    if grad_of is not None:
        w.assign(grad_of, "1.0")
        for i in rev_order:
            if i in w.adj_init:
                w.adjoint(i)
        grads = [w.out(f"a{v}") if v in w.adj_init else w.zeros() for v in wrt]
        ret.append(f"[{', '.join(grads)}]")
    if kinks:
        kink_args = [f"_real({w.out(f'v{k}')})" for k in graph.kinks]
        ret.append(f"[{', '.join(kink_args)}]")
    w.lines.append(f"    return ({', '.join(ret)},)")
    return CompiledFunction(w.source(name), w.ns, name)


def _float_literal(value: Any, what: str) -> str:
    """``value`` as a float literal of the generated source; refuses what is no finite float.

    ``repr(float(10**400))`` is ``'inf'``, a name the generated namespace does not define:
    such a constant is refused here, by name, instead of failing later as a NameError.
    """
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise UnsupportedExpressionError(f"the {what} {sp.sstr(value)[:60]} is not a real number") from None
    if not np.isfinite(v):
        shown = sp.Float(value, 3) if getattr(value, "is_Number", False) else sp.sstr(value)[:60]
        raise UnsupportedExpressionError(
            f"the {what} {shown} is beyond the float range (|x| > 1.8e308): rescale the loss so "
            "that its constants are representable in double precision"
        )
    return repr(v)


def _tuple(items: list[str]) -> str:
    return f"({', '.join(items)}{',' if len(items) == 1 else ''})"


class _Writer:
    """The lines of one generated function, with one emitter and one adjoint rule per op."""

    def __init__(self, graph: Graph, broadcast: bool) -> None:
        self.graph = graph
        self.nodes = graph.nodes
        self.broadcast = broadcast
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {"_np": np, "_where": np.where, "_real": np.real}
        self.uses_shape = broadcast  # Piecewise selections need the shape either way
        self.depends: set[int] = set()
        self.deriv_nodes: dict[tuple[int, int], int] = {}
        self.adj_init: set[int] = set()

    # ---- assembling ---------------------------------------------------------------------
    def plan(self, outputs: Sequence[int], grad_of: int | None, wrt: Sequence[int],
             kinks: bool) -> tuple[set[int], list[int]]:
        """(nodes of the forward pass, nodes of the reverse pass in reverse order); adds the
        derivative nodes of functions without a hand-written adjoint to the graph."""
        graph = self.graph
        roots = list(outputs) + ([grad_of] if grad_of is not None else []) + (list(graph.kinks) if kinks else [])
        rev_order: list[int] = []
        if grad_of is not None:
            self.depends = _depends_on(graph, set(wrt))
            active = [i for i in sorted(_ancestors(graph, grad_of)) if i in self.depends]
            for i in active:
                nd = self.nodes[i]
                if nd.op == "fn" and nd.data not in _FN_ADJOINT:
                    for k, a in enumerate(nd.args):
                        if a in self.depends:
                            self.deriv_nodes[(i, k)] = graph.fn_partial(i, k)
            rev_order = sorted(active, reverse=True)
            roots += list(self.deriv_nodes.values()) + active
        # one walk from all roots (a walk per root would revisit shared sub-expressions)
        needed = _ancestors(graph, roots)
        return needed, rev_order

    def source(self, name: str) -> str:
        head = [f"def {name}(*_I):"]
        if self.uses_shape:
            head.append("    _shape = _np.broadcast_shapes(*[_np.shape(_a) for _a in _I])")
        return "\n".join(head + self.lines) + "\n"

    def out(self, v: str) -> str:
        return f"_np.broadcast_to({v}, _shape)" if self.broadcast else v

    def zeros(self) -> str:
        return "_np.zeros(_shape)" if self.broadcast else "0.0"

    # ---- forward pass -------------------------------------------------------------------
    def forward(self, i: int) -> None:
        nd = self.nodes[i]
        emit = getattr(self, f"_emit_{nd.op}", None)
        if emit is None:  # pragma: no cover - every op the Graph builds has an emitter
            raise UnsupportedExpressionError(f"internal: no code for op {nd.op}")
        rhs = emit(i, nd, [f"v{j}" for j in nd.args])
        self.lines.append(f"    v{i} = {rhs}")

    def _emit_in(self, i: int, nd: Node, a: list[str]) -> str:
        return f"_I[{nd.data}]"

    def _emit_const(self, i: int, nd: Node, a: list[str]) -> str:
        return _float_literal(nd.data, "constant")

    def _emit_add(self, i: int, nd: Node, a: list[str]) -> str:
        return " + ".join(a)

    def _emit_sub(self, i: int, nd: Node, a: list[str]) -> str:
        return f"{a[0]} - {a[1]}"

    def _emit_mul(self, i: int, nd: Node, a: list[str]) -> str:
        return f"{a[0]} * {a[1]}"

    def _emit_pow(self, i: int, nd: Node, a: list[str]) -> str:
        ex = nd.data
        if ex == 1:
            return a[0]
        if ex == 2:
            return f"{a[0]} * {a[0]}"  # a product: exact, and faster than ** 2
        if ex == -1:
            return f"1.0 / {a[0]}"
        if ex == sp.Rational(1, 2):
            return f"_np.sqrt({a[0]})"
        if ex.is_Integer:
            return f"{a[0]} ** {int(ex)}"
        return f"{a[0]} ** {_float_literal(ex, 'exponent')}"

    def _emit_fn(self, i: int, nd: Node, a: list[str]) -> str:
        fname = self.graph.numeric_fn(nd.data, nd.expr)
        if fname.startswith("_fn_"):
            self.ns[fname] = self.graph._fn_cache[type(nd.expr)]
        return f"{fname}({', '.join(a)})"

    def _emit_max(self, i: int, nd: Node, a: list[str]) -> str:
        return f"_where(_real(v{nd.data}) >= 0, {a[0]}, {a[1]})"  # nd.data: the node a - b

    def _emit_min(self, i: int, nd: Node, a: list[str]) -> str:
        return f"_where(_real(v{nd.data}) <= 0, {a[0]}, {a[1]})"

    def _emit_abs(self, i: int, nd: Node, a: list[str]) -> str:
        return f"_where(_real({a[0]}) >= 0, {a[0]}, -{a[0]})"

    def _emit_sign(self, i: int, nd: Node, a: list[str]) -> str:
        return f"_np.sign(_real({a[0]}))"

    def _emit_heaviside(self, i: int, nd: Node, a: list[str]) -> str:
        return f"_where(_real({a[0]}) > 0, 1.0, _where(_real({a[0]}) < 0, 0.0, {nd.data!r}))"

    def _emit_gt0(self, i: int, nd: Node, a: list[str]) -> str:
        return f"_real({a[0]}) > 0"

    def _emit_lt0(self, i: int, nd: Node, a: list[str]) -> str:
        return f"_real({a[0]}) < 0"

    def _emit_eq0(self, i: int, nd: Node, a: list[str]) -> str:
        return f"_real({a[0]}) == 0"

    def _emit_ne0(self, i: int, nd: Node, a: list[str]) -> str:
        return f"_real({a[0]}) != 0"

    def _emit_true(self, i: int, nd: Node, a: list[str]) -> str:
        return "True"

    def _emit_false(self, i: int, nd: Node, a: list[str]) -> str:
        return "False"

    def _emit_and(self, i: int, nd: Node, a: list[str]) -> str:
        return " & ".join(f"({x})" for x in a)

    def _emit_or(self, i: int, nd: Node, a: list[str]) -> str:
        return " | ".join(f"({x})" for x in a)

    def _emit_not(self, i: int, nd: Node, a: list[str]) -> str:
        return f"~_np.asarray({a[0]})"

    def _emit_pw(self, i: int, nd: Node, a: list[str]) -> str:
        vals, conds = a[0::2], a[1::2]
        # branch k is taken where cond_k holds and no earlier condition does; the masks
        # (_sel{i}_{k}) are kept for the adjoint
        self.uses_shape = True
        self.lines.append(f"    _taken{i} = _np.zeros(_shape, dtype=bool)")
        for k, cond in enumerate(conds):
            self.lines.append(f"    _sel{i}_{k} = _np.broadcast_to({cond}, _shape) & ~_taken{i}")
            self.lines.append(f"    _taken{i} = _taken{i} | _sel{i}_{k}")
        rhs = "_np.nan"
        for k in reversed(range(len(vals))):
            rhs = f"_where(_sel{i}_{k}, {vals[k]}, {rhs})"
        return rhs

    # ---- reverse pass -------------------------------------------------------------------
    def assign(self, target: int, value: str) -> None:
        self.lines.append(f"    a{target} = {value}")
        self.adj_init.add(target)

    def acc(self, target: int, contrib: str) -> None:
        """Add ``contrib`` to the adjoint of ``target`` (if it depends on a ``wrt`` input)."""
        if target not in self.depends:
            return
        if target in self.adj_init:
            self.lines.append(f"    a{target} = a{target} + {contrib}")
        else:
            self.assign(target, contrib)

    def adjoint(self, i: int) -> None:
        nd = self.nodes[i]
        rule = getattr(self, f"_adjoint_{nd.op}", None)
        if rule is not None:  # no rule: derivative zero (inputs, constants, steps, booleans)
            rule(i, nd, f"a{i}")

    def _adjoint_add(self, i: int, nd: Node, ai: str) -> None:
        for j in nd.args:
            self.acc(j, ai)

    def _adjoint_sub(self, i: int, nd: Node, ai: str) -> None:
        self.acc(nd.args[0], ai)
        self.acc(nd.args[1], f"(-{ai})")

    def _adjoint_mul(self, i: int, nd: Node, ai: str) -> None:
        x, y = nd.args
        if x == y:
            self.acc(x, f"2.0 * {ai} * v{x}")
        else:
            self.acc(x, f"{ai} * v{y}")
            self.acc(y, f"{ai} * v{x}")

    def _adjoint_pow(self, i: int, nd: Node, ai: str) -> None:
        ex, b = nd.data, nd.args[0]
        if ex == 2:
            self.acc(b, f"2.0 * {ai} * v{b}")
        elif ex == 1:
            self.acc(b, ai)
        elif ex == -1:
            self.acc(b, f"(-{ai}) * v{i} * v{i}")
        elif ex.is_Integer:
            self.acc(b, f"{_float_literal(ex, 'exponent')} * {ai} * v{b} ** {int(ex) - 1}")
        else:
            self.acc(b, f"{_float_literal(ex, 'exponent')} * {ai} * v{i} / v{b}")

    def _adjoint_fn(self, i: int, nd: Node, ai: str) -> None:
        rule = _FN_ADJOINT.get(nd.data)
        if rule is not None:
            z = nd.args[0]
            self.acc(z, rule.format(a=ai, i=i, z=z))
            return
        for k, j in enumerate(nd.args):
            if (i, k) in self.deriv_nodes:
                self.acc(j, f"{ai} * v{self.deriv_nodes[(i, k)]}")

    def _adjoint_max(self, i: int, nd: Node, ai: str, cmp: str = ">=") -> None:
        x, y = nd.args
        mask = f"(_real(v{nd.data}) {cmp} 0)"
        self.acc(x, f"_where({mask}, {ai}, 0.0)")
        self.acc(y, f"_where({mask}, 0.0, {ai})")

    def _adjoint_min(self, i: int, nd: Node, ai: str) -> None:
        self._adjoint_max(i, nd, ai, cmp="<=")

    def _adjoint_abs(self, i: int, nd: Node, ai: str) -> None:
        z = nd.args[0]
        self.acc(z, f"_where(_real(v{z}) >= 0, {ai}, -{ai})")

    def _adjoint_pw(self, i: int, nd: Node, ai: str) -> None:
        for k, val in enumerate(nd.args[0::2]):
            self.acc(val, f"_where(_sel{i}_{k}, {ai}, 0.0)")
