"""Simulate: learning-rate schedules, η_k = lr · factor(k).

:class:`Warmup`, :class:`StepDecay` and :class:`Cosine` are frozen dataclasses that validate
their fields (with :mod:`noether_sym._validate`) when built and check that they fit a run
(:meth:`Schedule.check`) when the run's options are built. The simulator asks for the
factors of a block of steps at once (:func:`_schedule_factors`), never step by step.
"""


from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .._errors import InvalidArgumentError
from .._validate import Integer, Real

__all__ = ['Cosine', 'Schedule', 'StepDecay', 'Warmup']



# ------------------------------------------------------------------------------------------
# Learning-rate schedules
# ------------------------------------------------------------------------------------------


class Schedule:
    """A learning-rate schedule: η_k = lr · factor(k), k = 0, 1, ... (the step index).

    Subclasses implement :meth:`factors` (vectorized) and :meth:`check` (does the schedule
    fit ``steps``?).
    """

    def factors(self, k: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, steps: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warmup: η_k = lr · (start + (1 − start) · min(1, (k + 1) / steps)).

    The first step already moves (η_0 = lr · (start + (1 − start)/steps)) and step
    ``steps − 1`` reaches lr, which is then kept. ``steps`` must not exceed the run's.

    Examples
    --------
    >>> import numpy as np, noether_sym as ns
    >>> ns.Warmup(steps=4).factors(np.arange(6)).tolist()
    [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    """

    steps: int
    start: float = 0.0

    def __post_init__(self) -> None:
        Integer(1)(self.steps, "Warmup(steps=...)")
        Real(0.0, 1.0)(self.start, "Warmup(start=...)")

    def factors(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        return self.start + (1.0 - self.start) * np.minimum(1.0, (k + 1.0) / self.steps)

    def check(self, steps: int) -> None:
        if self.steps > steps:
            raise InvalidArgumentError(
                f"schedule Warmup(steps={self.steps}) does not fit the run: steps={steps} is shorter "
                "than the warmup; shorten the warmup or run longer"
            )


@dataclass(frozen=True)
class StepDecay(Schedule):
    """Step decay: η_k = lr · factor^m, m = number of milestones ≤ k.

    Give ``milestones`` (strictly increasing steps in (0, steps)) or ``every`` (a decay
    every that many steps), not both.

    Examples
    --------
    >>> import numpy as np, noether_sym as ns
    >>> ns.StepDecay(milestones=(2, 4), factor=0.5).factors(np.arange(6)).tolist()
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    >>> ns.StepDecay(every=3, factor=0.1).factors(np.arange(7)).round(6).tolist()
    [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01]
    """

    milestones: tuple[int, ...] = ()
    factor: float = 0.1
    every: int | None = None

    def __post_init__(self) -> None:
        Real(0.0, low_open=True)(self.factor, "StepDecay(factor=...)")
        ms = tuple(self.milestones) if self.milestones is not None else ()
        if self.every is not None:
            if ms:
                raise InvalidArgumentError("StepDecay: give milestones=... or every=..., not both")
            Integer(1)(self.every, "StepDecay(every=...)")
        elif not ms:
            raise InvalidArgumentError("StepDecay needs milestones=(k1, k2, ...) or every=N")
        for m in ms:
            Integer(1)(m, "StepDecay milestone")
        if any(b <= a for a, b in itertools.pairwise(ms)):
            raise InvalidArgumentError(f"StepDecay milestones must be strictly increasing; got {ms}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in ms))

    def factors(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k)
        if self.every is not None:
            m = k // self.every
        else:
            m = np.searchsorted(np.asarray(self.milestones), k, side="right")
        return np.power(float(self.factor), m.astype(float))

    def check(self, steps: int) -> None:
        if self.every is not None:
            if self.every >= steps:
                raise InvalidArgumentError(
                    f"schedule StepDecay(every={self.every}) does not fit the run: it never decays "
                    f"within steps={steps}"
                )
        elif self.milestones[-1] >= steps:
            raise InvalidArgumentError(
                f"schedule StepDecay milestone {self.milestones[-1]} does not fit the run: milestones "
                f"must lie in (0, steps={steps})"
            )


@dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine decay with optional linear warmup.

    η_k = lr · (k + 1)/warmup for k < warmup, then
    η_k = lr · (final + (1 − final) · ½(1 + cos(π (k − warmup)/(T − warmup)))), and lr · final
    from k = T on. ``steps`` = T defaults to the run's step count; it must not exceed it.

    Examples
    --------
    >>> import numpy as np, noether_sym as ns
    >>> ns.Cosine(steps=4).factors(np.arange(5)).round(4).tolist()
    [1.0, 0.8536, 0.5, 0.1464, 0.0]
    """

    steps: int | None = None
    final: float = 0.0
    warmup: int = 0

    def __post_init__(self) -> None:
        if self.steps is not None:
            Integer(1)(self.steps, "Cosine(steps=...)")
        Real(0.0, 1.0)(self.final, "Cosine(final=...)")
        Integer(0)(self.warmup, "Cosine(warmup=...)")
        if self.steps is not None and self.warmup >= self.steps:
            raise InvalidArgumentError(
                f"Cosine: warmup={self.warmup} must be shorter than the schedule (steps={self.steps})"
            )

    def _with_total(self, steps: int) -> int:
        return self.steps if self.steps is not None else steps

    def factors(self, k: np.ndarray, total: int | None = None) -> np.ndarray:
        T = self.steps if self.steps is not None else total
        if T is None:
            raise InvalidArgumentError("Cosine() without steps=... needs the run's step count")
        k = np.asarray(k, dtype=float)
        w = self.warmup
        frac = np.clip((k - w) / (T - w), 0.0, 1.0)
        out = self.final + (1.0 - self.final) * 0.5 * (1.0 + np.cos(np.pi * frac))
        if w:
            out = np.where(k < w, (k + 1.0) / w, out)
        return out

    def check(self, steps: int) -> None:
        T = self._with_total(steps)
        if T > steps:
            raise InvalidArgumentError(
                f"schedule Cosine(steps={T}) does not fit the run: steps={steps} ends before the decay; "
                "use Cosine() to decay over the whole run"
            )
        if self.warmup >= T:
            raise InvalidArgumentError(
                f"schedule Cosine(warmup={self.warmup}) does not fit the run of {steps} steps"
            )


def _schedule_factors(schedule: Schedule | None, k0: int, k1: int, steps: int) -> np.ndarray | None:
    if schedule is None:
        return None
    k = np.arange(k0, k1)
    if isinstance(schedule, Cosine):
        return schedule.factors(k, total=steps)
    return np.asarray(schedule.factors(k), dtype=float)
