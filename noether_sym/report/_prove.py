"""Report: machine-checked derivations of the theory's results, step by step.

A :class:`Proof` is a theorem statement plus a list of :class:`Step` s. A step is one
displayed equation (or inequality) of the derivation together with the SymPy checks that
establish it: each :class:`ProofCheck` is an exact identity (an expression that must expand or
cancel to zero) or a sign argument (every term of the expanded expression has the claimed
sign, by SymPy's assumptions on the symbols). A proof stops at its first failing step and
keeps the failing expression, so that a broken hypothesis shows *where* the argument
breaks.

Where the proofs live. The proofs are plain Python files, one per result, in the
repository's top-level ``proofs/`` folder; each defines ``proof(**hypotheses) -> Proof``
and is imported by path (:func:`discover`). A wheel built from the repository carries the
same files as ``noether_sym/_proofs`` (hatch ``force-include`` in ``pyproject.toml``), so
``noether-sym prove`` works from an editable install (it finds ``<repo>/proofs``) and from
a plain ``pip install .`` (it finds the packaged copy). ``noether-sym prove --proofs DIR``
and ``discover(path)`` take any other folder.

Hypotheses are arguments of ``proof(...)``: dropping one (``assume_symmetry=False``)
changes the *mathematical objects* the steps are built from (a gradient no longer
constrained by (E4), a noise level no longer nonnegative...), never a flag inside a check,
so the dependent step fails because its expression no longer reduces to zero or is no
longer sign-definite.

Names. :class:`ProofCheck` is one check inside a proof step; it is unrelated to the public
``ns.Check`` (one row of ``ns.verify``'s report). :func:`generic_vector` builds a column of
fresh symbols ``name_1 .. name_d`` for a proof; ``ns.vector`` builds a parameter block
``name_0 .. name_{n-1}`` for a loss.
"""


from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy as sp

from .._errors import InvalidArgumentError, NoetherSymError, ProofError

from ._latex import document

__all__ = ['Proof', 'ProofCheck', 'ProofError', 'ProofResult', 'Step', 'StepResult', 'discover', 'general', 'generic_vector', 'limit', 'orthogonal_to', 'proofs_dir', 'proofs_document', 'rewrite', 'run', 'run_proof', 'sign', 'symmetric', 'zero']


_SIGNS = ("nonneg", "nonpos", "positive", "negative")




# --------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------
def _reduce(expr: Any, how: str) -> Any:
    if how == "expand":
        return sp.expand(expr)
    if how == "cancel":
        return sp.cancel(sp.together(sp.expand(expr)))
    if how == "expand_log":  # logarithms of positive symbols: log(ab) -> log a + log b
        return sp.cancel(sp.together(sp.expand(sp.expand_log(sp.expand(expr), force=True))))
    if how == "doit":
        return sp.expand(sp.sympify(expr, strict=True).doit())
    if how == "sums":
        return _combine_sums(expr)
    if how == "matexpr":  # matrix expressions in symbolic dimension (MatrixSymbol)
        res = expr.expand()
        return res.doit() if hasattr(res, "doit") else res
    raise InvalidArgumentError(f"unknown reduction {how!r}: use 'expand', 'cancel', 'expand_log', 'doit', 'sums' or 'matexpr'")


def _combine_sums(expr: Any) -> Any:
    """Sums over a symbolic range: Σ_i f_i − Σ_i h_i = Σ_i (f_i − h_i); the summands of
    terms with the same limits are added and expanded (term-by-term identity)."""
    by_limits: dict[Any, Any] = {}
    rest = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        coeff, sums = sp.Integer(1), []
        for f in sp.Mul.make_args(term):
            if isinstance(f, sp.Sum):
                sums.append(f)
            else:
                coeff *= f
        if len(sums) == 1:
            key = sums[0].limits
            by_limits[key] = by_limits.get(key, 0) + coeff * sums[0].function
        else:
            rest += term
    out = rest
    for lims, f in by_limits.items():
        f = sp.expand(f)
        if f != 0:
            out += sp.Sum(f, *lims)
    return out


def _is_zero(value: Any) -> bool:
    if isinstance(value, sp.MatrixBase):
        return all(v == 0 for v in value)
    return value == 0 or getattr(value, "is_ZeroMatrix", False) is True


