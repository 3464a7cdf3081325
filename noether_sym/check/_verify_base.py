"""Check: the shared machinery of the theorem checks -- the verdict, a family's case, the
stochastic comparison helpers (settings, replica scaling, verdicts from a Comparison).

:mod:`._verify` (the classical checks and :func:`~noether_sym.verify`) and
:mod:`._verify_flow` (the Noether-flow check (E22)) both build on it.
"""


from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.integrate import quad

from .._errors import InvalidArgumentError, NoetherSymError
from ..compile._compiled import compiled
from ..data._moments import compiled_moments
from ..data._sample import make_sampler
from ..symmetry._finder import find_symmetries
from ..theory._predict import predict_equilibrium
from ._compare import compare

__all__ = ["Check"]




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


def _z() -> float:
    return 4.0  # standard errors allowed on top of the bias allowance


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
                         detail=f"prediction ({cmp.route}): {cmp.prediction}; "
                                f"{'Richardson (' + cmp.order + ')' if which == 'richardson' else 'at η'}; rtol {rtol:g} "
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
