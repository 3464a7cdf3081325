"""Exact engine: polynomial arithmetic over QQ (FLINT) on the expression DAG.

Two jobs, both exact (no floating point):

* **confirm** a candidate generator J: the directional derivative D_V ℓ of the loss along
  the linear vector field V(θ) = Jθ must vanish identically (THEORY (E4)); for piecewise
  losses also every kink argument z must satisfy D_V z = c·z, so that the flow e^{λJ}
  never crosses a kink and the identity holds branch by branch (E3);
* give the loss as an exact rational function P/Q of (θ, x) when it is one (the exact
  route of the symmetry finder).

How non-polynomial pieces are handled (all branches at once, not one by one):

* kinks: ``Max(a,b) = (a+b)/2 + s(a-b)/2`` with a *sign variable* s = sign(a-b), likewise
  ``Min``, ``Abs(z) = s z``, ``Heaviside(z) = (1+s)/2``, Piecewise conditions ``z > 0 ->
  (1+s)/2``. A sign variable is constant along the flow once the kink check passes. Zero
  tests reduce modulo s² = 1;
* atoms: a non-integer power ``b^α``, ``exp``, ``log``, ``tanh``... (or an irrational
  constant) becomes a fresh variable r; its derivative along V is expressed through the
  chain rule (``D_V b^α = α r D_V b / b``). Proving D_V ℓ ≡ 0 with r free is sufficient.

Values are evaluated lazily, so the expanded polynomial of a large loss is never formed
when the derivative already vanishes below it (``D_V (f - y)^2 = 2 (f - y) D_V f`` is zero as
soon as ``D_V f`` is, without expanding ``(f - y)^2``).
"""


from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import flint
import sympy as sp

from .._errors import UnsupportedExpressionError
from ._graph import Graph, _ancestors, _descendants

__all__ = ['Frac', 'Confirmation', 'ExactModel']



class Frac:
    """A rational function n/d of FLINT polynomials, without gcd cancellation (d None = 1)."""

    __slots__ = ("n", "d")

    def __init__(self, n: Any, d: Any = None) -> None:
        self.n = n
        self.d = d

    def is_zero(self) -> bool:
        return self.n.is_zero()

    def __add__(self, o: "Frac") -> "Frac":
        if o.n.is_zero():
            return self
        if self.n.is_zero():
            return o
        if self.d is None and o.d is None:
            return Frac(self.n + o.n)
        if self.d is None:
            return Frac(self.n * o.d + o.n, o.d)
        if o.d is None:
            return Frac(self.n + o.n * self.d, self.d)
        if self.d == o.d:
            return Frac(self.n + o.n, self.d)
        return Frac(self.n * o.d + o.n * self.d, self.d * o.d)

    def __neg__(self) -> "Frac":
        return Frac(-self.n, self.d)

    def __sub__(self, o: "Frac") -> "Frac":
        return self + (-o)

    def __mul__(self, o: "Frac") -> "Frac":
        if self.n.is_zero():
            return self
        if o.n.is_zero():
            return o
        if self.d is None:
            d = o.d
        elif o.d is None:
            d = self.d
        else:
            d = self.d * o.d
        return Frac(self.n * o.n, d)

    def scale(self, q: Any) -> "Frac":
        return Frac(self.n * q, self.d)

    def inv(self) -> "Frac":
        if self.n.is_zero():
            raise ZeroDivisionError("division by an identically zero expression")
        if self.d is None:
            return Frac(self.n.context().from_dict({(0,) * self.n.context().nvars(): 1}), self.n)
        return Frac(self.d, self.n)

    def __truediv__(self, o: "Frac") -> "Frac":
        return self * o.inv()

    def pow(self, k: int) -> "Frac":
        if k == 0:
            one = self.n.context().from_dict({(0,) * self.n.context().nvars(): 1})
            return Frac(one)
        if k < 0:
            return self.inv().pow(-k)
        return Frac(self.n**k, None if self.d is None else self.d**k)


