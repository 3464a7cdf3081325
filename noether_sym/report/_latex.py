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

Design. Each result type renders itself: the ``*_latex`` functions live next to their
result classes (``symmetry._result``, ``theory._equilibrium``, ``theory._dynamics``...),
so a new result brings its own LaTeX and the lower stages never import ``report``. This
module is the one dispatcher over them and writes the documents of derived objects
(``document``, ``derivation_document``, used by ``derive`` and the CLI). Printing of
expressions, numbers and names is shared through ``noether_sym._printing``.
"""


from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sympy as sp

from .._errors import InvalidArgumentError
from .._printing import (
    _check_names,
    _escape,
    _latex,
    _num,
    _rhs,
    row_limit,
)
from ..symmetry._result import symmetries_latex
from ..theory._dynamics import dynamics_latex
from ..theory._equilibrium import equilibrium_latex
from ..theory._joint import joint_latex
from ..theory._sharpness import sharpness_latex
from ..theory._two_layer import two_layer_latex

__all__ = ['derivation_document', 'document', 'dynamics_latex', 'equilibrium_latex', 'joint_latex', 'sharpness_latex', 'symmetries_latex', 'to_latex', 'two_layer_latex']



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

    if names is not None and symbol_names is not None:
        raise InvalidArgumentError("give the symbol names once: either positionally (names) or as symbol_names=")
    nm = _check_names(symbol_names if symbol_names is not None else names)
    render = getattr(obj, "_latex_", None)
    if callable(render):  # every result object renders itself (one method per class)
        return render(nm)
    if isinstance(obj, (sp.Basic, sp.MatrixBase, int, float)):
        return _latex(obj, nm)
    raise InvalidArgumentError(
        f"no LaTeX export for {type(obj).__name__}: give a SymPy expression or a noether_sym result "
        "(Symmetries, ChargeDynamics, Equilibrium, Sharpness, JointEquilibrium, TwoLayerEquilibrium, Derivation)"
    )


#: the one preamble of every document the toolkit writes (derive, prove, verify)
_PREAMBLE = r"""\documentclass[11pt]{article}
\IfFileExists{lmodern.sty}{\usepackage[T1]{fontenc}\usepackage{lmodern}}{}
\usepackage{amsmath,amssymb,amsthm}
\usepackage[margin=2.2cm]{geometry}
\allowdisplaybreaks
\setlength{\emergencystretch}{3em}
\newtheorem*{theorem}{Theorem}
\providecommand{\Tr}{\operatorname{Tr}}
\begin{document}
"""


def document(body: str, title: str | None = None, *, author: str | None = None) -> str:
    """Wrap LaTeX ``body`` (e.g. from :func:`to_latex`) into a complete document.

    The one document writer: ``derive``, ``prove`` and ``verify`` all go through it, so the
    three share one preamble. ``title`` is plain text (escaped); with ``author`` (raw
    LaTeX) the document gets a title block, otherwise an unnumbered section heading.

    Examples
    --------
    >>> from noether_sym.report._latex import document
    >>> document("$x$").splitlines()[0]
    '\\\\documentclass[11pt]{article}'
    """
    if title and author is not None:
        head = f"\\title{{{_escape(title)}}}\n\\author{{{author}}}\n\\date{{}}\n\\maketitle\n\n"
    else:
        head = f"\\section*{{{_escape(title)}}}\n\n" if title else ""
    return _PREAMBLE + "\n" + head + body.strip("\n") + "\n\n\\end{document}\n"


def _flow_latex(flow: Any) -> str:
    """The Noether flow's stationary state: its kind, a point of it, the rotation rate."""
    vec = ",\\allowbreak\\ ".join(_num(v, 6) for v in flow.theta)
    start = ",\\allowbreak\\ ".join(_num(v, 6) for v in flow.start)
    rows = [f"Kind: {_escape(flow.kind)}. {_escape(flow.reason)}.",
            f"From $\\Phi(\\theta_0) = ({start})$ to $\\theta = ({vec})$,",
            f"rotation rate $\\omega = {_num(flow.rotation_rate, 5)}$ rad per unit $\\eta^2 k/S$;",
            f"Hessian spectral gap ${_num(flow.gap, 3)}$, tangent dimension {flow.tangent_dim}; "
            f"method: {_escape(flow.method)}."]
    if getattr(flow, "divergence_rate", 0):
        rows.append(f"Divergence rate $dC/d\\tau = {_num(flow.divergence_rate, 5)}$.")
    return "\n".join(rows)


#: rows of one long sum in a derivation document (the rest is counted, not printed)
DOCUMENT_ROWS = 6


def derivation_document(d: Any, names: Mapping[Any, str] | None = None) -> str:
    """A complete LaTeX document for a Derivation: loss, symmetries and charges, the laws of
    every charge, and at the point θ the equilibria and sharpness of each generator.

    Long sums are broken into rows that fit the page, at most :data:`DOCUMENT_ROWS` rows
    each (the number of terms left out is printed; ``Derivation.to_dict`` has every
    expression in full); fractions longer than 24 digits print as 15-digit decimals."""
    with row_limit(DOCUMENT_ROWS):
        return _derivation_document(d, _check_names(names))


def _derivation_document(d: Any, names: Mapping[Any, str] | None) -> str:
    parts = []
    with row_limit(None):  # the loss itself in full
        loss_tex = _rhs(d.loss.expr, names)
    parts.append(f"Per-sample loss:\n\\begin{{align*}}\n\\ell(\\theta, x) &= {loss_tex}\n\\end{{align*}}")
    if d.theta is not None:
        val = lambda v: _latex(v, names) if isinstance(v, sp.Basic) else _num(v)  # noqa: E731
        if isinstance(d.theta, Mapping):  # {symbol or name: value}
            th = ",\\allowbreak\\ ".join(f"{_latex(sp.Symbol(str(k)), names)} = {val(v)}" for k, v in d.theta.items())
            parts.append(f"Point of evaluation: ${th}$.")
        else:
            th = ",\\allowbreak\\ ".join(val(v) for v in d.theta)
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
    if getattr(d, "flow", None) is not None:
        parts.append("\\subsection*{Stationary state: the Noether flow (E22)}")
        parts.append(_flow_latex(d.flow))
    if getattr(d, "how", ""):
        parts.append(f"\\paragraph{{Prediction used.}} {_escape(d.prediction)}: {_escape(d.how)}")
    for note in d.notes:
        parts.append(f"\\paragraph{{Note.}} {_escape(note)}")
    parts.append("\\paragraph{Printing.} Exact numbers print as fractions; fractions of more than 24 digits "
                 "(exact images of floating-point inputs) as 15-digit decimals. Sums longer than "
                 f"{DOCUMENT_ROWS} rows end with the count of the terms left out; "
                 "\\texttt{noether-sym derive -{}-json} has every expression in full.")
    return document("\n\n".join(parts), f"Derivation: {d.loss.name}")
