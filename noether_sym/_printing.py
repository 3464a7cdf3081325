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
* :class:`NotebookDisplay` -- the mixin that makes result objects show as math with their
  key numbers (``_repr_latex_``) or as tables (``_repr_html_``) in a notebook.
"""


from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from html import escape
from typing import Any

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ._errors import InvalidArgumentError

__all__ = ['NoetherLatexPrinter', 'NotebookDisplay']


_LAYERED = re.compile(r"^([A-Za-z]+)(\d+)_(\d+)(?:_(\d+))?$")
_INDEXED = re.compile(r"^([A-Za-z]+)_(\d+)$")

#: the largest parameter count for which generator matrices are printed in full
MAX_MATRIX = 10


class NoetherLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with layer-indexed parameter names and user-chosen names."""

    def __init__(self, names: Mapping[Any, str] | None = None, **settings: Any) -> None:
        super().__init__(settings)
        self._names = {str(k): v for k, v in (names or {}).items()}

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
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

    def _print_RandomSymbol(self, expr: Any, style: str = "plain") -> str:
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


#: a fraction with more digits than this (numerator and denominator together) prints as a
#: decimal with :data:`DECIMAL_DIGITS` significant digits (such fractions come from floats
#: taken exactly, e.g. a start projected by gradient flow, and carry no more information)
MAX_FRACTION_DIGITS = 24

#: significant digits of a long fraction or a high-precision float in printed expressions
DECIMAL_DIGITS = 15


def _short_numbers(expr: Any) -> Any:
    """``expr`` with long fractions and high-precision floats replaced by 15-digit floats."""
    if not isinstance(expr, sp.Basic):
        return expr
    rep = {}
    for r in expr.atoms(sp.Rational):
        if len(str(abs(r.p))) + len(str(r.q)) > MAX_FRACTION_DIGITS:
            rep[r] = sp.Float(r, DECIMAL_DIGITS)
    for f in expr.atoms(sp.Float):
        if f._prec > 53:
            rep[f] = sp.Float(f, DECIMAL_DIGITS)
    return expr.xreplace(rep) if rep else expr


def _latex(expr: Any, names: Mapping[Any, str] | None = None) -> str:
    return NoetherLatexPrinter(names).doprint(_short_numbers(sp.sympify(expr)))


#: visible characters per displayed line before a long sum is broken (an 11 pt page with
#: 2.2 cm margins holds about 80 characters of math; the row's label takes the rest)
LINE_WIDTH = 64

#: at most this many terms are factored (sympy.factor) before printing: cheap below it
FACTOR_MAX_TERMS = 24

_ROW_LIMIT: ContextVar[int | None] = ContextVar("noether_sym_row_limit", default=None)


@contextmanager
def row_limit(rows: int | None) -> Iterator[None]:
    """Within the block, :func:`_rhs` prints at most ``rows`` rows of a long sum and ends it
    with a count of the terms left out (documents stay a few pages; the full expressions are
    in the result objects and their JSON). ``None``: no limit."""
    token = _ROW_LIMIT.set(rows)
    try:
        yield
    finally:
        _ROW_LIMIT.reset(token)


def _factored(expr: sp.Expr) -> sp.Expr:
    """``expr`` factored when that is cheap (a polynomial sum of at most
    :data:`FACTOR_MAX_TERMS` terms) and gives a product of short factors, else ``expr``."""
    if not isinstance(expr, sp.Add) or len(expr.args) > FACTOR_MAX_TERMS or not expr.is_polynomial():
        return expr
    if any(isinstance(a, sp.Float) for a in expr.atoms(sp.Number)):
        return expr
    f = sp.factor(expr)
    if not isinstance(f, sp.Mul):
        return expr
    sums = [a for a in f.args if isinstance(a, sp.Add) or (isinstance(a, sp.Pow) and isinstance(a.base, sp.Add))]
    if len(sums) < 2:  # only a numeric or monomial factor pulled out: the sum stays as long
        return expr
    return f


