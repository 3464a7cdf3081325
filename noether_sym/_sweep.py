"""Sweep: many simulations over a grid of settings, serial or on Dask, one shard per finished task.

A paper's figure is a sweep over η, batch size, width, weight decay and seeds. A
:class:`SweepSpec` lists the tasks (a grid over axes and/or an explicit list, from a dict or
a TOML file); :func:`sweep` runs them -- in this process (``scheduler="serial"``), on a
local Dask cluster (the default) or on a running one (``scheduler="tcp://host:8786"``) --
and writes each finished task as one Parquet shard under ``out/shards/``;
:func:`load_sweep` reads them back as a :class:`SweepResult`.

Design
------
Tasks. Each task runs one vectorized :func:`~noether_sym.simulate` (``replicas`` copies)
and returns one row: its settings, summary statistics of the run (mean and standard error
over replicas of the final and of the late-time charges (E8), the final loss, the number
of diverged replicas, the time to equilibrium) and the prediction of THEORY §5 at the
start (:func:`~noether_sym.find_symmetries`, then :func:`~noether_sym.noise_equilibrium`
per generator: λ* and the charge C(θ*)), and the error between them.

Identity. A task's id is a hash of its canonical settings and its seed, so resuming
matches tasks by content, not by position. Task i (in spec order) simulates with the seed
drawn from ``SeedSequence(spec.seed).spawn(n_tasks)[i]``: it depends on the spec only,
never on which tasks are already done nor on where a task runs, so serial, Dask and
resumed runs give bit-identical numbers.

Nothing lost. A shard is written to a temporary file in the same directory, then
``os.replace``-d into place (atomic on POSIX): a shard is either complete or absent. A
manifest (``out/sweep.json``) records the spec; a rerun with the same ``out`` skips every
task that has a shard and refuses a directory made by a different spec
(:class:`SweepMismatchError`). A task that raises is recorded as ``status="failed"`` with
its error (rerun it with ``retry_failed=True``); the others go on.

Shipping. Workers get the settings (family name and options), not Loss objects, and build
the Loss themselves (cached per process). A user :class:`~noether_sym.Loss` is shipped
pickled, without its compiled-code cache (which does not pickle); the workers need the
same noether_sym version as the client.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import pickle
import socket
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import InvalidArgumentError, NoetherSymError

__all__ = [
    "sweep",
    "load_sweep",
    "SweepSpec",
    "Task",
    "SweepResult",
    "SweepMismatchError",
    "MissingDependencyError",
    "TASK_KEYS",
    "run_task",
    "plot_sweep",
]

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
_FORMAT = 1
_MANIFEST = "sweep.json"
_SHARDS = "shards"
_TAIL = 0.25  # late-time statistics: the last quarter of the records
_EQ_FRACTION = 0.1  # time to equilibrium: distance to C* at most this fraction of the start's


class SweepMismatchError(InvalidArgumentError):
    """``out`` holds a sweep made from a different spec."""


class MissingDependencyError(NoetherSymError, ImportError):
    """An optional dependency (pyarrow, dask.distributed, matplotlib) is not installed."""


def _need(module: str, extra: str) -> Any:
    import importlib  # noqa: PLC0415

    try:
        return importlib.import_module(module)
    except ImportError:
        how = f"pip install 'noether_sym[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependencyError(f"this needs {module.split('.')[0]}: {how}") from None


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


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_int(v: Any, what: str, minimum: int) -> int:
    if not _is_int(v) or v < minimum:
        raise InvalidArgumentError(f"{what} must be an integer >= {minimum}; got {v!r}")
    return int(v)


def _check_real(v: Any, what: str, *, positive: bool = False) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise InvalidArgumentError(f"{what} must be a number; got {v!r}")
    f = float(v)
    if not math.isfinite(f) or f < 0 or (positive and f == 0):
        raise InvalidArgumentError(f"{what} must be a finite number {'> 0' if positive else '>= 0'}; got {v!r}")
    return f


def _plain(v: Any, what: str) -> Any:
    """``v`` as JSON-ready plain data (lists, numbers, strings, bools), or an error."""
    if isinstance(v, (bool, str)) or v is None:
        return v
    if _is_int(v):
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
    import sympy as sp  # noqa: PLC0415

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
    from . import families  # noqa: PLC0415
    from ._loss import Loss  # noqa: PLC0415

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
    cfg["start_seed"] = _check_int(value("start_seed"), f"{where}: start_seed", 0)
    cfg["noise"] = _check_real(value("noise"), f"{where}: noise")
    cfg["lr"] = _check_real(value("lr"), f"{where}: lr", positive=True)
    cfg["batch_size"] = _check_int(value("batch_size"), f"{where}: batch_size", 1)
    cfg["weight_decay"] = _check_real(value("weight_decay"), f"{where}: weight_decay")
    cfg["steps"] = _check_int(value("steps"), f"{where}: steps", 1)
    cfg["replicas"] = _check_int(value("replicas"), f"{where}: replicas", 1)
    every = value("every")
    cfg["every"] = max(1, cfg["steps"] // 100) if every is None else _check_int(every, f"{where}: every", 1)
    cfg["repeat"] = int(raw.get("repeat", 0))
    return cfg


def _grid_points(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The product of the grid's axes, the first axis varying slowest (``itertools.product``)."""
    import itertools  # noqa: PLC0415

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
        self.seed = _check_int(spec.get("seed", 0), "spec: seed", 0)
        self.repeats = _check_int(spec.get("repeats", 1), "spec: repeats", 1)
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
        import tomllib  # noqa: PLC0415

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
        from . import __version__  # noqa: PLC0415

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
        return SweepSpec.from_toml(spec)
    if isinstance(spec, (list, tuple)):
        return SweepSpec({"tasks": list(spec)})
    return SweepSpec(spec)


