"""Compile: SymPy expressions -> a shared DAG -> NumPy code for values, gradients and kinks.

Why not ``sympy.diff`` + ``lambdify``: for a 261-parameter ReLU network ``diff`` takes over
a minute and ``lambdify(cse=True)`` of the 261 gradients half a minute more. Here the
expression is turned once into a DAG whose nodes are shared sub-expressions (common
sub-expression elimination by structural hashing, exactly what ``cse`` finds), and
reverse-mode differentiation writes the gradient code in time linear in the DAG.

The generated code is complex-step safe: every comparison (kinks of ``Max``, ``Abs``,
``Heaviside``, ``Piecewise`` conditions) looks at real parts only, so evaluating the
gradient at ``θ + i h v`` gives the Hessian-vector product ``H v = Im(g)/h`` to machine
precision. Kink arguments (``a - b`` of ``Max(a, b)``, ``z`` of ``Abs(z)``, ``lhs - rhs`` of a
condition) are recorded so that callers can keep sample points away from kinks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import sympy as sp
from sympy.core.relational import Relational

from ._errors import UnsupportedExpressionError

__all__ = ["Graph", "Node", "CompiledFunction", "compile_graph"]

_REL_GT = (sp.StrictGreaterThan, sp.GreaterThan)
_REL_LT = (sp.StrictLessThan, sp.LessThan)

# Functions with a hand-written derivative rule (node, arg-values) -> code string.
_FN_NUMPY = {
    "exp": "_np.exp",
    "log": "_np.log",
    "sin": "_np.sin",
    "cos": "_np.cos",
    "tan": "_np.tan",
    "sinh": "_np.sinh",
    "cosh": "_np.cosh",
    "tanh": "_np.tanh",
    "asin": "_np.arcsin",
    "acos": "_np.arccos",
    "atan": "_np.arctan",
}


@dataclass
class Node:
    """One DAG node: ``op`` with argument node ids ``args`` and op-specific ``data``."""

    op: str
    args: tuple[int, ...] = ()
    data: Any = None
    expr: Any = None  # the SymPy expression it computes (None for boolean helpers)


@dataclass
class Graph:
    """A DAG of SymPy expressions over fixed input symbols (shared sub-expressions)."""

    inputs: tuple[sp.Symbol, ...]
    nodes: list[Node] = field(default_factory=list)
    memo: dict[Any, int] = field(default_factory=dict)
    kinks: list[int] = field(default_factory=list)  # node ids whose value is a kink argument
    _fn_cache: dict[Any, Callable] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, s in enumerate(self.inputs):
            self._new(Node("in", (), i, s), key=s)

    # ---- building ----------------------------------------------------------------------
    def _new(self, node: Node, key: Any = None) -> int:
        self.nodes.append(node)
        nid = len(self.nodes) - 1
        if key is not None:
            self.memo[key] = nid
        return nid

    def const(self, value: Any) -> int:
        value = sp.sympify(value)
        key = ("const", value)
        if key in self.memo:
            return self.memo[key]
        return self._new(Node("const", (), value, value), key=key)

    def add(self, expr: Any) -> int:
        """Add a SymPy expression (iteratively, sharing existing nodes); return its node id."""
        expr = sp.sympify(expr)
        if expr in self.memo:
            return self.memo[expr]
        stack = [(expr, False)]
        while stack:
            e, expanded = stack.pop()
            if e in self.memo:
                continue
            children = self._children(e)
            if not expanded:
                stack.append((e, True))
                for c in children:
                    if c not in self.memo:
                        stack.append((c, False))
            else:
                self._build(e)
        return self.memo[expr]

    def _children(self, e: Any) -> list:
        if isinstance(e, sp.Symbol) or e.is_Number or isinstance(e, sp.NumberSymbol):
            return []
        if isinstance(e, sp.Pow):
            b, ex = e.args
            if ex.is_Number:
                return [b]
            return [sp.exp(ex * sp.log(b))]
        if isinstance(e, sp.Piecewise):
            out = []
            for val, cond in e.args:
                out.append(val)
                out.extend(self._cond_children(cond))
            return out
        if isinstance(e, (sp.Heaviside,)):
            return [e.args[0]]
        return list(e.args)

    def _cond_children(self, cond: Any) -> list:
        if cond in (sp.true, sp.false) or isinstance(cond, bool):
            return []
        if isinstance(cond, Relational):
            return [sp.sympify(cond.lhs - cond.rhs)]
        if isinstance(cond, (sp.And, sp.Or, sp.Not)):
            return [c for a in cond.args for c in self._cond_children(a)]
        raise UnsupportedExpressionError(f"unsupported condition in Piecewise: {cond}")

    def _build(self, e: Any) -> None:
        m = self.memo
        if isinstance(e, sp.Symbol):
            raise UnsupportedExpressionError(
                f"symbol {e} is not an input of this expression (inputs: {', '.join(map(str, self.inputs))})"
            )
        if e.is_Number or isinstance(e, sp.NumberSymbol):
            if e.is_real is False or e.has(sp.zoo, sp.oo, sp.nan):
                raise UnsupportedExpressionError(f"the expression contains the non-real number {e}")
            m[e] = self.const(e)
            return
        if isinstance(e, sp.Add):
            self._new(Node("add", tuple(m[a] for a in e.args), None, e), key=e)
            return
        if isinstance(e, sp.Mul):
            args = list(e.args)
            cur = m[args[0]]
            for k, a in enumerate(args[1:], start=2):
                part = sp.Mul(*args[:k], evaluate=False) if k < len(args) else e
                nid = self._new(Node("mul", (cur, m[a]), None, part))
                cur = nid
            m[e] = cur
            return
        if isinstance(e, sp.Pow):
            b, ex = e.args
            if ex.is_Number:
                if ex.is_real is False:
                    raise UnsupportedExpressionError(f"complex exponent in {e}")
                self._new(Node("pow", (m[b],), sp.nsimplify(ex) if ex.is_Float else ex, e), key=e)
            else:
                m[e] = m[sp.exp(ex * sp.log(b))]
            return
        if isinstance(e, (sp.Max, sp.Min)):
            op = "max" if isinstance(e, sp.Max) else "min"
            args = list(e.args)
            cur = m[args[0]]
            for a in args[1:]:
                diff = self._new(Node("sub", (cur, m[a]), None, None))
                self.kinks.append(diff)
                cur = self._new(Node(op, (cur, m[a]), diff, None))
            self.nodes[cur].expr = e
            m[e] = cur
            return
        if isinstance(e, sp.Abs) or isinstance(e, sp.sign):
            z = m[e.args[0]]
            self.kinks.append(z)
            self._new(Node("abs" if isinstance(e, sp.Abs) else "sign", (z,), None, e), key=e)
            return
        if isinstance(e, sp.Heaviside):
            z = m[e.args[0]]
            h0 = e.args[1] if len(e.args) > 1 else sp.Rational(1, 2)
            self.kinks.append(z)
            self._new(Node("heaviside", (z,), float(h0), e), key=e)
            return
        if isinstance(e, sp.Piecewise):
            args = []
            for val, cond in e.args:
                args.append(m[val])
                args.append(self._cond(cond))
            self._new(Node("pw", tuple(args), None, e), key=e)
            return
        if isinstance(e, sp.Function) and not isinstance(e, sp.core.function.AppliedUndef):
            name = type(e).__name__
            self._new(Node("fn", tuple(m[a] for a in e.args), name, e), key=e)
            return
        raise UnsupportedExpressionError(
            f"cannot compile {type(e).__name__} ({sp.sstr(e)[:60]}); supported: arithmetic, powers, "
            "elementary functions, Max/Min/Abs/sign/Heaviside/Piecewise"
        )

    def _cond(self, cond: Any) -> int:
        """Boolean helper nodes for Piecewise conditions (real parts compared)."""
        if cond is sp.true or cond is True:
            return self._new(Node("true"))
        if cond is sp.false or cond is False:
            return self._new(Node("false"))
        if isinstance(cond, Relational):
            z = self.memo[sp.sympify(cond.lhs - cond.rhs)]
            if isinstance(cond, _REL_GT):
                self.kinks.append(z)
                return self._new(Node("gt0", (z,)))
            if isinstance(cond, _REL_LT):
                self.kinks.append(z)
                return self._new(Node("lt0", (z,)))
            if isinstance(cond, sp.Eq):
                return self._new(Node("eq0", (z,)))
            if isinstance(cond, sp.Ne):
                return self._new(Node("ne0", (z,)))
        if isinstance(cond, sp.And):
            return self._new(Node("and", tuple(self._cond(a) for a in cond.args)))
        if isinstance(cond, sp.Or):
            return self._new(Node("or", tuple(self._cond(a) for a in cond.args)))
        if isinstance(cond, sp.Not):
            return self._new(Node("not", (self._cond(cond.args[0]),)))
        raise UnsupportedExpressionError(f"unsupported condition in Piecewise: {cond}")

    # ---- derivative rules (as new nodes) -------------------------------------------------
    def fn_partial(self, nid: int, i: int) -> int:
        """Node id of ∂F/∂(arg i) for an 'fn' node F(args): built from SymPy's fdiff."""
        node = self.nodes[nid]
        e = node.expr
        key = ("fdiff", nid, i)
        if key in self.memo:
            return self.memo[key]
        try:
            d = e.fdiff(i + 1)
        except Exception as exc:  # noqa: BLE001 - sympy raises various errors here
            raise UnsupportedExpressionError(f"SymPy knows no derivative of {type(e).__name__}: {exc}") from None
        if d.has(sp.Derivative, sp.Subs):
            raise UnsupportedExpressionError(f"SymPy knows no closed-form derivative of {type(e).__name__}")
        d_id = self.add(d)
        self.memo[key] = d_id
        return d_id

    def numeric_fn(self, name: str, expr: Any) -> str:
        """Name (in the generated namespace) of a NumPy callable for function ``name``."""
        if name in _FN_NUMPY:
            return _FN_NUMPY[name]
        cls = type(expr)
        if cls not in self._fn_cache:
            dummies = sp.symbols(f"_a0:{len(expr.args)}")
            self._fn_cache[cls] = sp.lambdify(dummies, cls(*dummies), modules=["numpy", "scipy"])
        # the generated code names the callable by position, never by the (user-definable)
        # class name, so nothing from the user's objects is written into the source
        return f"_fn_{list(self._fn_cache).index(cls)}"


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


def _ancestors(graph: Graph, root: int) -> set[int]:
    seen: set[int] = set()
    stack = [root]
    nodes = graph.nodes
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        nd = nodes[i]
        stack.extend(nd.args)
        if nd.op in ("max", "min"):
            stack.append(nd.data)
    return seen


def _depends_on(graph: Graph, sources: set[int]) -> set[int]:
    dep = set(sources)
    for i, nd in enumerate(graph.nodes):
        if i in dep:
            continue
        if any(a in dep for a in nd.args):
            dep.add(i)
    return dep

