"""Check: every theorem of docs/theory.md checked on every catalog family (the main job).

A check returns a :class:`Check` verdict: family, theorem, predicted, measured, tolerance,
passed, seconds. Three kinds (THEORY §9):

* exact -- symbolic identities decided exactly ((E4) generator confirmation, (E9)
  conservation, the count of generators against the theory's formula);
* numeric -- identities evaluated in floating point at random points, to ~1e-9 or better
  ((E5) gradient transport, (E6)-(E7) noise covariance, (E10) one SGD step, (E14) spectral
  form);
* stochastic -- predictions against simulated SGD with a stated tolerance: the expected
  one-step charge change (E11), the noise equilibrium (E16)-(E17), the weight-decay
  equilibrium of the divergent class (E18), the two-layer equilibrium (E21) and the
  sharpness at the equilibrium (E19). Tolerances are ``rtol·|predicted| + z·s.e.``: ``rtol``
  is the allowance for the O(η) bias of the simulated learning rate (stated per check),
  the s.e. is measured over independent replicas.

Checks are generic: they use only the Loss, the generators the finder returns, the
family's default start and simulation settings, and (for (E21)) the family's declared
data model. A family lists the THEORY tags that apply (``Family.theorems``).
"""


from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import sympy as sp
from scipy.integrate import quad
from scipy.linalg import expm

from noether_sym import families as fam_mod

from .._errors import InvalidArgumentError, NoetherSymError
from .._printing import NotebookDisplay
from ..compile._compiled import compiled
from ..compile._confirm import confirm_generator
from ..data._moments import compiled_moments, expectation
from ..data._sample import make_sampler
from ..report._latex import document, to_latex
from ..report._plot import _figure_class
from ..simulate._run import simulate
from ..symmetry._charges import confirm_conservation
from ..symmetry._finder import find_symmetries
from ..theory._predict import TwoLayerModel, predict_equilibrium
from ..theory._sharpness import sharpness_along_orbit
from ._compare import compare

__all__ = ['Check', 'VerifyReport', 'check_generators', 'check_transport', 'check_noise_orthogonality', 'check_conservation', 'check_one_step', 'check_spectral', 'check_expected_step', 'check_equilibrium', 'check_weight_decay', 'check_two_layer', 'check_divergence', 'check_sharpness', 'verify']



@dataclass
class Check:
    """One verdict.

    ``predicted``/``measured``/``tolerance`` are numbers: for exact checks the residual (0)
    or a count; for numeric checks a relative residual against its bound; for stochastic
    checks the predicted and measured values and the absolute tolerance
    ``rtol·|predicted| + z·s.e.``.
    """

    family: str
    theorem: str
    statement: str
    kind: str
    predicted: float
    measured: float
    tolerance: float
    passed: bool
    seconds: float = 0.0
    detail: str = ""
    sem: float | None = None
    figure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = bool(d["passed"])
        for k in ("predicted", "measured", "tolerance", "sem"):
            v = d[k]
            if v is not None:
                v = float(v)
                d[k] = v if math.isfinite(v) else str(v)
        return d


