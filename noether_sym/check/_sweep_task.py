"""Check: one sweep task -- build the loss, run the simulation, and return a plain result row (errors recorded, not raised)."""


from __future__ import annotations

import json
import math
import os
import pickle
import socket
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from noether_sym import families

from .._errors import InvalidArgumentError, InvalidDataError
from ..data._model import gaussian_linear_teacher
from ..data._sample import _TeacherSampler
from ..simulate._run import simulate
from ..symmetry._finder import find_symmetries
from ..theory._equilibrium import noise_equilibrium

__all__ = ['run_task']

_TAIL = 0.25  # late-time statistics: the last quarter of the records
_EQ_FRACTION = 0.1  # time to equilibrium: distance to C* at most this fraction of the start's


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

        return _cached(("loss", _key(cfg)), lambda: families.get(cfg["family"]).build(**cfg["options"]))
    return _cached(("loss", _key(cfg)), lambda: pickle.loads(loss_bytes))


def _start(cfg: Mapping[str, Any], loss: Any) -> np.ndarray:
    start = cfg["start"]
    if start == "default":

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
    >>> from noether_sym.check._sweep_task import run_task
    >>> task = ns.SweepSpec({"family": "linear-net", "lr": 0.05, "batch_size": 1,
    ...                      "steps": 200, "replicas": 4}).tasks[0]
    >>> row = run_task(task.config, task.seed)
    >>> row["status"], row["n_generators"], len(row["pred_charge"]), row["n_diverged"]
    ('done', 3, 3, 0)
    """

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
