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

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import sympy as sp
from sympy.core.relational import Relational

from .._errors import UnsupportedExpressionError

__all__ = ['Node', 'Graph']


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
            if _constant_exponent(ex):
                return [b]
            return [_exp_log(b, ex)]
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
            if _constant_exponent(ex):
                if ex.is_real is False or ex.has(sp.zoo, sp.oo, sp.nan):
                    raise UnsupportedExpressionError(f"complex or infinite exponent in {sp.sstr(e)[:60]}")
                self._new(Node("pow", (m[b],), sp.nsimplify(ex) if ex.is_Float else ex, e), key=e)
            else:
                m[e] = m[_exp_log(b, ex)]
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
            # the exception's own text is not used: some of SymPy's cannot print themselves
            raise UnsupportedExpressionError(
                f"SymPy knows no derivative of {type(e).__name__} in argument {i + 1} ({type(exc).__name__})"
            ) from None
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
            generic = cls(*dummies)
            try:
                fn = sp.lambdify(dummies, generic, modules=["numpy", "scipy"])
                unknown = [n for n in fn.__code__.co_names if n not in fn.__globals__ and not hasattr(builtins, n)]
            except Exception:  # noqa: BLE001 - any printer failure means no NumPy code for it
                unknown = [name]
            if unknown:
                raise UnsupportedExpressionError(
                    f"no NumPy/SciPy implementation of {name} is known, so the loss cannot be evaluated numerically: "
                    "rewrite it with elementary functions (exp, log, powers, Max/Abs/Heaviside/Piecewise)"
                )
            self._fn_cache[cls] = fn
        # the generated code names the callable by position, never by the (user-definable)
        # class name, so nothing from the user's objects is written into the source
        return f"_fn_{list(self._fn_cache).index(cls)}"


def _constant_exponent(ex: Any) -> bool:
    """True for a numeric exponent, exact or symbolic (``3``, ``1/2``, ``pi``, ``sqrt(2)``, ``E``)."""
    return bool(ex.is_Number or (not ex.free_symbols and ex.is_real))


def _exp_log(b: Any, ex: Any) -> Any:
    """``exp(ex * log(b))`` for a power with a variable exponent, built unevaluated.

    SymPy folds ``exp(ex*log(b))`` straight back into ``b**ex``, so an evaluated rewrite
    would give the graph builder the power it started from, for ever; the unevaluated
    product and exponential keep the rewrite.
    """
    return sp.exp(sp.Mul(ex, sp.log(b), evaluate=False), evaluate=False)


def _descendants(parents: list[list[int]], start: Any) -> set[int]:
    """Node ids reachable from ``start`` along ``parents`` (node -> the nodes that use it):
    the nodes whose value depends on a node of ``start``, ``start`` included."""
    seen = set(start)
    stack = list(seen)
    while stack:
        for q in parents[stack.pop()]:
            if q not in seen:
                seen.add(q)
                stack.append(q)
    return seen


def _ancestors(graph: Graph, root: int | Sequence[int]) -> set[int]:
    """Node ids reachable from ``root`` (one id or several), kink arguments included."""
    seen: set[int] = set()
    stack = list(root) if isinstance(root, (list, tuple, set, frozenset)) else [root]
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

