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
import os
import pickle
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError, MissingDependencyError
from .._validate import Integer
from ._sweep_spec import SweepSpec, Task, _as_spec
from ._sweep_store import SweepResult, _need, _prepare, _row, _write_shard, load_sweep
from ._sweep_task import _failed_row, _guarded

__all__ = ['MissingDependencyError', 'sweep', 'plot_sweep']


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


#: seconds to wait for a running Dask scheduler before giving up with a clear error
CONNECT_TIMEOUT = 5


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
    try:
        return Client(scheduler, timeout=f"{CONNECT_TIMEOUT}s"), None
    except (OSError, TimeoutError) as exc:
        raise InvalidArgumentError(
            f"cannot reach the Dask scheduler at {scheduler!r} within {CONNECT_TIMEOUT} s ({type(exc).__name__}): "
            "start it first (dask scheduler), check the address, or use scheduler='serial'"
        ) from None


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
        workers = Integer(0, 1024)(workers, "workers")
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
