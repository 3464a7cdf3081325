"""Simulate: the settings of one run of SGD, grouped in one object that validates itself.

:func:`~noether_sym.simulate` takes its settings as keyword arguments and builds a
:class:`SimulationOptions` from them; :func:`~noether_sym.compare`, which runs the simulator
at several learning rates, builds one from its own keyword arguments and derives each run's
settings with :func:`dataclasses.replace`, instead of repeating every option of simulate.

Design
------
The options are what does not depend on the loss (rates, sizes, seed, what to record);
what does -- the start θ0, the generators of the charges, the sampler and the values of
symbolic distribution parameters -- is checked against the loss by the simulator itself.
Checks use the shared constraints of :mod:`noether_sym._validate`, so the messages name the
argument, the expected value and the value given; an instance is valid by construction,
and ``replace`` re-validates (a schedule that fits 4000 steps may not fit 250).

Examples
--------
>>> from noether_sym.simulate._options import SimulationOptions
>>> opts = SimulationOptions(lr=0.1, batch_size=4, steps=1000, replicas=8, record=["norm2"])
>>> opts.record, opts.record_every
(('norm2',), 10)
>>> SimulationOptions(lr=0.1, batch_size=4, steps=1000, replicas=0)
Traceback (most recent call last):
...
noether_sym._errors.InvalidArgumentError: replicas must be an integer >= 1; got 0
"""


from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidArgumentError
from .._validate import (
    Boolean,
    Constraint,
    Integer,
    Optional,
    Options,
    Real,
    Seed,
    validate,
)
from ._result import OBSERVABLES
from ._schedule import Schedule

__all__ = ['BACKENDS', 'SimulationOptions']


#: the step engines: ``"numpy"`` (the reference), ``"numba"`` (fused compiled kernels,
#: :mod:`noether_sym.simulate._fused`), ``"auto"`` (numba when it is importable and the run
#: is one it implements, else numpy, saying why in ``result.settings["backend_note"]``)
BACKENDS = ("auto", "numpy", "numba")
#: the environment variable that sets the default backend (``auto`` when unset)
BACKEND_ENV = "NOETHER_SYM_BACKEND"

# in the order simulate always checked them (the first bad one is reported)
_NUMBERS = {
    "replicas": Integer(1),
    "steps": Integer(0),
    "batch_size": Integer(1),
    "lr": Real(0.0),
    "weight_decay": Real(0.0),
    "momentum": Real(0.0, 1.0, high_open=True),
    "optimizer": Options(("sgd", "gd")),
}
_RECORDING = {
    "every": Optional(Integer(1)),
    "replace": Boolean(),
    "chunk_size": Optional(Integer(1)),
    "seed": Optional(Seed()),
    "backend": Options(BACKENDS),
}



@dataclass(frozen=True)
class SimulationOptions:
    """The settings of :func:`~noether_sym.simulate` (see there for each one).

    Numbers come out in canonical Python types (``int``, ``float``) and ``record`` as a
    tuple of observable names; ``every=None`` means ``steps // 100`` (at least 1), see
    :attr:`record_every`, and ``seed=None`` fresh entropy drawn when the run starts.
    """

    lr: float
    batch_size: int
    steps: int
    replicas: int
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: Schedule | None = None
    optimizer: str = "sgd"
    record: Sequence[str] | None = ()
    every: int | None = None
    seed: int | None = 0
    replace: bool = True
    chunk_size: int | None = None
    progress: bool = False
    backend: str | None = None

    def __post_init__(self) -> None:
        if self.backend is None:
            object.__setattr__(self, "backend", os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto")
        self._check(_NUMBERS)
        if self.schedule is not None:
            if not isinstance(self.schedule, Schedule):
                raise InvalidArgumentError(
                    f"schedule must be None, ns.Warmup(...), ns.StepDecay(...) or ns.Cosine(...); got {self.schedule!r}"
                )
            self.schedule.check(self.steps)
        object.__setattr__(self, "record", tuple(record_names(self.record)))
        self._check(_RECORDING)

    def _check(self, table: dict[str, Constraint]) -> None:
        checked = validate(table, **{name: getattr(self, name) for name in table})
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: the canonical value, once

    @property
    def record_every(self) -> int:
        """The record stride: ``every``, by default ``steps // 100`` (at least 1)."""
        return self.every if self.every is not None else max(1, self.steps // 100)


def record_names(record: Any) -> list[str]:
    """The observable names of ``record`` (None, one name or a list), checked."""
    if record is None:
        return []
    if isinstance(record, str):
        record = [record]
    try:
        names = list(record)
    except TypeError:
        raise InvalidArgumentError(f"record must be a list of observable names; got {record!r}") from None
    for nm in names:
        if nm not in OBSERVABLES:
            raise InvalidArgumentError(f"record: unknown observable {nm!r}; choose among {list(OBSERVABLES)}")
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"record lists an observable twice: {names}")
    return names
