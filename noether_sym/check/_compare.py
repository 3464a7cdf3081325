"""Verify: the predicted noise equilibrium against simulated SGD, with error bars and η → 0.

:func:`compare` predicts the equilibrium from the start (THEORY §5, (E16)-(E18); the Noether
flow (E22) of THEORY §10 where those do not apply: generators that do not commute, or a local
symmetry the generators miss; ``Comparison.route`` says which), runs
SGD at η, 2η and 4η for the same continuous time t = ηk, measures each observable as a
time average over the tail of every replica and then a mean over the replicas (standard
error from the spread of the per-replica averages: replicas are independent, so the time
correlation within a replica does not bias it), and extrapolates to η → 0 (Richardson).
"""


from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError, LocalSymmetryError
from .._printing import NotebookDisplay
from .._validate import Integer, Real, is_integer
from ..loss._generators import as_generators
from ..loss._loss import Loss, as_loss, replace_symbols
from ..report._plot import _figure_class
from ..simulate._options import SimulationOptions
from ..simulate._result import SimulationResult
from ..simulate._run import run_simulation
from ..symmetry._finder import find_symmetries
from ..theory._noether_flow import NoetherFlow, _rotation_samples
from ..theory._predict import (
    Prediction,
    flow_reason,
    predict_equilibrium,
    predict_with_flow,
)

__all__ = ['Comparison', 'Run', 'compare', 'richardson', 'richardson_fn']


#: Richardson weights over (η, 2η, 4η): "linear" is the least-squares line m = m₀ + aη
#: through the three points (removes the O(η) bias); "quadratic" the exact parabola
#: m₀ + aη + bη² (removes O(η²) too, at about 3x the statistical error).
_WEIGHTS = {
    "linear": np.array([1.0, 0.5, -0.5]),
    "quadratic": np.array([8.0, -6.0, 1.0]) / 3.0,
    "two-point": np.array([2.0, -1.0]),  # (η, 2η) only: when 4η is past the stability edge
}


def richardson(values: Sequence[Any], sems: Sequence[Any] | None = None, *, order: str = "linear") -> tuple[np.ndarray, np.ndarray | None]:
    """Extrapolate measurements at (η, 2η, 4η) to η → 0.

    Parameters
    ----------
    values
        The three measurements m(η), m(2η), m(4η) (numbers or equal-shape arrays).
    sems
        Their standard errors (independent runs), or None.
    order
        ``"linear"``: least-squares fit m₀ + aη (m₀ = m₁ + m₂/2 − m₄/2);
        ``"quadratic"``: exact fit m₀ + aη + bη² (m₀ = (8m₁ − 6m₂ + m₄)/3);
        ``"two-point"``: (η, 2η) only, m₀ = 2m₁ − m₂.

    Returns
    -------
    (estimate, standard error or None)

    Examples
    --------
    A quantity with bias 0.3η - η² is recovered exactly by the quadratic rule:

    >>> import numpy as np
    >>> eta = 0.01
    >>> m = [1 + 0.3 * h - h**2 for h in (eta, 2 * eta, 4 * eta)]
    >>> round(float(richardson(m, order="quadratic")[0]), 12)
    1.0
    >>> round(float(richardson(m)[0]), 6)     # the linear rule leaves O(η²)
    1.0005
    """
    if order not in _WEIGHTS:
        raise InvalidArgumentError(f"order must be one of {sorted(_WEIGHTS)}; got {order!r}")
    v = np.asarray(values, dtype=float)
    k = len(_WEIGHTS[order])
    if v.shape[:1] != (k,):
        raise InvalidArgumentError(
            f"richardson ({order}) needs {k} measurements ({', '.join(['η', '2η', '4η'][:k])}); got shape {v.shape}"
        )
    w = _WEIGHTS[order].reshape((k,) + (1,) * (v.ndim - 1))
    est = np.sum(w * v, axis=0)
    if sems is None:
        return est, None
    s = np.asarray(sems, dtype=float)
    return est, np.sqrt(np.sum((w * s) ** 2, axis=0))


@dataclass
class Run:
    """One simulation of a comparison (one learning rate).

    ``value``/``sem``: tail time average, mean ± standard error over surviving replicas;
    ``times``/``mean``/``spread``: the trajectory (per record: mean and standard deviation
    over replicas) for figures. ``drift``/``drift_sem``: the second half of the tail window
    minus the first half (mean ± s.e. over replicas): near 0 when the tail is stationary.
    """

    lr: float
    steps: int
    value: np.ndarray
    sem: np.ndarray
    replicas: int
    n_diverged: int
    seconds: float
    times: np.ndarray
    mean: np.ndarray
    spread: np.ndarray
    drift: np.ndarray | None = None
    drift_sem: np.ndarray | None = None
    outliers: int = 0