def _visible(tex: str) -> int:
    """Rough printed width of LaTeX: commands, braces and scripts count little."""
    t = re.sub(r"\\(left|right|frac|mathrm|operatorname)", "", tex)
    t = re.sub(r"\\[A-Za-z]+", "x", t)
    t = re.sub(r"[{}^_ ]", "", t)
    # a binary operator prints with space on both sides: about three characters wide
    return len(t) + 2 * len(re.findall(r"[+\-=]", t))


def _rhs(expr: Any, names: Mapping[Any, str] | None = None, width: int = LINE_WIDTH) -> str:
    """The right-hand side of an ``align*`` row; a long sum is broken after ``+``/``−`` into
    continuation rows ``&\\quad + ...`` so that it fits the page."""
    expr = _short_numbers(sp.sympify(expr))
    printer = NoetherLatexPrinter(names)
    whole = printer.doprint(expr)
    if _visible(whole) <= width:
        return whole
    if not isinstance(expr, sp.Add):
        return " \\\\\n&\\quad ".join(_linear_rows(expr, printer, width, _ROW_LIMIT.get()))
    f = _factored(expr)
    if f is not expr and _visible(printer.doprint(f)) <= width:
        return printer.doprint(f)
    rows, cur = [], ""
    terms = printer._as_ordered_terms(expr)
    limit = _ROW_LIMIT.get()
    for k, term in enumerate(terms):
        t = printer.doprint(term)
        piece = t if k == 0 else (f" - {t[1:].lstrip()}" if t.startswith("-") else f" + {t}")
        if cur and _visible(cur + piece) > width:
            rows.append(cur)
            cur = piece.lstrip()
            if limit is not None and len(rows) >= limit:
                rest = len(terms) - k
                cur = f"+ \\dots \\quad \\text{{({rest} more of {len(terms)} terms)}}"
                break
        else:
            cur += piece
    rows.append(cur)
    if any(_visible(r) > width + 10 for r in rows):  # a term (or a product) wider than the page
        rows = _linear_rows(expr, printer, width, limit)
    return " \\\\\n&\\quad ".join(rows)


def _linear_tokens(e: sp.Basic, printer: NoetherLatexPrinter) -> list[str]:
    """``e`` as a flat list of LaTeX pieces with a line-break opportunity between any two:
    sums and products are spelled out, quotients as ``(…)^{-1}`` and brackets as unpaired
    ``\\bigl(``/``\\bigr)``, so a row may end inside any bracket (short pieces print whole)."""
    whole = printer.doprint(e)
    if _visible(whole) <= 24 or not e.args:
        return [whole]
    if isinstance(e, sp.Add):
        out: list[str] = []
        for k, t in enumerate(printer._as_ordered_terms(e)):
            toks = _linear_tokens(t, printer)
            if k and toks[0].startswith("-"):
                out += ["-", toks[0][1:].lstrip()] + toks[1:]
            else:
                out += (["+"] if k else []) + toks
        return out
    if isinstance(e, sp.Mul):
        out = []
        for k, f in enumerate(e.as_ordered_factors()):
            toks = _linear_tokens(f, printer)
            if isinstance(f, sp.Add):
                toks = [r"\bigl("] + toks + [r"\bigr)"]
            out += ([r"\cdot"] if k else []) + toks
        return out
    if isinstance(e, sp.Pow):
        base = _linear_tokens(e.base, printer)
        ex = printer.doprint(e.exp)
        return [r"\bigl("] + base + [rf"\bigr)^{{{ex}}}"]
    if isinstance(e, (sp.Function, sp.Max, sp.Min)):
        fname = e.func.__name__.lower()
        known = ("exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arctan", "max", "min")
        name = f"\\{fname}" if fname in known else f"\\operatorname{{{fname}}}"
        out = [name + r"\bigl("]
        for k, a in enumerate(e.args):
            out += ([","] if k else []) + _linear_tokens(a, printer)
        return out + [r"\bigr)"]
    return [whole]