@dataclass
class VerifyReport(NotebookDisplay):
    """All verdicts of a :func:`verify` run."""

    checks: list[Check]
    seconds: float
    quick: bool
    families: list[str]
    seed: int
    figures: dict[str, Any] = field(default_factory=dict)  # check index -> Figure-making callable

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def n_failed(self) -> int:
        return sum(not c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``noether-sym verify --json``: ``{"checks": [...], "seconds": ...}`` (and more)."""
        return {
            "checks": [c.to_dict() for c in self.checks],
            "seconds": round(self.seconds, 3),
            "passed": bool(self.passed),
            "n_checks": len(self.checks),
            "n_failed": self.n_failed,
            "quick": self.quick,
            "families": list(self.families),
            "seed": self.seed,
        }

    def table(self, *, markdown: bool = False) -> str:
        """The verdicts as a table (plain text, or Markdown)."""
        head = ["family", "theorem", "kind", "predicted", "measured", "tolerance", "ok", "s"]
        rows = [[c.family, c.theorem, c.kind, _fmt(c.predicted), _fmt(c.measured) + (f" ± {c.sem:.2g}" if c.sem else ""),
                 _fmt(c.tolerance), "yes" if c.passed else "NO", f"{c.seconds:.2f}"] for c in self.checks]
        if markdown:
            lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
            return "\n".join(lines)
        widths = [max(len(r[j]) for r in [head] + rows) for j in range(len(head))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head] + rows)

    def summary(self) -> str:
        fams = len(set(c.family for c in self.checks))
        return (f"{len(self.checks)} checks on {fams} families: {len(self.checks) - self.n_failed} passed, "
                f"{self.n_failed} failed ({self.seconds:.1f} s{', quick' if self.quick else ''})")

    def write(self, out: str | os.PathLike) -> str:
        """Write the report directory: report.md, results.json, one PNG per stochastic
        check, derivations.tex. Files are written atomically. Returns the directory."""
        out = os.fspath(out)
        os.makedirs(out, exist_ok=True)
        _atomic_write(os.path.join(out, "results.json"), json.dumps(self.to_dict(), indent=1))
        figs = []
        missing = None  # the figures' missing dependency, said once (stderr and report.md)
        for i, c in enumerate(self.checks):
            make = self.figures.get(i)
            if make is None:
                continue
            name = f"{i:03d}-{_slug(c.family)}-{_slug(c.theorem)}.png"
            try:
                fig = make()
            except ImportError as exc:
                missing = f"no figures written: {exc}"
                print(f"noether-sym verify: {missing}", file=sys.stderr)
                break
            tmp = os.path.join(out, "." + name + ".tmp.png")
            fig.savefig(tmp, dpi=110)
            os.replace(tmp, os.path.join(out, name))
            c.figure = name
            figs.append((c, name))
        _atomic_write(os.path.join(out, "results.json"), json.dumps(self.to_dict(), indent=1))
        md = [
            "# noether-sym verify",
            "",
            self.summary(),
            "",
            "Every row is one theorem of docs/theory.md (tags (E1)-(E22)) on one catalog family. *exact*: decided by exact",
            "polynomial arithmetic; *numeric*: a relative residual in floating point against its bound;",
            "*stochastic*: simulated SGD against the prediction, tolerance = rtol·|predicted| + 4 s.e.",
            "",
            self.table(markdown=True),
            "",
        ]
        if missing:
            md += [f"**{missing}**", ""]
        if figs:
            md += ["## Figures", ""]
            for c, name in figs:
                md += [f"### {c.family}: {c.theorem}", "", c.statement, "", f"![{c.theorem}]({name})", ""]
        tex = self.figures.get("latex")
        if tex is not None:
            try:
                _atomic_write(os.path.join(out, "derivations.tex"), tex())
                md += ["The derived expressions (charges, drift laws, equilibria) are in `derivations.tex`.", ""]
            except NoetherSymError as exc:  # pragma: no cover - reported, not fatal
                md += [f"(LaTeX export failed: {exc})", ""]
        _atomic_write(os.path.join(out, "report.md"), "\n".join(md))
        return out


def _fmt(v: Any) -> str:
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e9):
        return str(int(v))
    v = float(v)
    return f"{v:.4g}" if (v == 0 or 1e-3 <= abs(v) < 1e5) else f"{v:.2e}"


def _slug(s: str) -> str:
    return "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in s).strip("-").lower()[:40]


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------
# a family's case: the loss, its start, its generators (all computed once)
# ------------------------------------------------------------------------------------------


class _Case:
    def __init__(self, family: Any, *, quick: bool, seed: int, perturb: float) -> None:

        self.family = family
        self.name = family.name
        self.quick = quick
        self.seed = seed
        self.perturb = perturb  # multiplies every stochastic prediction (tests: the checks can fail)
        self.loss = family.build()
        self.theta0 = np.asarray(family.theta0(self.loss, seed=seed), dtype=float)
        self.settings = dict(family.settings)
        self.sym = find_symmetries(self.loss, seed=seed)
        self.gens = list(self.sym.generators)
        self.gens_f = [np.array(A.tolist(), dtype=float) for A in self.gens]
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 4242]))
        self.figures: dict[int, Callable[[], Any]] = {}
        self._mf = None
        self._minimum = None

    # ---- shared numeric helpers ------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.loss.n

    def moments(self) -> Any:
        """θ -> ∇L, Σ: the exact moments compiled (polynomial data models), or, when the loss
        has no exact moments (kinks, non-polynomial terms), the empirical moments of one
        fixed sample of 100,000 draws. With a fixed sample the symmetry identities (E5)-(E7),
        (E14) hold exactly sample by sample, so they still hold to rounding."""
        if self._mf is None:

            try:
                self._mf = compiled_moments(self.loss)
                self.exact_moments = True
            except NoetherSymError:
                self._mf = _EmpiricalMoments(self.loss, self.sample(100_000))
                self.exact_moments = False
        return self._mf

    exact_moments = True

    def sample(self, k: int) -> np.ndarray | None:

        s = make_sampler(self.loss)
        return s.draw(self.rng, (k,)) if s.d else None

    def point(self) -> np.ndarray:
        """A random point near the start (generic: off any special set)."""
        return self.theta0 + 0.3 * self.rng.standard_normal(self.n)

    def some_generators(self, k: int = 3) -> list[int]:
        return list(range(min(k, len(self.gens))))

    def minimum(self) -> np.ndarray:
        """A point on the minimum manifold near the start: gradient descent on the population
        loss (exact or empirical ∇L) from the default start. Gradient flow conserves the
        charges (E9) and GD changes them by O(η) only, so the point keeps the start's place
        along the orbits."""
        if self._minimum is None:
            mf = self.moments()
            if not self.exact_moments:  # GD on the empirical loss of a 4,000-draw subsample
                mf = _EmpiricalMoments(self.loss, self._mf.X[:4_000])
            lr = min(float(self.settings.get("lr", 0.01)) * 5, 0.1)
            th = self.theta0.copy()
            g0 = float(np.linalg.norm(mf.mean_grad(th))) + 1e-300
            for _ in range(200 if self.exact_moments else 30):
                for _ in range(100):
                    th = th - lr * mf.mean_grad(th)
                if not np.all(np.isfinite(th)):
                    raise InvalidArgumentError(f"{self.name}: gradient descent to a minimum diverged (lr {lr})")
                if np.linalg.norm(mf.mean_grad(th)) < (1e-10 if self.exact_moments else 1e-6) * max(1.0, g0):
                    break
            self._minimum = th
        return self._minimum


class _EmpiricalMoments:
    """Mean gradient and covariance over one fixed sample (see :meth:`_Case.moments`)."""

    def __init__(self, loss: Any, X: np.ndarray | None) -> None:

        self.cl = compiled(loss)
        self.X = X
        self.n = loss.n

    def _g(self, th: np.ndarray) -> np.ndarray:
        k = 1 if self.X is None else self.X.shape[0]
        return self.cl.grad(np.broadcast_to(np.asarray(th, dtype=float), (k, self.n)), self.X)

    def mean_grad(self, th: np.ndarray) -> np.ndarray:
        return self._g(th).mean(axis=0)

    def covariance(self, th: np.ndarray) -> np.ndarray:
        g = self._g(th)
        d = g - g.mean(axis=0)
        return d.T @ d / g.shape[0]


# ------------------------------------------------------------------------------------------
# checks: each takes a _Case and returns verdicts
# ------------------------------------------------------------------------------------------


def _timed(fn: Callable[[_Case], list[Check]]) -> Callable[[_Case], list[Check]]:
    def run(case: _Case) -> list[Check]:
        t = time.perf_counter()
        out = fn(case)
        dt = (time.perf_counter() - t) / max(1, len(out))
        for c in out:
            c.seconds = dt
        return out

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


@_timed
def check_generators(case: _Case) -> list[Check]:
    """(E4): the finder's generators, each confirmed exactly, against the theory's count."""

    expected = case.family.extra.get("n_generators")
    confirmed = sum(1 for A in case.gens if confirm_generator(case.loss, A)[0])
    out = []
    if expected is not None:
        k = int(expected(**case.family.options))
        out.append(Check(case.name, "E4 count", "dim 𝒜(ℓ): generators found = the theory's count", "exact",
                         k, len(case.gens), 0, len(case.gens) == k))
    out.append(Check(case.name, "E4 exact", "g(θ,x)ᵀAθ ≡ 0 for every generator (exact polynomial arithmetic)", "exact",
                     len(case.gens), confirmed, 0, confirmed == len(case.gens),
                     detail=f"route {case.sym.certificate.get('route')}"))
    return out


@_timed
def check_transport(case: _Case) -> list[Check]:
    """(E5): g(e^{λA}θ, x) = e^{−λA} g(θ, x) at random θ, x and λ = ±0.3."""


    if not case.gens:
        return []
    cl = compiled(case.loss)
    worst = 0.0
    for i in case.some_generators():
        A = case.gens_f[i]
        for lam in (0.3, -0.3):
            th = case.point()
            X = case.sample(16)
            T = np.broadcast_to(th, (16, case.n))
            g0 = cl.grad(T, X)
            g1 = cl.grad(np.broadcast_to(expm(lam * A) @ th, (16, case.n)), X)
            ref = g0 @ expm(-lam * A).T
            worst = max(worst, float(np.abs(g1 - ref).max() / max(np.abs(ref).max(), 1e-300)))
    return [Check(case.name, "E5", "gradient transport g(e^{λA}θ) = e^{−λA} g(θ), per sample", "numeric",
                  0.0, worst, 1e-9, worst <= 1e-9)]


@_timed
def check_noise_orthogonality(case: _Case) -> list[Check]:
    """(E6)-(E7): Σ(θ)Aθ = 0, ∇Lᵀ Aθ = 0 and Σ(e^{λA}θ) = e^{−λA}Σ(θ)e^{−λA}."""

    if not case.gens or not (case.loss.random_symbols or case.loss.dataset is not None):
        return []
    mf = case.moments()
    worst7 = worst6 = 0.0
    for i in case.some_generators():
        A = case.gens_f[i]
        th = case.point()
        S, g = mf.covariance(th), mf.mean_grad(th)
        v = A @ th
        scale = max(np.abs(S).max() * np.linalg.norm(v), 1e-300)
        worst7 = max(worst7, float(np.abs(S @ v).max() / scale),
                     abs(float(g @ v)) / max(np.linalg.norm(g) * np.linalg.norm(v), 1e-300))
        E = expm(-0.3 * A)
        S1 = mf.covariance(expm(0.3 * A) @ th)
        worst6 = max(worst6, float(np.abs(S1 - E @ S @ E).max() / max(np.abs(S1).max(), 1e-300)))
    return [
        Check(case.name, "E6", "Σ(e^{λA}θ) = e^{−λA}Σ(θ)e^{−λA} (λ = 0.3)", "numeric", 0.0, worst6, 1e-9, worst6 <= 1e-9),
        Check(case.name, "E7", "Σ(θ)Aθ = 0 and ∇L(θ)ᵀAθ = 0", "numeric", 0.0, worst7, 1e-10, worst7 <= 1e-10),
    ]


@_timed
def check_conservation(case: _Case) -> list[Check]:
    """(E9): gradient flow conserves C = θᵀAθ (dC/dt = −2γC), decided exactly."""

    if not case.gens:
        return []
    ok = sum(1 for A in case.gens if confirm_conservation(case.loss, A)[0])
    return [Check(case.name, "E9", "dC/dt = −2γC under gradient flow, every charge (exact)", "exact",
                  len(case.gens), ok, 0, ok == len(case.gens))]


@_timed
def check_one_step(case: _Case) -> list[Check]:
    """(E10): C_{k+1} = (1−ηγ)²C_k + η² ĝᵀAĝ for one real minibatch step, to 1e-12."""

    if not case.gens:
        return []
    cl = compiled(case.loss)
    eta = float(case.settings.get("lr", 0.01))
    gamma = float(case.settings.get("weight_decay", 0.0)) or 0.05
    S = int(case.settings.get("batch_size", 1))
    worst = 0.0
    for i in case.some_generators():
        A = case.gens_f[i]
        th = case.point()
        X = case.sample(S)
        ghat = cl.grad(np.broadcast_to(th, (S, case.n)), X).mean(axis=0)
        th1 = (1 - eta * gamma) * th - eta * ghat
        lhs = th1 @ A @ th1
        c0, q = th @ A @ th, ghat @ A @ ghat
        rhs = (1 - eta * gamma) ** 2 * c0 + eta**2 * q
        scale = abs((1 - eta * gamma) ** 2 * c0) + abs(eta**2 * q) + 2 * eta * abs(ghat @ A @ th) + 1e-300
        worst = max(worst, abs(lhs - rhs) / scale)
    return [Check(case.name, "E10", "one SGD step with weight decay: C' = (1−ηγ)²C + η²ĝᵀAĝ (relative)", "numeric",
                  0.0, worst, 1e-12, worst <= 1e-12)]


@_timed
def check_spectral(case: _Case) -> list[Check]:
    """(E14): G(λ) = Tr[AΣ(e^{λA}θ)] equals Σ_i a_i e^{−2λa_i} s_i (spectral form)."""

    if not case.gens or not (case.loss.random_symbols or case.loss.dataset is not None):
        return []
    mf = case.moments()
    worst = 0.0
    for i in case.some_generators():
        A = case.gens_f[i]
        th = case.point()
        a, V = np.linalg.eigh(A)
        S = mf.covariance(th)
        s = np.einsum("ji,jk,ki->i", V, S, V)  # s_i per eigenvector (P_i sums them)
        for lam in (-0.4, 0.25):
            direct = float(np.trace(A @ mf.covariance(expm(lam * A) @ th)))
            spec = float(np.sum(a * np.exp(-2 * lam * a) * s))
            worst = max(worst, abs(direct - spec) / max(np.sum(np.abs(a * np.exp(-2 * lam * a) * s)), 1e-300))
    return [Check(case.name, "E14", "G(λ) = Tr[AΣ(θ_λ)] = Σ a_i e^{−2λa_i} s_i (λ = −0.4, 0.25)", "numeric",
                  0.0, worst, 1e-9, worst <= 1e-9)]


def _z() -> float:
    return 4.0  # standard errors allowed on top of the bias allowance


@_timed
def check_expected_step(case: _Case) -> list[Check]:
    """(E11): E[C_{k+1} − C_k | θ] = −(2ηγ − η²γ²)C + η²(∇LᵀA∇L + Tr[AΣ]/S), measured over
    many independent one-step SGD replicas from one θ (batches of S samples drawn with
    replacement). No discretization bias: the identity is exact, so the tolerance is 4 s.e."""

    if not case.gens or not (case.loss.random_symbols or case.loss.dataset is not None):
        return []
    mf = case.moments()
    eta = float(case.settings.get("lr", 0.01))
    S = int(case.settings.get("batch_size", 1))
    gamma = float(case.settings.get("weight_decay", 0.0))
    th = case.theta0
    A = case.gens_f[0]
    g, Sig = mf.mean_grad(th), mf.covariance(th)
    c0 = th @ A @ th
    pred = -(2 * eta * gamma - (eta * gamma) ** 2) * c0 + eta**2 * (g @ A @ g + np.trace(A @ Sig) / S)
    R = 50_000 if case.quick else 400_000
    cl = compiled(case.loss)
    d = np.empty(R)
    for r0 in range(0, R, 10_000):  # blocks of replicas: bounded memory
        r1 = min(R, r0 + 10_000)
        X = case.sample((r1 - r0) * S)
        ghat = cl.grad(np.broadcast_to(th, ((r1 - r0) * S, case.n)), X).reshape(r1 - r0, S, case.n).mean(axis=1)
        th1 = (1 - eta * gamma) * th - eta * ghat
        d[r0:r1] = np.einsum("ri,ij,rj->r", th1, A, th1) - c0
    meas, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(R))
    pred *= case.perturb
    tol = _z() * se + 1e-12 * abs(pred)
    chk = Check(case.name, "E11", "expected one-step change of the charge, E[ΔC] (replicas from one θ)", "stochastic",
                pred, meas, tol, abs(meas - pred) <= tol, sem=se, detail=f"{R} one-step replicas, η={eta}, S={S}, γ={gamma}")

    def fig(d: np.ndarray = d, pred: float = pred, meas: float = meas, se: float = se) -> Any:

        Figure, Canvas = _figure_class()
        f = Figure(figsize=(6, 3.6))
        Canvas(f)
        ax = f.add_subplot(1, 1, 1)
        lo, hi = np.percentile(d, [0.5, 99.5])
        ax.hist(np.clip(d, lo, hi), bins=80, color="C0", alpha=0.6, label="ΔC per replica (clipped to 99%)")
        ax.axvline(pred, color="k", ls="--", label=f"predicted E[ΔC] = {pred:.4g} (E11)")
        ax.axvspan(meas - 2 * se, meas + 2 * se, color="C3", alpha=0.3, label=f"measured {meas:.4g} ± 2 s.e.")
        ax.set_xlabel("charge change in one SGD step")
        ax.set_ylabel("replicas")
        ax.set_title(f"{case.name}: one step from θ₀, {len(d)} replicas", fontsize=9)
        ax.legend(fontsize=7)
        f.tight_layout()
        return f

    chk._fig = fig  # type: ignore[attr-defined]
    return [chk]


def _split_observables(gens_f: list[np.ndarray], k: int) -> tuple[dict[str, Any], list[str]]:
    """Observables θᵀA₊θ and θᵀA₋θ per generator (A = A₊ − A₋, A± ⪰ 0): positive, so a
    relative tolerance means something even where the charge itself balances at 0."""
    obs: dict[str, Any] = {}
    for i, A in enumerate(gens_f[:k]):
        a, V = np.linalg.eigh(A)
        for sign, nm in ((1, "+"), (-1, "-")):
            sel = sign * a > 1e-12
            if not sel.any():
                continue
            P = (V[:, sel] * (sign * a[sel])) @ V[:, sel].T
            obs[f"θᵀA{nm}θ [{i + 1}]"] = (lambda T, P=P: np.einsum("...i,ij,...j->...", T, P, T))
    return obs, list(obs)


def _stochastic_from_comparison(case: _Case, theorem: str, statement: str, cmp: Any, rtol: float) -> list[Check]:
    """Verdicts from a Comparison: the Richardson estimate (full mode) or the measurement at
    η (quick mode) within rtol·|predicted| + 4 s.e., and the tail must be stationary."""
    out = []
    which = "measured" if cmp.richardson is None else "richardson"
    if cmp.order == "none":
        rtol = max(rtol, _RTOL["quick"])  # no clean runs to extrapolate: the O(η) bias allowance
    est = cmp.measured if which == "measured" else cmp.richardson
    se = cmp.sem if which == "measured" else cmp.richardson_sem
    stationary = cmp.stationary()
    for i, nm in enumerate(cmp.names):
        pred = float(cmp.predicted[i]) * case.perturb
        tol = rtol * abs(pred) + _z() * float(se[i])
        ok = abs(float(est[i]) - pred) <= tol and stationary
        out.append(Check(case.name, f"{theorem} {nm}", statement, "stochastic", pred, float(est[i]), tol, ok,
                         sem=float(se[i]),
                         detail=f"{'Richardson (' + cmp.order + ')' if which == 'richardson' else 'at η'}; rtol {rtol:g} "
                                f"(O(η{'²' if which == 'richardson' else ''}) bias allowance); lr {cmp.settings['lr']}, "
                                f"{cmp.settings['replicas']} replicas, {cmp.settings['steps']} steps"
                                + "".join("; " + w for w in cmp.warnings)))
    out[0]._fig = lambda cmp=cmp: cmp.plot(title=f"{case.name}: {theorem}")  # type: ignore[attr-defined]
    return out


def _flow_steps(case: _Case, th: np.ndarray, gens: list[Any], eta: float, S: int, gamma: float = 0.0) -> int:
    """Steps the Noether flow needs to come within 1% (in λ) of its equilibrium, from the
    theory: along one generator dλ/dk = (η²/S) G(λ)/C'(λ) (E12, E14, E15), so
    k = (S/η²) ∫ C'(λ)/G(λ) dλ from 0 to λ*. With weight decay the charge relaxes at the
    rate 2ηγ per step: k = log(100)/(2ηγ). The largest over the generators."""


    if gamma > 0:
        return int(math.log(100.0) / (2 * eta * gamma))
    worst = 0.0
    for A in gens:
        eq = predict_equilibrium(case.loss, list(th), [A], batch_size=S).result
        if not math.isfinite(eq.lam):
            continue
        a = np.array([float(v) for v in eq.eigenvalues])
        s_ = np.array([float(v) for v in eq.noise])
        n_ = np.array([float(v) for v in eq.norms])
        lam = float(eq.lam)
        end = lam - math.copysign(min(0.01 * max(1.0, abs(lam)), abs(lam)), lam)

        def integrand(x: float) -> float:
            G = float(np.sum(a * np.exp(-2 * x * a) * s_))
            Cp = float(2 * np.sum(a * a * np.exp(2 * x * a) * n_))
            return Cp / G if G != 0 else 0.0

        if end != 0:
            val, _ = quad(integrand, 0.0, end, limit=200)
            worst = max(worst, abs(val) * S / eta**2)
    return int(worst)


#: the longest simulation a check may ask for (steps); beyond it the check reports failure
_MAX_STEPS = 400_000


def _sim_settings(case: _Case) -> dict[str, Any]:
    """The family's simulation settings; full mode adds the Richardson runs at 2η and 4η
    (steps/4 and steps/16: equal η²k, (E12)), quick mode halves the replicas instead."""
    s = case.settings
    steps, replicas = int(s.get("steps", 10_000)), int(s.get("replicas", 100))
    if case.quick:
        replicas = max(replicas // 2, 32)
    return dict(lr=float(s.get("lr", 0.01)), batch_size=int(s.get("batch_size", 1)), steps=steps, replicas=replicas,
                richardson=not case.quick, order=str(case.family.extra.get("richardson", "auto")), tail=0.5, seed=case.seed, records=100 if case.quick else 200)


#: full mode: the largest relative 4-s.e. band a stochastic check may have; beyond it the
#: replicas are scaled up (at most _MAX_REPLICA_FACTOR times) so a 10% error is resolved
_TARGET_BAND = 0.03
_MAX_REPLICA_FACTOR = 16


def _compare_resolved(case: _Case, th: np.ndarray, **kw: Any) -> Any:
    """``compare`` with the family's settings; in full mode, when 4 s.e. exceed 3% of a
    prediction, run again with replicas scaled by (band / 3%)² (the s.e. falls as
    1/√replicas; at most 16x): the replica count comes from the measured spread, not from
    a per-family constant."""

    cmp = compare(case.loss, th, **kw)
    if case.quick:
        return cmp
    se = cmp.sem if cmp.richardson is None else cmp.richardson_sem
    with np.errstate(divide="ignore", invalid="ignore"):
        band = float(np.nanmax(_z() * se / np.abs(cmp.predicted)))
    if not math.isfinite(band) or band <= _TARGET_BAND:
        return cmp
    factor = min(_MAX_REPLICA_FACTOR, math.ceil((band / _TARGET_BAND) ** 2))
    kw["replicas"] = int(kw["replicas"]) * factor
    return compare(case.loss, th, **kw)


#: bias allowances: quick mode compares at η (O(η) bias), full mode the Richardson estimate
_RTOL = {"quick": 0.06, "full": 0.03}


@_timed
def check_equilibrium(case: _Case) -> list[Check]:
    """(E16)-(E17): SGD from a minimum settles at the predicted noise equilibrium
    (one generator: (E17)/root of G; commuting generators: the joint equilibrium)."""

    if not case.gens or any(case.sym.classes[i] != "indefinite" for i in range(len(case.gens))):
        return []
    An = case.gens_f
    commuting = all(np.abs(An[i] @ An[j] - An[j] @ An[i]).max() < 1e-12 for i in range(len(An)) for j in range(i))
    if not commuting:
        return []
    th = case.minimum()
    kw = _sim_settings(case)
    need = _flow_steps(case, th, case.gens, kw["lr"], kw["batch_size"])
    kw["steps"] = max(kw["steps"], min(int(2.5 * need), _MAX_STEPS))
    obs, _ = _split_observables(case.gens_f, 3)
    cmp = _compare_resolved(case, th, generators=case.gens, observables=obs, **kw)
    return _stochastic_from_comparison(
        case, "E16", "SGD settles where Tr[AΣ(θ*)] = 0 on the orbit of a minimum (noise equilibrium)", cmp,
        _RTOL["quick" if case.quick else "full"])


@_timed
def check_weight_decay(case: _Case) -> list[Check]:
    """(E18): the divergent class with weight decay settles where 2γC* = (η/S)Tr[AΣ(θ*)]."""

    gamma = float(case.settings.get("weight_decay", 0.0))
    if not case.gens or gamma <= 0 or case.sym.classes[0] != "semidefinite":
        return []
    kw = _sim_settings(case)
    th = case.minimum()  # the direction settles at a minimum of F(θ/‖θ‖); the norm is the orbit
    need = _flow_steps(case, th, [case.gens[0]], kw["lr"], kw["batch_size"], gamma)
    kw["steps"] = max(kw["steps"], min(int(2.5 * need), _MAX_STEPS))
    kw.update(richardson=False)  # θ* itself depends on η here: compare at η, 5% as in THEORY §9's example
    cmp = _compare_resolved(case, th, generators=[case.gens[0]], weight_decay=gamma, **kw)
    return _stochastic_from_comparison(
        case, "E18", "weight decay balances the divergent charge: 2γC* = (η/S)Tr[AΣ(θ*)]", cmp, 0.05)


@_timed
def check_two_layer(case: _Case) -> list[Check]:
    """(E20)-(E21): a two-layer linear net settles at the closed-form GL(d) equilibrium;
    compared through rotation invariants (traces of WWᵀ, UᵀU and of their squares)."""

    model = case.family.extra.get("data_model")
    dims = case.family.options.get("dims")
    if model is None or dims is None or len(dims) != 3 or case.n > 200:
        return []
    n_in, d, m = dims
    dm = model(**{k: v for k, v in case.family.options.items() if k in ("dims", "Sigma_x", "Sigma_eps", "teacher", "anisotropic")})
    Sx, Se, V = (np.array(dm[k].tolist(), dtype=float) for k in ("Sigma_x", "Sigma_eps", "teacher"))
    W = case.theta0[: d * n_in].reshape(d, n_in)
    U = V @ np.linalg.pinv(W)  # a minimum on the start's W: U W = V
    th = np.concatenate([W.ravel(), U.ravel()])
    star = predict_equilibrium(case.loss, th, two_layer=TwoLayerModel(n_in, d, m, Sx, Se)).theta

    # rotation invariants that are smooth in θ (sorted eigenvalues are not where they are
    # degenerate, e.g. WWᵀ = UᵀU ∝ I for isotropic data: their fluctuations split them at
    # O(√η)): Tr M and Tr M² for M = WWᵀ and UᵀU
    def parts(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Wt = T[..., : d * n_in].reshape(T.shape[:-1] + (d, n_in))
        Ut = T[..., d * n_in:].reshape(T.shape[:-1] + (m, d))
        return Wt @ np.swapaxes(Wt, -1, -2), np.swapaxes(Ut, -1, -2) @ Ut

    def tr(M: np.ndarray) -> np.ndarray:
        return np.trace(M, axis1=-2, axis2=-1)

    invariants = {
        "Tr WWᵀ": lambda T: tr(parts(T)[0]),
        "Tr UᵀU": lambda T: tr(parts(T)[1]),
        "Tr (WWᵀ)²": lambda T: tr(parts(T)[0] @ parts(T)[0]),
        "Tr (UᵀU)²": lambda T: tr(parts(T)[1] @ parts(T)[1]),
    }

    kw = _sim_settings(case)
    # each generator's own Noether flow sets a time scale (E14)-(E15); the slowest decides
    need = _flow_steps(case, th, case.gens, kw["lr"], kw["batch_size"])
    kw["steps"] = max(kw["steps"], min(int(2.5 * need), _MAX_STEPS))
    cmp = _compare_resolved(case, th, observables=invariants, predicted=star, **kw)
    return _stochastic_from_comparison(
        case, "E21", "two-layer GL(d) equilibrium: Tr(Σx)UᵀΣεU = Tr(Σε)WΣxWᵀ, closed form X = M_W⁻¹ # (c M_U)",
        cmp, _RTOL["quick" if case.quick else "full"])


@_timed
def check_divergence(case: _Case) -> list[Check]:
    """(E18), divergent class without weight decay: along a semidefinite generator with one
    positive eigenvalue a = 1, dC/dk = (η²/S) G = (η²/S) s n / C (E12, E14, E15 with s, n the
    noise and the norm on the positive eigenspace at θ₀), so C² grows linearly:
    C(k)² = C₀² + 2 (η²/S) s C₀ k -- the charge (‖θ‖² for A = I) runs away under SGD."""

    if not case.gens or case.sym.classes[0] != "semidefinite":
        return []
    A = case.gens[0]
    th = case.minimum()
    eq = predict_equilibrium(case.loss, list(th), [A]).result
    a = [float(v) for v in eq.eigenvalues if float(v) != 0]
    if sorted(set(a)) != [1.0]:
        return []  # the closed form below is for a single positive eigenvalue 1
    s_pos = sum(float(sv) for av, sv in zip(eq.eigenvalues, eq.noise) if float(av) == 1.0)
    kw = _sim_settings(case)
    eta, S = kw["lr"], kw["batch_size"]
    steps = int(case.settings.get("steps", 10_000)) // 2
    R = kw["replicas"] * (1 if case.quick else 4)
    C0 = float(th @ case.gens_f[0] @ th)
    pred = (2 * eta**2 / S * s_pos * C0 * steps) * case.perturb  # predicted C(k)² − C₀², equal for equal η²k
    vals, ses = [], []
    for j, e in enumerate([eta] if case.quick else [eta, 2 * eta]):
        st = steps // 4**j
        r_ = simulate(case.loss, th, lr=e, batch_size=S, steps=st, replicas=R, record=["charges"],
                      every=max(1, st // 50), generators=[A], seed=case.seed + j)
        if j == 0:
            res = r_
        d = r_["charges"][-1, :, 0] ** 2 - C0**2
        d = d[np.isfinite(d)]
        vals.append(float(d.mean()))
        ses.append(float(d.std(ddof=1) / math.sqrt(len(d))))
    if case.quick:
        meas, se, rtol, how = vals[0], ses[0], 0.10, "at η"
    else:
        meas, se, rtol, how = 2 * vals[0] - vals[1], math.hypot(2 * ses[0], ses[1]), 0.03, "Richardson (η, 2η)"
    tol = rtol * abs(pred) + _z() * se
    chk = Check(case.name, "E18 divergence", "no weight decay: the charge runs away, C(k)² − C₀² = 2(η²/S) s C₀ k",
                "stochastic", pred, meas, tol, abs(meas - pred) <= tol, sem=se,
                detail=f"{how}; {R} replicas, {steps} steps, η={eta}, S={S}; rtol {rtol} (bias allowance)")

    def fig(res: Any = res, C0: float = C0, s_pos: float = s_pos) -> Any:

        Figure, Canvas = _figure_class()
        f = Figure(figsize=(6, 3.6))
        Canvas(f)
        ax = f.add_subplot(1, 1, 1)
        t = np.asarray(res.times)
        m, sd = (res["charges"][:, :, 0] ** 2).mean(axis=1), (res["charges"][:, :, 0] ** 2).std(axis=1)
        ax.plot(t, m, label="measured C² (mean ± sd over replicas)")
        ax.fill_between(t, m - sd, m + sd, alpha=0.2)
        ax.plot(t, C0**2 + 2 * eta**2 / S * s_pos * C0 * t * case.perturb, "k--", label="predicted (E12)")
        ax.set_xlabel("SGD step")
        ax.set_ylabel("C² (C = θᵀAθ)")
        ax.set_title(f"{case.name}: divergent class, no weight decay", fontsize=9)
        ax.legend(fontsize=7)
        f.tight_layout()
        return f

    chk._fig = fig  # type: ignore[attr-defined]
    return [chk]


@_timed
def check_sharpness(case: _Case) -> list[Check]:
    """(E19): at the noise equilibrium the Hessian trace is T(λ*) = Σ_i e^{−2λ*a_i} h_i.
    Measured as the population Hessian trace Tr H(θ) = E Tr ∇²ℓ (exact expectation, compiled)
    on the SGD iterates, tail-averaged per replica, from a minimum (one generator)."""

    if len(case.gens) != 1 or case.sym.classes[0] != "indefinite":
        return []
    try:
        trace = sp.Add(*[sp.diff(case.loss.expr, p_, 2) for p_ in case.loss.params])
        T_expr = sp.expand(expectation(case.loss, trace))
    except NoetherSymError:
        return []  # no exact expectation (kinks): the check needs Tr H(θ) in closed form
    th = case.minimum()
    sh = sharpness_along_orbit(case.loss, case.gens[0], list(th))
    kw = _sim_settings(case)
    need = _flow_steps(case, th, case.gens, kw["lr"], kw["batch_size"])
    kw["steps"] = max(kw["steps"], min(int(2.5 * need), _MAX_STEPS))
    cmp = _compare_resolved(case, th, observables={"Tr H(θ)": T_expr}, predicted={"Tr H(θ)": float(sh.T_star)}, **kw)
    out = _stochastic_from_comparison(
        case, "E19", f"sharpness at the noise equilibrium T(λ*) (SGD {sh.verdict}s from T(0) = {float(sh.T0):.4g})",
        cmp, _RTOL["quick" if case.quick else "full"])
    return out


#: (THEORY tag that switches it on, check)
CHECKS: list[tuple[str, Callable[[_Case], list[Check]]]] = [
    ("E4", check_generators),
    ("E5", check_transport),
    ("E7", check_noise_orthogonality),
    ("E9", check_conservation),
    ("E10", check_one_step),
    ("E11", check_expected_step),
    ("E14", check_spectral),
    ("E16", check_equilibrium),
    ("E18", check_weight_decay),
    ("E18", check_divergence),
    ("E19", check_sharpness),
    ("E21", check_two_layer),
]


def verify(
    families: Sequence[str] | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    progress: bool = False,
    perturb: float = 1.0,
    skip: Iterable[str] = (),
) -> VerifyReport:
    """Run every applicable theorem check on catalog families (the main job).

    Parameters
    ----------
    families
        Catalog names (default: every family except the large ones, e.g. 30-40-30).
    quick
        Shorter simulations (half the steps and replicas; the one-step check uses 20,000
        replicas instead of 100,000).
    seed
        Seed of every random point and simulation.
    out
        Report directory to write (see :meth:`VerifyReport.write`), or None.
    progress
        A tqdm progress bar on stderr (tqdm is optional).
    perturb
        Multiply every stochastic prediction by this factor (1.1 shows that the checks fail
        when a prediction is 10% off).
    skip
        Theorem tags whose checks are skipped.

    Examples
    --------
    >>> import noether_sym as ns
    >>> rep = ns.verify(["tanh-net"], quick=True)
    >>> [(c.theorem, c.predicted, c.measured, c.passed) for c in rep.checks]
    [('E4 count', 0, 0, True), ('E4 exact', 0, 0, True)]
    """

    t0 = time.perf_counter()
    if families is None:
        # the large families (the paper's 30-40-30 net) run only when named: their symmetry
        # search alone takes minutes
        names = [nm for nm in fam_mod.names() if not fam_mod.get(nm).extra.get("large")]
    else:
        names = list(families)
        for nm in names:
            fam_mod.get(nm)  # clear error for unknown names
    if not isinstance(perturb, (int, float)) or not math.isfinite(perturb) or perturb <= 0:
        raise InvalidArgumentError(f"perturb must be a positive number; got {perturb!r}")
    skip = set(skip)
    jobs = []
    for nm in names:
        fam = fam_mod.get(nm)
        for tag, fn in CHECKS:
            if tag in fam.theorems and tag not in skip:
                jobs.append((nm, tag, fn))
    bar = _progress(len(jobs)) if progress else None
    cases: dict[str, _Case] = {}
    checks: list[Check] = []
    figures: dict[Any, Any] = {}
    for nm, tag, fn in jobs:
        if bar is not None:
            bar.set_description(f"{nm} {tag}")
        try:
            case = cases.get(nm)
            if case is None:
                case = cases[nm] = _Case(fam_mod.get(nm), quick=quick, seed=seed, perturb=float(perturb))
            got = fn(case)
        except NoetherSymError as exc:
            got = [Check(nm, tag, fn.__doc__.strip().splitlines()[0] if fn.__doc__ else tag, "error",
                         math.nan, math.nan, math.nan, False, detail=f"{type(exc).__name__}: {exc}")]
        for c in got:
            f = getattr(c, "_fig", None)
            if f is not None:
                figures[len(checks)] = f
                del c._fig  # type: ignore[attr-defined]
            checks.append(c)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if cases:
        figures["latex"] = lambda: _derivations_latex(list(cases.values()))
    rep = VerifyReport(checks, time.perf_counter() - t0, quick, names, seed, figures)
    if out is not None:
        rep.write(out)
    return rep


def _derivations_latex(cases: list[_Case]) -> str:

    parts = []
    for case in cases:
        parts.append(r"\subsection*{" + case.name.replace("_", r"\_") + "}")
        for i, c in enumerate(case.sym.charges[:6]):
            parts.append(r"\[ C_{" + str(i + 1) + "} = " + to_latex(c) + r" \]")
        if len(case.sym.charges) > 6:
            parts.append(f"(and {len(case.sym.charges) - 6} more charges)")
        if not case.sym.charges:
            parts.append("No exponential symmetry.")
    return document("\n".join(parts), "noether-sym verify: derived expressions")


def _progress(total: int) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        print("noether-sym verify: no progress bar: tqdm is not installed (pip install tqdm)", file=sys.stderr)
        return None
    return tqdm(total=total, unit="check", leave=False)