# ------------------------------------------------------------------------------------------
# One task (runs in a worker)
# ------------------------------------------------------------------------------------------

_PROCESS_CACHE: dict[Any, Any] = {}  # per worker process: built losses, symmetries, predictions


def _cached(key: Any, make: Any) -> Any:
    if key not in _PROCESS_CACHE:
        if len(_PROCESS_CACHE) > 256:
            _PROCESS_CACHE.clear()
        _PROCESS_CACHE[key] = make()
    return _PROCESS_CACHE[key]


def _teacher(cfg: Mapping[str, Any], loss: Any) -> tuple[Any, Any]:
    """(loss with a data model for the prediction, sampler for the simulation or None)."""
    if loss.random_symbols or loss.dataset is not None or not loss.data_symbols:
        return loss, None
    from ._cli_simulate import _TeacherSampler  # noqa: PLC0415
    from ._data import gaussian_linear_teacher  # noqa: PLC0415
    from ._errors import InvalidDataError  # noqa: PLC0415

    xs = [s for s in loss.data_symbols if str(s).startswith("x")]
    ys = [s for s in loss.data_symbols if str(s).startswith("y")]
    if not xs or not ys or list(loss.data_symbols) != xs + ys:
        raise InvalidDataError(
            f"the data symbols {', '.join(map(str, loss.data_symbols))} carry no distribution and are not "
            "inputs x_* followed by targets y_*: attach a data model (ns.attach_data) and sweep over loss="
        )
    V = np.eye(len(ys), len(xs))
    model = _cached(("teacher", _key(cfg)), lambda: gaussian_linear_teacher(loss, xs, ys, V.tolist(), noise_std=cfg["noise"]))
    # the sampler draws the same distribution; simulating the plain loss keeps its fast_grad
    return model, _TeacherSampler(len(xs), len(ys), cfg["noise"])


def _key(cfg: Mapping[str, Any]) -> str:
    return json.dumps([cfg["family"], cfg["options"], cfg["loss"], cfg["noise"]], sort_keys=True)


def _build(cfg: Mapping[str, Any], loss_bytes: bytes | None) -> Any:
    if cfg["family"] is not None:
        from . import families  # noqa: PLC0415

        return _cached(("loss", _key(cfg)), lambda: families.get(cfg["family"]).build(**cfg["options"]))
    return _cached(("loss", _key(cfg)), lambda: pickle.loads(loss_bytes))


def _start(cfg: Mapping[str, Any], loss: Any) -> np.ndarray:
    start = cfg["start"]
    if start == "default":
        from . import families  # noqa: PLC0415

        return np.asarray(families.get(cfg["family"]).theta0(loss, seed=cfg["start_seed"]), dtype=float)
    if isinstance(start, dict):
        by_name = {str(p): i for i, p in enumerate(loss.params)}
        bad = sorted(set(start) - set(by_name))
        if bad or len(start) != loss.n:
            raise InvalidArgumentError(
                f"start names {', '.join(bad) or 'too few parameters'}; the parameters are {', '.join(by_name)}"
            )
        th = np.empty(loss.n)
        for k, v in start.items():
            th[by_name[k]] = float(v)
        return th
    if len(start) != loss.n:
        raise InvalidArgumentError(f"start has {len(start)} numbers; this loss has {loss.n} parameters ({', '.join(map(str, loss.params))})")
    return np.asarray(start, dtype=float)


