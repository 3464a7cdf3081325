"""Validation (foundation): argument constraints declared once and checked by one helper.

Every public entry point checks its arguments here, in the style of scikit-learn's
``_param_validation``: a constraint is an object (:class:`Integer`, :class:`Real`,
:class:`Options`, :class:`Seed`, :class:`FilePath`, ...) that either returns the value in its
canonical Python type or raises :class:`~noether_sym.InvalidArgumentError` with a message
that names the argument, what it must be, and what was given. :func:`validate` applies a
table of constraints to keyword arguments, so an entry point states its contract in one
place and a common test can feed invalid values to all of them.

Design
------
Constraints convert as well as check (``Integer`` returns a plain ``int`` from a NumPy
integer, ``Real`` a ``float``), so code after the check never sees bools posing as
numbers, NaN, or a string that happens to parse. Sizes that allocate memory (replicas,
steps, widths) carry an upper bound: an absurd value is an error that names the bound,
never an allocation that exhausts the machine.

Examples
--------
>>> from noether_sym._validate import Integer, Real, validate
>>> validate({"steps": Integer(0), "lr": Real(0, None, low_open=True)}, steps=10, lr=0.1)
{'steps': 10, 'lr': 0.1}
>>> Integer(1)(0, "replicas")
Traceback (most recent call last):
...
noether_sym._errors.InvalidArgumentError: replicas must be an integer >= 1; got 0
"""

from __future__ import annotations

import difflib
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import InvalidArgumentError

__all__ = [
    "Constraint",
    "Integer",
    "Real",
    "Probability",
    "Options",
    "Boolean",
    "Seed",
    "Optional",
    "FilePath",
    "OutputDir",
    "OutputFile",
    "validate",
    "is_integer",
]

#: the largest integer any size-like argument may take unless its constraint says otherwise
MAX_SIZE = 10**9


def is_integer(v: Any) -> bool:
    """True for Python and NumPy integers, false for bools (``True`` is not a count)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


class Constraint:
    """A check that returns the value in canonical form or raises InvalidArgumentError."""

    def __call__(self, value: Any, name: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def _fail(self, name: str, value: Any, extra: str = "") -> InvalidArgumentError:
        return InvalidArgumentError(f"{name} must be {self.describe()}; got {value!r}{extra}")


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer in ``[low, high]`` (bools and non-integral floats rejected)."""

    low: int | None = None
    high: int | None = MAX_SIZE

    def describe(self) -> str:
        if self.low is not None and self.high is not None and self.high != MAX_SIZE:
            return f"an integer in [{self.low}, {self.high}]"
        if self.low is not None:
            return f"an integer >= {self.low}"
        return "an integer"

    def __call__(self, value: Any, name: str) -> int:
        if not is_integer(value):
            raise self._fail(name, value)
        v = int(value)
        if self.low is not None and v < self.low:
            raise self._fail(name, value)
        if self.high is not None and v > self.high:
            raise InvalidArgumentError(
                f"{name} = {v} is over the limit {self.high}: give a smaller value (this bound keeps the "
                "memory and time of one call within the machine)"
            )
        return v


