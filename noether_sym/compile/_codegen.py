"""codegen: split from noether_sym._graph (docstring to write)."""


from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from .._errors import UnsupportedExpressionError
from ._graph import Graph, _ancestors, _depends_on

__all__ = ['CompiledFunction', 'compile_graph']



# ------------------------------------------------------------------------------------------
# Code generation
# ------------------------------------------------------------------------------------------


class CompiledFunction:
    """Generated NumPy code: ``f(*inputs) -> outputs`` (see :func:`compile_graph`)."""

    def __init__(self, source: str, namespace: dict, name: str) -> None:
        self.source = source
        code = compile(source, f"<noether_sym:{name}>", "exec")
        exec(code, namespace)  # noqa: S102 - executes code generated here, never user text
        self._f = namespace[name]

    def __call__(self, *inputs: Any) -> Any:
        return self._f(*inputs)


def _fmt_const(value: Any) -> str:
    v = float(value)
    return repr(v)


def compile_graph(
    graph: Graph,
    outputs: Sequence[int],
    *,
    grad_of: int | None = None,
    wrt: Sequence[int] = (),
    kinks: bool = False,
    name: str = "_f",
) -> CompiledFunction:
    """Write NumPy code for the given output nodes.

    The function takes one argument per graph input (arrays that broadcast together) and
    returns a tuple: the outputs (broadcast to the common shape), then, if ``grad_of`` is
    given, the gradient of that node with respect to the inputs ``wrt`` (a list of arrays),
    then, if ``kinks``, the list of kink arguments (real parts).
    """
    nodes = graph.nodes
    # Nodes needed for the forward pass.
    needed: set[int] = set()
    roots = list(outputs) + ([grad_of] if grad_of is not None else []) + (list(graph.kinks) if kinks else [])

    # Reverse pass: find nodes on a path wrt -> grad_of and add derivative helper nodes.
    rev_order: list[int] = []
    deriv_nodes: dict[tuple[int, int], int] = {}
    if grad_of is not None:
        depends = _depends_on(graph, set(wrt))
        anc = _ancestors(graph, grad_of)
        active = [i for i in sorted(anc) if i in depends]
        for i in active:
            nd = nodes[i]
            if nd.op == "fn" and nd.data not in ("exp", "log", "sin", "cos", "tanh", "sinh", "cosh"):
                for k, a in enumerate(nd.args):
                    if a in depends:
                        deriv_nodes[(i, k)] = graph.fn_partial(i, k)
        rev_order = sorted(active, reverse=True)
        roots += list(deriv_nodes.values())
        roots += active
    for r in roots:
        needed |= _ancestors(graph, r)

    lines = [f"def {name}(*_I):"]
    lines.append("    _shape = _np.broadcast_shapes(*[_np.shape(_a) for _a in _I])")
    ns: dict[str, Any] = {"_np": np, "_where": np.where, "_real": np.real}
    for i in sorted(needed):
        nd = nodes[i]
        v = f"v{i}"
        a = [f"v{j}" for j in nd.args]
        op = nd.op
        if op == "in":
            rhs = f"_I[{nd.data}]"
        elif op == "const":
            rhs = _fmt_const(nd.data)
        elif op == "add":
            rhs = " + ".join(a)
        elif op == "sub":
            rhs = f"{a[0]} - {a[1]}"
        elif op == "mul":
            rhs = f"{a[0]} * {a[1]}"
        elif op == "pow":
            ex = nd.data
            if ex == 1:
                rhs = a[0]
            elif ex == 2:
                rhs = f"{a[0]} * {a[0]}"
            elif ex == -1:
                rhs = f"1.0 / {a[0]}"
            elif ex == sp.Rational(1, 2):
                rhs = f"_np.sqrt({a[0]})"
            elif ex.is_Integer:
                rhs = f"{a[0]} ** {int(ex)}"
            else:
                rhs = f"{a[0]} ** {float(ex)!r}"
        elif op == "fn":
            fname = graph.numeric_fn(nd.data, nd.expr)
            if fname.startswith("_fn_"):
                ns[fname] = graph._fn_cache[type(nd.expr)]
            rhs = f"{fname}({', '.join(a)})"
        elif op == "max":
            rhs = f"_where(_real(v{nd.data}) >= 0, {a[0]}, {a[1]})"
        elif op == "min":
            rhs = f"_where(_real(v{nd.data}) <= 0, {a[0]}, {a[1]})"
        elif op == "abs":
            rhs = f"_where(_real({a[0]}) >= 0, {a[0]}, -{a[0]})"
        elif op == "sign":
            rhs = f"_np.sign(_real({a[0]}))"
        elif op == "heaviside":
            rhs = f"_where(_real({a[0]}) > 0, 1.0, _where(_real({a[0]}) < 0, 0.0, {nd.data!r}))"
        elif op == "gt0":
            rhs = f"_real({a[0]}) > 0"
        elif op == "lt0":
            rhs = f"_real({a[0]}) < 0"
        elif op == "eq0":
            rhs = f"_real({a[0]}) == 0"
        elif op == "ne0":
            rhs = f"_real({a[0]}) != 0"
        elif op == "true":
            rhs = "True"
        elif op == "false":
            rhs = "False"
        elif op == "and":
            rhs = " & ".join(f"({x})" for x in a)
        elif op == "or":
            rhs = " | ".join(f"({x})" for x in a)
        elif op == "not":
            rhs = f"~_np.asarray({a[0]})"
        elif op == "pw":
            vals, conds = a[0::2], a[1::2]
            # branch k is taken where cond_k holds and no earlier condition does
            lines.append(f"    _taken{i} = _np.zeros(_shape, dtype=bool)")
            for k, cond in enumerate(conds):
                lines.append(f"    _sel{i}_{k} = _np.broadcast_to({cond}, _shape) & ~_taken{i}")
                lines.append(f"    _taken{i} = _taken{i} | _sel{i}_{k}")
            rhs = "_np.nan"
            for k in reversed(range(len(vals))):
                rhs = f"_where(_sel{i}_{k}, {vals[k]}, {rhs})"
        else:  # pragma: no cover - every op built above is handled
            raise UnsupportedExpressionError(f"internal: no code for op {op}")
        lines.append(f"    {v} = {rhs}")

    outs = [f"_np.broadcast_to(v{o}, _shape)" for o in outputs]
    ret = [f"({', '.join(outs)}{',' if len(outs) == 1 else ''})"]

    if grad_of is not None:
        adj_init: set[int] = set()

        def acc(target: int, contrib: str) -> None:
            if target not in depends:
                return
            if target in adj_init:
                lines.append(f"    a{target} = a{target} + {contrib}")
            else:
                lines.append(f"    a{target} = {contrib}")
                adj_init.add(target)

        lines.append(f"    a{grad_of} = 1.0")
        adj_init.add(grad_of)
        for i in rev_order:
            if i not in adj_init:
                continue
            nd = nodes[i]
            ai = f"a{i}"
            op = nd.op
            args = nd.args
            if op == "add":
                for j in args:
                    acc(j, ai)
            elif op == "sub":
                acc(args[0], ai)
                acc(args[1], f"(-{ai})")
            elif op == "mul":
                x, y = args
                if x == y:
                    acc(x, f"2.0 * {ai} * v{x}")
                else:
                    acc(x, f"{ai} * v{y}")
                    acc(y, f"{ai} * v{x}")
            elif op == "pow":
                ex = nd.data
                b = args[0]
                if ex == 2:
                    acc(b, f"2.0 * {ai} * v{b}")
                elif ex == 1:
                    acc(b, ai)
                elif ex == -1:
                    acc(b, f"(-{ai}) * v{i} * v{i}")
                elif ex.is_Integer:
                    acc(b, f"{float(ex)!r} * {ai} * v{b} ** {int(ex) - 1}")
                else:
                    acc(b, f"{float(ex)!r} * {ai} * v{i} / v{b}")
            elif op == "fn":
                fname = nd.data
                z = args[0] if args else None
                if fname == "exp":
                    acc(z, f"{ai} * v{i}")
                elif fname == "log":
                    acc(z, f"{ai} / v{z}")
                elif fname == "sin":
                    acc(z, f"{ai} * _np.cos(v{z})")
                elif fname == "cos":
                    acc(z, f"(-{ai}) * _np.sin(v{z})")
                elif fname == "tanh":
                    acc(z, f"{ai} * (1.0 - v{i} * v{i})")
                elif fname == "sinh":
                    acc(z, f"{ai} * _np.cosh(v{z})")
                elif fname == "cosh":
                    acc(z, f"{ai} * _np.sinh(v{z})")
                else:
                    for k, j in enumerate(args):
                        if (i, k) in deriv_nodes:
                            acc(j, f"{ai} * v{deriv_nodes[(i, k)]}")
            elif op in ("max", "min"):
                x, y = args
                cmp = ">=" if op == "max" else "<="
                mask = f"(_real(v{nd.data}) {cmp} 0)"
                acc(x, f"_where({mask}, {ai}, 0.0)")
                acc(y, f"_where({mask}, 0.0, {ai})")
            elif op == "abs":
                z = args[0]
                acc(z, f"_where(_real(v{z}) >= 0, {ai}, -{ai})")
            elif op in ("sign", "heaviside"):
                pass  # derivative zero away from the kink
            elif op == "pw":
                for k, val in enumerate(args[0::2]):
                    acc(val, f"_where(_sel{i}_{k}, {ai}, 0.0)")
            elif op in ("in", "const"):
                pass
        grads = []
        for w in wrt:
            grads.append(f"_np.broadcast_to(a{w}, _shape)" if w in adj_init else "_np.zeros(_shape)")
        ret.append(f"[{', '.join(grads)}]")
    if kinks:
        ret.append(f"[{', '.join(f'_real(_np.broadcast_to(v{k}, _shape))' for k in graph.kinks)}]")
    lines.append(f"    return ({', '.join(ret)},)")
    source = "\n".join(lines) + "\n"
    return CompiledFunction(source, ns, name)