def _linear_rows(expr: sp.Basic, printer: NoetherLatexPrinter, width: int, limit: int | None) -> list[str]:
    """Rows of at most ``width`` visible characters from :func:`_linear_tokens` (at most
    ``limit`` rows, the last one saying how much is left out)."""
    toks = _linear_tokens(expr, printer)
    rows, cur = [], ""
    for k, t in enumerate(toks):
        if cur and _visible(cur + " " + t) > width:
            rows.append(cur)
            cur = t
            if limit is not None and len(rows) >= limit:
                cur = rf"\dots \quad \text{{({len(toks) - k} more of {len(toks)} pieces)}}"
                break
        else:
            cur = f"{cur} {t}" if cur else t
    rows.append(cur)
    return rows


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
    # a long run without spaces (an expression quoted in a message) may break after its operators
    text = re.sub(r"\S{16,}", lambda m: re.sub(r"([*+/,(=-])", "\\1\x00", m.group(0)), text)
    out = (text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")
           .replace("#", r"\#").replace("^", r"\^{}").replace("$", r"\$").replace("{", r"\{").replace("}", r"\}"))
    out = out.replace(r"\textbackslash\{\}", r"\textbackslash{}").replace(r"\^\{\}", r"\^{}")
    for u, t in (("λ", r"$\lambda$"), ("θ", r"$\theta$"), ("Σ", r"$\Sigma$"), ("η", r"$\eta$"), ("γ", r"$\gamma$"),
                 ("≤", r"$\le$"), ("≥", r"$\ge$"), ("−", "-"), ("∞", r"$\infty$"), ("→", r"$\to$"), ("·", r"$\cdot$"),
                 ("*", r"$^*$"), ("<", r"$<$"), (">", r"$>$"), ("--", "-{}-")):
        out = out.replace(u, t)
    out = out.replace("\x00", r"\allowbreak{}")
    return "".join(c if ord(c) < 128 else _unicode_text(c) for c in out)


#: text-mode LaTeX of the non-ASCII math symbols that messages use (pdflatex knows none of them)
_UNICODE_TEXT = {
    "‖": r"$\|$", "∇": r"$\nabla$", "∂": r"$\partial$", "±": r"$\pm$", "×": r"$\times$", "≈": r"$\approx$",
    "≠": r"$\ne$", "∈": r"$\in$", "∑": r"$\sum$", "√": r"$\surd$", "≪": r"$\ll$", "≫": r"$\gg$",
    "…": r"\dots{}", "–": "-", "—": "-{}-", "‘": "`", "’": "'", "“": "``", "”": "''", "ᵀ": r"$^\top$",
    "⁻": r"$^-$", "⊗": r"$\otimes$", "∘": r"$\circ$", "°": r"$^\circ$", "²": r"$^2$", "³": r"$^3$", "¹": r"$^1$",
}


def _unicode_text(c: str) -> str:
    """One non-ASCII character as text-mode LaTeX: math symbols, Greek letters, sub- and
    superscript digits; anything else by its ASCII decomposition (or ``?``)."""
    if c in _UNICODE_TEXT:
        return _UNICODE_TEXT[c]
    name = unicodedata.name(c, "")
    m = re.match(r"GREEK (SMALL|CAPITAL) LETTER ([A-Z]+)$", name)
    if m:
        letter = m.group(2).lower()
        letter = {"lamda": "lambda", "omicron": "o"}.get(letter, letter)
        if m.group(1) == "CAPITAL":
            if letter in ("gamma", "delta", "theta", "lambda", "xi", "pi", "sigma", "upsilon", "phi", "psi", "omega"):
                return f"$\\{letter.capitalize()}$"
            return unicodedata.normalize("NFKD", c).encode("ascii", "ignore").decode() or m.group(2)[0]
        return f"$\\{letter}$" if letter != "o" else "o"
    base = unicodedata.normalize("NFKD", c)
    if name.startswith(("SUBSCRIPT", "SUPERSCRIPT", "LATIN SUBSCRIPT")) and base.isascii() and base.isalnum():
        return f"$_{{{base}}}$" if "SUBSCRIPT" in name else f"$^{{{base}}}$"
    return unicodedata.normalize("NFKD", c).encode("ascii", "ignore").decode() or "?"


# ------------------------------------------------------------------------------------------
# Notebook display
# ------------------------------------------------------------------------------------------


