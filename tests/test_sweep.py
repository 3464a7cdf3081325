"""Sweeps: spec validation, determinism across schedulers, resume, failures, CLI.

The cluster test starts a real dask.distributed LocalCluster with 2 worker processes and
compares bit for bit with a serial run; the resume tests interrupt a sweep (an exception
mid-sweep, and a SIGKILL of the command-line process) and check that nothing finished is
lost, duplicated or recomputed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import noether_sym as ns
from noether_sym.check import _sweep, _sweep_task
from noether_sym.cli._main import main

pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[1]

# small and fast: a few hundred steps, a few replicas
BASE = {"family": "linear-net", "batch_size": 1, "steps": 200, "replicas": 4, "every": 10}


def bits(numbers: dict) -> dict:
    """Columns with floats replaced by their IEEE bit patterns (NaN == NaN, -0.0 != 0.0)."""
    def b(v):
        if isinstance(v, float):
            return struct.pack("<d", v)
        if isinstance(v, list):
            return [b(x) for x in v]
        return v

    return {k: [b(v) for v in col] for k, col in numbers.items()}


def rescaling_loss() -> ns.Loss:
    """THEORY §7.1 as a user Loss (not from the catalog)."""
    from sympy.stats import Normal

    u, w0, w1, w2 = sp.symbols("u w0 w1 w2")
    x = [Normal("x0", 0, 1), Normal("x1", 0, 2), Normal("x2", 0, sp.Rational(1, 2))]
    eps = Normal("eps", 0, sp.sqrt(sp.Rational(1, 2)))
    y = x[0] - x[1] / 2 + 2 * x[2] + eps
    return ns.Loss((u * (w0 * x[0] + w1 * x[1] + w2 * x[2]) - y) ** 2, [u, w0, w1, w2], name="rescaling-user")


# ------------------------------------------------------------------------------------------
# The spec
# ------------------------------------------------------------------------------------------


def test_grid_list_repeats_order_and_seeds():
    spec = ns.SweepSpec({**BASE, "seed": 7, "repeats": 2, "grid": {"lr": [0.01, 0.02], "options": {"dims": [[2, 2, 2], [2, 3, 2]]}},
                         "tasks": [{"lr": 0.03, "weight_decay": 0.1}]})
    assert len(spec) == (2 * 2 + 1) * 2
    cfg = [(t.config["lr"], t.config["options"].get("dims"), t.config["repeat"]) for t in spec.tasks]
    assert cfg[:4] == [(0.01, [2, 2, 2], 0), (0.01, [2, 2, 2], 1), (0.01, [2, 3, 2], 0), (0.01, [2, 3, 2], 1)]
    assert cfg[-2:] == [(0.03, None, 0), (0.03, None, 1)] and spec.tasks[-1].config["weight_decay"] == 0.1
    # task i's seed comes from SeedSequence(seed).spawn(n)[i]: the spec alone decides it
    seqs = np.random.SeedSequence(7).spawn(len(spec))
    assert [t.seed for t in spec.tasks] == [int(s.generate_state(1, dtype=np.uint32)[0]) for s in seqs]
    again = ns.SweepSpec(dict(spec.raw))
    assert [t.id for t in again.tasks] == [t.id for t in spec.tasks] and again.digest == spec.digest
    assert len({t.id for t in spec.tasks}) == len(spec)
    assert ns.SweepSpec({**spec.raw, "seed": 8}).digest != spec.digest


def test_family_settings_are_defaults():
    fam = ns.families.get("linear-net")
    spec = ns.SweepSpec({"family": "linear-net"})  # lr, batch_size, steps, replicas from the family
    c = spec.tasks[0].config
    assert (c["lr"], c["batch_size"], c["steps"], c["replicas"]) == tuple(
        fam.settings[k] for k in ("lr", "batch_size", "steps", "replicas"))


@pytest.mark.parametrize(
    "spec, match",
    [
        ({**BASE, "family": "no-such-family", "lr": 0.1}, "no family 'no-such-family'"),
        ({**BASE, "lr": 0.1, "learning_rate": 0.1}, "unknown key.*learning_rate"),
        ({**BASE, "lr": 0.1, "options": {"width": 3}}, "has no option.*width"),
        ({**BASE, "lr": -0.1}, "lr must be a finite real number > 0"),
        ({**BASE, "lr": 0.0}, "lr must be a finite real number > 0"),
        ({**BASE, "lr": "0.1"}, "lr must be a finite real number"),
        ({**BASE, "lr": 0.1, "batch_size": 0}, "batch_size must be an integer >= 1"),
        ({**BASE, "lr": 0.1, "steps": 2.5}, "steps must be an integer"),
        ({**BASE, "lr": 0.1, "weight_decay": float("nan")}, "weight_decay must be a finite real number"),
        ({**BASE, "lr": 0.1, "start": "origin"}, "start must be"),
        ({**BASE, "grid": {"lr": 0.1}}, "grid axis lr must be a non-empty list"),
        ({**BASE, "grid": {"eta": [0.1]}}, "grid axis eta is not a task key"),
        ({**BASE, "tasks": [{"lr": 0.1}, {"lr": 0.1}]}, "repeat another task exactly"),
        ({**BASE, "lr": 0.1, "repeats": 0}, "repeats must be an integer >= 1"),
        ({"lr": 0.1, "batch_size": 1, "steps": 10, "replicas": 2}, "exactly one of family"),
        ({"family": "linear-net", "lr": 0.1, "batch_size": 1, "replicas": 2, "steps": None}, "steps must be"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(ns.InvalidArgumentError, match=match):
        ns.SweepSpec(spec)


def test_missing_required_setting_says_where():
    spec = {"loss": rescaling_loss(), "start": [2, 0.5, -0.25, 1], "batch_size": 1, "steps": 10, "replicas": 2}
    with pytest.raises(ns.InvalidArgumentError, match=r"no lr: give lr = \.\.\."):
        ns.SweepSpec(spec)
    with pytest.raises(ns.InvalidArgumentError, match="needs an explicit start"):
        ns.SweepSpec({**spec, "lr": 0.1, "start": "default"})


def test_toml(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('family = "linear-net"\nbatch_size = 1\nsteps = 20\nreplicas = 2\n'
                 "[grid]\nlr = [0.01, 0.02]\n[grid.options]\ndims = [[2, 2, 2], [2, 1, 2]]\n")
    spec = ns.SweepSpec.from_toml(p)
    assert len(spec) == 4 and spec.tasks[1].config["options"] == {"dims": [2, 1, 2]}
    p.write_text('family = "linear-net"\nlr = [0.01\n')
    with pytest.raises(ns.InvalidArgumentError, match="not valid TOML"):
        ns.SweepSpec.from_toml(p)
    p.write_text('loss = "__import__(\'os\').system(\'true\')"\n')
    with pytest.raises(ns.InvalidArgumentError, match="Python API"):
        ns.SweepSpec.from_toml(p)
    with pytest.raises(ns.InvalidArgumentError, match="no spec file"):
        ns.SweepSpec.from_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("sweep*.toml")), ids=lambda p: p.name)
def test_example_specs_validate(path):
    spec = ns.SweepSpec.from_toml(path)
    assert len(spec) >= 2


# ------------------------------------------------------------------------------------------
# One task: statistics and prediction
# ------------------------------------------------------------------------------------------


def test_task_predicts_the_worked_example():
    """THEORY §7.1: λ* = −log(28)/4 = −0.8331 from u = 2, w = β/2 (a user Loss, shipped pickled)."""
    spec = ns.SweepSpec({"loss": rescaling_loss(), "start": [2, 0.5, -0.25, 1], "lr": 0.01, "batch_size": 1,
                         "steps": 100, "replicas": 8})
    task = spec.tasks[0]
    row = _sweep_task.run_task(task.config, task.seed, _sweep._portable(spec, task))
    assert row["pred_kind"] == ["balanced"] and row["n_generators"] == 1
    assert row["pred_lam"][0] == pytest.approx(-math.log(28) / 4, rel=1e-12)
    u2 = 4 * math.exp(2 * row["pred_lam"][0])
    assert u2 == pytest.approx(0.7559, abs=1e-4)
    assert row["charge0"] == [pytest.approx(4 - (0.25 + 0.0625 + 1))]
    # the statistics are those of ns.simulate with the task's seed
    res = ns.simulate(rescaling_loss(), [2, 0.5, -0.25, 1], lr=0.01, batch_size=1, steps=100, replicas=8,
                      record=["charges", "loss"], every=1, seed=task.seed, generators=[sp.diag(1, -1, -1, -1)])
    C = res["charges"][:, :, 0]
    assert row["charge_final_mean"][0] == pytest.approx(C[-1].mean(), rel=1e-12)
    assert row["charge_final_sem"][0] == pytest.approx(C[-1].std(ddof=1) / math.sqrt(8), rel=1e-10)
    tail = C[res.times >= 75].mean(axis=0)
    assert row["charge_tail_mean"][0] == pytest.approx(tail.mean(), rel=1e-12)
    assert row["eq_error"][0] == pytest.approx(tail.mean() - row["pred_charge"][0], rel=1e-12)
    assert row["loss_final_mean"] == pytest.approx(res["loss"][-1].mean(), rel=1e-12)


def test_time_to_equilibrium():
    times = np.arange(6) * 10
    C = np.array([[10.0], [5.0], [0.5], [2.0], [0.9], [1.0]])
    assert _sweep_task._time_to_equilibrium(times, C, np.array([0.0])) == 40.0  # within 10 % from t = 40 on
    assert math.isnan(_sweep_task._time_to_equilibrium(times, C, np.array([-5.0])))  # never within 10 %
    assert _sweep_task._time_to_equilibrium(times, np.zeros((6, 1)), np.array([0.0])) == 0.0


# ------------------------------------------------------------------------------------------
# Determinism, failures, resume
# ------------------------------------------------------------------------------------------

FAILING = {"lr": 0.05, "options": {"dims": [2, 0, 2]}}  # the builder rejects a zero width: at run time


def spec_with_failure() -> dict:
    return {**BASE, "seed": 3, "grid": {"lr": [0.02, 0.05], "weight_decay": [0.0, 0.01]}, "repeats": 2,
            "tasks": [FAILING, {"loss": rescaling_loss(), "family": None, "start": [2, 0.5, -0.25, 1], "lr": 0.02}]}


def test_local_cluster_matches_serial_bitwise(tmp_path):
    pytest.importorskip("distributed")
    serial = ns.sweep(spec_with_failure(), out=tmp_path / "serial", scheduler="serial")
    cluster = ns.sweep(spec_with_failure(), out=tmp_path / "cluster", workers=2)
    assert serial.ran == cluster.ran == len(serial) == 12 and serial.complete and cluster.complete
    assert bits(serial.numbers()) == bits(cluster.numbers())
    assert len({w.split(":")[1] for w in cluster.column("worker")}) == 2  # both workers did tasks
    assert os.getpid() not in {int(w.split(":")[1]) for w in cluster.column("worker")}
    # the failing task is recorded with its error, the others completed
    assert [r["index"] for r in cluster.failed] == [8, 9]  # the failing configuration, both repeats
    assert all("InvalidArgumentError: dims[1] must be an integer" in r["error"] for r in cluster.failed)
    assert all(r["status"] == "done" and r["n_generators"] >= 1 for r in cluster.rows() if r["index"] not in (8, 9))
    assert cluster.rows()[10]["loss"] == "rescaling-user" and cluster.rows()[11]["pred_kind"] == ["balanced"]


def test_running_scheduler_by_address(tmp_path):
    """scheduler="tcp://host:port": the path to a remote cluster (here a local one we start)."""
    distributed = pytest.importorskip("distributed")
    spec = {**BASE, "grid": {"lr": [0.02, 0.05], "batch_size": [1, 2]}}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        addr = cluster.scheduler_address
        assert addr.startswith("tcp://127.0.0.1:")
        with pytest.raises(ns.InvalidArgumentError, match="workers applies to the local cluster"):
            ns.sweep(spec, out=tmp_path / "x", scheduler=addr, workers=3)
        remote = ns.sweep(spec, out=tmp_path / "remote", scheduler=addr)
        assert len(cluster.scheduler_info["workers"]) == 2  # the sweep left the cluster running
    serial = ns.sweep(spec, out=tmp_path / "serial", scheduler="serial")
    assert remote.ran == 4 and bits(remote.numbers()) == bits(serial.numbers())


def test_failed_task_recorded_and_not_rerun_unless_asked(tmp_path):
    spec = {**BASE, "grid": {"lr": [0.02, 0.05]}, "tasks": [FAILING]}
    res = ns.sweep(spec, out=tmp_path, scheduler="serial")
    assert [r["status"] for r in res.rows()] == ["done", "done", "failed"] and res.ran == 3
    assert res.failed[0]["error"].startswith("InvalidArgumentError: dims[1] must be an integer")
    assert ns.sweep(spec, out=tmp_path, scheduler="serial").ran == 0
    again = ns.sweep(spec, out=tmp_path, scheduler="serial", retry_failed=True)
    assert again.ran == 1 and len(again) == 3 and len(again.failed) == 1


def test_resume_after_interrupt_loses_and_repeats_nothing(tmp_path, monkeypatch):
    spec = {**BASE, "grid": {"lr": [0.01, 0.02, 0.03], "batch_size": [1, 2]}}
    reference = ns.sweep(spec, out=tmp_path / "ref", scheduler="serial")
    calls = []
    real = _sweep_task.run_task

    def crashing(config, seed, loss_bytes=None):
        if len(calls) == 3:
            raise KeyboardInterrupt  # not an Exception: it stops the sweep, as Ctrl-C would
        calls.append(seed)
        return real(config, seed, loss_bytes)

    monkeypatch.setattr(_sweep_task, "run_task", crashing)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        ns.sweep(spec, out=out, scheduler="serial")
    shards = sorted((out / "shards").iterdir())
    assert len(shards) == 3 and not [p for p in shards if p.name.startswith(".")]
    partial = ns.load_sweep(out)
    assert len(partial) == 3 and len(partial.pending) == 3 and not partial.complete
    mtimes = {p.name: p.stat().st_mtime_ns for p in shards}

    calls.clear()
    monkeypatch.setattr(_sweep_task, "run_task", lambda c, s, b=None: (calls.append(s), real(c, s, b))[1])
    done = ns.sweep(spec, out=out, scheduler="serial")
    assert done.ran == 3 and len(calls) == 3  # only the unfinished tasks ran
    assert set(calls).isdisjoint(partial.column("seed"))
    assert {p.name: p.stat().st_mtime_ns for p in shards} == mtimes  # finished shards untouched
    assert len(done) == 6 and len(set(done.column("task_id"))) == 6 and done.complete
    assert bits(done.numbers()) == bits(reference.numbers())


def test_killed_command_line_run_resumes(tmp_path):
    """SIGKILL the CLI midway (a real crash), rerun it: every task exactly once, same numbers."""
    spec = tmp_path / "spec.toml"
    spec.write_text('family = "linear-net"\nbatch_size = 1\nsteps = 1500\nreplicas = 8\nseed = 5\n'
                    "[grid]\nlr = [0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045]\n")
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "noether_sym.cli", "sweep", str(spec), "--out", str(out), "--workers", "0",
           "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shards = out / "shards"
    deadline = time.monotonic() + 40
    n_at_kill = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            n_at_kill = len(list(shards.glob("[!.]*.parquet"))) if shards.exists() else 0
            if n_at_kill >= 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    partial = ns.load_sweep(out)
    assert 2 <= len(partial) < 8  # killed midway, the finished shards are readable
    before = {p.name: p.stat().st_mtime_ns for p in shards.glob("[!.]*.parquet")}
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
    res = ns.load_sweep(out)
    assert len(res) == 8 and len(set(res.column("task_id"))) == 8 and res.complete
    assert not list(shards.glob(".tmp-*"))
    assert {p: m for p, m in ((p.name, p.stat().st_mtime_ns) for p in shards.glob("[!.]*.parquet")) if p in before} == before
    assert bits(ns.load_sweep(out).numbers()) == bits(
        ns.sweep(ns.SweepSpec.from_toml(spec), out=tmp_path / "ref", scheduler="serial").numbers())


def test_out_of_another_spec_is_refused(tmp_path):
    spec = {**BASE, "grid": {"lr": [0.01, 0.02]}}
    ns.sweep(spec, out=tmp_path / "a", scheduler="serial")
    with pytest.raises(ns.SweepMismatchError, match="holds a different sweep"):
        ns.sweep({**spec, "steps": 201}, out=tmp_path / "a", scheduler="serial")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(ns.SweepMismatchError, match="not empty"):
        ns.sweep(spec, out=tmp_path / "b", scheduler="serial")
    with pytest.raises(ns.InvalidArgumentError, match="not a sweep directory"):
        ns.load_sweep(tmp_path / "b")
    with pytest.raises(ns.InvalidArgumentError, match="scheduler must be"):
        ns.sweep(spec, out=tmp_path / "c", scheduler="localhost:8786")


def test_unpicklable_loss_is_refused_before_anything_runs(tmp_path):
    loss = rescaling_loss()
    loss.fast_grad = lambda *a: None  # a lambda does not pickle
    spec = {"loss": loss, "start": [2, 0.5, -0.25, 1], "lr": 0.01, "batch_size": 1, "steps": 10, "replicas": 2}
    with pytest.raises(ns.InvalidArgumentError, match="does not pickle.*register it as a catalog family"):
        ns.sweep(spec, out=tmp_path, scheduler="serial")
    assert not list((tmp_path / "shards").iterdir())


def test_manifest_and_shards(tmp_path):
    spec = ns.SweepSpec({**BASE, "grid": {"lr": [0.01, 0.02]}})
    res = ns.sweep(spec, out=tmp_path, scheduler="serial")
    man = json.loads((tmp_path / "sweep.json").read_text())
    assert man["digest"] == spec.digest and [t["id"] for t in man["tasks"]] == [t.id for t in spec.tasks]
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == sorted(f"{t.id}.parquet" for t in spec.tasks)
    assert res.column("index") == [0, 1] and res.column("seed") == [t.seed for t in spec.tasks]
    assert "2 of 2 tasks finished" in res.summary()


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------


def test_cli_sweep_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    spec = tmp_path / "spec.toml"
    spec.write_text('family = "rescaling"\nsteps = 400\nreplicas = 8\nevery = 4\n'
                    "[grid]\nlr = [0.02, 0.04]\nbatch_size = [1, 2]\n[[tasks]]\nlr = 0.02\nbatch_size = 1\n"
                    "options = { d = 0 }\n")
    out = tmp_path / "runs"
    code = main(["sweep", str(spec), "--out", str(out), "--workers", "0", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 1 and "5 of 5 tasks finished (4 done, 1 failed" in text  # one task failed: status 1
    code = main(["sweep-plot", str(out)])
    files = capsys.readouterr().out.split()
    assert code == 0 and [Path(f).name for f in files] == ["equilibrium.png", "time_to_equilibrium.png"]
    assert all(Path(f).stat().st_size > 10_000 for f in files)
    code = main(["sweep", str(tmp_path / "missing.toml"), "--out", str(out), "--workers", "0"])
    assert code == 2 and "no spec file" in capsys.readouterr().err
