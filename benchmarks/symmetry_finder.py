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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="full passes; totals are medians over them")
    args = ap.parse_args(argv)
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