def _mean_sem(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over axis 0 of the finite entries (NaN where there are none)."""
    ok = np.isfinite(a)
    cnt = ok.sum(axis=0)
    s = np.where(ok, a, 0.0).sum(axis=0)
    m = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
    dev = np.where(ok, a - m, 0.0)
    var = (dev * dev).sum(axis=0) / np.maximum(cnt - 1, 1)
    return m, np.where(cnt > 1, np.sqrt(var / np.maximum(cnt, 1)), np.nan)


def _floats(a: Any) -> list[float]:
    return [float(v) for v in np.atleast_1d(np.asarray(a, dtype=float))]


def _time_to_equilibrium(times: np.ndarray, C: np.ndarray, target: np.ndarray) -> float:
    """First recorded step from which ‖mean C(t) − C*‖ stays ≤ 10 % of its start value."""
    if not np.all(np.isfinite(target)) or C.shape[-1] == 0:
        return math.nan
    d = np.linalg.norm(C - target, axis=-1)
    if not np.isfinite(d[0]):
        return math.nan
    above = ~(d <= _EQ_FRACTION * d[0])  # NaN counts as not there
    if not above.any():
        return float(times[0])
    last = int(np.nonzero(above)[0][-1])
    return math.nan if last == len(times) - 1 else float(times[last + 1])


def run_task(config: Mapping[str, Any], seed: int, loss_bytes: bytes | None = None) -> dict[str, Any]:
    """Run one task: simulate, summarize, predict; return its row (``status`` ``"done"``).

    Raises whatever the simulation or the prediction raises (:func:`sweep` records it as
    a failed task). The numbers depend on ``config`` and ``seed`` only.

    Examples
    --------
    >>> import noether_sym as ns
    >>> from noether_sym._sweep import run_task
    >>> task = ns.SweepSpec({"family": "linear-net", "lr": 0.05, "batch_size": 1,
    ...                      "steps": 200, "replicas": 4}).tasks[0]
    >>> row = run_task(task.config, task.seed)
    >>> row["status"], row["n_generators"], len(row["pred_charge"]), row["n_diverged"]
    ('done', 3, 3, 0)
    """
    from ._equilibrium import noise_equilibrium  # noqa: PLC0415
    from ._simulate import simulate  # noqa: PLC0415
    from ._symmetry import find_symmetries  # noqa: PLC0415

    t0, c0 = time.perf_counter(), time.thread_time()
    cfg = dict(config)
    plain = _build(cfg, loss_bytes)
    model, sampler = _teacher(cfg, plain)
    theta0 = _start(cfg, plain)
    sym = _cached(("sym", _key(cfg)), lambda: find_symmetries(plain, seed=0))
    gens = list(sym.generators)
    lr, S, wd = cfg["lr"], cfg["batch_size"], cfg["weight_decay"]
    pkey = ("pred", _key(cfg), tuple(theta0.tolist()), S, wd, lr if wd else None)

    def predict() -> list[Any]:
        return [noise_equilibrium(model, A, theta0, batch_size=S, weight_decay=wd, lr=lr if wd else None,
                                  check_symmetry=False) for A in gens]

    eqs = _cached(pkey, predict)
    record = ["loss"] + (["charges"] if gens else [])
    res = simulate(plain, theta0, lr=lr, batch_size=S, steps=cfg["steps"], replicas=cfg["replicas"],
                   weight_decay=wd, record=record, every=cfg["every"], seed=seed,
                   generators=gens or None, sampler=sampler)
    k = len(gens)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        times = res.times
        pred = np.array([e.charge for e in eqs], dtype=float)
        if k:
            C = res["charges"]  # (records, replicas, k)
            tail = times >= times[-1] - _TAIL * times[-1]
            per_replica = np.where(np.isfinite(C[tail]).all(axis=0), np.nanmean(C[tail], axis=0), np.nan)
            fin_m, fin_s = _mean_sem(C[-1])
            tail_m, tail_s = _mean_sem(per_replica)
            C0 = C[0][0] if C.shape[1] else np.full(k, np.nan)
            traj, _ = _mean_sem(np.moveaxis(C, 1, 0))  # (records, k)
            err = tail_m - pred
            abs_err = float(np.max(np.abs(err)))
            norm = float(np.linalg.norm(pred))
            rel_err = float(np.linalg.norm(err) / norm) if norm > 0 and math.isfinite(norm) else math.nan
            t_eq = _time_to_equilibrium(times, traj, pred)
        else:
            fin_m = fin_s = tail_m = tail_s = C0 = err = np.zeros(0)
            abs_err = rel_err = t_eq = math.nan
        loss_m, loss_s = _mean_sem(res["loss"][-1])
    return {
        "status": "done",
        "error": None,
        "n_params": int(plain.n),
        "n_generators": k,
        "pred_kind": [e.kind for e in eqs],
        "pred_lam": _floats([e.lam for e in eqs]) if k else [],
        "pred_charge": _floats(pred) if k else [],
        "charge0": _floats(C0) if k else [],
        "charge_final_mean": _floats(fin_m) if k else [],
        "charge_final_sem": _floats(fin_s) if k else [],
        "charge_tail_mean": _floats(tail_m) if k else [],
        "charge_tail_sem": _floats(tail_s) if k else [],
        "eq_error": _floats(err) if k else [],
        "eq_abs_error": abs_err,
        "eq_rel_error": rel_err,
        "t_eq": t_eq,
        "loss_final_mean": float(loss_m),
        "loss_final_sem": float(loss_s),
        "n_diverged": res.n_diverged,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.thread_time() - c0,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


def _guarded(config: Mapping[str, Any], seed: int, loss_bytes: bytes | None) -> dict[str, Any]:
    """:func:`run_task`, with an exception turned into a failed row (the sweep goes on)."""
    t0 = time.perf_counter()
    try:
        return run_task(config, seed, loss_bytes)
    except Exception as exc:  # noqa: BLE001 - recorded, not raised: one bad task must not stop a sweep
        return _failed_row(f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)


def _failed_row(error: str, seconds: float = 0.0) -> dict[str, Any]:
    return {"status": "failed", "error": error, "seconds": seconds,
            "worker": f"{socket.gethostname()}:{os.getpid()}"}


# ------------------------------------------------------------------------------------------
# Shards and manifest
# ------------------------------------------------------------------------------------------


def _schema() -> Any:
    pa = _need("pyarrow", "dask")
    f64, i64, s, lf = pa.float64(), pa.int64(), pa.string(), pa.list_(pa.float64())
    return pa.schema([
        ("task_id", s), ("index", i64), ("status", s), ("error", s),
        ("family", s), ("options", s), ("loss", s), ("start", s), ("start_seed", i64), ("noise", f64),
        ("lr", f64), ("batch_size", i64), ("weight_decay", f64), ("steps", i64), ("replicas", i64),
        ("every", i64), ("repeat", i64), ("seed", i64),
        ("n_params", i64), ("n_generators", i64),
        ("pred_kind", pa.list_(s)), ("pred_lam", lf), ("pred_charge", lf), ("charge0", lf),
        ("charge_final_mean", lf), ("charge_final_sem", lf), ("charge_tail_mean", lf), ("charge_tail_sem", lf),
        ("eq_error", lf), ("eq_abs_error", f64), ("eq_rel_error", f64), ("t_eq", f64),
        ("loss_final_mean", f64), ("loss_final_sem", f64), ("n_diverged", i64),
        ("seconds", f64), ("cpu_seconds", f64), ("worker", s),
    ])


#: columns that may differ between runs of the same task (timing and placement)
VOLATILE = ("seconds", "cpu_seconds", "worker")


def _row(task: Task, out: Mapping[str, Any]) -> dict[str, Any]:
    c = task.config
    row = {
        "task_id": task.id, "index": task.index,
        "family": c["family"], "options": json.dumps(c["options"], sort_keys=True),
        "loss": None if c["loss"] is None else c["loss"]["name"], "start": json.dumps(c["start"]),
        "start_seed": c["start_seed"], "noise": c["noise"], "lr": c["lr"], "batch_size": c["batch_size"],
        "weight_decay": c["weight_decay"], "steps": c["steps"], "replicas": c["replicas"],
        "every": c["every"], "repeat": c["repeat"], "seed": task.seed,
    }
    row.update(out)
    return row


def _write_shard(shards: Path, row: Mapping[str, Any]) -> Path:
    """Write one row as ``<task_id>.parquet``: to a temporary file first, then ``os.replace``."""
    pa = _need("pyarrow", "dask")
    import pyarrow.parquet as pq  # noqa: PLC0415

    schema = _schema()
    table = pa.Table.from_pylist([{name: row.get(name) for name in schema.names}], schema=schema)
    final = shards / f"{row['task_id']}.parquet"
    tmp = shards / f".tmp-{row['task_id']}-{os.getpid()}.parquet"
    pq.write_table(table, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, allow_nan=False))
    os.replace(tmp, path)


def _prepare(out: Path, spec: SweepSpec) -> Path:
    """Create ``out`` or check that it holds this spec's sweep; return the shard folder."""
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"out={str(out)!r} is a file; give a directory for the shards")
    man = out / _MANIFEST
    shards = out / _SHARDS
    if man.exists():
        try:
            old = json.loads(man.read_text())
        except (OSError, ValueError) as exc:
            raise SweepMismatchError(f"{man} is unreadable ({exc}); give a new out directory") from None
        if old.get("digest") != spec.digest:
            raise SweepMismatchError(
                f"{out} holds a different sweep (spec {old.get('digest')}, {old.get('n_tasks')} tasks; this spec is "
                f"{spec.digest}, {len(spec)} tasks): give a new out directory, or delete {out} to start over"
            )
    elif out.exists() and any(out.iterdir()):
        raise SweepMismatchError(f"{out} is not empty and has no {_MANIFEST}: give a new or empty out directory")
    shards.mkdir(parents=True, exist_ok=True)
    if not man.exists():
        _write_json(man, spec.manifest())
    for tmp in shards.glob(".tmp-*"):  # left by a run that was killed mid-write
        tmp.unlink(missing_ok=True)
    return shards


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------