def _term_sign(term: sp.Expr, want: str) -> bool | None:
    coeff, sums = sp.Integer(1), []
    for f in sp.Mul.make_args(term):
        if isinstance(f, sp.Sum):
            sums.append(f)
        else:
            coeff *= f
    if len(sums) == 1:  # a sum of terms of one sign has that sign (positive coefficient)
        flip = {"nonneg": "nonpos", "nonpos": "nonneg"}[want]
        inner = want if coeff.is_nonnegative else flip if coeff.is_nonpositive else None
        if inner is None:
            return None
        return all(_term_sign(t, inner) for t in sp.Add.make_args(sp.expand(sums[0].function)))
    if want == "nonneg":
        return term.is_nonnegative
    if want == "nonpos":
        return term.is_nonpositive
    return None


@dataclass
class ProofCheck:
    """One machine check: ``kind`` is ``"zero"``, a sign (``"nonneg"``, ``"nonpos"``,
    ``"positive"``, ``"negative"``) or ``"limit"``.

    ``build`` returns the expression to check (called when the proof runs, so building a
    proof is cheap). For ``"zero"`` it is reduced with ``reduce`` (``expand``, ``cancel``,
    ``expand_log``, ``doit``, ``sums`` for sums over a symbolic range, ``matexpr`` for
    ``MatrixSymbol`` expressions in symbolic dimension) and must give 0 (every entry, for
    an explicit matrix). For a sign the
    expression is expanded into terms and *every term* must have the sign by SymPy's
    assumptions (term-by-term positivity; for a strict sign, additionally one term must be
    strictly signed). For ``"limit"`` ``build`` returns ``(expr, var, point, expected)``.
    """

    kind: str
    build: Callable[[], Any]
    reduce: str = "expand"
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("zero", "limit") + _SIGNS:
            raise InvalidArgumentError(f"unknown check kind {self.kind!r}: use 'zero', 'limit' or one of {_SIGNS}")

    def evaluate(self) -> tuple[bool, Any, str]:
        """Run the check: (passed, the failing expression or None, a one-line reason)."""
        value = self.build()
        if self.kind == "zero":
            if isinstance(value, sp.MatrixBase):
                res = value.applyfunc(lambda e: _reduce(e, self.reduce))
            else:
                res = _reduce(value, self.reduce)
            if _is_zero(res):
                return True, None, ""
            return False, res, f"does not reduce to 0 by {self.reduce}"
        if self.kind == "limit":
            expr, var, point, expected = value
            got = sp.limit(expr, var, point)
            if got == expected:
                return True, None, ""
            return False, expr, f"its limit as {var} -> {point} is {got}, expected {expected}"
        terms = sp.Add.make_args(sp.expand(value))
        base = {"positive": "nonneg", "negative": "nonpos"}.get(self.kind, self.kind)
        for t in terms:
            if not _term_sign(t, base):
                return False, t, f"term {sp.sstr(t)[:200]} is not {base} by the symbols' assumptions"
        if self.kind in ("positive", "negative"):
            strict = (lambda t: t.is_positive) if self.kind == "positive" else (lambda t: t.is_negative)
            if not any(strict(t) for t in terms):
                return False, sp.expand(value), f"no term is strictly {self.kind}"
        return True, None, ""


def zero(lhs: Any, rhs: Any = 0, *, reduce: str = "expand", label: str = "") -> ProofCheck:
    """Check ``lhs == rhs`` exactly: ``lhs - rhs`` reduces to 0.

    ``lhs`` may be a zero-argument callable (built when the proof runs).

    Examples
    --------
    >>> import sympy as sp
    >>> from noether_sym.report._prove import zero
    >>> a, b = sp.symbols("a b")
    >>> zero((a + b) ** 2, a**2 + 2 * a * b + b**2).evaluate()[0]
    True
    >>> zero((a + b) ** 2, a**2 + b**2).evaluate()[1]
    2*a*b
    """
    def build() -> Any:
        left = lhs() if callable(lhs) and not isinstance(lhs, sp.Basic) else lhs
        right = rhs() if callable(rhs) and not isinstance(rhs, sp.Basic) else rhs
        if isinstance(left, (sp.MatrixBase, sp.MatrixExpr)) or isinstance(right, (sp.MatrixBase, sp.MatrixExpr)):
            return left if (not isinstance(right, (sp.MatrixBase, sp.MatrixExpr)) and right == 0) else left - right
        return sp.sympify(left, strict=True) - sp.sympify(right, strict=True)  # proof-file objects; text refused

    return ProofCheck("zero", build, reduce, label)


