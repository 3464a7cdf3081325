"""Parse: text -> SymPy expression through a whitelist (never ``eval``).

The text is parsed by Python's ``ast`` module into a syntax tree, and the tree is walked
node by node; only these constructs are accepted and turned into SymPy objects directly:

* names (identifiers that do not start with an underscore) -> symbols;
* integer and decimal literals, kept exact from their text (``0.1`` is 1/10, ``1e-400`` is
  10^-400, a 30-digit decimal keeps its 30 digits), of at most 40 characters and with a
  decimal exponent of at most :data:`MAX_DECIMAL_EXPONENT`;
* ``+ - * / **`` (``^`` is read as a power), unary ``+ -``, parentheses;
* calls of the whitelisted functions in :data:`FUNCTIONS`, positional arguments only;
* the constants ``pi`` and ``E``.

Everything else (attribute access, subscripts, lambdas, comprehensions, strings, keyword
arguments, comparisons, imports...) raises :class:`~noether_sym.ParseError` naming the
construct.

Resource bounds
---------------
Parsing never computes without bound. A power of two numbers is computed only when its
estimated size (``|exponent| * bits(base)``) is at most :data:`MAX_INTEGER_BITS` bits, so
``9**9**9**9`` or ``((((9**64)**64)**64)**64)**64`` is refused at once; a number literal's
decimal exponent is bounded (``1e1000000000`` is refused before 10^(10^9) is built); and a
power of an expression may have a numeric exponent of magnitude at most :data:`MAX_EXPONENT`
after SymPy combines nested powers (``((u+w)**60)**60`` is ``(u+w)**3600``, refused: its
expansion would have millions of terms). Each refusal is a :class:`~noether_sym.ParseError`
naming the bound; the bounds are module attributes (``noether_sym.loss._parse.MAX_EXPONENT``)
that a caller who really needs more may raise.
"""


from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Callable

import sympy as sp

from .._errors import ParseError

__all__ = ['parse_expression']


MAX_LENGTH = 20_000
MAX_DEPTH = 200
MAX_LITERAL = 40
#: largest |exponent| of a power of an expression (after nested powers are combined)
MAX_EXPONENT = 64
#: largest size, in bits, of a number the parser computes (a power of numbers, a literal)
MAX_INTEGER_BITS = 10_000
#: largest |e| of a literal written with an exponent (``1.5e300``)
MAX_DECIMAL_EXPONENT = 1_000

