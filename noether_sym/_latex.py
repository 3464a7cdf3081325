"""Report: LaTeX for every derived object (symmetries, charges, drift laws, equilibria, sharpness).

``to_latex(obj, symbol_names=None)`` dispatches on the object: a SymPy expression or matrix,
:class:`~noether_sym.Symmetries`, :class:`~noether_sym.ChargeDynamics`,
:class:`~noether_sym.Equilibrium`, :class:`~noether_sym.Sharpness`,
:class:`~noether_sym.JointEquilibrium`, :class:`~noether_sym.TwoLayerEquilibrium` (each
gives an ``align*`` block, ready to paste into a document) or a
:class:`~noether_sym.Derivation` (a complete document). ``symbol_names`` maps symbols (or
their names) to the LaTeX to print for them, e.g. ``{u: r"\\alpha", "w": r"\\beta"}``.
Default names turn ``W1_0_2`` into ``W^{(1)}_{0 2}`` and ``b2_1`` into ``b^{(2)}_{1}``.
Numbers print as exact fractions; floats with ``digits`` significant digits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ._errors import InvalidArgumentError

__all__ = [
    "to_latex",
    "NoetherLatexPrinter",
    "derivation_document",
    "symmetries_latex",
    "dynamics_latex",
    "equilibrium_latex",
    "sharpness_latex",
    "joint_latex",
    "two_layer_latex",
    "document",
]

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


def _matrix(A: Any, digits: int = 4) -> str:
    rows = [" & ".join(_num(v, digits) if not isinstance(v, sp.Basic) or v.is_Float else _latex(v) for v in row) for row in (A.tolist() if hasattr(A, "tolist") else A)]
    return r"\begin{pmatrix}" + r" \\ ".join(rows) + r"\end{pmatrix}"


def to_latex(obj: Any, names: Mapping[Any, str] | None = None, *, symbol_names: Mapping[Any, str] | None = None) -> str:
    """LaTeX of a SymPy object or of a noether_sym result.

    Parameters
    ----------
    obj
        A SymPy expression or matrix, a number, or a ``Symmetries``, ``ChargeDynamics``,
        ``Equilibrium``, ``Sharpness``, ``JointEquilibrium``, ``TwoLayerEquilibrium``
        (an ``align*`` block) or ``Derivation`` (a complete document).
    symbol_names
        Map from symbols (or their names) to LaTeX, e.g. ``{u: r"\\alpha"}``. ``names`` is
        the same map given positionally.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> ns.to_latex(sp.Symbol("W1_0_2") ** 2 - sp.Symbol("b2_1"))
    '\\\\left(W^{(1)}_{0 2}\\\\right)^{2} - b^{(2)}_{1}'
    >>> u, w = sp.symbols("u w")
    >>> ns.to_latex(u**2 - w**2, symbol_names={u: r"\\alpha", "w": r"\\beta"})
    '\\\\alpha^{2} - \\\\beta^{2}'
    """
    from ._derive import Derivation
    from ._dynamics import ChargeDynamics
    from ._equilibrium import Equilibrium, JointEquilibrium, Sharpness, TwoLayerEquilibrium
    from ._symmetry import Symmetries

    if names is not None and symbol_names is not None:
        raise InvalidArgumentError("give the symbol names once: either positionally (names) or as symbol_names=")
    nm = _check_names(symbol_names if symbol_names is not None else names)
    if isinstance(obj, Symmetries):
        return symmetries_latex(obj, nm)
    if isinstance(obj, ChargeDynamics):
        return dynamics_latex(obj, nm)
    if isinstance(obj, Equilibrium):
        return equilibrium_latex(obj, nm)
    if isinstance(obj, Sharpness):
        return sharpness_latex(obj, nm)
    if isinstance(obj, JointEquilibrium):
        return joint_latex(obj, nm)
    if isinstance(obj, TwoLayerEquilibrium):
        return two_layer_latex(obj, nm)
    if isinstance(obj, Derivation):
        return derivation_document(obj, nm)
    if isinstance(obj, (sp.Basic, sp.MatrixBase, int, float)):
        return _latex(obj, nm)
    raise InvalidArgumentError(
        f"no LaTeX export for {type(obj).__name__}: give a SymPy expression or a noether_sym result "
        "(Symmetries, ChargeDynamics, Equilibrium, Sharpness, JointEquilibrium, TwoLayerEquilibrium, Derivation)"
    )


def symmetries_latex(sym: Any, names: Mapping[Any, str] | None = None) -> str:
    """Generators (in full when there are at most ``MAX_MATRIX`` parameters), their class
    and inertia, and the Noether charges (E8)."""
    n = sym.loss.n
    params = ", ".join(_latex(p, names) for p in sym.loss.params)
    head = (
        f"{sym.n_generators} generator{'s' if sym.n_generators != 1 else ''}, "
        f"{sym.n_independent_charges} independent charge{'s' if sym.n_independent_charges != 1 else ''}, "
        f"{len(sym.rotations)} rotation{'s' if len(sym.rotations) != 1 else ''}; "
        f"$\\theta = ({params})$."
    )
    lines = [r"\begin{align*}"]
    body = []
    for k, (A, C) in enumerate(zip(sym.generators, sym.charges), start=1):
        cls = sym.classes[k - 1] if k - 1 < len(sym.classes) else ""
        pos, neg, zer = sym.inertia[k - 1] if k - 1 < len(sym.inertia) else ("?", "?", "?")
        if n <= MAX_MATRIX:
            body.append(f"A_{{{k}}} &= {_latex(A, names)} && \\text{{{cls}, inertia $({pos}, {neg}, {zer})$}}")
        else:
            body.append(f"A_{{{k}}} &: \\text{{{cls}, inertia $({pos}, {neg}, {zer})$}}")
        body.append(f"C_{{{k}}}(\\theta) &= {_rhs(C, names)}")
    lines.append(" \\\\\n".join(body))
    lines.append(r"\end{align*}")
    if not sym.generators:
        return head + "\nNo exponential symmetry."
    return head + "\n" + "\n".join(lines)


def dynamics_latex(dyn: Any, names: Mapping[Any, str] | None = None) -> str:
    """The charge and its laws of motion: (E10) exact step, (E11) expectation, (E12) drift."""
    from ._equilibrium import ETA, GAMMA

    # (E11) = (1 − ηγ)² C + η² (∇LᵀA∇L + κ Tr[AΣ]); print the mean-gradient part on its own line
    gAg = sp.expand((dyn.expected_step - (1 - ETA * GAMMA) ** 2 * dyn.charge) / ETA**2 - dyn.kappa * dyn.trace_A_sigma)
    kappa = _latex(dyn.kappa, names)
    return "\n".join(
        [
            r"\begin{align*}",
            f"C(\\theta) &= {_rhs(dyn.charge, names)} \\\\",
            r"C_{k+1} &= (1 - \eta\gamma)^{2}\, C_k + \eta^{2}\, \hat g_k^\top A\, \hat g_k && \text{(E10)} \\",
            f"\\mathbb{{E}}[C_{{k+1}}\\mid\\theta_k] &= (1 - \\eta\\gamma)^{{2}}\\, C_k + \\eta^{{2}} \\Big(\\nabla L^\\top A \\nabla L "
            f"+ {kappa}\\,\\operatorname{{Tr}}[A\\Sigma(\\theta)]\\Big) && \\text{{(E11)}} \\\\",
            f"\\nabla L^\\top A \\nabla L &= {_rhs(gAg, names)} \\\\",
            f"\\operatorname{{Tr}}[A\\Sigma(\\theta)] &= {_rhs(dyn.trace_A_sigma, names)} \\\\",
            _drift_row(dyn, names),
            r"\end{align*}",
        ]
    )


def _drift_row(dyn: Any, names: Mapping[Any, str] | None) -> str:
    """(E12) as one row when short, else in the structured form −2γC + (η/S)·Tr[AΣ]."""
    full = _latex(dyn.drift, names)
    if _visible(full) <= LINE_WIDTH:
        return f"\\frac{{dC}}{{dt}} &= {full} && \\text{{(E12)}}"
    return r"\frac{dC}{dt} &= -2\gamma\, C(\theta) + \frac{\eta}{S}\operatorname{Tr}[A\Sigma(\theta)] && \text{(E12)}"


def equilibrium_latex(eq: Any, names: Mapping[Any, str] | None = None) -> str:
    """The balance function G (E14) with its exact noise levels, λ* (closed form (E17) when
    found, digits always) and the class of the generator."""
    import mpmath

    from ._equilibrium import LAMBDA

    terms = [sp.sympify(a) * sp.exp(-2 * LAMBDA * sp.sympify(a)) * sp.sympify(s) for a, s in zip(eq.eigenvalues, eq.noise) if a != 0]
    G = sp.Add(*terms)
    rows = [f"G(\\lambda) &= {_rhs(G, names)} && \\text{{(E14)}}"]
    gamma = float(getattr(eq, "weight_decay", 0.0) or 0.0)
    if gamma > 0:
        # with weight decay the balance is (η/S) G(λ) = 2γ C(λ), C(λ) = Σ a e^{2λa} ‖P θ‖² (E15), (E18)
        C = sp.Add(*[sp.sympify(a) * sp.exp(2 * LAMBDA * sp.sympify(a)) * sp.sympify(c)
                     for a, c in zip(eq.eigenvalues, eq.norms) if a != 0])
        rows.append(f"C(\\lambda) &= {_rhs(C, names)} && \\text{{(E15)}}")
        rows.append(f"\\frac{{\\eta}}{{S}}\\,G(\\lambda^*) &= 2\\gamma\\, C(\\lambda^*), \\quad \\eta = {_num(eq.lr)},"
                    f"\\ S = {eq.batch_size},\\ \\gamma = {_num(gamma)} && \\text{{(E18)}}")
    if eq.lam_exact is not None:
        tag = "(E17)" if gamma == 0 and "E17" in (eq.method or "") else "exact"
        rows.append(f"\\lambda^* &= {_latex(eq.lam_exact, names)} && \\text{{{tag}}}")
    val = mpmath.nstr(eq.lam_mp, 20) if eq.lam_mp is not None else _num(eq.lam)
    rows.append(f"\\lambda^* &\\approx {val}")
    if eq.bracket is not None:
        # as many digits as λ* itself
        # the bracket is ~10^-digits wide: print enough digits to show its two ends apart
        lo, hi = (mpmath.nstr(b, 40) if isinstance(b, mpmath.mpf) else _num(b, 17) for b in eq.bracket)
        rows.append(f"\\lambda^* &\\in \\big[{lo},\\ {hi}\\big] && \\text{{certified bracket}}")
    out = [r"\begin{align*}", " \\\\\n".join(rows), r"\end{align*}"]
    out.append(f"Class: {eq.kind}; method: {_escape(eq.method)}.")
    return "\n".join(out)


def sharpness_latex(sh: Any, names: Mapping[Any, str] | None = None) -> str:
    """Hessian trace along the orbit T(λ) (E19), its minimizer, λ* and the predicted change."""
    from ._equilibrium import LAMBDA

    T = sp.Add(*[sp.exp(-2 * LAMBDA * sp.sympify(a)) * sp.sympify(h) for a, h in zip(sh.eigenvalues, sh.h)])
    return "\n".join(
        [
            r"\begin{align*}",
            f"T(\\lambda) &= \\operatorname{{Tr}} H(e^{{\\lambda A}}\\theta) = {_latex(T, names)} && \\text{{(E19)}} \\\\",
            f"\\arg\\min_\\lambda T &= {_num(sh.argmin)}, \\qquad \\lambda^* = {_num(sh.lam_star)} \\\\",
            f"T(\\lambda^*) - T(0) &= {_num(sh.T_star)} - {_num(sh.T0)} = {_num(sh.change)}",
            r"\end{align*}",
            f"SGD is predicted to {sh.verdict}.",
        ]
    )


def joint_latex(je: Any, names: Mapping[Any, str] | None = None) -> str:
    """The joint equilibrium of commuting generators: λ*_j and the certificate."""
    lams = ", ".join(_num(v) for v in je.lams)
    return "\n".join(
        [
            r"\begin{align*}",
            f"(\\lambda^*_1, \\dots, \\lambda^*_{{{len(je.lams)}}}) &= ({lams}) \\\\",
            f"\\max_j \\big|\\operatorname{{Tr}}[A_j\\Sigma(\\theta^*)]\\big| &= {_num(float(abs(je.residuals).max()) if len(je.residuals) else 0.0, 3)}",
            r"\end{align*}",
            f"Class: {je.kind}; Newton iterations: {je.iterations}.",
        ]
    )


def two_layer_latex(tl: Any, names: Mapping[Any, str] | None = None) -> str:
    """The two-layer equilibrium (E21): X = M_W^{-1} # (c M_U), P = X^{1/2}, residuals."""
    eig = ", ".join(_num(v, 5) for v in tl.Q_eigenvalues)
    return "\n".join(
        [
            r"\begin{align*}",
            f"X &= M_W^{{-1}} \\# (c\\, M_U) = {_matrix(tl.X)} && \\text{{(E21)}} \\\\",
            f"P &= X^{{1/2}} = {_matrix(tl.P)}, \\qquad \\theta^* = (U P^{{-1}},\\ P W) \\\\",
            f"\\operatorname{{spec}}(W^*W^{{*\\top}} - U^{{*\\top}}U^*) &= \\{{{eig}\\}} \\\\",
            f"\\frac{{\\|X M_W X - c M_U\\|}}{{\\|c M_U\\|}} &= {_num(tl.residual, 3)}, \\qquad "
            f"\\text{{(E20) residual at }}\\theta^*: {_num(tl.balance_residual, 3)}",
            r"\end{align*}",
        ]
    )


_PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage{amsmath,amssymb}
\usepackage[margin=2.2cm]{geometry}
\allowdisplaybreaks
\begin{document}
"""


def _escape(text: str) -> str:
    out = (text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")
           .replace("#", r"\#").replace("^", r"\^{}").replace("$", r"\$").replace("{", r"\{").replace("}", r"\}"))
    out = out.replace(r"\textbackslash\{\}", r"\textbackslash{}").replace(r"\^\{\}", r"\^{}")
    for u, t in (("λ", r"$\lambda$"), ("θ", r"$\theta$"), ("Σ", r"$\Sigma$"), ("η", r"$\eta$"), ("γ", r"$\gamma$"),
                 ("≤", r"$\le$"), ("≥", r"$\ge$"), ("−", "-"), ("∞", r"$\infty$"), ("→", r"$\to$"), ("·", r"$\cdot$"),
                 ("*", r"$^*$"), ("<", r"$<$"), (">", r"$>$"), ("--", "-{}-")):
        out = out.replace(u, t)
    return out


def document(body: str, title: str | None = None) -> str:
    """Wrap LaTeX ``body`` (e.g. from :func:`to_latex`) into a complete document.

    Examples
    --------
    >>> from noether_sym._latex import document
    >>> document("$x$").splitlines()[0]
    '\\\\documentclass[11pt]{article}'
    """
    head = f"\\section*{{{_escape(title)}}}\n\n" if title else ""
    return _PREAMBLE + "\n" + head + body + "\n\n\\end{document}\n"


def derivation_document(d: Any, names: Mapping[Any, str] | None = None) -> str:
    """A complete LaTeX document for a Derivation: loss, symmetries and charges, the laws of
    every charge, and at the point θ the equilibria and sharpness of each generator."""
    names = _check_names(names)
    parts = [_PREAMBLE, f"\\section*{{Derivation: {_escape(d.loss.name)}}}"]
    parts.append(f"Per-sample loss:\n\\begin{{align*}}\n\\ell(\\theta, x) &= {_rhs(d.loss.expr, names)}\n\\end{{align*}}")
    if d.theta is not None:
        val = lambda v: _latex(v, names) if isinstance(v, sp.Basic) else _num(v)  # noqa: E731
        if isinstance(d.theta, Mapping):  # {symbol or name: value}
            th = ", ".join(f"{_latex(sp.Symbol(str(k)), names)} = {val(v)}" for k, v in d.theta.items())
            parts.append(f"Point of evaluation: ${th}$.")
        else:
            th = ", ".join(val(v) for v in d.theta)
            parts.append(f"Point of evaluation: $\\theta = ({th})$.")
    parts.append("\\subsection*{Symmetries and charges (E4), (E8)}")
    parts.append(symmetries_latex(d.symmetries, names))
    for k, dyn in enumerate(d.dynamics, start=1):
        parts.append(f"\\subsection*{{Dynamics of charge {k} (E10)--(E12)}}")
        parts.append(dynamics_latex(dyn, names))
    for k, eq in enumerate(d.equilibria, start=1):
        parts.append(f"\\subsection*{{Noise equilibrium along generator {k} (E14)--(E17)}}")
        parts.append(equilibrium_latex(eq, names))
    for k, sh in enumerate(d.sharpness, start=1):
        parts.append(f"\\subsection*{{Sharpness along orbit {k} (E19)}}")
        parts.append(sharpness_latex(sh, names))
    if d.joint is not None:
        parts.append("\\subsection*{Joint equilibrium of the commuting generators}")
        parts.append(joint_latex(d.joint, names))
    for note in d.notes:
        parts.append(f"\\paragraph{{Note.}} {_escape(note)}")
    parts.append(r"\end{document}")
    return "\n\n".join(parts) + "\n"