class NotebookDisplay:
    """Mixin: how a result object shows in a notebook (Jupyter, IPython).

    Jupyter calls ``_repr_latex_`` and ``_repr_html_`` on the value of a cell's last line.
    Results show the math and their key numbers compactly: a short display per class from
    :data:`_LATEX_DISPLAY` (equilibria: the class, λ*, θ* and its certificate), else the
    object's own ``_latex_`` (the renderer :func:`noether_sym.to_latex` dispatches on), turned
    into display math; tables (``Comparison``, ``VerifyReport``) show as HTML from
    :data:`_HTML_DISPLAY`. A format a class has no renderer for returns None, which Jupyter
    skips.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> u, w, x = sp.symbols("u w x")
    >>> sym = ns.find_symmetries(ns.Loss((u * w * x - x) ** 2, [u, w], data=[x]))
    >>> print(sym._repr_latex_())  # doctest: +NORMALIZE_WHITESPACE
    $$\\begin{aligned}
    &\\text{1 generator, 1 independent charge, 0 rotations} \\\\
    C_{1}(\\theta) &= u^{2} - w^{2} && \\text{indefinite}
    \\end{aligned}$$
    """

    def _repr_latex_(self) -> str | None:
        render = _LATEX_DISPLAY.get(type(self).__name__)
        if render is not None:
            return render(self)
        own = getattr(self, "_latex_", None)
        return _display_math(own(None)) if callable(own) else None

    def _repr_html_(self) -> str | None:
        render = _HTML_DISPLAY.get(type(self).__name__)
        return None if render is None else render(self)


def _text(s: Any) -> str:
    """Plain text for ``\\text{...}`` in MathJax (no LaTeX specials)."""
    return re.sub(r"[\\{}$&%#_^~]", " ", str(s)).strip()


def _vec(v: Any, digits: int = 5, limit: int = 8) -> str:
    vals = [_num(x, digits) for x in list(v)[:limit]]
    more = r", \dots" if len(v) > limit else ""
    return r"\left(" + ", ".join(vals) + more + r"\right)"


def _aligned(rows: list[str]) -> str:
    return "$$\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}$$"


def _display_math(tex: str) -> str:
    """An object's ``_latex_`` (text lines and ``align*`` blocks) as notebook display math:
    each ``align*`` becomes ``$$\\begin{aligned}...\\end{aligned}$$`` (understood by MathJax
    and KaTeX alike)."""
    tex = tex.replace("\\begin{align*}", "$$\\begin{aligned}").replace("\\end{align*}", "\\end{aligned}$$")
    return tex.strip()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _symmetries_display(sym: Any, max_charges: int = 6) -> str:
    rows = [r"&\text{" + ", ".join([_plural(sym.n_generators, "generator"),
                                    _plural(sym.n_independent_charges, "independent charge"),
                                    _plural(len(sym.rotations), "rotation")]) + "}"]
    for k, C in enumerate(sym.charges[:max_charges], start=1):
        cls = sym.classes[k - 1] if k - 1 < len(sym.classes) else ""
        rows.append(f"C_{{{k}}}(\\theta) &= {_rhs(C, width=60)} && \\text{{{_text(cls)}}}")
    if len(sym.charges) > max_charges:
        rows.append(f"&\\text{{... and {len(sym.charges) - max_charges} more charges}}")
    return _aligned(rows)


def _start_row(start: Any) -> list[str]:
    if start is None:
        return []
    return [(f"\\Phi(\\theta_0) &= {_vec(start.theta)} && \\text{{gradient-flow limit, }}"
             f"|\\theta_0 - \\Phi(\\theta_0)| = {_num(start.distance, 4)}")]


def _equilibrium_display(eq: Any) -> str:
    rows = [f"&\\text{{{_text(eq.kind)} (E16), {_text(eq.method)}}}",
            f"\\lambda^* &= {_num(eq.lam, 10)}"]
    if eq.bracket is not None:
        width = abs(float(eq.bracket[1]) - float(eq.bracket[0])) or abs(float(eq.bracket[1] - eq.bracket[0]))
        rows[-1] += f" && \\text{{certified bracket of width }} {_num(width, 2)}"
    rows.append(f"\\theta^* &= e^{{\\lambda^* A}}\\,\\Phi(\\theta_0) = {_vec(eq.theta)}")
    rows.append(f"C(\\theta^*) &= {_num(eq.charge, 6)}")
    return _aligned(rows + _start_row(eq.start))