FUNCTIONS: dict[str, tuple[int, Callable[..., sp.Expr]]] = {
    "exp": (1, sp.exp),
    "log": (1, sp.log),
    "sqrt": (1, sp.sqrt),
    "sin": (1, sp.sin),
    "cos": (1, sp.cos),
    "tan": (1, sp.tan),
    "tanh": (1, sp.tanh),
    "sinh": (1, sp.sinh),
    "cosh": (1, sp.cosh),
    "atan": (1, sp.atan),
    "atan2": (2, sp.atan2),
    "cbrt": (1, sp.cbrt),
    "erf": (1, sp.erf),
    "abs": (1, sp.Abs),
    "Abs": (1, sp.Abs),
    "sign": (1, sp.sign),
    "Heaviside": (1, sp.Heaviside),
    "relu": (1, lambda z: sp.Max(0, z)),
    "sigmoid": (1, lambda z: 1 / (1 + sp.exp(-z))),
    "softplus": (1, lambda z: sp.log(1 + sp.exp(z))),
    "max": (-2, sp.Max),
    "Max": (-2, sp.Max),
    "min": (-2, sp.Min),
    "Min": (-2, sp.Min),
}
CONSTANTS = {"pi": sp.pi, "E": sp.E}

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def parse_expression(text: str, names: Mapping[str, sp.Symbol] | Iterable[str] | None = None) -> sp.Expr:
    """Parse ``text`` into a SymPy expression using only whitelisted constructs.

    Parameters
    ----------
    text
        The expression, e.g. ``"(u*w*x - y)^2"``.
    names
        Optional mapping from names to the symbols to use (or an iterable of allowed names).
        Names not in the mapping become plain ``sympy.Symbol``s; when an iterable of names
        is given, any other name is an error.

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.parse_expression("(u*w*x - y)^2 + 0.5*relu(u)")
    (u*w*x - y)**2 + Max(0, u)/2
    >>> ns.parse_expression("__import__('os')")
    Traceback (most recent call last):
    ...
    noether_sym._errors.ParseError: names starting with an underscore are not allowed: '__import__'
    """
    if not isinstance(text, str):
        raise ParseError(f"expected the expression as text; got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"expression too long ({len(text)} characters; the limit is {MAX_LENGTH})")
    if not text.strip():
        raise ParseError("the expression is empty")
    table: dict[str, sp.Symbol] | None
    allowed: set[str] | None = None
    if names is None:
        table = {}
    elif isinstance(names, Mapping):
        table = dict(names)
    else:
        allowed = set(names)
        table = {}
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ParseError(f"syntax error in expression at column {exc.offset}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ParseError("expression is nested too deeply or contains invalid characters") from None
    try:
        expr = _Walker(table, allowed, text.replace("^", "**")).visit(tree.body, 0)
    except RecursionError:
        raise ParseError("expression is nested too deeply for SymPy to build") from None
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise ParseError(f"the expression evaluates to a non-finite number ({sp.sstr(expr)[:60]})")
    return expr


class _Walker:
    def __init__(self, table: dict[str, sp.Symbol], allowed: set[str] | None, source: str) -> None:
        self.table = table
        self.allowed = allowed
        self.source = source

    def visit(self, node: ast.AST, depth: int) -> sp.Expr:
        if depth > MAX_DEPTH:
            raise ParseError(f"expression nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.BinOp):
            a = self.visit(node.left, depth + 1)
            b = self.visit(node.right, depth + 1)
            if isinstance(node.op, ast.Pow):
                return _safe_pow(a, b)
            if isinstance(node.op, ast.Div) and b.is_zero:
                raise ParseError("division by zero in the expression")
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise ParseError(f"operator {type(node.op).__name__} is not allowed; use + - * / ** only")
            return op(a, b)
        if isinstance(node, ast.UnaryOp):
            v = self.visit(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.UAdd):
                return v
            raise ParseError(f"unary operator {type(node.op).__name__} is not allowed")
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ParseError(f"literal {v!r} is not allowed; only numbers")
            src = ast.get_source_segment(self.source, node) or ast.unparse(node)
            return _literal(src, v)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise ParseError(
                    "only calls of whitelisted functions by name are allowed (no attribute or computed calls)"
                )
            fname = node.func.id
            if fname.startswith("_"):
                raise ParseError(f"names starting with an underscore are not allowed: {fname!r}")
            if fname not in FUNCTIONS:
                raise ParseError(f"function {fname!r} is not allowed; allowed: {', '.join(sorted(FUNCTIONS))}")
            if node.keywords:
                raise ParseError(f"keyword arguments are not allowed (in the call of {fname})")
            if any(isinstance(a, ast.Starred) for a in node.args):
                raise ParseError("starred arguments are not allowed")
            arity, fn = FUNCTIONS[fname]
            args = [self.visit(a, depth + 1) for a in node.args]
            if arity >= 0 and len(args) != arity:
                raise ParseError(f"{fname} takes {arity} argument(s), got {len(args)}")
            if arity < 0 and len(args) < -arity:
                raise ParseError(f"{fname} takes at least {-arity} arguments, got {len(args)}")
            return fn(*args)
        kinds = {
            ast.Attribute: "attribute access",
            ast.Subscript: "subscripts",
            ast.Lambda: "lambdas",
            ast.ListComp: "comprehensions",
            ast.GeneratorExp: "comprehensions",
            ast.Compare: "comparisons",
            ast.BoolOp: "boolean operators",
            ast.IfExp: "conditional expressions",
            ast.NamedExpr: "assignment expressions",
            ast.JoinedStr: "strings",
        }
        what = kinds.get(type(node), type(node).__name__)
        raise ParseError(f"{what} are not allowed in an expression")

    def name(self, ident: str) -> sp.Expr:
        if ident.startswith("_"):
            raise ParseError(f"names starting with an underscore are not allowed: {ident!r}")
        if ident in FUNCTIONS:
            raise ParseError(f"{ident!r} is a function; call it with arguments, e.g. {ident}(z)")
        if ident in self.table:
            return self.table[ident]
        if ident in CONSTANTS:
            return CONSTANTS[ident]
        if self.allowed is not None and ident not in self.allowed:
            raise ParseError(f"unknown name {ident!r}; known names: {', '.join(sorted(self.allowed))}")
        sym = sp.Symbol(ident)
        self.table[ident] = sym
        return sym


def _literal(src: str, value: int | float) -> sp.Number:
    """The exact number a literal's text denotes (never rounded through a float)."""
    if len(src) > MAX_LITERAL:
        raise ParseError(f"numeric literal longer than {MAX_LITERAL} characters")
    if isinstance(value, complex):
        raise ParseError(f"imaginary literal {src!r} is not allowed; losses are real")
    text = src.replace("_", "").lower()
    if isinstance(value, int):
        if value.bit_length() > MAX_INTEGER_BITS:
            raise ParseError(f"integer literal has more than {MAX_INTEGER_BITS} bits (the parser's MAX_INTEGER_BITS)")
        return sp.Integer(value)
    mantissa, _, exponent = text.partition("e")
    if exponent and abs(int(exponent)) > MAX_DECIMAL_EXPONENT:
        raise ParseError(
            f"literal {src!r}: decimal exponent beyond ±{MAX_DECIMAL_EXPONENT} (the parser's MAX_DECIMAL_EXPONENT); "
            "write the number as a smaller literal times a power"
        )
    return sp.Rational(mantissa) * sp.Integer(10) ** int(exponent or 0)


def _bits(q: sp.Rational) -> int:
    return max(int(q.p).bit_length(), int(q.q).bit_length(), 1)


def _safe_pow(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """``a**b`` after checking that its size is within the parser's budgets."""
    if b.is_Number and not b.is_finite:
        raise ParseError(f"exponent {b} is not a finite number")
    if a.is_Rational and b.is_Rational:
        # exact power of numbers: the result has about |b| * bits(a) bits (for b = p/q, SymPy
        # computes the p-th power of an integer root, |p/q| * bits(a) bits as well)
        size = abs(b) * _bits(a) if a not in (0, 1, -1) else 1
        if size > MAX_INTEGER_BITS:
            raise ParseError(
                f"the power {sp.sstr(a)[:30]}**{sp.sstr(b)[:30]} is too large: it would have about {float(size):.3g} bits; the parser's "
                f"limit is MAX_INTEGER_BITS = {MAX_INTEGER_BITS} (raise noether_sym.loss._parse.MAX_INTEGER_BITS "
                "if you really need such a number)"
            )
        if a == 0 and b.is_negative:
            raise ParseError("division by zero: 0 raised to a negative power")
    elif b.is_Number and abs(b) > MAX_EXPONENT:
        raise ParseError(f"exponent {b} is too large (the parser's limit MAX_EXPONENT is {MAX_EXPONENT})")
    out = a**b
    if isinstance(out, sp.Pow) and out.exp.is_Number and not out.base.is_Number and abs(out.exp) > MAX_EXPONENT:
        raise ParseError(
            f"nested powers combine to exponent {out.exp}, over the parser's limit MAX_EXPONENT = {MAX_EXPONENT}"
        )
    if out.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise ParseError(f"the expression {sp.sstr(a)[:40]}**{sp.sstr(b)[:40]} is not a finite number")
    if out.is_number and out.is_real is False:
        raise ParseError(
            f"({sp.sstr(a)[:40]})**({sp.sstr(b)[:40]}) is not real (SymPy takes the principal root of a negative "
            "number); write the real root explicitly, e.g. -(8**(1/3)) for the cube root of -8"
        )
    return out
