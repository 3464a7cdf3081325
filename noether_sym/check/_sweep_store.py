"""Check: sweep storage -- atomic Parquet shards, the manifest, and :class:`SweepResult` / :func:`load_sweep`."""


from __future__ import annotations

import importlib
import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import InvalidArgumentError, MissingDependencyError, SweepMismatchError
from ._sweep_spec import SweepSpec, Task

__all__ = ['SweepResult', 'load_sweep']
_MANIFEST = "sweep.json"
_SHARDS = "shards"


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
    """Write ``doc`` as JSON atomically: a temporary file, flushed to disk, then ``os.replace``."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(json.dumps(doc, indent=1, sort_keys=True, allow_nan=False))
        f.flush()
        os.fsync(f.fileno())
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
    elif out.exists() and any(not p.name.startswith(".tmp-") for p in out.iterdir()):
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
    try:
        manifest = json.loads(man.read_text())
        ids = [t["id"] for t in manifest["tasks"]]
        int(manifest["n_tasks"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SweepMismatchError(f"{man} is unreadable or not a sweep manifest ({exc}); give a new out directory") from None
    schema = _schema()
    tables = []
    for task_id in ids:  # only shards the manifest names count (a stray copy never does)
        path = out / _SHARDS / f"{task_id}.parquet"
        if not path.exists():
            continue
        table = _read_shard(path, task_id, schema)
        if table is not None:
            tables.append(table)
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    if table.num_rows:
        table = table.sort_by("index")
    return SweepResult(table, manifest, out)


#: folder (inside the sweep directory) where unreadable shards are moved
QUARANTINE = "quarantine"


def _read_shard(path: Path, task_id: str, schema: Any) -> Any:
    """One shard as a table, or None after moving a corrupt one aside (with a warning).

    A shard is accepted when Parquet can read it with the sweep's schema (which checks the
    footer and the column types) and it holds exactly one row whose ``task_id`` is the one
    its file name says. Anything else (a truncated or empty file left by a crash, a file
    from another version, a copy under the wrong name) is moved to ``out/quarantine/`` so
    that its task counts as pending and the next ``sweep`` computes it again.
    """
    import pyarrow.parquet as pq  # noqa: PLC0415

    why = None
    table = None
    try:
        if path.stat().st_size < 12:  # magic + footer length + magic
            why = f"{path.stat().st_size} bytes, too short to be Parquet"
        else:
            table = pq.read_table(path, schema=schema)
            if table.num_rows != 1 or table.column("task_id").to_pylist() != [task_id]:
                why = f"expected one row of task {task_id}, found {table.num_rows} row(s)"
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ... on a bad file
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
    if why is None:
        return table
    quarantine = path.parent.parent / QUARANTINE
    quarantine.mkdir(exist_ok=True)
    target = quarantine / f"{path.stem}-{time.time_ns()}.parquet"
    try:
        os.replace(path, target)
        where = f"moved to {target}"
    except OSError as exc:
        where = f"could not be moved aside ({exc}); it is ignored"
    warnings.warn(f"sweep shard {path.name} is corrupt ({why}); {where}; its task will be recomputed",
                  UserWarning, stacklevel=3)
    return None


def _need(module: str, extra: str) -> Any:

    try:
        return importlib.import_module(module)
    except ImportError:
        how = f"pip install 'noether_sym[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependencyError(f"this needs {module.split('.')[0]}: {how}") from None