def _joint_display(eq: Any) -> str:
    res = float(abs(eq.residuals).max()) if len(eq.residuals) else 0.0
    rows = [f"&\\text{{joint equilibrium of {len(eq.lams)} commuting generators: {_text(eq.kind)}}}",
            f"\\lambda^* &= {_vec(eq.lams, 8)}",
            f"\\theta^* &= {_vec(eq.theta)}",
            f"\\max_j |\\operatorname{{Tr}}[A_j\\Sigma(\\theta^*)]| &= {_num(res, 3)}"]
    return _aligned(rows + _start_row(eq.start))


def _flow_display(flow: Any) -> str:
    rows = [f"&\\text{{Noether flow (E22): {_text(flow.kind)}}}",
            f"\\theta &= {_vec(flow.theta)}",
            f"\\omega &= {_num(flow.rotation_rate, 5)} && \\text{{rad per unit }} \\eta^2 k/S",
            f"\\Phi(\\theta_0) &= {_vec(flow.start)}"]
    if getattr(flow, "divergence_rate", 0):
        rows.append(f"dC/d\\tau &= {_num(flow.divergence_rate, 5)}")
    return _aligned(rows) + "\n\n" + _text(flow.reason)


def _derivation_display(d: Any) -> str:
    sym = d.symmetries
    rows = [(f"&\\text{{{_text(d.loss.name)}: {_plural(d.loss.n, 'parameter')}, "
             f"{_plural(sym.n_generators, 'generator')}, {_plural(sym.n_independent_charges, 'independent charge')}}}")]
    for k, C in enumerate(sym.charges[:4], start=1):
        rows.append(f"C_{{{k}}}(\\theta) &= {_rhs(C, width=60)}")
    for k, e in enumerate(d.equilibria, start=1):
        rows.append(f"\\lambda^*_{{{k}}} &= {_num(e.lam, 8)} && \\text{{{_text(e.kind)}}}")
    for k, s in enumerate(d.sharpness, start=1):
        rows.append(f"T(\\lambda^*_{{{k}}}) - T(0) &= {_num(s.change, 6)} && \\text{{{_text(s.verdict)} (E19)}}")
    return _aligned(rows)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _comparison_html(cmp: Any) -> str:
    head = ["observable", "predicted"] + [f"η={r.lr:g}" for r in cmp.runs]
    if cmp.richardson is not None:
        head.append(f"η→0 ({cmp.order})")
    rows = []
    for i, nm in enumerate(cmp.names):
        row = [str(nm), f"{cmp.predicted[i]:.6g}"] + [f"{r.value[i]:.6g} ± {r.sem[i]:.2g}" for r in cmp.runs]
        if cmp.richardson is not None:
            row.append(f"{cmp.richardson[i]:.6g} ± {cmp.richardson_sem[i]:.2g}")
        rows.append(row)
    notes = "".join(f"<li>{escape(w)}</li>" for w in cmp.warnings)
    return (f"<p>prediction: {escape(str(cmp.prediction))}</p>" + _html_table(head, rows)
            + (f"<ul>{notes}</ul>" if notes else ""))


def _verify_html(rep: Any) -> str:
    head = ["family", "theorem", "kind", "predicted", "measured", "tolerance", "ok"]
    rows = [[c.family, c.theorem, c.kind, f"{c.predicted:.4g}",
             f"{c.measured:.4g}" + (f" ± {c.sem:.2g}" if c.sem else ""), f"{c.tolerance:.3g}",
             "yes" if c.passed else "NO"] for c in rep.checks]
    return f"<p>{escape(rep.summary())}</p>" + _html_table(head, rows)


#: notebook LaTeX by class name (others use their own ``_latex_``)
_LATEX_DISPLAY = {
    "Symmetries": _symmetries_display,
    "Equilibrium": _equilibrium_display,
    "JointEquilibrium": _joint_display,
    "NoetherFlow": _flow_display,
    "Derivation": _derivation_display,
}

#: notebook HTML tables by class name
_HTML_DISPLAY = {
    "Comparison": _comparison_html,
    "VerifyReport": _verify_html,
}
