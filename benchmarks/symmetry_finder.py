"""Benchmark: the generic symmetry finder on 100 random network architectures.

Claim (issue 2): `find_symmetries` handles 100 random architectures -- half linear
networks (depth 2-4, widths 2-5), half ReLU networks (depth 2-4, widths 2-9, hidden biases
at random) -- in at most 60 s in total on the 2-core machine, and its counts match the
known ones (linear: Σ d_i(d_i+1)/2 generators; ReLU: Σ hidden widths generators and
independent charges). Depth is the number of weight matrices.

Baseline, run in the same process: the dense numeric route of THEORY §8 (one equation per
random point in the n(n+1)/2 unknowns), on the architectures small enough for it
(n <= 40); the ratio is the median dense time over the median time of the default route
on those same architectures.

Run:  python benchmarks/symmetry_finder.py [--n 100] [--seed 0] [--json out.json]
      python benchmarks/symmetry_finder.py --scale   (the scale targets, each in a 4 GiB subprocess)
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time

import numpy as np

import noether_sym as ns


def architectures(n: int, seed: int) -> list[tuple[str, list[int], bool]]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        depth = int(rng.integers(2, 5))
        if k % 2 == 0:
            out.append(("linear", [int(w) for w in rng.integers(2, 6, size=depth + 1)], False))
        else:
            out.append(("relu", [int(w) for w in rng.integers(2, 10, size=depth + 1)], bool(rng.integers(0, 2))))
    return out


def build(kind: str, dims: list[int], bias: bool) -> ns.Loss:
    return ns.families.linear_net(dims) if kind == "linear" else ns.families.relu_net(dims, bias=bias)


def expected_generators(kind: str, dims: list[int]) -> int:
    hidden = dims[1:-1]
    return sum(d * (d + 1) // 2 for d in hidden) if kind == "linear" else sum(hidden)


#: the scale targets: (kind, dims, bias, generators, independent charges, seconds)
SCALE = [("linear", [30, 40, 30], False, 820, 820, 10), ("linear", [784, 64, 10], False, 2080, 2080, 120),
         ("relu", [784, 128, 10], True, 128, 128, 60)]


def scale_case(kind: str, dims: list[int], bias: bool) -> dict:
    """One scale target in this process: build time, finder time, counts, peak memory.

    Wall times on the shared machine depend on its load, so the CPU time of this process
    (all its threads) is recorded beside them, with the load average at the end."""
    import os

    t0, c0 = time.perf_counter(), time.process_time()
    loss = build(kind, dims, bias)
    t_build, c_build = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    sym = ns.find_symmetries(loss)
    t_find, c_find = time.perf_counter() - t0, time.process_time() - c0
    return {"dims": dims, "kind": kind, "bias": bias, "n_params": loss.n, "build_seconds": t_build,
            "find_seconds": t_find, "total_seconds": t_build + t_find,
            "build_cpu_seconds": c_build, "find_cpu_seconds": c_find,
            "generators": sym.n_generators, "rotations": len(sym.rotations),
            "independent_charges": sym.n_independent_charges, "unconfirmed": len(sym.unconfirmed),
            "route": sym.certificate["route"], "completeness": sym.certificate.get("completeness"),
            "orbit_proofs": {k: {kk: v for kk, v in sym.certificate.get(k, {}).get("orbit_proofs", {}).items()
                                 if kk != "groups"} for k in ("symmetric", "antisymmetric")},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load_average": os.getloadavg()}


def run_scale(limit_gib: float = 4.0, timeout: float = 900, only: str | None = None) -> list[dict]:
    """Each scale target in a subprocess capped at ``limit_gib`` of address space (so a
    failure is a MemoryError or a refusal, never the kernel's OOM killer)."""
    import subprocess

    out = []
    for kind, dims, bias, k, r, target in SCALE:
        if only and "-".join(map(str, dims)) != only:
            continue
        code = (f"import json, resource, sys; sys.path.insert(0, 'benchmarks'); "
                f"resource.setrlimit(resource.RLIMIT_AS, ({int(limit_gib * 2**30)}, {int(limit_gib * 2**30)})); "
                f"import symmetry_finder as b; print(json.dumps(b.scale_case({kind!r}, {dims}, {bias}), default=str))")
        try:
            proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=timeout)
            row = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {
                "dims": dims, "error": proc.stderr.strip().splitlines()[-1:]}
        except subprocess.TimeoutExpired:
            row = {"dims": dims, "error": f"timeout after {timeout} s"}
        row.update({"target_seconds": target, "expected": [k, r]})
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="full passes; totals are medians over them")
    ap.add_argument("--scale", action="store_true", help="run only the scale targets (subprocesses, 4 GiB cap)")
    ap.add_argument("--case", default=None, help="with --scale: one target by its widths, e.g. 30-40-30")
    ap.add_argument("--timeout", type=float, default=900, help="with --scale: seconds per target")
    args = ap.parse_args(argv)
    if args.scale:
        rows = run_scale(timeout=args.timeout, only=args.case)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=1)
        return 0
    archs = architectures(args.n, args.seed)
    totals = []
    for rep in range(args.repeats):
        rows = []
        t_all = time.perf_counter()
        for kind, dims, bias in archs:
            t0 = time.perf_counter()
            loss = build(kind, dims, bias)
            sym = ns.find_symmetries(loss)
            dt = time.perf_counter() - t0
            ok = sym.n_generators == expected_generators(kind, dims) and not sym.unconfirmed
            if kind == "relu":
                ok = ok and sym.n_independent_charges == sum(dims[1:-1])
            rows.append(
                {
                    "kind": kind,
                    "dims": dims,
                    "bias": bias,
                    "n_params": loss.n,
                    "generators": sym.n_generators,
                    "independent_charges": sym.n_independent_charges,
                    "route": sym.certificate["route"],
                    "seconds": dt,
                    "counts_ok": ok,
                }
            )
            if rep == 0:
                print(f"{kind:6s} {'-'.join(map(str, dims)):14s} bias={int(bias)} n={loss.n:4d} "
                      f"k={sym.n_generators:3d} r={sym.n_independent_charges:3d} {sym.certificate['route']:10s} "
                      f"{dt:7.3f}s {'ok' if ok else 'MISMATCH'}", flush=True)
        totals.append(time.perf_counter() - t_all)
        print(f"pass {rep + 1}: {totals[-1]:.1f} s", flush=True)
    total = statistics.median(totals)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = [r["seconds"] for r in rows]
    summary = {
        "n_architectures": len(rows),
        "total_seconds_median": total,
        "total_seconds_passes": totals,
        "median_seconds": statistics.median(times),
        "max_seconds": max(times),
        "all_counts_ok": all(r["counts_ok"] for r in rows),
        "peak_rss_mb": peak_mb,
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}",
    }
    if not args.no_baseline:
        small = [(k, d, b) for (k, d, b) in archs if build(k, d, b).n <= 40][:20]
        t_def, t_dense = [], []
        for k, d, b in small:
            for route, acc in (("auto", t_def), ("dense", t_dense)):
                reps = []
                for _ in range(args.repeats):
                    loss = build(k, d, b)  # fresh loss: no cached compilation
                    t0 = time.perf_counter()
                    ns.find_symmetries(loss, route=route)
                    reps.append(time.perf_counter() - t0)
                acc.append(statistics.median(reps))
        summary["baseline"] = {
            "architectures": len(small),
            "median_default_seconds": statistics.median(t_def),
            "median_dense_seconds": statistics.median(t_dense),
            "speedup_over_dense": statistics.median(t_dense) / statistics.median(t_def),
        }
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"summary": summary, "rows": rows}, fh, indent=1)
    return 0 if summary["all_counts_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
