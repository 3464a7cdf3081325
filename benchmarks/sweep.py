"""Benchmark: a 32-task sweep, serial against a local Dask cluster of 2 workers.

The sweep: the rescaling family of THEORY §7.1 (u (wᵀx), Gaussian teacher, default start
u = 2, w = β/2), 8 learning rates x batch sizes {1, 4} x 2 repeats = 32 tasks, each one
vectorized ``ns.simulate`` of ``--replicas`` replicas x ``--steps`` steps plus the
prediction (find_symmetries + noise_equilibrium at the start).

Three ways, interleaved, each into a fresh directory, medians over ``--repeats`` runs:

* serial: ``ns.sweep(spec, out=..., scheduler="serial")`` in this process (the per-process
  cache of built losses and predictions is cleared first, as a fresh worker would have it);
* cluster: ``ns.sweep(spec, out=..., workers=2)``, end to end: starting the LocalCluster
  (2 processes, 1 thread each), importing noether_sym in the workers, the sweep, closing;
* warm cluster: the same on a cluster started beforehand whose workers already ran one
  task (what a long session or a remote cluster sees).

The numbers of every cluster run are checked to equal the serial run's bit for bit.

Run:  python benchmarks/sweep.py [--repeats 3] [--steps 20000] [--replicas 200] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import noether_sym as ns
from noether_sym.check import _sweep


def spec(steps: int, replicas: int) -> dict:
    return {
        "family": "rescaling",
        "steps": steps,
        "replicas": replicas,
        "every": max(1, steps // 100),
        "seed": 0,
        "repeats": 2,
        "grid": {"lr": [0.0025, 0.004, 0.005, 0.0065, 0.008, 0.01, 0.013, 0.016], "batch_size": [1, 4]},
    }


def bits(res: ns.SweepResult) -> dict:
    def b(v):
        if isinstance(v, float):
            return struct.pack("<d", v)
        if isinstance(v, list):
            return [b(x) for x in v]
        return v

    return {k: [b(v) for v in col] for k, col in res.numbers().items()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--replicas", type=int, default=200)
    ap.add_argument("--append", metavar="RESULTS.md", help="append a markdown section with the figures")
    args = ap.parse_args()
    sp = ns.SweepSpec(spec(args.steps, args.replicas))
    assert len(sp) == 32
    times: dict[str, list[float]] = {"serial": [], "cluster": [], "warm": []}
    cpu: dict[str, list[float]] = {"serial": [], "cluster": [], "warm": []}  # Σ over tasks of task-thread CPU s
    loads = [os.getloadavg()[0]]
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        client, warm_cluster = _sweep._client(None, 2)  # the very cluster ns.sweep(workers=2) starts
        with warm_cluster, client:
            ns.sweep({**spec(200, 4), "grid": {"lr": [0.01, 0.02]}}, out=Path(tmp, "warmup"), scheduler=client)
            for r in range(args.repeats):
                _sweep._PROCESS_CACHE.clear()
                t = time.perf_counter()
                serial = ns.sweep(sp, out=Path(tmp, f"serial{r}"), scheduler="serial")
                times["serial"].append(time.perf_counter() - t)
                cpu["serial"].append(sum(serial.column("cpu_seconds")))
                reference = reference or bits(serial)
                assert bits(serial) == reference and serial.ran == 32 and not serial.failed

                t = time.perf_counter()
                res = ns.sweep(sp, out=Path(tmp, f"warm{r}"), scheduler=client)
                times["warm"].append(time.perf_counter() - t)
                cpu["warm"].append(sum(res.column("cpu_seconds")))
                assert bits(res) == reference, "warm cluster differs from serial"

                t = time.perf_counter()
                res = ns.sweep(sp, out=Path(tmp, f"cluster{r}"), workers=2)
                times["cluster"].append(time.perf_counter() - t)
                cpu["cluster"].append(sum(res.column("cpu_seconds")))
                assert bits(res) == reference, "cluster differs from serial"
                loads.append(os.getloadavg()[0])
                print(f"run {r + 1}: serial {times['serial'][-1]:.2f} s, cluster {times['cluster'][-1]:.2f} s, "
                      f"warm cluster {times['warm'][-1]:.2f} s (load {loads[-1]:.2f}); task CPU s: "
                      + ", ".join(f"{k} {v[-1]:.1f}" for k, v in cpu.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    nproc = os.cpu_count()
    lines = [
        "",
        "## Sweeps — `benchmarks/sweep.py`",
        "",
        f"{datetime.date.today().isoformat()}, {nproc} cores ({cpu_model()}), Python {platform.python_version()}; "
        f"load average (1 min) during the runs {min(loads):.1f}-{max(loads):.1f} "
        f"({'other jobs were running' if max(loads) > 1.5 else 'idle machine'}). Command: "
        f"`python benchmarks/sweep.py --repeats {args.repeats} --steps {args.steps} --replicas {args.replicas}` "
        f"(medians of {args.repeats} interleaved runs, each into a fresh directory).",
        "",
        f"32 tasks: rescaling family (§7.1), 8 learning rates x batch sizes {{1, 4}} x 2 repeats, "
        f"{args.replicas} replicas x {args.steps:,} steps each ({cmed['serial'] / 32:.2f} s of CPU per task).",
        "",
        "| way | median wall time | speed-up over serial | Σ task CPU time (median) |",
        "|---|---|---|---|",
        f"| serial (`scheduler=\"serial\"`) | {med['serial']:.2f} s | 1 | {cmed['serial']:.1f} s |",
        f"| LocalCluster, 2 workers, end to end (start, import, sweep, close) | {med['cluster']:.2f} s | "
        f"{med['serial'] / med['cluster']:.2f}x | {cmed['cluster']:.1f} s |",
        f"| LocalCluster, 2 workers, already running (warm) | {med['warm']:.2f} s | {med['serial'] / med['warm']:.2f}x "
        f"| {cmed['warm']:.1f} s |",
        "",
        "Every cluster run gave the serial run's numbers bit for bit. Runs: "
        + "; ".join(f"{k} " + ", ".join(f"{v:.2f}" for v in vs) + " s" for k, vs in times.items()) + ".",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(args.append, "a") as f:
            f.write(text)


if __name__ == "__main__":
    sys.exit(main())