@dataclass(frozen=True)
class Real(Constraint):
    """A finite real number in an interval (ends open or closed, ``None`` for unbounded)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return "a finite real number" + (" " + " and ".join(parts) if parts else "")

    def __call__(self, value: Any, name: str) -> float:
        if isinstance(value, (bool, np.bool_, str, bytes)):
            raise self._fail(name, value)
        try:
            v = float(value)
        except (TypeError, ValueError, OverflowError):
            raise self._fail(name, value) from None
        if not math.isfinite(v):
            raise self._fail(name, value)
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            raise self._fail(name, value)
        if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
            raise self._fail(name, value)
        return v


def Probability(*, open_low: bool = False, open_high: bool = False) -> Real:  # noqa: N802 - a constraint factory
    """A number in [0, 1] (either end may be open)."""
    return Real(0.0, 1.0, low_open=open_low, high_open=open_high)


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values (strings compared exactly)."""

    choices: tuple[Any, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def __call__(self, value: Any, name: str) -> Any:
        if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
            raise self._fail(name, value)
        if value not in self.choices:
            raise self._fail(name, value, _did_you_mean(value, self.choices))
        return value


@dataclass(frozen=True)
class Boolean(Constraint):
    """``True`` or ``False`` (not 0/1, not a string)."""

    def describe(self) -> str:
        return "True or False"

    def __call__(self, value: Any, name: str) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise self._fail(name, value)
        return bool(value)


@dataclass(frozen=True)
class Seed(Constraint):
    """A random seed: an integer in [0, 2**63) (NumPy's SeedSequence takes no negatives)."""

    def describe(self) -> str:
        return "an integer in [0, 2**63)"

    def __call__(self, value: Any, name: str) -> int:
        if not is_integer(value) or not 0 <= int(value) < 2**63:
            raise self._fail(name, value)
        return int(value)


@dataclass(frozen=True)
class FilePath(Constraint):
    """An existing file (``must_exist``) or any path-like value."""

    must_exist: bool = True

    def describe(self) -> str:
        return "the path of an existing file" if self.must_exist else "a file path"

    def __call__(self, value: Any, name: str) -> Path:
        if not isinstance(value, (str, os.PathLike)):
            raise self._fail(name, value)
        p = Path(value)
        if self.must_exist and not p.is_file():
            what = "a folder" if p.is_dir() else "missing"
            raise InvalidArgumentError(f"{name} must be {self.describe()}; {str(p)!r} is {what}")
        return p


@dataclass(frozen=True)
class OutputDir(Constraint):
    """A folder to write into: created if missing; an existing file or an unwritable place is an error."""

    def describe(self) -> str:
        return "a writable folder"

    def __call__(self, value: Any, name: str) -> Path:
        if not isinstance(value, (str, os.PathLike)):
            raise self._fail(name, value)
        p = Path(value)
        if p.exists() and not p.is_dir():
            raise InvalidArgumentError(f"{name}: {str(p)!r} is a file, not a folder; give a folder to write into")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgumentError(f"{name}: cannot create the folder {str(p)!r} ({exc.strerror}); give a writable place") from None
        if not os.access(p, os.W_OK):
            raise InvalidArgumentError(f"{name}: the folder {str(p)!r} is not writable; give a writable place")
        return p


@dataclass(frozen=True)
class OutputFile(Constraint):
    """A file to write: its folder must exist and be writable, and the path must not be a folder.

    Checked before the work that produces the file, so that a long run does not end in a
    failed write.
    """

    def describe(self) -> str:
        return "a file path in an existing, writable folder"

    def __call__(self, value: Any, name: str) -> Path:
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise self._fail(name, value)
        p = Path(value)
        if p.is_dir():
            raise InvalidArgumentError(f"{name}: {str(p)!r} is a folder; give a file name, e.g. {str(p / 'out.png')!r}")
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise InvalidArgumentError(f"{name}: the folder {str(parent)!r} does not exist; create it first or give another path")
        try:  # a real write: os.access says yes to root even where the kernel will say no (/proc)
            probe = tempfile.NamedTemporaryFile(dir=parent, prefix=".write-test-", delete=True)
            probe.close()
        except OSError as exc:
            raise InvalidArgumentError(
                f"{name}: cannot write into the folder {str(parent)!r} ({exc.strerror or exc}); give a writable place"
            ) from None
        if p.exists() and not os.access(p, os.W_OK):
            raise InvalidArgumentError(f"{name}: cannot overwrite {str(p)!r} (permission denied); give a writable place")
        return p


def validate(constraints: Mapping[str, Constraint | None], /, **values: Any) -> dict[str, Any]:
    """Check keyword ``values`` against a table of ``constraints`` (``None``: not checked);
    returns the values in canonical form. Wrap a constraint in :class:`Optional` to accept
    ``None`` too."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in constraints:
            raise InvalidArgumentError(f"unknown argument {name!r}" + _did_you_mean(name, tuple(constraints)))
        c = constraints[name]
        out[name] = value if c is None else c(value, name)
    return out


@dataclass(frozen=True)
class Optional(Constraint):
    """``None`` or a value meeting ``inner``."""

    inner: Constraint

    def describe(self) -> str:
        return f"None or {self.inner.describe()}"

    def __call__(self, value: Any, name: str) -> Any:
        return None if value is None else self.inner(value, name)


def _did_you_mean(value: Any, choices: Iterable[Any]) -> str:
    words = [str(c) for c in choices]
    close = difflib.get_close_matches(str(value), words, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