class SweepResult:
    """The rows of a sweep directory (one per finished task), in spec order.

    Attributes
    ----------
    table
        A ``pyarrow.Table``, one row per shard, sorted by ``index`` (spec order).
    manifest
        The spec's manifest (``out/sweep.json``): task ids, seeds and settings.
    out
        The directory.
    ran
        Tasks computed by the :func:`sweep` call that returned this (0 from :func:`load_sweep`).
    """

    def __init__(self, table: Any, manifest: dict[str, Any], out: Path, ran: int = 0) -> None:
        self.table = table
        self.manifest = manifest
        self.out = out
        self.ran = ran

    def __len__(self) -> int:
        return self.table.num_rows

    def rows(self) -> list[dict[str, Any]]:
        """The rows as dicts (column -> value)."""
        return self.table.to_pylist()

    def column(self, name: str) -> list[Any]:
        """One column as a list."""
        return self.table.column(name).to_pylist()

    @property
    def n_tasks(self) -> int:
        return int(self.manifest["n_tasks"])

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The rows of failed tasks (``error`` says why)."""
        return [r for r in self.rows() if r["status"] == "failed"]

    @property
    def done(self) -> list[dict[str, Any]]:
        """The rows of tasks that finished without error."""
        return [r for r in self.rows() if r["status"] == "done"]

    @property
    def pending(self) -> list[str]:
        """Ids of the spec's tasks that have no shard yet."""
        have = set(self.column("task_id"))
        return [t["id"] for t in self.manifest["tasks"] if t["id"] not in have]

    @property
    def complete(self) -> bool:
        return not self.pending

    def numbers(self) -> dict[str, list[Any]]:
        """Every column but the volatile ones (:data:`VOLATILE`: wall and CPU seconds, worker): what a
        rerun reproduces, bit for bit."""
        return {n: self.column(n) for n in self.table.column_names if n not in VOLATILE}

    def to_pandas(self) -> Any:
        """A pandas DataFrame (needs pandas)."""
        _need("pandas", "")
        return self.table.to_pandas()

    def summary(self) -> str:
        n_f = sum(1 for s in self.column("status") if s == "failed")
        lines = [f"sweep {self.out}: {len(self)} of {self.n_tasks} tasks finished ({len(self) - n_f} done, "
                 f"{n_f} failed, {len(self.pending)} pending); {self.ran} computed by this run"]
        for r in self.failed[:5]:
            lines.append(f"  failed task {r['index']} ({r['task_id']}): {r['error'][:200]}")
        if n_f > 5:
            lines.append(f"  ... and {n_f - 5} more failed tasks")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SweepResult({len(self)}/{self.n_tasks} tasks, out={str(self.out)!r})"


