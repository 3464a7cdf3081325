"""Report: LaTeX for every derived object (symmetries, charges, drift laws, equilibria).

``to_latex(obj, names=None)`` dispatches on the object; ``names`` maps symbols (or their
names) to the LaTeX to print for them, e.g. ``{"u": r"u", "w_0": r"w_1"}``. Default names
turn ``W1_0_2`` into ``W^{(1)}_{0 2}`` and ``b2_1`` into ``b^{(2)}_{1}``. Numbers print as
exact fractions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sympy as sp
from sympy.printing.latex import LatexPrinter

__all__ = ["to_latex", "NoetherLatexPrinter", "derivation_document"]

_LAYERED = re.compile(r"^([A-Za-z]+)(\d+)_(\d+)(?:_(\d+))?$")
_INDEXED = re.compile(r"^([A-Za-z]+)_(\d+)$")


class NoetherLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with layer-indexed parameter names and user-chosen names."""

    def __init__(self, names: Mapping[Any, str] | None = None, **settings: Any) -> None:
        super().__init__(settings)
        self._names = {str(k): v for k, v in (names or {}).items()}

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:  # noqa: D102
        name = expr.name
        if name in self._names:
            return self._names[name]
        m = _LAYERED.match(name)
        if m:
            base, layer, i, j = m.groups()
            sub = i if j is None else f"{i} {j}"
            return f"{base}^{{({layer})}}_{{{sub}}}"
        m = _INDEXED.match(name)
        if m:
            return f"{m.group(1)}_{{{m.group(2)}}}"
        return super()._print_Symbol(expr, style=style)


def _latex(expr: Any, names: Mapping[Any, str] | None = None) -> str:
    return NoetherLatexPrinter(names).doprint(sp.sympify(expr))


def to_latex(obj: Any, names: Mapping[Any, str] | None = None) -> str:
    """LaTeX of a SymPy object or of a noether_sym result (Symmetries, ChargeDynamics,
    Equilibrium, Derivation...).

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> ns.to_latex(sp.Symbol("W1_0_2") ** 2 - sp.Symbol("b2_1"))
    '\\\\left(W^{(1)}_{0 2}\\\\right)^{2} - b^{(2)}_{1}'
    """
    from ._derive import Derivation
    from ._dynamics import ChargeDynamics
    from ._equilibrium import Equilibrium
    from ._symmetry import Symmetries

    if isinstance(obj, Symmetries):
        return symmetries_latex(obj, names)
    if isinstance(obj, ChargeDynamics):
        return dynamics_latex(obj, names)
    if isinstance(obj, Equilibrium):
        return equilibrium_latex(obj, names)
    if isinstance(obj, Derivation):
        return derivation_document(obj, names)
    if isinstance(obj, (sp.Basic, sp.MatrixBase, int, float)):
        return _latex(obj, names)
    raise TypeError(f"no LaTeX export for {type(obj).__name__}")


def symmetries_latex(sym: Any, names: Mapping[Any, str] | None = None) -> str:
    lines = [r"\begin{align*}"]
    for k, (A, C) in enumerate(zip(sym.generators, sym.charges), start=1):
        lines.append(f"C_{{{k}}}(\\theta) &= {_latex(C, names)} \\\\")
    lines.append(r"\end{align*}")
    head = (
        f"{sym.n_generators} generators, {sym.n_independent_charges} independent charges, "
        f"{len(sym.rotations)} rotations."
    )
    return head + "\n" + "\n".join(lines)


def dynamics_latex(dyn: Any, names: Mapping[Any, str] | None = None) -> str:
    from ._dynamics import C_K
    from ._equilibrium import ETA, GAMMA

    return "\n".join(
        [
            r"\begin{align*}",
            f"C(\\theta) &= {_latex(dyn.charge, names)} \\\\",
            f"C_{{k+1}} &= {_latex((1 - ETA * GAMMA) ** 2 * C_K, names)} + \\eta^{{2}}\\, \\hat g_k^\\top A\\, \\hat g_k \\\\",
            f"\\operatorname{{Tr}}[A\\Sigma(\\theta)] &= {_latex(dyn.trace_A_sigma, names)} \\\\",
            f"\\frac{{dC}}{{dt}} &= {_latex(dyn.drift, names)}",
            r"\end{align*}",
        ]
    )


def equilibrium_latex(eq: Any, names: Mapping[Any, str] | None = None) -> str:
    import mpmath

    from ._equilibrium import LAMBDA

    terms = [sp.sympify(a) * sp.exp(-2 * LAMBDA * sp.sympify(a)) * sp.sympify(s) for a, s in zip(eq.eigenvalues, eq.noise) if a != 0]
    G = sp.Add(*terms)
    out = [r"\begin{align*}", f"G(\\lambda) &= {_latex(G, names)} \\\\"]
    if eq.lam_exact is not None:
        out.append(f"\\lambda^* &= {_latex(eq.lam_exact, names)} \\\\")
    val = mpmath.nstr(eq.lam_mp, 20) if eq.lam_mp is not None else str(eq.lam)
    out.append(f"\\lambda^* &\\approx {val}")
    out.append(r"\end{align*}")
    out.append(f"Class: {eq.kind}; method: {eq.method}.")
    return "\n".join(out)


_PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage{amsmath,amssymb}
\usepackage[margin=2.2cm]{geometry}
\allowdisplaybreaks
\begin{document}
"""


def _escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%").replace("#", r"\#")


def derivation_document(d: Any, names: Mapping[Any, str] | None = None) -> str:
    """A complete LaTeX document for a Derivation."""
    parts = [_PREAMBLE, f"\\section*{{Derivation: {_escape(d.loss.name)}}}"]
    parts.append(f"Per-sample loss: \\[ \\ell(\\theta, x) = {_latex(d.loss.expr, names)} \\]")
    parts.append("\\subsection*{Symmetries and charges}")
    parts.append(symmetries_latex(d.symmetries, names))
    for k, dyn in enumerate(d.dynamics, start=1):
        parts.append(f"\\subsection*{{Dynamics of charge {k} (E10)--(E12)}}")
        parts.append(dynamics_latex(dyn, names))
    for k, eq in enumerate(d.equilibria, start=1):
        parts.append(f"\\subsection*{{Noise equilibrium along generator {k} (E14)--(E17)}}")
        parts.append(equilibrium_latex(eq, names))
    for k, sh in enumerate(d.sharpness, start=1):
        parts.append(f"\\subsection*{{Sharpness along orbit {k} (E19)}}")
        parts.append(
            f"$\\arg\\min_\\lambda T = {sh.argmin:.6g}$, $\\lambda^* = {sh.lam_star:.6g}$, "
            f"$T(\\lambda^*) - T(0) = {sh.change:.6g}$: SGD is predicted to {sh.verdict}."
        )
    for note in d.notes:
        parts.append(f"\\paragraph{{Note.}} {_escape(note)}")
    parts.append(r"\end{document}")
    return "\n\n".join(parts) + "\n"