def sign(expr: Any, which: str, *, label: str = "") -> ProofCheck:
    """Check that ``expr`` has the sign ``which`` term by term (see :class:`ProofCheck`).

    Examples
    --------
    >>> import sympy as sp
    >>> from noether_sym.report._prove import sign
    >>> a = sp.Symbol("a", real=True); s = sp.Symbol("s", nonnegative=True)
    >>> sign(-2 * a**2 * sp.exp(a) * s, "nonpos").evaluate()[0]
    True
    >>> print(sign(-2 * a * s, "nonpos").evaluate()[2])
    term -2*a*s is not nonpos by the symbols' assumptions
    """
    build = expr if (callable(expr) and not isinstance(expr, sp.Basic)) else (lambda: expr)
    return ProofCheck(which, build, label=label)


def limit(expr: Any, var: sp.Symbol, point: Any, expected: Any, *, label: str = "") -> ProofCheck:
    """Check ``lim_{var -> point} expr == expected`` with :func:`sympy.limit`."""
    return ProofCheck("limit", lambda: (expr() if callable(expr) else expr, var, point, expected), label=label)


@dataclass
class Step:
    """One displayed line of a proof.

    Parameters
    ----------
    name
        Short name, printed by ``noether-sym prove``.
    display
        The line as LaTeX for an ``align`` environment (use ``&`` before the relation).
    why
        The justification (plain text; may contain ``$...$`` math).
    checks
        The SymPy checks establishing the line (for instance one per dimension). Empty for
        a purely logical step (one that combines earlier steps, e.g. by the intermediate
        value theorem); ``scope`` then says which.
    scope
        What the checks cover, e.g. ``"d = 1..4, generic symmetric A"``.
    """

    name: str
    display: str
    why: str
    checks: list[ProofCheck]
    scope: str = ""


@dataclass
class Proof:
    """A theorem with its derivation: ``statement`` (LaTeX), ``hypotheses`` (LaTeX, one
    per item) and ``steps``; ``tags`` cite docs/theory.md, e.g. ``("E9",)``."""

    key: str
    title: str
    tags: tuple[str, ...]
    statement: str
    hypotheses: list[str]
    steps: list[Step]
    setting: str = ""


@dataclass
class StepResult:
    """Outcome of one step: ``status`` is ``"pass"``, ``"fail"`` or ``"skipped"`` (after a
    failing step); ``expression`` is the failing expression and ``reason`` says why."""

    step: Step
    status: str
    seconds: float = 0.0
    expression: Any = None
    reason: str = ""
    check_label: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "pass"


@dataclass
class ProofResult:
    """Outcome of a proof: per-step results; ``failed_step`` is the index of the first
    failing step (None when every step passes)."""

    proof: Proof
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def failed_step(self) -> int | None:
        for k, s in enumerate(self.steps):
            if s.status == "fail":
                return k
        return None


def run_proof(proof: Proof, *, on_step: Callable[[Proof, int, StepResult], None] | None = None) -> ProofResult:
    """Check every step of ``proof`` in order, stopping at the first failure.

    Examples
    --------
    >>> import sympy as sp
    >>> from noether_sym.report._prove import Proof, Step, zero, run_proof
    >>> a, b = sp.symbols("a b")
    >>> p = Proof("demo", "Binomial", (), r"(a+b)^2 = a^2 + 2ab + b^2", [], [
    ...     Step("square", r"(a+b)^2 &= a^2 + 2ab + b^2", "expand", [zero((a + b)**2, a**2 + 2*a*b + b**2)]),
    ...     Step("wrong", r"(a+b)^2 &= a^2 + b^2", "freshman's dream", [zero((a + b)**2, a**2 + b**2)]),
    ...     Step("never run", r"0 &= 0", "", [zero(sp.Integer(0))])])
    >>> r = run_proof(p)
    >>> r.ok, r.failed_step, [s.status for s in r.steps], r.steps[1].expression
    (False, 1, ['pass', 'fail', 'skipped'], 2*a*b)
    """
    if not isinstance(proof, Proof):
        raise ProofError(f"expected a Proof, got {type(proof).__name__}: a proof file's proof() must return noether_sym.report._prove.Proof")
    out = ProofResult(proof)
    t0 = time.perf_counter()
    failed = False
    for k, step in enumerate(proof.steps):
        if failed:
            out.steps.append(StepResult(step, "skipped"))
            continue
        ts = time.perf_counter()
        res = StepResult(step, "pass")
        for chk in step.checks:
            try:
                ok, expr, reason = chk.evaluate()
            except NoetherSymError:
                raise
            except Exception as exc:  # a check that crashes is a failed check, reported as such
                ok, expr, reason = False, None, f"the check raised {type(exc).__name__}: {exc}"
            if not ok:
                res = StepResult(step, "fail", expression=expr, reason=reason, check_label=chk.label)
                failed = True
                break
        res.seconds = time.perf_counter() - ts
        out.steps.append(res)
        if on_step is not None:
            on_step(proof, k, res)
    out.seconds = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------