def load_sweep(out: str | os.PathLike) -> SweepResult:
    """Read a sweep directory: every finished shard, in spec order.

    Examples
    --------
    >>> import tempfile, noether_sym as ns
    >>> spec = {"family": "linear-net", "lr": 0.05, "batch_size": 1, "steps": 50, "replicas": 2,
    ...         "grid": {"weight_decay": [0.0, 0.1]}}
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = ns.sweep(spec, out=d, scheduler="serial")
    ...     res = ns.load_sweep(d)
    >>> len(res), res.complete, res.column("weight_decay")
    (2, True, [0.0, 0.1])
    """
    pa = _need("pyarrow", "dask")
    import pyarrow.parquet as pq  # noqa: PLC0415

    out = Path(out)
    man = out / _MANIFEST
    if not man.exists():
        raise InvalidArgumentError(f"{out} is not a sweep directory (no {_MANIFEST}); run noether-sym sweep first")
    manifest = json.loads(man.read_text())
    schema = _schema()
    paths = sorted((out / _SHARDS).glob("[!.]*.parquet"))
    tables = [pq.read_table(p, schema=schema) for p in paths]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    if table.num_rows:
        table = table.sort_by("index")
    return SweepResult(table, manifest, out)


# ------------------------------------------------------------------------------------------
# The sweep
# ------------------------------------------------------------------------------------------


