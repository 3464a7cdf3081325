"""Foundation: LaTeX printing helpers shared by every stage that renders a result.

Results render their own LaTeX (``Symmetries`` in ``symmetry``, equilibria and drift laws in
``theory``), and ``report._latex`` assembles documents; all of them print expressions,
numbers and names the same way through this module, which is why it sits in the
foundation layer rather than in ``report``: lower stages may import it.

* :class:`NoetherLatexPrinter` -- SymPy's ``LatexPrinter`` with one override per node type
  (``_print_Symbol``, ``_print_RandomSymbol``): layer-indexed parameter names
  (``W1_0_2`` -> ``W^{(1)}_{0 2}``), user-chosen names (``symbol_names``), data symbols
  printed without the CLI's ``_rv`` suffix.
* ``_latex`` / ``_rhs`` -- an expression as LaTeX; ``_rhs`` breaks a long sum into
  ``align*`` continuation rows of at most :data:`LINE_WIDTH` visible characters.
* ``_num`` / ``_latex_matrix`` -- exact SymPy numbers as fractions, floats to a fixed
  number of significant digits (``nan``/``inf`` spelled out), matrices as ``pmatrix``
  (printed in full only up to :data:`MAX_MATRIX` parameters).
* ``_escape`` -- plain text (names, reasons) made safe for LaTeX text mode.
* ``_check_names`` -- validation of the user's ``symbol_names`` mapping.
"""


from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ._errors import InvalidArgumentError

__all__ = ['NoetherLatexPrinter']


_LAYERED = re.compile(r"^([A-Za-z]+)(\d+)_(\d+)(?:_(\d+))?$")
_INDEXED = re.compile(r"^([A-Za-z]+)_(\d+)$")

#: the largest parameter count for which generator matrices are printed in full
MAX_MATRIX = 10


class NoetherLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with layer-indexed parameter names and user-chosen names."""

    def __init__(self, names: Mapping[Any, str] | None = None, **settings: Any) -> None:
        super().__init__(settings)
        self._names = {str(k): v for k, v in (names or {}).items()}

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:  # noqa: D102
        name = expr.name
        if name in self._names:
            return self._names[name]
        if name.endswith("_rv") and len(name) > 3:  # the CLI's Gaussian copy of a data symbol x -> x_rv
            name = name[:-3]
            if name in self._names:
                return self._names[name]
            return self._print_Symbol(sp.Symbol(name), style)
        m = _LAYERED.match(name)
        if m:
            base, layer, i, j = m.groups()
            sub = i if j is None else f"{i} {j}"
            return f"{base}^{{({layer})}}_{{{sub}}}"
        m = _INDEXED.match(name)
        if m:
            return f"{m.group(1)}_{{{m.group(2)}}}"
        return super()._print_Symbol(expr, style=style)

    def _print_RandomSymbol(self, expr: Any, style: str = "plain") -> str:  # noqa: D102
        return self._print_Symbol(expr.symbol, style)


def _check_names(names: Any) -> Mapping[Any, str] | None:
    if names is None:
        return None
    if not isinstance(names, Mapping):
        raise InvalidArgumentError(
            f"symbol_names must be a mapping from symbols (or names) to LaTeX, e.g. {{'u': r'\\alpha'}}; got {type(names).__name__}"
        )
    for k, v in names.items():
        if not isinstance(v, str):
            raise InvalidArgumentError(f"symbol_names[{k!r}] must be a LaTeX string, got {type(v).__name__}")
    return names


def _latex(expr: Any, names: Mapping[Any, str] | None = None) -> str:
    return NoetherLatexPrinter(names).doprint(sp.sympify(expr))


#: visible characters per displayed line before a long sum is broken
LINE_WIDTH = 80


def _visible(tex: str) -> int:
    """Rough printed width of LaTeX: commands, braces and scripts count little."""
    t = re.sub(r"\\(left|right|frac|mathrm|operatorname)", "", tex)
    t = re.sub(r"\\[A-Za-z]+", "x", t)
    t = re.sub(r"[{}^_ ]", "", t)
    return len(t)


def _rhs(expr: Any, names: Mapping[Any, str] | None = None, width: int = LINE_WIDTH) -> str:
    """The right-hand side of an ``align*`` row; a long sum is broken after ``+``/``−`` into
    continuation rows ``&\\quad + ...`` so that it fits the page."""
    expr = sp.sympify(expr)
    printer = NoetherLatexPrinter(names)
    whole = printer.doprint(expr)
    if not isinstance(expr, sp.Add) or _visible(whole) <= width:
        return whole
    rows, cur = [], ""
    for k, term in enumerate(printer._as_ordered_terms(expr)):
        t = printer.doprint(term)
        piece = t if k == 0 else (f" - {t[1:].lstrip()}" if t.startswith("-") else f" + {t}")
        if cur and _visible(cur + piece) > width:
            rows.append(cur)
            cur = piece.lstrip()
        else:
            cur += piece
    rows.append(cur)
    return " \\\\\n&\\quad ".join(rows)


def _num(x: Any, digits: int = 6) -> str:
    """A number for LaTeX: exact SymPy numbers as fractions, floats to ``digits`` digits."""
    if isinstance(x, sp.Basic) and not isinstance(x, sp.Float):
        return _latex(x)
    v = float(x)
    if math.isnan(v):
        return r"\mathrm{nan}"
    if math.isinf(v):
        return r"+\infty" if v > 0 else r"-\infty"
    text = f"{v:.{digits}g}"
    if "e" in text:
        mant, exp = text.split("e")
        return f"{mant} \\cdot 10^{{{int(exp)}}}"
    return text


def _latex_matrix(A: Any, digits: int = 4) -> str:
    rows = [" & ".join(_num(v, digits) if not isinstance(v, sp.Basic) or v.is_Float else _latex(v) for v in row) for row in (A.tolist() if hasattr(A, "tolist") else A)]
    return r"\begin{pmatrix}" + r" \\ ".join(rows) + r"\end{pmatrix}"


def _escape(text: str) -> str:
    out = (text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")
           .replace("#", r"\#").replace("^", r"\^{}").replace("$", r"\$").replace("{", r"\{").replace("}", r"\}"))
    out = out.replace(r"\textbackslash\{\}", r"\textbackslash{}").replace(r"\^\{\}", r"\^{}")
    for u, t in (("λ", r"$\lambda$"), ("θ", r"$\theta$"), ("Σ", r"$\Sigma$"), ("η", r"$\eta$"), ("γ", r"$\gamma$"),
                 ("≤", r"$\le$"), ("≥", r"$\ge$"), ("−", "-"), ("∞", r"$\infty$"), ("→", r"$\to$"), ("·", r"$\cdot$"),
                 ("*", r"$^*$"), ("<", r"$<$"), (">", r"$>$"), ("--", "-{}-")):
        out = out.replace(u, t)
    return out