def proofs_dir(path: str | Path | None = None) -> Path:
    """The folder holding the proof files: ``path`` if given, else the repository's
    ``proofs/`` (next to the package, editable installs), else the packaged copy
    ``noether_sym/_proofs`` (wheels)."""
    if path is not None:
        p = Path(path)
        if not p.is_dir():
            raise ProofError(f"{p} is not a folder: pass the folder that holds the proof files (e*.py)")
        return p
    here = Path(__file__).resolve().parents[1]  # the package folder (this module is in report/)
    for cand in (here.parent / "proofs", here / "_proofs"):
        if cand.is_dir() and any(cand.glob("e*.py")):
            return cand
    raise ProofError(
        "no proofs found: neither <repo>/proofs nor noether_sym/_proofs holds e*.py files; "
        "pass the folder explicitly (noether-sym prove --proofs DIR)"
    )


def _load(file: Path) -> Any:
    name = f"noether_sym_proofs_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:  # pragma: no cover - only for unreadable files
        raise ProofError(f"cannot import {file}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    if not callable(getattr(mod, "proof", None)):
        raise ProofError(f"{file} defines no proof() function: each proof file must define proof(**hypotheses) -> Proof")
    return mod


def discover(path: str | Path | None = None) -> dict[str, Callable[..., Proof]]:
    """The ``proof`` functions of every ``e*.py`` file in :func:`proofs_dir`, by file stem.

    Examples
    --------
    >>> from noether_sym.report._prove import discover
    >>> "e09_gradient_flow" in discover()
    True
    """
    folder = proofs_dir(path)
    return {f.stem: _load(f).proof for f in sorted(folder.glob("e*.py"))}


def run(
    path: str | Path | None = None,
    *,
    only: Sequence[str] | None = None,
    on_step: Callable[[Proof, int, StepResult], None] | None = None,
) -> list[ProofResult]:
    """Build and run every proof (or those whose file stem contains one of ``only``).

    Examples
    --------
    >>> from noether_sym.report._prove import run
    >>> [r.ok for r in run(only=["e09"])]
    [True]
    """
    found = discover(path)
    keys = list(found)
    if only:
        keys = [k for k in keys if any(o in k for o in only)]
        if not keys:
            raise InvalidArgumentError(f"no proof file matches {list(only)}; available: {', '.join(found)}")
    return [run_proof(found[k](), on_step=on_step) for k in keys]


# --------------------------------------------------------------------------------------
# LaTeX
# --------------------------------------------------------------------------------------
def _tex_text(text: str) -> str:
    """Escape plain text for LaTeX, leaving ``$...$`` math untouched."""
    parts = text.split("$")
    out = []
    for k, part in enumerate(parts):
        if k % 2:
            out.append("$" + part + "$")
        else:
            part = (part.replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%")
                    .replace("#", r"\#").replace("_", r"\_").replace("{", r"\{").replace("}", r"\}")
                    .replace("^", r"\^{}").replace(r"\textbackslash\{\}", r"\textbackslash{}"))
            part = part.replace("<=>", r"$\Leftrightarrow$").replace("=>", r"$\Rightarrow$")
            part = part.replace("<=", r"$\le$").replace(">=", r"$\ge$").replace("<", "$<$").replace(">", "$>$")
            out.append(part)
    return "".join(out)


def proofs_document(results: Iterable[ProofResult], *, seconds: float | None = None) -> str:
    """One complete LaTeX document: per proof the theorem, its hypotheses and every step as
    an aligned equation with its justification and what SymPy checked."""
    results = list(results)
    n_steps = sum(len(r.steps) for r in results)
    n_pass = sum(s.ok for r in results for s in r.steps)
    parts = []
    summary = (
        f"Every step below is an identity or an inequality that SymPy checked exactly "
        f"(expansion or cancellation to zero, or a term-by-term sign argument), in symbolic "
        f"dimension where possible and otherwise for every dimension up to the stated bound. "
        f"{len(results)} theorems, {n_steps} steps, {n_pass} passed"
    )
    if seconds is not None:
        summary += f", checked in {seconds:.1f} s"
    parts.append(_tex_text(summary + ". Tags (E1)--(E22) and sections refer to docs/theory.md, the theory page shipped with the package."))
    for r in results:
        p = r.proof
        tags = ", ".join(f"(E{t[1:]})" if t.startswith("E") else t for t in p.tags)
        parts.append(f"\\section{{{_tex_text(p.title)} {tags}}}")
        if p.setting:
            parts.append(_tex_text(p.setting))
        parts.append(f"\\begin{{theorem}}\n{p.statement}\n\\end{{theorem}}")
        if p.hypotheses:
            items = "\n".join(f"  \\item {h}" for h in p.hypotheses)
            parts.append(f"\\noindent Hypotheses:\n\\begin{{itemize}}\n{items}\n\\end{{itemize}}")
        parts.append(r"\begin{proof}")
        for k, s in enumerate(r.steps, start=1):
            st = s.step
            status = {"pass": "checked" if st.checks else "follows", "fail": "FAILED", "skipped": "not reached"}[s.status]
            scope = f"; {_tex_text(st.scope)}" if st.scope else ""
            parts.append(
                f"\\noindent\\textbf{{Step {k}: {_tex_text(st.name)}.}} {_tex_text(st.why)}"
                f"\\hfill{{\\small [{status}{scope}]}}\n\\begin{{align*}}\n{st.display}\n\\end{{align*}}"
            )
        parts.append(r"\end{proof}")
    return document("\n\n".join(parts), "Machine-checked derivations of the noise-equilibrium theory",
                    author=r"\texttt{noether-sym prove}")


# --------------------------------------------------------------------------------------
# building blocks for proof files
# --------------------------------------------------------------------------------------
def generic_vector(name: str, d: int, **assumptions: Any) -> sp.Matrix:
    """A generic column vector: ``d`` fresh symbols ``name_1 .. name_d`` (1-based, unlike ``ns.vector``).

    Examples
    --------
    >>> from noether_sym.report._prove import generic_vector
    >>> generic_vector("g", 2).T
    Matrix([[g_1, g_2]])
    """
    return sp.Matrix([sp.Symbol(f"{name}_{i}", **assumptions) for i in range(1, d + 1)])


def symmetric(name: str, d: int, **assumptions: Any) -> sp.Matrix:
    """A generic symmetric ``d x d`` matrix with entries ``name_ij`` (i <= j)."""
    return sp.Matrix(d, d, lambda i, j: sp.Symbol(f"{name}_{min(i, j) + 1}{max(i, j) + 1}", **assumptions))


def general(name: str, rows: int, cols: int, **assumptions: Any) -> sp.Matrix:
    """A generic ``rows x cols`` matrix with entries ``name_ij``."""
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", **assumptions))


def rewrite(expr: Any, rules: Sequence[tuple[Any, Any]], *, rounds: int = 10) -> Any:
    """Expand ``expr`` and apply the substitutions ``rules`` until nothing changes: the way a
    hypothesis that is an identity between matrix words (``θᵀAg = 0``, ``P P⁻¹ = I``) enters
    a check in symbolic dimension.

    Examples
    --------
    >>> import sympy as sp
    >>> from noether_sym.report._prove import rewrite
    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> th, g, A = sp.MatrixSymbol("theta", n, 1), sp.MatrixSymbol("g", n, 1), sp.MatrixSymbol("A", n, n)
    >>> rewrite(th.T * A * (g + th), [(th.T * A * g, sp.ZeroMatrix(1, 1))])
    theta.T*A*theta
    """
    expr = expr.expand()
    for _ in range(rounds):
        new = expr
        for old, rep in rules:
            new = new.subs(old, rep)
        new = new.expand()
        if new == expr:
            break
        expr = new
    return expr


def orthogonal_to(v: sp.Matrix, name: str, *, constrain: bool = True) -> sp.Matrix:
    """A generic vector ``g`` with ``gᵀv = 0``, written ``g = J v`` with ``J`` a generic
    antisymmetric matrix (entries ``name_ij``): every vector orthogonal to ``v ≠ 0`` has
    this form (take ``J = (g vᵀ − v gᵀ)/‖v‖²``), and it keeps the algebra polynomial.

    With ``constrain=False`` the vector is generic (the hypothesis dropped).

    Examples
    --------
    >>> import sympy as sp
    >>> from noether_sym.report._prove import generic_vector, orthogonal_to
    >>> v = generic_vector("v", 2); g = orthogonal_to(v, "g")
    >>> g.T, sp.expand((g.T * v)[0])
    (Matrix([[g_12*v_2, -g_12*v_1]]), 0)
    """
    d = v.shape[0]
    if not constrain:
        return generic_vector(name, d)
    J = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"{name}_{min(i, j) + 1}{max(i, j) + 1}") * (1 if i < j else -1 if i > j else 0))
    return J * v
