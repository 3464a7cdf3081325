"""Check: sweep specifications -- a TOML/dict spec validated and expanded into seeded, content-addressed tasks.

Every task's numeric fields are checked by one table (``_TASK_FIELDS``, constraints from
:mod:`noether_sym._validate`) after the grid is expanded, so a bad value names its task.
"""


from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from .. import families
from .._errors import InvalidArgumentError
from .._validate import Integer, Real, Seed, is_integer
from .._version import __version__
from ..loss._loss import Loss

__all__ = ['Task', 'SweepSpec']


#: settings of one task and their defaults (lr, batch_size, steps, replicas are required:
#: from the spec or the family's ``settings``)
TASK_KEYS: dict[str, Any] = {
    "family": None,  # a catalog name (ns.families.names()); or loss=
    "options": {},  # the family's build options, e.g. {"dims": [2, 4, 2]}
    "loss": None,  # a Loss (Python API only), instead of family
    "start": "default",  # "default" (the family's seeded start) or θ0 as a list / {name: value}
    "start_seed": 0,  # seed of the family's default start (the same for every task by default)
    "noise": 0.5,  # label-noise std of the Gaussian teacher for families without a data model
    "lr": None,
    "batch_size": None,
    "weight_decay": 0.0,
    "steps": None,
    "replicas": None,
    "every": None,  # record stride (default steps // 100)
}
_REQUIRED = ("lr", "batch_size", "steps", "replicas")  # from the spec or the family's settings
_SPEC_KEYS = ("seed", "repeats", "grid", "tasks")


