"""Simulate: :class:`SimulationResult`, what a run returns (final θ, divergence, records).

Also the two constants the simulator and its callers share: :data:`OVERFLOW` (the size
past which a replica counts as diverged) and :data:`OBSERVABLES` (what ``record`` may name).
"""


from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ['SimulationResult']


#: a replica is diverged when an entry of θ is non-finite or exceeds this in absolute value
OVERFLOW = 1e150

#: observables that ``record`` may name (see :func:`simulate`)
OBSERVABLES = ("loss", "theta", "charges", "norm2", "orbit", "sharpness", "grad_norm2")


# ------------------------------------------------------------------------------------------
# Result
# ------------------------------------------------------------------------------------------


@dataclass
class SimulationResult:
    """What :func:`simulate` returns.

    Attributes
    ----------
    theta
        Final parameters, ``(replicas, n)``; a diverged replica keeps its last finite iterate.
    diverged
        ``(replicas,)`` bool: replicas stopped because θ became non-finite or overflowed.
    divergence_step
        ``(replicas,)`` int: the first step t at which θ_t was bad (1 ≤ t ≤ steps), −1 if never.
    times
        ``(n_records,)`` steps at which observables were recorded (0, every, 2·every, ...).
    observables
        ``{name: array}``, each ``(n_records, replicas)`` or ``(n_records, replicas, k)``
        (``"theta"``: k = n; ``"charges"``, ``"orbit"``: one column per generator). Entries
        of a replica after its divergence are NaN.
    theta0
        Starting parameters, ``(replicas, n)``.
    seed
        The seed (an int: the SeedSequence entropy; re-running with it reproduces the run).
    seconds
        Wall time.
    settings
        The arguments of the run (lr, batch_size, steps, ...) as plain values.
    params
        Parameter names, in θ order.
    """

    theta: np.ndarray
    diverged: np.ndarray
    divergence_step: np.ndarray
    times: np.ndarray
    observables: dict[str, np.ndarray]
    theta0: np.ndarray
    seed: int
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    params: tuple[str, ...] = ()

    @property
    def n_diverged(self) -> int:
        """Number of diverged replicas."""
        return int(np.count_nonzero(self.diverged))

    @property
    def replicas(self) -> int:
        return int(self.theta.shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        """A recorded observable by name (``res["charges"]``)."""
        try:
            return self.observables[name]
        except KeyError:
            raise KeyError(
                f"{name!r} was not recorded; recorded: {sorted(self.observables)} (pass record=[...])"
            ) from None

    def mean(self, name: str) -> np.ndarray:
        """Mean over the replicas that have not diverged (NaN-aware), per record."""
        a = self[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            cnt = np.sum(np.isfinite(a), axis=1)
            s = np.nansum(a, axis=1)
            return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)

    def sem(self, name: str) -> np.ndarray:
        """Standard error of :meth:`mean` over replicas (NaN-aware), per record."""
        a = self[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            cnt = np.sum(np.isfinite(a), axis=1)
            m = self.mean(name)
            dev = np.where(np.isfinite(a), a - np.expand_dims(m, 1), 0.0)
            var = np.sum(dev * dev, axis=1) / np.maximum(cnt - 1, 1)
            return np.where(cnt > 1, np.sqrt(var / np.maximum(cnt, 1)), np.nan)

    def summary(self) -> str:
        """A few lines: the run, divergences, the last recorded value of each observable."""
        s = self.settings
        lines = [
            (f"simulate {s.get('loss', 'loss')}: {s.get('optimizer', 'sgd')}, {self.replicas} replicas x "
             f"{s.get('steps')} steps, lr={s.get('lr')}, batch={s.get('batch_size')}, "
             f"weight_decay={s.get('weight_decay')}, momentum={s.get('momentum')}, seed={self.seed}, "
             f"{self.seconds:.2f} s")
        ]
        if self.n_diverged:
            steps = self.divergence_step[self.diverged]
            lines.append(
                f"  diverged: {self.n_diverged} of {self.replicas} replicas (first at step {int(steps.min())}, "
                f"median {int(np.median(steps))}, last {int(steps.max())})"
            )
        else:
            lines.append("  diverged: none")
        if len(self.times):
            lines.append(f"  records: {len(self.times)} (every {s.get('every')} steps, last at step {int(self.times[-1])})")
        for name in self.observables:
            if name == "theta":
                continue
            m, e = self.mean(name)[-1], self.sem(name)[-1]
            vals = ", ".join(f"{a:.6g} ± {b:.2g}" for a, b in zip(np.atleast_1d(m)[:6], np.atleast_1d(e)[:6]))
            more = " ..." if np.size(m) > 6 else ""
            lines.append(f"  {name} (last record, mean ± s.e. over replicas): {vals}{more}")
        return "\n".join(lines)

    def to_dict(self, *, trajectories: bool = True) -> dict[str, Any]:
        """Plain JSON-ready dict: settings, divergences, final θ statistics and, when
        ``trajectories``, the per-record mean and standard error of each observable."""
        def clean(a: Any) -> Any:
            arr = np.asarray(a, dtype=float)
            return [None if not math.isfinite(v) else float(v) for v in arr.ravel()] if arr.ndim == 1 else [
                clean(r) for r in arr
            ]

        out: dict[str, Any] = {
            "settings": dict(self.settings),
            "params": list(self.params),
            "replicas": self.replicas,
            "seed": self.seed,
            "seconds": self.seconds,
            "n_diverged": self.n_diverged,
            "divergence_steps": [int(v) for v in self.divergence_step[self.diverged]],
        }
        alive = ~self.diverged
        if alive.any():
            out["theta_mean"] = clean(self.theta[alive].mean(axis=0))
        if trajectories:
            out["times"] = [int(t) for t in self.times]
            out["observables"] = {
                name: {"mean": clean(self.mean(name)), "sem": clean(self.sem(name))}
                for name in self.observables
                if name != "theta"
            }
        return out

    def __repr__(self) -> str:
        return (
            f"SimulationResult(replicas={self.replicas}, n={self.theta.shape[1]}, "
            f"records={len(self.times)}, observables={sorted(self.observables)}, n_diverged={self.n_diverged})"
        )