def _payloads(spec: SweepSpec, tasks: Iterable[Task]) -> dict[str, bytes | None]:
    """task id -> its pickled Loss (None for a family), each Loss pickled once, before anything runs."""
    by_digest: dict[str, bytes | None] = {}
    out = {}
    for t in tasks:
        d = None if t.config["loss"] is None else t.config["loss"]["digest"]
        if d not in by_digest:
            by_digest[d] = _portable(spec, t)
        out[t.id] = by_digest[d]
    return out


def _portable(spec: SweepSpec, task: Task) -> bytes | None:
    """The task's Loss pickled without its compiled-code cache, or None for a family."""
    if task.config["loss"] is None:
        return None
    loss = copy.copy(spec._losses[task.config["loss"]["digest"]])
    loss._cache = {}
    try:
        return pickle.dumps(loss)
    except Exception as exc:  # noqa: BLE001
        raise InvalidArgumentError(
            f"the loss {loss.name!r} does not pickle ({exc}); register it as a catalog family "
            "(ns.families.register) and sweep over family = NAME"
        ) from None


def _client(scheduler: Any, workers: int | None) -> tuple[Any, Any]:
    """(client, cluster we started or None)."""
    _need("distributed", "dask")
    import dask  # noqa: PLC0415
    from distributed import Client, LocalCluster  # noqa: PLC0415

    if scheduler is not None and not isinstance(scheduler, str):
        return scheduler, None  # a Client the caller owns
    if scheduler is None:
        n = 2 if workers is None else workers
        env = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        # no dashboard; the scheduler's small HTTP server (health, metrics) on a free port of
        # 127.0.0.1 rather than on 8787, which another cluster may hold
        # and no statistical profiler in the workers: sampling the task's stack every 10 ms
        # costs a third of the CPU of a Python-heavy step loop (measured: 24 s -> 17 s for 32 tasks)
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, env=env,
                                   scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
        try:
            return Client(cluster), cluster
        except BaseException:
            cluster.close()
            raise
    if workers is not None:
        raise InvalidArgumentError("workers applies to the local cluster; a running cluster has its own workers")
    return Client(scheduler, timeout="30s"), None