@dataclass
class Confirmation:
    """Outcome of an exact check of a candidate generator."""

    confirmed: bool
    reason: str
    method: str = "exact polynomial arithmetic over QQ (FLINT), all kink branches at once"


def _to_fmpq(x: Any) -> Any:
    if isinstance(x, Fraction):
        return flint.fmpq(x.numerator, x.denominator)
    x = sp.Rational(x)
    return flint.fmpq(int(x.p), int(x.q))


class ExactModel:
    """Exact evaluation of one DAG root (the per-sample loss) in θ, x and helper variables."""

    def __init__(self, graph: Graph, root: int, n_theta: int, within: set[int] | None = None) -> None:
        """``within``: evaluate only these nodes (with their sign and atom variables); the
        variables of a large model are then those of the part a check touches (FLINT stores
        every monomial with a field per context variable). Values outside it raise
        UnsupportedExpressionError."""
        self.graph = graph
        self.root = root
        self.n_theta = n_theta
        nodes = graph.nodes
        reach = set(within) if within is not None else _ancestors(graph, root)
        # Close under the derivative rules of generic functions (may add nodes / atoms).
        frontier = [i for i in reach if nodes[i].op == "fn" and nodes[i].data not in ("exp", "log")]
        seen_fn: set[int] = set()
        for _ in range(4):
            new: list[int] = []
            for i in frontier:
                if i in seen_fn:
                    continue
                seen_fn.add(i)
                for k in range(len(nodes[i].args)):
                    try:
                        d = graph.fn_partial(i, k)
                    except UnsupportedExpressionError:
                        continue
                    r2 = _ancestors(graph, d)
                    reach |= r2
                    new.extend(j for j in r2 if nodes[j].op == "fn" and nodes[j].data not in ("exp", "log"))
            frontier = new
            if not frontier:
                break
        self.reach = reach
        self._within = within is not None
        names: list[str] = []
        self.var_of_input: dict[int, int] = {}
        for i in range(len(nodes)) if within is None else sorted(reach):
            nd = nodes[i]
            if nd.op == "in":
                self.var_of_input[i] = len(names)
                names.append(f"in{nd.data}")
        self.sign_var: dict[int, int] = {}
        self.atom_var: dict[Any, int] = {}
        for i in sorted(reach):
            nd = nodes[i]
            z = _kink_arg(nd)
            if z is not None and z not in self.sign_var:
                self.sign_var[z] = len(names)
                names.append(f"s{z}")
            if _is_atom(nd):
                self.atom_var[i] = len(names)
                names.append(f"r{i}")
            if nd.op == "pow" and not nd.data.is_Rational:
                # an irrational exponent (pi, sqrt(2)) enters D(b^e) = e b^e Db/b as a free
                # variable: an identity in that variable holds at its value too (sound; at
                # worst a true generator is left unconfirmed)
                self.atom_var[("exp", i)] = len(names)
                names.append(f"e{i}")
        self.names = names
        self.ctx = flint.fmpq_mpoly_ctx.get(tuple(names), "lex")
        self._gens = self.ctx.gens()
        self._zero = self.ctx.from_dict({})
        self._one = self.ctx.from_dict({(0,) * len(names): 1})
        self._val: dict[int, Frac] = {}
        self._der: dict[int, Frac] = {}
        self._dtheta: dict[int, Frac] = {}
        self._affected: set[int] = set()
        self._parents: list[list[int]] | None = None

    # ---- basic values ----------------------------------------------------------------------
    def const(self, q: Any) -> Frac:
        return Frac(self._one * _to_fmpq(q))

    def theta_var(self, i: int) -> Any:
        return self._gens[self.var_of_input[i]]

    @property
    def has_helpers(self) -> bool:
        """True when the loss needs sign or atom variables (it is not a rational function)."""
        return bool(self.sign_var or self.atom_var)

    def _s(self, z: int) -> Frac:
        return Frac(self._gens[self.sign_var[z]])

    def _indicator(self, c: int) -> Frac:
        nd = self.graph.nodes[c]
        half = flint.fmpq(1, 2)
        if nd.op == "gt0":
            return Frac((self._one + self._gens[self.sign_var[nd.args[0]]]) * half)
        if nd.op == "lt0":
            return Frac((self._one - self._gens[self.sign_var[nd.args[0]]]) * half)
        if nd.op == "true":
            return Frac(self._one)
        if nd.op == "false":
            return Frac(self._zero)
        if nd.op == "not":
            return Frac(self._one) - self._indicator(nd.args[0])
        if nd.op == "and":
            out = Frac(self._one)
            for a in nd.args:
                out = out * self._indicator(a)
            return out
        if nd.op == "or":
            out = Frac(self._one)
            for a in nd.args:
                out = out * (Frac(self._one) - self._indicator(a))
            return Frac(self._one) - out
        raise UnsupportedExpressionError(
            "equality conditions (Eq/Ne) in Piecewise cannot be confirmed exactly; rewrite them "
            "with strict inequalities"
        )

    def _branch_weights(self, i: int) -> list[Frac]:
        nd = self.graph.nodes[i]
        conds = nd.args[1::2]
        weights = []
        rest = Frac(self._one)
        for c in conds:
            ind = self._indicator(c)
            weights.append(rest * ind)
            rest = rest * (Frac(self._one) - ind)
        return weights

    def val(self, i: int) -> Frac:
        """Exact value of node i (memoized)."""
        if self._within and i not in self.reach:
            raise UnsupportedExpressionError(f"internal: node {i} is outside the part of the graph this model evaluates")
        return _postorder(self._val, i, self._val_deps, self._val_node)

    def _val_deps(self, j: int) -> list[int]:
        nd = self.graph.nodes[j]
        if j in self.atom_var or nd.op in ("in", "const"):
            return []
        if nd.op == "pw":
            return list(nd.args[0::2])
        if nd.op in ("sign", "heaviside"):
            return []
        return list(nd.args)

    def _val_node(self, j: int) -> Frac:
        nd = self.graph.nodes[j]
        op = nd.op
        if j in self.atom_var:
            return Frac(self._gens[self.atom_var[j]])
        if op == "in":
            return Frac(self._gens[self.var_of_input[j]])
        if op == "const":
            return self.const(nd.data)
        v = [self._val[a] for a in nd.args] if op != "pw" else None
        half = flint.fmpq(1, 2)
        if op == "add":
            out = v[0]
            for x in v[1:]:
                out = out + x
            return out
        if op == "sub":
            return v[0] - v[1]
        if op == "mul":
            return v[0] * v[1]
        if op == "pow":
            return v[0].pow(int(nd.data))
        if op in ("max", "min"):
            s = self._s(nd.data)
            mean = (v[0] + v[1]).scale(half)
            dev = (s * (v[0] - v[1])).scale(half)
            return mean + dev if op == "max" else mean - dev
        if op == "abs":
            return self._s(nd.args[0]) * v[0]
        if op == "sign":
            return self._s(nd.args[0])
        if op == "heaviside":
            return (Frac(self._one) + self._s(nd.args[0])).scale(half)
        if op == "pw":
            out = Frac(self._zero)
            for w, val in zip(self._branch_weights(j), nd.args[0::2]):
                out = out + w * self._val[val]
            return out
        raise UnsupportedExpressionError(f"internal: no exact value for op {op}")

    # ---- directional derivative along V(θ) = Jθ ---------------------------------------------
    def set_direction(self, J: Any) -> None:
        """Fix the linear vector field V(θ) = Jθ.

        ``J`` is rational: a dict {(i, j): value} of its nonzero entries, or a dense
        n_theta x n_theta nested sequence."""
        n = self.n_theta
        if not isinstance(J, dict):
            J = {(i, j): J[i][j] for i in range(n) for j in range(n) if J[i][j] != 0}
        acc: dict[int, Any] = {}
        for (i, j), q in J.items():
            if q != 0:
                term = self._gens[self.var_of_input[j]] * _to_fmpq(q)
                acc[i] = acc[i] + term if i in acc else term
        self._dtheta = {i: Frac(p) for i, p in acc.items()}
        self._der = {}
        # only nodes downstream of a moved parameter can have a nonzero derivative: the
        # walk below touches those alone (a candidate moves few of a large model's inputs)
        self._affected = self._downstream([i for i in acc])

    def _downstream(self, inputs: list[int]) -> set[int]:
        """Node ids that depend on the graph inputs ``inputs`` (parameter indices)."""
        nodes = self.graph.nodes
        if getattr(self, "_parents", None) is None or len(self._parents) != len(nodes):
            parents: list[list[int]] = [[] for _ in nodes]
            for j, nd in enumerate(nodes):
                for a in set(nd.args):
                    parents[a].append(j)
            self._parents = parents
            self._input_node = {nd.data: i for i, nd in enumerate(nodes) if nd.op == "in"}
        return _descendants(self._parents, {self._input_node[i] for i in inputs})

    def der(self, i: int) -> Frac:
        """D_V of node i (memoized for the current direction)."""
        return _postorder(self._der, i, self._der_deps, self._der_node)

    def _der_deps(self, j: int) -> list[int]:
        nd = self.graph.nodes[j]
        if j not in self._affected or nd.op in ("in", "const", "sign", "heaviside"):
            return []
        if nd.op == "pw":
            return [a for a in nd.args[0::2] if a in self._affected]
        return [a for a in nd.args if a in self._affected]

    def _der_node(self, j: int) -> Frac:
        nd = self.graph.nodes[j]
        op = nd.op
        zero = Frac(self._zero)
        if j not in self._affected:
            return zero
        if op == "in":
            return self._dtheta.get(nd.data, zero) if nd.data < self.n_theta else zero
        if op in ("const", "sign", "heaviside"):
            return zero
        d = [self._der[a] if a in self._affected else zero for a in nd.args] if op != "pw" else None
        half = flint.fmpq(1, 2)
        if op == "add":
            out = zero
            for x in d:
                if not x.is_zero():
                    out = out + x
            return out
        if op == "sub":
            return d[0] - d[1]
        if op == "mul":
            a, b = nd.args
            out = zero
            if not d[0].is_zero():
                out = out + d[0] * self.val(b)
            if not d[1].is_zero():
                out = out + self.val(a) * d[1]
            return out
        if op == "pow":
            if d[0].is_zero():
                return zero
            e = nd.data
            b = nd.args[0]
            if e.is_Integer:
                k = int(e)
                return (self.val(b).pow(k - 1) * d[0]).scale(flint.fmpq(k))
            # atom r = b^e: D r = e r D b / b
            if not e.is_Rational:
                return self.val(j) * d[0] / self.val(b) * Frac(self._gens[self.atom_var[("exp", j)]])
            return (self.val(j) * d[0] / self.val(b)).scale(_to_fmpq(e))
        if op in ("max", "min"):
            s = self._s(nd.data)
            mean = (d[0] + d[1]).scale(half)
            dev = (s * (d[0] - d[1])).scale(half)
            return mean + dev if op == "max" else mean - dev
        if op == "abs":
            return self._s(nd.args[0]) * d[0]
        if op == "pw":
            out = zero
            for w, val in zip(self._branch_weights(j), nd.args[0::2]):
                dv = self._der[val] if val in self._affected else zero
                if not dv.is_zero():
                    out = out + w * dv
            return out
        if op == "fn":
            if all(x.is_zero() for x in d):
                return zero
            name = nd.data
            if name == "exp":
                return self.val(j) * d[0]
            if name == "log":
                return d[0] / self.val(nd.args[0])
            out = zero
            for k, dk in enumerate(d):
                if dk.is_zero():
                    continue
                p = self.graph.fn_partial(j, k)
                out = out + self.val(p) * dk
            return out
        raise UnsupportedExpressionError(f"internal: no exact derivative for op {op}")

    # ---- zero tests ------------------------------------------------------------------------
    def reduce_signs(self, p: Any) -> Any:
        """Reduce a polynomial modulo s² = 1 for every sign variable."""
        if p.is_zero():
            return p
        degs = p.degrees()
        half = flint.fmpq(1, 2)
        for k in self.sign_var.values():
            if degs[k] >= 2:
                plus = p.subs({k: 1})
                minus = p.subs({k: -1})
                p = (plus + minus) * half + self._gens[k] * ((plus - minus) * half)
        return p

    def is_identically_zero(self, f: Frac) -> bool:
        """Zero as a function on the branches (sign variables reduced modulo s² = 1)."""
        if f.is_zero():
            return True
        p = f.n
        if not self.sign_var:
            return False
        # Quick refutation: at a random point of {-1, +1}^signs the reduced polynomial and p
        # agree; a nonzero value there proves p ≢ 0 mod (s² - 1) without the full reduction.
        rng = random.Random(len(p))
        for _ in range(3):
            vals = {k: rng.choice((-1, 1)) for k in self.sign_var.values()}
            if not p.subs(vals).is_zero():
                return False
        return self.reduce_signs(p).is_zero()

    def confirm(self, J: Any) -> Confirmation:
        """Check D_{Jθ} ℓ ≡ 0 exactly, and that the flow never crosses a kink."""
        self.set_direction(J)
        dl = self.der(self.root)
        if not self.is_identically_zero(dl):
            return Confirmation(False, "the directional derivative g(θ,x)ᵀJθ is not identically zero")
        for z in self.sign_var:
            dz = self.der(z)
            if dz.is_zero():
                continue
            vz = self.val(z)
            num = dz.n if vz.d is None else dz.n * vz.d
            if vz.n.is_constant():
                return Confirmation(False, "a kink argument is moved by the flow")
            _, rem = divmod(num, vz.n)
            if not self.reduce_signs(rem).is_zero():
                return Confirmation(
                    False,
                    "the flow e^{λJ} can cross a kink of the loss (D_V z is not a multiple of z for the "
                    f"kink argument {self.graph.nodes[z].expr})",
                )
        return Confirmation(True, "D_{Jθ}ℓ ≡ 0 and every kink argument z has D_{Jθ}z = c·z")

    def rational_value(self) -> Frac:
        """The loss as an exact rational function (only when :attr:`has_helpers` is False)."""
        if self.has_helpers:
            raise UnsupportedExpressionError("the loss is not a rational function of its symbols")
        return self.val(self.root)


def _kink_arg(nd: Any) -> int | None:
    if nd.op in ("max", "min"):
        return nd.data
    if nd.op in ("abs", "sign", "heaviside", "gt0", "lt0", "eq0", "ne0"):
        return nd.args[0]
    return None


def _is_atom(nd: Any) -> bool:
    if nd.op == "fn":
        return True
    if nd.op == "pow":
        return not nd.data.is_Integer
    if nd.op == "const":
        return not nd.data.is_Rational
    return False


def _postorder(memo: dict[int, Frac], i: int, deps: Any, node: Any) -> Frac:
    """``memo[i]``, computing missing dependencies first by an iterative post-order walk
    (graphs of big expressions are deeper than Python's recursion limit)."""
    if i in memo:
        return memo[i]
    stack = [i]
    while stack:
        j = stack[-1]
        if j in memo:
            stack.pop()
            continue
        todo = [a for a in deps(j) if a not in memo]
        if todo:
            stack.extend(todo)
            continue
        memo[j] = node(j)
        stack.pop()
    return memo[i]