# ------------------------------------------------------------------------------------------
# The spec
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One task of a sweep: its position, id, canonical settings and simulation seed."""

    index: int
    id: str
    config: dict[str, Any]
    seed: int


#: the contract of a task's numeric fields (checked for every task after the grid is expanded)
_TASK_FIELDS = {
    "start_seed": Seed(),
    "noise": Real(0),
    "lr": Real(0, low_open=True),
    "batch_size": Integer(1),
    "weight_decay": Real(0),
    "steps": Integer(1),
    "replicas": Integer(1),
    "every": Integer(1),
}


def _field(cfg_value: Any, key: str, where: str) -> Any:
    return _TASK_FIELDS[key](cfg_value, f"{where}: {key}")


def _plain(v: Any, what: str) -> Any:
    """``v`` as JSON-ready plain data (lists, numbers, strings, bools), or an error."""
    if isinstance(v, (bool, str)) or v is None:
        return v
    if is_integer(v):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            raise InvalidArgumentError(f"{what} must be finite; got {v!r}")
        return f
    if isinstance(v, Mapping):
        return {str(k): _plain(x, f"{what}[{k!r}]") for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x, f"{what}[{i}]") for i, x in enumerate(v)]
    raise InvalidArgumentError(f"{what} must be numbers, strings, lists or tables; got {type(v).__name__}")


def _loss_digest(loss: Any) -> str:
    """A content hash of a Loss: expression, parameters, data model and dataset."""

    h = hashlib.sha256()
    h.update(sp.srepr(loss.expr).encode())
    h.update(repr([str(p) for p in loss.params]).encode())
    h.update(repr([sp.srepr(s) for s in loss.random_symbols]).encode())
    h.update(repr([str(s) for s in loss.data_symbols]).encode())
    if loss.dataset is not None:
        for s, arr in loss.dataset.items():
            h.update(str(s).encode())
            h.update(np.ascontiguousarray(arr, dtype=float).tobytes())
    return h.hexdigest()[:16]


def _canonical(raw: Mapping[str, Any], where: str, losses: dict[str, Any]) -> dict[str, Any]:
    """Validate one task's settings (merged over the defaults); return them canonical."""


    unknown = sorted(set(raw) - set(TASK_KEYS) - {"repeat"})
    if unknown:
        raise InvalidArgumentError(
            f"{where}: unknown key(s) {', '.join(unknown)}; a task takes {', '.join(TASK_KEYS)}"
        )
    family, loss = raw.get("family"), raw.get("loss")
    if (family is None) == (loss is None):
        raise InvalidArgumentError(f"{where}: give exactly one of family = \"NAME\" or loss = Loss(...)")
    cfg: dict[str, Any] = {}
    settings: Mapping[str, Any] = {}
    if family is not None:
        fam = families.get(family)  # InvalidArgumentError listing the catalog
        options = raw.get("options") or {}
        if not isinstance(options, Mapping):
            raise InvalidArgumentError(f"{where}: options must be a table {{name: value}}; got {options!r}")
        bad = sorted(set(options) - set(fam.options))
        if bad:
            raise InvalidArgumentError(
                f"{where}: family {family!r} has no option(s) {', '.join(bad)}; its options are "
                f"{', '.join(sorted(fam.options)) or '(none)'}"
            )
        cfg["family"] = str(family)
        cfg["options"] = _plain(dict(sorted(options.items())), f"{where}: options")
        cfg["loss"] = None
        settings = fam.settings
    else:
        if not isinstance(loss, Loss):
            raise InvalidArgumentError(f"{where}: loss must be an ns.Loss; got {type(loss).__name__}")
        if raw.get("options"):
            raise InvalidArgumentError(f"{where}: options apply to a family, not to loss=")
        digest = _loss_digest(loss)
        losses[digest] = loss
        cfg["family"] = None
        cfg["options"] = {}
        cfg["loss"] = {"name": loss.name, "digest": digest}

    def value(key: str) -> Any:
        if key in raw:
            return raw[key]
        if key in settings:
            return settings[key]
        if key in _REQUIRED:
            src = f"family {family!r} has no default for it; " if family is not None else ""
            raise InvalidArgumentError(
                f"{where}: no {key}: {src}give {key} = ... at the top of the spec, in [grid] or in the task"
            )
        return TASK_KEYS[key]

    start = value("start")
    if isinstance(start, str):
        if start != "default":
            raise InvalidArgumentError(f"{where}: start must be \"default\", a list of numbers or a table; got {start!r}")
        if family is None:
            raise InvalidArgumentError(f"{where}: a sweep over loss= needs an explicit start = [θ0 in params order]")
    else:
        start = _plain(start, f"{where}: start")
        vals = start.values() if isinstance(start, dict) else start if isinstance(start, list) else None
        if vals is None or not vals or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            raise InvalidArgumentError(f"{where}: start must be \"default\", a list of numbers or a table {{name: number}}")
    cfg["start"] = start
    cfg["start_seed"] = _field(value("start_seed"), "start_seed", where)
    cfg["noise"] = _field(value("noise"), "noise", where)
    cfg["lr"] = _field(value("lr"), "lr", where)
    cfg["batch_size"] = _field(value("batch_size"), "batch_size", where)
    cfg["weight_decay"] = _field(value("weight_decay"), "weight_decay", where)
    cfg["steps"] = _field(value("steps"), "steps", where)
    cfg["replicas"] = _field(value("replicas"), "replicas", where)
    every = value("every")
    cfg["every"] = max(1, cfg["steps"] // 100) if every is None else _field(every, "every", where)
    cfg["repeat"] = int(raw.get("repeat", 0))
    return cfg


def _grid_points(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The product of the grid's axes, the first axis varying slowest (``itertools.product``)."""

    if not isinstance(grid, Mapping):
        raise InvalidArgumentError(f"grid must be a table of axes {{key: [values]}}; got {grid!r}")
    axes: list[tuple[tuple[str, ...], list[Any]]] = []
    for key, vals in grid.items():
        if key == "options":
            if not isinstance(vals, Mapping):
                raise InvalidArgumentError("grid.options must be a table of option axes {name: [values]}")
            for opt, ovals in vals.items():
                axes.append((("options", str(opt)), ovals))
        else:
            axes.append(((str(key),), vals))
    for path, vals in axes:
        if not isinstance(vals, (list, tuple)) or not vals:
            raise InvalidArgumentError(f"grid axis {'.'.join(path)} must be a non-empty list of values; got {vals!r}")
        if path[0] not in TASK_KEYS:
            raise InvalidArgumentError(
                f"grid axis {'.'.join(path)} is not a task key; a task takes {', '.join(TASK_KEYS)}"
            )
    points = []
    for combo in itertools.product(*[vals for _, vals in axes]):
        pt: dict[str, Any] = {}
        for (path, _), v in zip(axes, combo):
            if len(path) == 2:
                pt.setdefault("options", {})[path[1]] = v
            else:
                pt[path[0]] = v
        points.append(pt)
    return points


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if k == "options" and isinstance(v, Mapping) and isinstance(out.get("options"), Mapping):
            out["options"] = {**out["options"], **v}
        else:
            out[k] = v
    return out


def _task_id(cfg: Mapping[str, Any], seed: int) -> str:
    text = json.dumps({"config": cfg, "seed": seed}, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SweepSpec:
    """The tasks of a sweep: a grid over axes and/or an explicit list, validated eagerly.

    A spec is a mapping (or a TOML file with the same structure) of

    * task settings shared by every task (any of :data:`TASK_KEYS`: ``family``,
      ``options``, ``start``, ``lr``, ``batch_size``, ``weight_decay``, ``steps``,
      ``replicas``, ``every``, ``noise``, ``start_seed``; ``loss`` in Python only);
    * ``grid``: axes ``{key: [values]}`` (``options`` may hold option axes such as
      ``dims``); every combination is a task, the first axis varying slowest;
    * ``tasks``: a list of explicit tasks, each merged over the shared settings (after the
      grid's, if both are given);
    * ``repeats`` (default 1): every configuration this many times (column ``repeat``),
      each with its own seed;
    * ``seed`` (default 0): task i simulates with a seed drawn from
      ``SeedSequence(seed).spawn(n_tasks)[i]``.

    A family's ``settings`` supply defaults for the task keys it names. A loss whose data
    symbols carry no distribution (inputs ``x_*`` then targets ``y_*``, as the bare
    networks of ``ns.families.linear_net``) gets a Gaussian teacher, x ~ N(0, I),
    y = V x + ``noise``·ε with V the identity-like matrix (as ``noether-sym simulate``).

    Parameters
    ----------
    spec
        The mapping.

    Raises
    ------
    InvalidArgumentError
        An unknown family, option or key, a bad value, a missing required setting.

    Examples
    --------
    >>> import noether_sym as ns
    >>> spec = ns.SweepSpec({"family": "linear-net", "options": {"dims": [2, 2, 2]},
    ...                      "steps": 100, "replicas": 4, "batch_size": 1,
    ...                      "grid": {"lr": [0.01, 0.02], "weight_decay": [0.0, 0.1]}})
    >>> len(spec), [(t.config["lr"], t.config["weight_decay"]) for t in spec.tasks]
    (4, [(0.01, 0.0), (0.01, 0.1), (0.02, 0.0), (0.02, 0.1)])
    >>> ns.SweepSpec({"family": "linear-net", "lr": 0.1, "steps": 10, "replicas": 2,
    ...               "batch_size": 1, "learning_rate": 0.1})
    Traceback (most recent call last):
    ...
    noether_sym._errors.InvalidArgumentError: spec: unknown key(s) learning_rate; ...
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if isinstance(spec, SweepSpec):
            spec = spec.raw
        if not isinstance(spec, Mapping):
            raise InvalidArgumentError(f"a sweep spec must be a mapping (or a TOML file); got {type(spec).__name__}")
        unknown = sorted(set(spec) - set(TASK_KEYS) - set(_SPEC_KEYS))
        if unknown:
            raise InvalidArgumentError(
                f"spec: unknown key(s) {', '.join(unknown)}; a spec takes {', '.join(_SPEC_KEYS)} and the "
                f"task keys {', '.join(TASK_KEYS)}"
            )
        self.raw = dict(spec)
        self.seed = Seed()(spec.get("seed", 0), "spec: seed")
        self.repeats = Integer(1)(spec.get("repeats", 1), "spec: repeats")
        base = {k: v for k, v in spec.items() if k in TASK_KEYS}
        raws: list[dict[str, Any]] = []
        if "grid" in spec:
            raws += [_merge(base, pt) for pt in _grid_points(spec["grid"])]
        if "tasks" in spec:
            lst = spec["tasks"]
            if not isinstance(lst, (list, tuple)) or not all(isinstance(t, Mapping) for t in lst):
                raise InvalidArgumentError("spec: tasks must be a list of tables ([[tasks]] in TOML)")
            raws += [_merge(base, t) for t in lst]
        if not raws:
            raws = [dict(base)]
        self._losses: dict[str, Any] = {}
        configs = []
        for i, r in enumerate(raws):
            for rep in range(self.repeats):
                configs.append(_canonical({**r, "repeat": rep}, f"task {len(configs)}" if len(raws) > 1 or self.repeats > 1
                                          else "spec", self._losses))
        seqs = np.random.SeedSequence(self.seed).spawn(len(configs))
        seeds = [int(s.generate_state(1, dtype=np.uint32)[0]) for s in seqs]
        self.tasks: list[Task] = [Task(i, _task_id(c, s), c, s) for i, (c, s) in enumerate(zip(configs, seeds))]
        texts = [json.dumps(c, sort_keys=True) for c in configs]
        dup = len(texts) - len(set(texts))
        if dup:
            raise InvalidArgumentError(f"spec: {dup} task(s) repeat another task exactly; drop the duplicates")

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> SweepSpec:
        """Read a spec from a TOML file (``tomllib``; nothing is evaluated)."""

        p = Path(path)
        try:
            with open(p, "rb") as f:
                doc = tomllib.load(f)
        except FileNotFoundError:
            raise InvalidArgumentError(f"no spec file {str(p)!r}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgumentError(f"{p}: not valid TOML: {exc}") from None
        if "loss" in doc:
            raise InvalidArgumentError(f"{p}: loss = ... is for the Python API; a TOML spec names a family")
        return cls(doc)

    @property
    def digest(self) -> str:
        """Hash of the task list (ids in order): what the manifest checks on resume."""
        return hashlib.sha256(json.dumps([t.id for t in self.tasks]).encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"SweepSpec({len(self)} tasks, seed={self.seed}, digest={self.digest})"

    def manifest(self) -> dict[str, Any]:

        return {
            "format": _FORMAT,
            "digest": self.digest,
            "seed": self.seed,
            "n_tasks": len(self),
            "noether_sym": __version__,
            "tasks": [{"index": t.index, "id": t.id, "seed": t.seed, "config": t.config} for t in self.tasks],
        }


def _as_spec(spec: Any) -> SweepSpec:
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        if Path(spec).is_dir():
            raise InvalidArgumentError(f"spec {str(spec)!r} is a folder; give the sweep's TOML file (or a mapping)")
        return SweepSpec.from_toml(spec)
    if isinstance(spec, (list, tuple)):
        return SweepSpec({"tasks": list(spec)})
    return SweepSpec(spec)


_FORMAT = 1