@dataclass
class Comparison(NotebookDisplay):
    """Predicted against measured, per observable (result of :func:`compare`).

    Attributes
    ----------
    names
        Observable names.
    predicted
        The prediction at the equilibrium θ* (η → 0 limit of the theory), ``(k,)``.
    theta_star
        θ* in ``loss.params`` order (None when the prediction was given as values).
    runs
        One :class:`Run` per learning rate (η, then 2η and 4η with Richardson).
    richardson, richardson_sem
        The η → 0 estimate (``order``) and its standard error, or None.
    order
        The Richardson rule used (``"linear"``, ``"quadratic"``, ``"two-point"``, or
        ``"none"`` when ``order="auto"`` found no clean runs to extrapolate).
    prediction
        How the prediction was made (e.g. ``"noise_equilibrium (E17)"``).
    route
        Which prediction: ``"single"`` (one generator, (E16)-(E18)), ``"joint"`` (commuting
        generators), ``"noether_flow"`` (the slow flow (E22), where those do not apply), or
        ``"given"`` (``predicted=``).
    flow
        The :class:`~noether_sym.NoetherFlow` on the ``"noether_flow"`` route, else None.
    richardson_lrs
        The learning rates whose runs the η → 0 estimate uses (clean runs only: no diverged
        or outlying replica).
    refusal
        Why there is no η → 0 estimate (fewer than two clean runs), else None.
    projection
        Φ(θ₀), the point of the minimum manifold the prediction was made from
        (a GradientFlowLimit), or None for a given prediction.
    relaxation_steps
        The predicted relaxation time of the slowest charge at the base (η, S), in SGD steps
        ((E12), (E14)), or None when the route gives none.
    """

    names: list[str]
    predicted: np.ndarray
    theta_star: np.ndarray | None
    runs: list[Run]
    richardson: np.ndarray | None
    richardson_sem: np.ndarray | None
    order: str
    prediction: str
    settings: dict[str, Any] = field(default_factory=dict)
    richardson_lrs: list[float] = field(default_factory=list)
    refusal: str | None = None
    projection: Any = None
    relaxation_steps: float | None = None
    notes: list[str] = field(default_factory=list)
    route: str = "given"
    flow: Any = None

    @property
    def warnings(self) -> list[str]:
        """What makes the numbers less trustworthy: diverged replicas (excluded), outlying
        replicas (included; more than 20 median absolute deviations from the median: the
        learning rate is near the stability edge), non-stationary tails."""
        out = []
        for r in self.runs:
            if r.n_diverged:
                out.append(f"η={r.lr:g}: {r.n_diverged} of {r.replicas} replicas diverged (excluded)")
            if r.outliers:
                out.append(f"η={r.lr:g}: {r.outliers} outlying replica(s) (near the stability edge: lower lr)")
        if not self.stationary():
            out.append("a tail still drifts (not stationary): run longer")
        tau = self.relaxation_steps
        if tau is not None and self.runs and self.runs[0].steps < _MIN_RELAXATIONS * tau:
            out.append(f"the run ({self.runs[0].steps} steps at η={self.runs[0].lr:g}) is shorter than {_MIN_RELAXATIONS} "
                       f"relaxation times of the charges (τ ≈ {tau:.3g} steps, (E12)/(E14)): it may not have reached "
                       "the equilibrium; run longer")
        if self.refusal:
            out.append(f"no η → 0 estimate: {self.refusal}")
        out.extend(self.notes)
        return out

    @property
    def measured(self) -> np.ndarray:
        """The measurement at the base learning rate η."""
        return self.runs[0].value

    @property
    def sem(self) -> np.ndarray:
        return self.runs[0].sem

    def stationary(self, z: float = 4.0) -> bool:
        """Whether every run's tail looks stationary: |drift| ≤ z · s.e. of the drift for
        every observable (a run still moving toward the equilibrium fails this)."""
        return all(r.drift is None or bool(np.all(np.abs(r.drift) <= z * r.drift_sem)) for r in self.runs)

    def relative_error(self, which: str = "measured") -> np.ndarray:
        """|estimate − predicted| / |predicted| per observable (``which``: measured | richardson)."""
        est = self._estimate(which)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.abs(est - self.predicted) / np.abs(self.predicted)

    def _estimate(self, which: str) -> np.ndarray:
        if which == "measured":
            return self.measured
        if which == "richardson":
            if self.richardson is None:
                raise InvalidArgumentError(
                    f"no η → 0 estimate: {self.refusal}" if self.refusal
                    else "this comparison ran one learning rate only (richardson=False)"
                )
            return self.richardson
        raise InvalidArgumentError(f"which must be 'measured' or 'richardson'; got {which!r}")

    def within(self, rtol: float, which: str = "measured", *, atol: float = 0.0) -> bool:
        """Whether every observable is within ``atol + rtol·|predicted|`` of the prediction."""
        est = self._estimate(which)
        return bool(np.all(np.abs(est - self.predicted) <= atol + rtol * np.abs(self.predicted)))

    def table(self) -> str:
        """A plain-text table: predicted, measured ± s.e. at each η, Richardson ± s.e."""
        head = ["observable", "predicted"] + [f"η={r.lr:g}" for r in self.runs]
        if self.richardson is not None:
            head.append(f"η→0 ({self.order})")
        rows = [head]
        for i, nm in enumerate(self.names):
            row = [nm, f"{self.predicted[i]:.6g}"] + [f"{r.value[i]:.6g} ± {r.sem[i]:.2g}" for r in self.runs]
            if self.richardson is not None:
                row.append(f"{self.richardson[i]:.6g} ± {self.richardson_sem[i]:.2g}")
            rows.append(row)
        widths = [max(len(r[j]) for r in rows) for j in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join([f"prediction ({self.route}): {self.prediction}"] + lines
                         + [f"warning: {w}" for w in self.warnings])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (trajectories omitted)."""
        def fl(a: Any) -> Any:
            return None if a is None else [float(v) for v in np.ravel(a)]

        return {
            "names": list(self.names),
            "predicted": fl(self.predicted),
            "theta_star": fl(self.theta_star),
            "prediction": self.prediction,
            "route": self.route,
            "flow": None if self.flow is None else self.flow.to_dict(),
            "runs": [
                {"lr": r.lr, "steps": r.steps, "value": fl(r.value), "sem": fl(r.sem), "replicas": r.replicas,
                 "n_diverged": r.n_diverged, "seconds": r.seconds, "drift": fl(r.drift), "drift_sem": fl(r.drift_sem)}
                for r in self.runs
            ],
            "richardson": fl(self.richardson),
            "richardson_sem": fl(self.richardson_sem),
            "order": self.order,
            "richardson_lrs": list(self.richardson_lrs),
            "refusal": self.refusal,
            "projection": None if self.projection is None else self.projection.to_dict(),
            "relaxation_steps": self.relaxation_steps,
            "stationary": self.stationary(),
            "warnings": self.warnings,
            "relative_error": fl(self.relative_error("measured")),
            "relative_error_richardson": None if self.richardson is None else fl(self.relative_error("richardson")),
            "settings": dict(self.settings),
        }

    def plot(self, path: str | os.PathLike | None = None, *, max_curves: int = 6, title: str | None = None) -> Any:
        """Trajectories (mean ± sd over replicas, against t = ηk) with the predicted level,
        and the measured values against η with the η → 0 extrapolation.

        Returns the matplotlib Figure (written to ``path`` when given).
        """

        Figure, Canvas = _figure_class()
        from matplotlib.lines import Line2D  # noqa: PLC0415 - matplotlib is imported when a figure is drawn

        fig = Figure(figsize=(10.0, 4.0))
        Canvas(fig)
        ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        k = min(len(self.names), max_curves)
        colors = [f"C{i}" for i in range(k)]
        for j, r in enumerate(self.runs):
            t = r.times * r.lr**2  # the charges move at rate η²/S per step (E12): equal η²k, equal progress
            for i in range(k):
                ls = ["-", "--", ":"][j % 3]
                ax.plot(t, r.mean[:, i], color=colors[i], ls=ls, lw=1.3)
                if j == 0:
                    ax.fill_between(t, r.mean[:, i] - r.spread[:, i], r.mean[:, i] + r.spread[:, i],
                                    color=colors[i], alpha=0.15, lw=0)
        for i in range(k):
            ax.axhline(self.predicted[i], color=colors[i], ls="-.", lw=1.0, alpha=0.9)
        # y range from the tail of the base run and the predictions: neither the transient from
        # the start nor a run near its stability edge may squash the picture
        base = self.runs[0]
        tail = slice(len(base.times) // 5, None)
        lo = np.nanmin(np.concatenate([(base.mean - base.spread)[tail, :k].ravel(), self.predicted[:k]]))
        hi = np.nanmax(np.concatenate([(base.mean + base.spread)[tail, :k].ravel(), self.predicted[:k]]))
        pad = 0.15 * (hi - lo) + 0.02 * max(abs(lo), abs(hi)) + 1e-12
        ax.set_ylim(lo - pad, hi + pad)
        full_lo = np.nanmin((base.mean - base.spread)[:, :k])
        full_hi = np.nanmax((base.mean + base.spread)[:, :k])
        clipped = full_lo < lo - pad or full_hi > hi + pad
        ax.set_xlabel("η² · step (charge time, E12)" + ("; y range fits the tail, the start is clipped" if clipped else ""))
        ax.set_ylabel("observable")
        ax.set_title("trajectories: mean ± sd over replicas", fontsize=9)
        # the legend names every line drawn: the observables (colour), the runs (line style)
        # and the prediction (dash-dot)
        handles = [Line2D([], [], color=colors[i], lw=1.3, label=self.names[i]) for i in range(k)]
        handles += [Line2D([], [], color="0.3", ls=["-", "--", ":"][j % 3], lw=1.3, label=f"η={r.lr:g}")
                    for j, r in enumerate(self.runs)]
        handles.append(Line2D([], [], color="0.3", ls="-.", lw=1.0, label=f"predicted ({self.route})"))
        ax.legend(handles=handles, fontsize=7, loc="best", ncol=2 if len(handles) > 6 else 1)
        ax.grid(alpha=0.3)
        etas = np.array([r.lr for r in self.runs])
        used = np.array([r.lr in self.richardson_lrs for r in self.runs]) if self.richardson is not None else \
            np.ones(len(self.runs), dtype=bool)
        for i in range(k):
            vals = np.array([r.value[i] for r in self.runs])
            errs = np.array([r.sem[i] for r in self.runs])
            bx.errorbar(etas[used], vals[used], yerr=errs[used], fmt="o", color=colors[i], capsize=3,
                        label=f"{self.names[i]} at η")
            if not used.all():  # runs the η → 0 estimate does not use (diverged or outlying replicas)
                bx.errorbar(etas[~used], vals[~used], yerr=errs[~used], fmt="x", color="0.5", capsize=3,
                            label="not used (diverged/outlying replicas)" if i == 0 else None)
            if self.richardson is not None:
                bx.errorbar([0.0], [self.richardson[i]], yerr=[self.richardson_sem[i]], fmt="s", color=colors[i],
                            mfc="none", capsize=3, label=f"{self.names[i]}, η → 0 ({self.order})")
            bx.axhline(self.predicted[i], color=colors[i], ls="-.", lw=1.0,
                       label="predicted" if i == 0 and k == 1 else (f"predicted {self.names[i]}" if k > 1 else None))
        bx.set_xlim(left=-0.05 * etas.max())
        vals_all = np.concatenate([[r.value[i] for r in self.runs[:2]] for i in range(k)] + [self.predicted[:k]])
        lo, hi = float(np.nanmin(vals_all)), float(np.nanmax(vals_all))
        pad = 0.25 * (hi - lo) + 0.05 * max(abs(lo), abs(hi)) + 1e-12
        bx.set_ylim(lo - pad, hi + pad)
        bx.set_xlabel("learning rate η")
        if self.richardson is None and self.refusal:
            why = textwrap.shorten(str(self.refusal).split(" (")[0], 70)
            bx.text(0.02, 0.03, f"η → 0 refused: {why}", transform=bx.transAxes, fontsize=7, color="C3", va="bottom")
        bx.set_ylabel("tail average ± s.e.")
        bx.set_title("measured vs η, and the η → 0 estimate", fontsize=9)
        bx.grid(alpha=0.3)
        bx.legend(fontsize=7, loc="best", ncol=2 if k > 2 else 1)
        fig.suptitle((title + "\n" if title else "") + f"prediction ({self.route}): {self.prediction}"[:150],
                     fontsize=8 if title is None else 9)
        fig.tight_layout()
        if path is not None:
            fig.savefig(os.fspath(path), dpi=120)
        return fig


# ------------------------------------------------------------------------------------------
# observables and predictions
# ------------------------------------------------------------------------------------------


def _observable_functions(loss: Loss, observables: Any, gens: list[np.ndarray] | None) -> tuple[list[str], Callable[[np.ndarray], np.ndarray]]:
    """Names and a batched function θ (..., n) -> (..., k)."""
    if observables is None:
        if not gens:
            raise InvalidArgumentError(
                "this loss has no symmetry generator, so there is no charge to compare; pass observables="
            )
        G = np.stack(gens)  # (k, n, n)
        return [f"C_{i + 1}" for i in range(len(gens))], lambda T: np.einsum("...i,kij,...j->...k", T, G, T)
    if not isinstance(observables, Mapping) or not observables:
        raise InvalidArgumentError(
            "observables must be a non-empty dict {name: sympy expression in the parameters, or a "
            "function θ-array (..., n) -> (...) or (..., k)}"
        )
    names: list[str] = []
    funcs: list[tuple[Callable[[np.ndarray], np.ndarray], int]] = []
    symbols = [loss.theta[i] for i in range(loss.n)]
    for name, ob in observables.items():
        if isinstance(ob, sp.Basic):
            expr = _in_theta(loss, ob)
            f = sp.lambdify(symbols, expr, modules="numpy", cse=True)

            def one(T: np.ndarray, f: Any = f) -> np.ndarray:
                out = np.asarray(f(*np.moveaxis(T, -1, 0)), dtype=float)
                return np.broadcast_to(out, T.shape[:-1])

            names.append(str(name))
            funcs.append((one, 0))
        elif callable(ob):
            probe = np.asarray(ob(np.zeros((1, loss.n)) + 0.5), dtype=float)
            k = 0 if probe.ndim == 1 else probe.shape[-1]
            names.extend([str(name)] if k == 0 else [f"{name}[{j}]" for j in range(k)])
            funcs.append((ob, k))
        else:
            raise InvalidArgumentError(
                f"observable {name!r} must be a sympy expression in the parameters or a callable; got {type(ob).__name__}"
            )

    def evaluate(T: np.ndarray) -> np.ndarray:
        parts = []
        for f, k in funcs:
            v = np.asarray(f(T), dtype=float)
            parts.append(v[..., None] if k == 0 else v)
        return np.concatenate(parts, axis=-1)

    return names, evaluate


def _in_theta(loss: Loss, expr: sp.Basic) -> sp.Expr:
    """``expr`` (in the user's parameter symbols) rewritten in the loss's θ symbols."""

    params = list(loss.params)
    rep = {p: loss.theta[i] for i, p in enumerate(params)}
    out = replace_symbols(expr, rep)  # expr is a sympy object (checked by the caller): never text
    extra = out.free_symbols - {loss.theta[i] for i in range(loss.n)}
    if extra:
        raise InvalidArgumentError(
            f"observable uses symbol(s) {', '.join(sorted(map(str, extra)))} that are not parameters of the loss"
        )
    return out


#: the ``prediction=`` choices of :func:`compare`
_ROUTES = ("auto", "generators", "flow")


def _predict(loss: Loss, gens: list[sp.Matrix], theta0: np.ndarray, *, weight_decay: float, lr: float,
             batch_size: int, values: Any, discrete: bool, route: str = "auto") -> Prediction:
    """The Prediction from the start (a finite point or InvalidArgumentError), by
    :func:`predict_equilibrium` (on the orbit of Φ(θ₀), the projection on the minimum
    manifold), or by the Noether flow (E22) where the generators' balances do not give the
    stationary state: generators that do not commute, a local symmetry (LocalSymmetryError),
    or ``route="flow"``."""

    # η enters the balance only with weight decay or the discrete drift
    eta = lr if weight_decay > 0 or discrete else None
    reason = "requested (prediction='flow')" if route == "flow" else flow_reason(gens) if route == "auto" else None
    if reason is None:
        try:
            return predict_equilibrium(loss, list(theta0), gens, batch_size=batch_size, weight_decay=weight_decay,
                                       lr=eta, discrete=discrete, values=values, finite=True)
        except LocalSymmetryError as exc:
            if route != "auto":
                raise
            reason = str(exc).split(": per-generator")[0]
    if discrete:
        raise InvalidArgumentError(f"the Noether flow (E22) is a continuous-time prediction; {reason}: use discrete=False")
    p = predict_with_flow(loss, list(theta0), reason, batch_size=batch_size, weight_decay=weight_decay,
                          lr=lr if weight_decay > 0 else None, values=values)
    if not p.finite:
        raise InvalidArgumentError(f"the Noether flow (E22) has no stationary state here ({p.result.kind}: "
                                   f"{p.result.reason}); pass predicted=")
    return p


def _relaxation(p: Prediction | None, pred: np.ndarray, evaluate: Callable[[np.ndarray], np.ndarray],
                names: list[str], base: SimulationOptions) -> tuple[np.ndarray, float | None, Any, list[str]]:
    """(predicted values, relaxation steps or None, the NoetherFlow or None, notes): on the flow
    route the values over its stationary state and the flow's own relaxation time."""
    if p is not None and p.route == "noether_flow":
        vals, notes = _flow_values(p.result, evaluate, names)
        return vals, _flow_relaxation_steps(p.result, evaluate, base.lr, base.batch_size), p.result, notes
    tau = None
    if p is not None and hasattr(p.result, "relaxation_steps"):
        tau = float(p.result.relaxation_steps(base.lr, base.batch_size))
    return pred, tau, None, []


def _flow_values(flow: Any, evaluate: Callable[[np.ndarray], np.ndarray], names: list[str]) -> tuple[np.ndarray, list[str]]:
    """The observables over the flow's stationary state: their value at a fixed point, their
    mean over one period of a steady rotation (with a note for each observable the rotation
    moves: a tail average matches that mean only over many periods)."""
    if flow.kind != "rotating":
        return evaluate(flow.theta), []
    pts = _rotation_samples(flow.rotation_generator, flow.theta)
    vals = np.asarray(evaluate(pts), dtype=float)
    mean = vals.mean(axis=0)
    spread = vals.max(axis=0) - vals.min(axis=0)
    moved = [nm for nm, d, m in zip(names, spread, mean) if d > 1e-6 * max(1.0, abs(m))]
    notes = []
    if moved:
        notes.append(f"the steady rotation of the flow (ω = {flow.rotation_rate:.4g} per unit η²k/S) moves "
                     f"{', '.join(moved)}: predicted is the mean over one period, which a tail average matches only "
                     "over many periods; prefer invariants of the rotation")
    return mean, notes


# ------------------------------------------------------------------------------------------
# compare
# ------------------------------------------------------------------------------------------


def compare(
    loss: Loss,
    theta0: Any,
    *,
    lr: float,
    batch_size: int,
    steps: int,
    replicas: int,
    generators: Any = None,
    observables: Mapping[str, Any] | None = None,
    predicted: Any = None,
    weight_decay: float = 0.0,
    prediction: str = "auto",
    tail: float = 0.25,
    richardson: bool = True,
    order: str = "auto",
    records: int = 200,
    discrete: bool = False,
    seed: int = 0,
    progress: bool = False,
    values: Mapping | None = None,
    **simulate_options: Any,
) -> Comparison:
    """Predict the noise equilibrium from ``theta0`` and measure it with SGD (THEORY §5, §9).

    The prediction is made on the orbit of Φ(θ₀), where gradient flow from ``theta0`` lands
    on the minimum manifold (``projection``; THEORY §5): SGD falls there before the charges
    move. ``relaxation_steps`` is the predicted time scale of the charges; a run shorter than
    three of them is flagged in ``warnings``.

    Runs :func:`~noether_sym.simulate` at η = ``lr`` for ``steps`` steps and, when
    ``richardson``, at 2η and 4η for ``steps/4`` and ``steps/16``: the charges move at the
    rate (η/S)·Tr[AΣ] per unit of t = ηk (E12), i.e. η²/S per step, so equal η²k is equal
    progress along the orbit. Each observable is averaged over the last ``tail`` fraction of the records
    of every replica; the measurement is the mean of those averages over the replicas that
    did not diverge, with the standard error of that mean.

    Parameters
    ----------
    loss, theta0
        The Loss (with a data model) and one start (mapping or sequence in params order).
    lr, batch_size, steps, replicas
        The base run (see :func:`~noether_sym.simulate`).
    generators
        Symmetric generators (default: ``find_symmetries(loss).generators``); they define the
        default observables (the charges θᵀA_iθ) and the prediction.
    observables
        ``{name: sympy expression in the parameters | function θ (..., n) -> (...) or (..., k)}``;
        default: the charges.
    predicted
        Override the prediction: θ* (a sequence of n numbers, or an object with a ``theta``
        attribute), the predicted values of the observables (a mapping name -> value), or a
        :class:`~noether_sym.NoetherFlow` integrated from ``theta0`` (route ``"noether_flow"``).
        Default: :func:`~noether_sym.noise_equilibrium` for one generator (with
        ``weight_decay`` (E18)), :func:`~noether_sym.joint_equilibrium` for commuting ones,
        and the Noether flow (E22), :func:`~noether_sym.noether_flow`, where those do not
        give the stationary state (generators that do not commute; a local symmetry the
        generators miss). ``route`` says which was used.
    weight_decay
        γ of the runs (and of the prediction).
    prediction
        ``"auto"`` (default: as just described), ``"generators"`` (the per-generator or joint
        balance only: a local symmetry raises LocalSymmetryError) or ``"flow"`` (always the
        Noether flow). On a steady rotation of the flow the predicted values are the means
        over one period (``warnings`` names observables the rotation moves).
    tail
        Fraction of the run (at the end) that is averaged, in (0, 1].
    richardson, order
        Also run 2η and 4η and extrapolate to η → 0 (:func:`richardson`), from clean runs
        only (no diverged or outlying replica). ``order="auto"`` (default): the
        least-squares line through three clean runs ("linear") while they fit it (else the
        line through the two smallest rates: the 4η run is off the line), the line through two
        ("two-point"), else a refusal: ``richardson`` None, order "none", ``refusal`` says
        why (and ``within(..., "richardson")`` raises). A named rule ("linear",
        "quadratic", "two-point") is used when all its runs are clean, else the same
        fallback (listed in ``warnings``); ``richardson_lrs`` names the runs used.
    records
        Records per run (the stride is the run's steps // records).
    discrete
        Predict with the discrete-time drift (E11) instead of (E12).
    seed
        Seed; each run gets its own stream from ``SeedSequence(seed).spawn``.
    **simulate_options
        Passed to :func:`~noether_sym.simulate` (``momentum``, ``schedule``, ``sampler``...).

    Returns
    -------
    Comparison

    Examples
    --------
    The rescaling loss ℓ = (u w x − (x + ε))², ε ~ N(0, 1/4): balance at u² = w² (E17),
    so the charge u² − w² goes to 0 from u = 2, w = 1/2:

    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, sp.Rational(1, 2))
    >>> loss = ns.Loss((u * w * x - (x + e)) ** 2, [u, w])
    >>> cmp = ns.compare(loss, [2, 0.5], lr=0.05, batch_size=1, steps=4000, replicas=64,
    ...                  richardson=False)
    >>> float(cmp.predicted[0])
    0.0
    >>> bool(abs(cmp.measured[0]) < 5 * cmp.sem[0] + 0.05)
    True
    """

    loss = as_loss(loss)
    _check_run_lengths(tail, records, steps, richardson)
    if order not in _WEIGHTS and order != "auto":
        raise InvalidArgumentError(f"order must be one of {sorted(_WEIGHTS) + ['auto']}; got {order!r}")
    base, sampler = _base_options(lr, batch_size, steps, replicas, weight_decay, progress, simulate_options)
    th0 = np.asarray(loss.theta_vector(theta0, what="theta0"), dtype=float).ravel()
    if generators is None:
        gens = list(find_symmetries(loss, seed=seed).generators)
    else:
        gens = as_generators(generators, loss.n, symmetry="symmetric", rational=False)
    gens_f = [np.array(A.tolist(), dtype=float) for A in gens]
    names, evaluate = _observable_functions(loss, observables, gens_f if observables is None else None)
    if prediction not in _ROUTES:
        raise InvalidArgumentError(f"prediction must be one of {list(_ROUTES)}; got {prediction!r}")
    pred, theta_star, how, p = _prediction(loss, predicted, names, evaluate, gens, th0, base, values, discrete,
                                           prediction)
    pred, tau, flow, flow_notes = _relaxation(p, pred, evaluate, names, base)

    lrs = [base.lr * 2**j for j in range(len(_WEIGHTS.get(order, _WEIGHTS["linear"])) if richardson else 1)]
    seeds = np.random.SeedSequence(seed).spawn(len(lrs))
    record = "charges" if observables is None else "theta"
    runs: list[Run] = []
    for j, (eta, ss) in enumerate(zip(lrs, seeds)):
        st = base.steps // 4**j
        opts = replace(base, lr=eta, steps=st, record=(record,), every=max(1, st // records),
                       seed=int(ss.generate_state(1)[0]))
        res = run_simulation(loss, th0, opts, generators=gens if observables is None else None, sampler=sampler,
                             values=values)
        runs.append(_measure(res, res[record], None if observables is None else evaluate, float(tail), j == 0))
    ext = _extrapolate(runs, richardson, order)
    return Comparison(
        names=names, predicted=np.asarray(pred, dtype=float).ravel(), theta_star=theta_star, runs=runs,
        richardson=ext.estimate, richardson_sem=ext.sem, order=ext.order, prediction=how,
        richardson_lrs=ext.lrs, refusal=ext.refusal, projection=None if p is None else p.start,
        relaxation_steps=tau, notes=flow_notes + ext.notes, route="given" if p is None else p.route, flow=flow,
        settings={"loss": loss.name, "lr": base.lr, "batch_size": base.batch_size, "steps": base.steps,
                  "replicas": base.replicas, "weight_decay": base.weight_decay, "tail": float(tail),
                  "seed": seed},
    )


def _check_run_lengths(tail: Any, records: Any, steps: Any, richardson: bool) -> None:
    Real(0.0, 1.0, low_open=True)(tail, "tail")
    Integer(2)(records, "records")
    least = 16 * records if richardson else records
    if not is_integer(steps) or steps < least:
        raise InvalidArgumentError(
            f"steps must be an integer ≥ {least} (records per run × {16 if richardson else 1}: the 4η run has "
            f"steps/16); got {steps!r}"
        )


#: simulate's options that compare sets for every run itself
_SET_PER_RUN = ("record", "every", "seed")


def _base_options(lr: Any, batch_size: Any, steps: Any, replicas: Any, weight_decay: Any, progress: bool,
                  simulate_options: dict[str, Any]) -> tuple[SimulationOptions, Any]:
    """The base run's :class:`SimulationOptions` (η, all steps) and the sampler, from compare's
    arguments and the options passed through to simulate."""
    extra = dict(simulate_options)
    sampler = extra.pop("sampler", None)
    clash = [k for k in _SET_PER_RUN if k in extra]
    if clash:
        raise TypeError(f"compare() sets {', '.join(clash)} for each run itself; do not pass them")
    base = SimulationOptions(lr=lr, batch_size=batch_size, steps=steps, replicas=replicas,
                             weight_decay=weight_decay, progress=progress, **extra)
    return base, sampler


def _prediction(loss: Loss, predicted: Any, names: list[str], evaluate: Callable[[np.ndarray], np.ndarray],
                gens: list[sp.MatrixBase], th0: np.ndarray, base: SimulationOptions, values: Any,
                discrete: bool, route: str = "auto") -> tuple[np.ndarray, np.ndarray | None, str, Any]:
    """(predicted values, θ* or None, how, the Prediction or None): from the theory, or from
    ``predicted``."""
    if predicted is None:
        p = _predict(loss, gens, th0, weight_decay=base.weight_decay, lr=base.lr,
                     batch_size=base.batch_size, values=values, discrete=discrete, route=route)
        return evaluate(p.theta), p.theta, p.how, p
    if isinstance(predicted, Mapping):
        missing = [nm for nm in names if nm not in predicted]
        if missing:
            raise InvalidArgumentError(f"predicted lacks value(s) for {missing}; observables are {names}")
        return np.array([float(predicted[nm]) for nm in names]), None, "given values", None
    if isinstance(predicted, NoetherFlow):  # a flow already integrated (from this start)
        if predicted.kind not in ("fixed point", "rotating") or predicted.theta.shape != (loss.n,):
            raise InvalidArgumentError(f"predicted is a NoetherFlow without a stationary state of this loss "
                                       f"({predicted.kind}: {predicted.reason})")
        p = Prediction("noether_flow", predicted, np.asarray(predicted.theta, dtype=float),
                       f"noether_flow (E22; {predicted.kind}, {predicted.method})")
        return evaluate(p.theta), p.theta, p.how, p
    raw = getattr(predicted, "theta", predicted)
    theta_star = np.asarray(raw, dtype=float).ravel()
    if theta_star.shape != (loss.n,):
        raise InvalidArgumentError(f"predicted θ* must have {loss.n} entries (params order); got {theta_star.shape}")
    return evaluate(theta_star), theta_star, f"given θ* ({type(predicted).__name__})", None


def _measure(res: SimulationResult, data: np.ndarray, evaluate: Callable[[np.ndarray], np.ndarray] | None,
             tail: float, first: bool = True) -> Run:
    """One run's tail averages (mean ± s.e. over the surviving replicas), drift and outliers."""
    eta, st, replicas = res.settings["lr"], res.settings["steps"], res.settings["replicas"]
    with np.errstate(over="ignore", invalid="ignore"):  # diverged replicas: NaN, excluded below
        vals = data if evaluate is None else evaluate(data)  # (records, R, k)
    if vals.ndim == 2:
        vals = vals[:, :, None]
    t = np.asarray(res.times)
    alive = ~res.diverged
    if alive.sum() < 2:
        if first:
            raise InvalidArgumentError(
                f"at η = {eta:g} only {int(alive.sum())} of {replicas} replicas survived: lower lr"
            )
        # a later (2η, 4η) run past the stability edge: kept as an unclean run (never extrapolated)
        nan = np.full(vals.shape[-1], np.nan)
        return Run(eta, st, nan, nan, int(replicas), res.n_diverged, res.seconds, t,
                   np.full((len(t), vals.shape[-1]), np.nan), np.full((len(t), vals.shape[-1]), np.nan), None, None, 0)
    tail_vals = vals[t >= (1.0 - tail) * st][:, alive]  # (records in the tail, R_alive, k)
    per_rep = tail_vals.mean(axis=0)  # (R_alive, k)
    value = per_rep.mean(axis=0)
    sem = per_rep.std(axis=0, ddof=1) / math.sqrt(per_rep.shape[0])
    h = tail_vals.shape[0] // 2
    if h >= 1:
        dd = tail_vals[-h:].mean(axis=0) - tail_vals[:h].mean(axis=0)
        drift, drift_sem = dd.mean(axis=0), dd.std(axis=0, ddof=1) / math.sqrt(dd.shape[0])
    else:  # pragma: no cover - records ≥ 2 keeps h ≥ 1 unless tail is tiny
        drift = drift_sem = None
    # replicas more than 20 median absolute deviations from the median: near the stability edge
    med = np.median(per_rep, axis=0)
    mad = np.median(np.abs(per_rep - med), axis=0)
    outliers = int(np.count_nonzero(np.any(np.abs(per_rep - med) > 20 * np.maximum(mad, 1e-300), axis=1)))
    v_alive = vals[:, alive]
    return Run(eta, st, value, sem, int(replicas), res.n_diverged, res.seconds, t,
               v_alive.mean(axis=1), v_alive.std(axis=1), drift, drift_sem, outliers)


@dataclass
class _Extrapolation:
    order: str
    estimate: np.ndarray | None
    sem: np.ndarray | None
    lrs: list[float]
    refusal: str | None
    notes: list[str]


#: the least-squares line through three clean runs is used only while the runs fit it: the
#: lack-of-fit contrast (in standard errors, worst observable) at most this; beyond it the
#: bias is not linear in η over (η, 4η) and the line through the two smallest rates is used
LINE_MISFIT_Z = 4.0


def _lack_of_fit(runs: list[Run]) -> float:
    """|m₁ − 3m₂/2 + m₄/2| / s.e. for the rates (h₁, h₂, h₄) (zero for any line when the rates
    double: m₄ − m₂ = 2(m₂ − m₁)), the worst over observables; the general rates' form is the
    second divided difference, scaled to the same contrast."""
    h = np.array([r.lr for r in runs], dtype=float)
    # weights c with Σc = 0 and Σc·h = 0 (a line has no lack of fit), normalised so c₁ = 1
    c = np.array([h[2] - h[1], -(h[2] - h[0]), h[1] - h[0]]) / (h[2] - h[1])
    m = np.array([np.asarray(r.value, dtype=float) for r in runs])
    se = np.array([np.asarray(r.sem, dtype=float) for r in runs])
    contrast = np.tensordot(c, m, axes=1)
    err = np.sqrt(np.tensordot(c**2, se**2, axes=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(err > 0, np.abs(contrast) / np.where(err > 0, err, 1.0), np.where(contrast != 0, np.inf, 0.0))
    return float(np.max(z)) if z.size else 0.0


def _extrapolate(runs: list[Run], richardson: bool, order: str) -> _Extrapolation:
    """The η → 0 estimate from the clean runs only (no diverged or outlying replica).

    A requested rule is used when every run it needs is clean; otherwise, and for
    ``"auto"``: the least-squares line ("linear") through three clean runs, the line through
    two ("two-point", Lagrange weights for their learning rates), and a refusal (order
    ``"none"``, ``refusal`` saying why) with fewer than two. Three clean runs that do not fit
    a line (:func:`_lack_of_fit` above ``LINE_MISFIT_Z``) give the line through the two
    smallest rates instead.
    """
    if not richardson:
        return _Extrapolation(order, None, None, [], None, [])
    clean = [not (r.n_diverged or r.outliers) for r in runs]
    notes: list[str] = []
    if order != "auto":
        k = len(_WEIGHTS[order])
        if all(clean[:k]):
            est, sem = richardson_fn([r.value for r in runs[:k]], [r.sem for r in runs[:k]], order=order)
            return _Extrapolation(order, est, sem, [r.lr for r in runs[:k]], None, [])
        notes.append(f"order {order!r} needs a run with diverged or outlying replicas: the η → 0 estimate "
                     "uses the clean runs only")
    good = [r for r, c in zip(runs, clean) if c]
    bad = ", ".join(f"η={r.lr:g} ({r.n_diverged} diverged, {r.outliers} outlying)"
                    for r, c in zip(runs, clean) if not c)
    if len(good) < 2:
        return _Extrapolation("none", None, None, [], (
            f"fewer than two clean runs (runs with diverged or outlying replicas: {bad}); Richardson needs two: "
            "lower lr"), notes)
    if len(good) == 3:
        z = _lack_of_fit(good)
        if z <= LINE_MISFIT_Z:
            est, sem = richardson_fn([r.value for r in good], [r.sem for r in good], order="linear")
            return _Extrapolation("linear", est, sem, [r.lr for r in good], None, notes)
        notes.append(f"η → 0 from the two smallest rates: the run at η={good[2].lr:g} is off the line through "
                     f"the three (lack of fit {z:.1f} s.e. > {LINE_MISFIT_Z:g}: the bias is not linear in η there)")
        good, bad = good[:2], f"η={good[2].lr:g} (off the line)"
    h = [r.lr for r in good]
    w = np.array([h[1] / (h[1] - h[0]), -h[0] / (h[1] - h[0])])  # the line through both, at η = 0
    est = w[0] * good[0].value + w[1] * good[1].value
    sem = np.sqrt((w[0] * good[0].sem) ** 2 + (w[1] * good[1].sem) ** 2)
    notes.append(f"η → 0 from the clean runs η={h[0]:g}, {h[1]:g} only (not used: {bad})")
    return _Extrapolation("two-point", est, sem, h, None, notes)


#: compare warns when its base run is shorter than this many relaxation times
_MIN_RELAXATIONS = 3


def _flow_relaxation_steps(flow: Any, evaluate: Callable[[np.ndarray], np.ndarray], lr: float,
                           batch_size: int) -> float | None:
    """The flow's relaxation time in SGD steps at (η, S): the τ = η²k/S after which every
    observable stays within 1/e of its initial distance from the stationary value (from the
    flow's trajectory; None when it does not resolve one)."""
    taus, thetas = flow.trajectory
    if len(taus) < 2:
        return None
    vals = np.asarray(evaluate(np.asarray(thetas)), dtype=float)
    dist = np.abs(vals - vals[-1])
    far = dist > np.exp(-1.0) * np.maximum(dist[0], 1e-300)
    last = np.nonzero(far.any(axis=1))[0]
    tau = float(taus[min(last[-1] + 1, len(taus) - 1)]) if last.size else 0.0
    return tau * batch_size / lr**2 if tau > 0 else None


richardson_fn = richardson