def sweep(
    spec: Any,
    *,
    out: str | os.PathLike,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = False,
    retry_failed: bool = False,
) -> SweepResult:
    """Run every task of ``spec`` not yet finished in ``out``; write one shard per task.

    Parameters
    ----------
    spec
        A :class:`SweepSpec`, a mapping with the same structure, a list of task mappings,
        or the path of a TOML file.
    out
        The sweep directory: ``out/sweep.json`` (the manifest) and ``out/shards/*.parquet``.
        Rerunning with the same ``out`` resumes: finished tasks are skipped.
    scheduler
        None: a local Dask cluster (processes, 127.0.0.1, no dashboard), closed at the end;
        ``"tcp://host:port"``: a running Dask scheduler; a ``distributed.Client``: use it
        (not closed); ``"serial"``: in this process, in spec order.
    workers
        Workers of the local cluster (default 2); 0 runs serially.
    progress
        Show a tqdm progress bar (if tqdm is installed).
    retry_failed
        Also rerun tasks recorded as failed (by default they count as finished).

    Returns
    -------
    SweepResult
        Every finished row in ``out`` (``.ran``: tasks computed by this call).

    Raises
    ------
    InvalidArgumentError
        A bad spec (before anything runs).
    SweepMismatchError
        ``out`` holds a sweep made from another spec.
    MissingDependencyError
        pyarrow (always) or dask.distributed (not serial) is missing:
        ``pip install 'noether_sym[dask]'``.

    Notes
    -----
    A task that raises is recorded as failed with its error; the sweep goes on. Shards
    are written by this process as results arrive (``as_completed``), atomically, so an
    interrupted sweep keeps every task it finished. Each task's numbers depend only on
    the spec, so serial, Dask and resumed runs agree bit for bit (columns other than
    ``seconds``, ``cpu_seconds`` and ``worker``).

    Examples
    --------
    >>> import tempfile, noether_sym as ns
    >>> spec = {"family": "linear-net", "batch_size": 1, "steps": 100, "replicas": 4,
    ...         "grid": {"lr": [0.02, 0.05]}}
    >>> with tempfile.TemporaryDirectory() as d:
    ...     first = ns.sweep(spec, out=d, scheduler="serial")
    ...     again = ns.sweep(spec, out=d, scheduler="serial")   # resumes: nothing left to do
    >>> first.ran, again.ran, len(again), again.column("status")
    (2, 0, 2, ['done', 'done'])
    """
    spec = _as_spec(spec)
    if workers is not None:
        workers = _check_int(workers, "workers", 0)
    serial = scheduler == "serial" or workers == 0
    if isinstance(scheduler, str) and not serial and "://" not in scheduler:
        raise InvalidArgumentError(
            f"scheduler must be None (a local cluster), 'serial' or an address like 'tcp://host:8786'; got {scheduler!r}"
        )
    _need("pyarrow", "dask")
    out = Path(out)
    shards = _prepare(out, spec)
    existing = load_sweep(out)
    finished = {r["task_id"] for r in existing.rows() if r["status"] == "done" or not retry_failed}
    todo = [t for t in spec.tasks if t.id not in finished]
    payloads = _payloads(spec, todo)
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm  # noqa: PLC0415

            bar = tqdm(total=len(spec), initial=len(spec) - len(todo), unit="task", desc="sweep")
        except ImportError:
            bar = None
    ran = 0
    try:
        if serial:
            for task in todo:
                _write_shard(shards, _row(task, _guarded(task.config, task.seed, payloads[task.id])))
                ran += 1
                if bar is not None:
                    bar.update(1)
        elif todo:
            ran = _run_dask(spec, todo, payloads, shards, scheduler, workers, bar)
    finally:
        if bar is not None:
            bar.close()
    res = load_sweep(out)
    res.ran = ran
    return res


def _run_dask(spec: SweepSpec, todo: list[Task], payloads: dict[str, bytes | None], shards: Path, scheduler: Any,
              workers: int | None, bar: Any) -> int:
    from distributed import as_completed  # noqa: PLC0415

    client, cluster = _client(scheduler, workers)
    owned = client is not scheduler
    ran = 0
    try:
        by_key = {}
        futures = []
        for task in todo:
            fut = client.submit(_guarded, task.config, task.seed, payloads[task.id],
                                key=f"noether-sweep-{spec.digest}-{task.id}", pure=False)
            by_key[fut.key] = task
            futures.append(fut)
        for fut in as_completed(futures):
            task = by_key[fut.key]
            try:
                out = fut.result()
            except Exception as exc:  # noqa: BLE001 - the worker died (KilledWorker...): record it
                out = _failed_row(f"{type(exc).__name__}: {exc}")
            _write_shard(shards, _row(task, out))
            fut.release()
            ran += 1
            if bar is not None:
                bar.update(1)
    finally:
        if owned:
            client.close()
        if cluster is not None:
            cluster.close()
    return ran


# ------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------


