"""Symmetries: the result objects -- :class:`Symmetries` (generators, charges, certificate) and :class:`Candidate`.

A candidate that failed exact confirmation is kept as a :class:`Candidate` in
``Symmetries.unconfirmed``, never among the generators; results render their own LaTeX.
"""


from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from .._printing import MAX_MATRIX, NotebookDisplay, _check_names, _latex, _rhs
from ..loss._loss import Loss
from ._laws import ConservationLaws, conservation_laws

__all__ = ['Candidate', 'Symmetries']



@dataclass
class Candidate:
    """A numeric candidate that could not be confirmed exactly (never returned as a generator)."""

    matrix: np.ndarray
    reason: str
    kind: str  # "symmetric" | "antisymmetric"


@dataclass
class Symmetries(NotebookDisplay):
    """Exponential symmetries of a loss (the result of :func:`find_symmetries`).

    Attributes
    ----------
    loss
        The Loss.
    generators
        Canonical basis of 𝒜(ℓ) (symmetric, exact rational ``sympy.Matrix``, n x n, rows and
        columns in ``loss.params`` order): reduced row echelon form over the flattened upper
        triangle, so the same loss always gives the same basis. For n > 64 they are stored
        sparsely (``sympy.SparseMatrix``, which prints and compares like a dense Matrix).
    rotations
        Canonical basis of the antisymmetric part of the symmetry algebra 𝔤(ℓ) (rotations;
        symmetries that carry no quadratic charge). Empty when not computed.
    charges
        Noether charges θᵀAθ (E8), SymPy expressions in the user's parameter symbols.
    n_independent_charges
        Generic rank of [A_1θ ... A_kθ] (§3), computed exactly at random integer points.
    classes
        ``"indefinite"`` or ``"semidefinite"`` per generator (the dichotomy of §5).
    inertia
        (n_positive, n_negative, n_zero) eigenvalue counts per generator, exact.
    n_conservation_laws
        Number of independent conservation laws of gradient flow, quadratic or not:
        n - dim Lie(V)(θ) at generic θ (Marcotte, Gribonval, Peyré 2023), computed on first
        access by :func:`~noether_sym.conservation_laws` (details in ``conservation_laws``).
        Never below ``n_independent_charges``; above it when some laws are not quadratic.
    unconfirmed
        Numeric candidates that failed exact confirmation, with the reason.
    certificate
        How the answer was obtained: route, sample counts, tolerances and singular-value
        gaps, confirmation method.
    """

    loss: Loss
    generators: list[sp.Matrix]
    rotations: list[sp.Matrix]
    charges: list[sp.Expr]
    n_independent_charges: int
    classes: list[str]
    inertia: list[tuple[int, int, int]]
    unconfirmed: list[Candidate] = field(default_factory=list)
    certificate: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    _laws: ConservationLaws | None = field(default=None, repr=False, compare=False)

    @property
    def conservation_laws(self) -> ConservationLaws:
        """The count of all conservation laws with its certificate (computed once, on first access)."""
        if self._laws is None:
            self._laws = conservation_laws(self.loss, quadratic=self.generators)  # exact charges bound the rank
        return self._laws

    @property
    def n_conservation_laws(self) -> int:
        """Number of independent conservation laws of gradient flow (Lie-bracket rank)."""
        return self.conservation_laws.n_laws

    def __len__(self) -> int:
        return len(self.generators)

    @property
    def n_generators(self) -> int:
        """Dimension of 𝒜(ℓ)."""
        return len(self.generators)

    def __repr__(self) -> str:
        return (
            f"Symmetries({self.loss.name!r}: {self.n_generators} generators, "
            f"{self.n_independent_charges} independent charges, {len(self.rotations)} rotations, "
            f"{len(self.unconfirmed)} unconfirmed, route={self.certificate.get('route')})"
        )

    def to_dict(self, *, with_matrices: bool = True) -> dict[str, Any]:
        """A JSON-ready summary (generators as sparse lists of [i, j, "p/q"])."""
        out: dict[str, Any] = {
            "loss": self.loss.name,
            "n_params": self.loss.n,
            "params": [str(p) for p in self.loss.params],
            "n_generators": self.n_generators,
            "n_independent_charges": self.n_independent_charges,
            "n_rotations": len(self.rotations),
            "classes": self.classes,
            "inertia": [list(t) for t in self.inertia],
            "n_unconfirmed": len(self.unconfirmed),
            "certificate": _jsonable(self.certificate),
            "seconds": round(self.seconds, 4),
        }
        if with_matrices:
            out["generators"] = [_sparse_entries(A) for A in self.generators]
            out["rotations"] = [_sparse_entries(A) for A in self.rotations]
        return out

    def latex(self, symbol_names: Any = None) -> str:
        """Generators and charges as LaTeX (see :func:`noether_sym.to_latex`)."""

        return symmetries_latex(self, _check_names(symbol_names))

    def _latex_(self, names: Mapping[Any, str] | None) -> str:
        return symmetries_latex(self, names)


def _sparse_entries(A: sp.Matrix) -> list[list[Any]]:
    return [[int(i), int(j), str(v)] for (i, j), v in sorted(A.todok().items()) if v != 0]


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


def symmetries_latex(sym: Any, names: Mapping[Any, str] | None = None) -> str:
    """Generators (in full when there are at most ``MAX_MATRIX`` parameters), their class
    and inertia, and the Noether charges (E8)."""
    n = sym.loss.n
    params = ",\\allowbreak\\ ".join(_latex(p, names) for p in sym.loss.params)  # a long list may break
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