def _groups(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[tuple, list[dict[str, Any]]]:
    out: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


def plot_sweep(result: SweepResult | str | os.PathLike, directory: str | os.PathLike | None = None) -> list[Path]:
    """The standard figures of a sweep; returns the files written.

    * ``equilibrium.png``: (left) |measured − predicted| late-time charge against η, one
      line per (setting, batch size, weight decay), averaged over repeats, error bars the
      standard error; (right) measured against predicted charge, every generator of every
      task, with the line y = x.
    * ``time_to_equilibrium.png``: the time t = η·k (k steps) until the mean charge is
      within 10 % of its initial distance to C*, against η/S (log-log), with the slope −1
      that (E12) predicts: dC/dt = (η/S) Tr[AΣ], so t ∝ S/η (and k ∝ S/η²).

    ``directory`` defaults to ``out/plots``. Needs matplotlib.
    """
    _need("matplotlib", "plot")
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    res = result if isinstance(result, SweepResult) else load_sweep(result)
    directory = Path(directory) if directory is not None else res.out / "plots"
    directory.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN statistics (diverged tasks) are skipped
        return _plot(res, directory, plt)


def _plot(res: SweepResult, directory: Path, plt: Any) -> list[Path]:
    rows = [r for r in res.done if r["n_generators"]]
    if not rows:
        raise InvalidArgumentError(f"{res.out}: no finished task with symmetry generators to plot")
    setting = ("family", "options", "loss", "start", "noise")
    written = []

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, grp in _groups(rows, setting + ("batch_size", "weight_decay")).items():
        by_lr = _groups(grp, ("lr",))
        lrs = sorted(k[0] for k in by_lr)
        err = [np.nanmean([r["eq_abs_error"] for r in by_lr[(lr,)]]) for lr in lrs]
        sem = [np.nanmax([max(r["charge_tail_sem"] or [np.nan]) for r in by_lr[(lr,)]]) for lr in lrs]
        label = f"{key[0] or key[2]} {key[1] if key[1] != '{}' else ''} S={key[5]} γ={key[6]:g}"
        ax.errorbar(lrs, err, yerr=sem, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("equilibrium error max_i |C_i measured − C_i*|")
    ax.set_title("late-time charge against the noise equilibrium (E16)")
    ax.legend(fontsize=7)
    pred = np.concatenate([r["pred_charge"] for r in rows])
    meas = np.concatenate([r["charge_tail_mean"] for r in rows])
    msem = np.concatenate([r["charge_tail_sem"] for r in rows])
    ok = np.isfinite(pred) & np.isfinite(meas)
    bx.errorbar(pred[ok], meas[ok], yerr=np.nan_to_num(msem[ok]), fmt="o", ms=3, capsize=2, label="tasks × generators")
    if ok.any():
        lo, hi = float(min(pred[ok].min(), meas[ok].min())), float(max(pred[ok].max(), meas[ok].max()))
        bx.plot([lo, hi], [lo, hi], "k--", lw=1, label="measured = predicted")
    bx.set_xlabel("predicted charge C(θ*)")
    bx.set_ylabel("measured charge (late-time mean ± s.e.)")
    bx.set_title("predicted vs measured")
    bx.legend(fontsize=7)
    fig.tight_layout()
    p = directory / "equilibrium.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    written.append(p)

    fig, ax = plt.subplots(figsize=(6, 4.2))
    xs_all, ys_all = [], []
    for key, grp in _groups(rows, setting + ("weight_decay",)).items():
        x = np.array([r["lr"] / r["batch_size"] for r in grp])
        y = np.array([r["t_eq"] * r["lr"] for r in grp], dtype=float)  # continuous time t = η k
        ok = np.isfinite(y) & (y > 0)
        if ok.any():
            ax.plot(x[ok], y[ok], "o", label=f"{key[0] or key[2]} γ={key[5]:g}")
            xs_all += list(x[ok])
            ys_all += list(y[ok])
    if xs_all:
        xs_all, ys_all = np.array(xs_all), np.array(ys_all)
        c = float(np.exp(np.median(np.log(ys_all * xs_all))))
        grid = np.geomspace(xs_all.min(), xs_all.max(), 20)
        ax.plot(grid, c / grid, "k--", lw=1, label="∝ S/η (E12)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no task reached equilibrium", ha="center", transform=ax.transAxes)
    ax.set_xlabel("η / S")
    ax.set_ylabel("time to equilibrium t = η · steps")
    ax.set_title("time to equilibrium")
    fig.tight_layout()
    p = directory / "time_to_equilibrium.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    written.append(p)
    return written
