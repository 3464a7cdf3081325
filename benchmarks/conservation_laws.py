"""Benchmark: all conservation laws of gradient flow on the 100 random architectures of symmetry_finder.py.

Claim: `Symmetries.n_conservation_laws` (n - dim Lie(V)(θ), Marcotte, Gribonval, Peyré 2023)
equals the hand count of independent charges on linear and ReLU networks (Σ d(d+1)/2 over
hidden widths d for linear networks, one per hidden neuron for ReLU networks: every law is
quadratic there), and takes at most 1 s per case on the 2-core machine (their reference
implementation: 41 s per linear and 136 s per ReLU case on 64 cores).

Two modes per architecture, interleaved in one process:
* ``bound``: ``conservation_laws(loss, quadratic=sym.generators)`` -- what
  ``Symmetries.n_conservation_laws`` runs; the exact charges bound the rank from above, so
  the count is certified as soon as the numerical rank meets that bound. Timed alone (the
  finder's own time is reported beside it).
* ``standalone``: ``conservation_laws(loss)`` -- no charges; certified by closure of the
  bracket levels and agreement between points for a loss without kinks, so it counts the
  linear networks and refuses every ReLU network (a piecewise loss has regions with laws of
  their own, and without the charge bound agreement between points does not certify).

BLAS runs on one thread unless ``--blas-threads`` says otherwise: the work is many small
SVDs, where OpenBLAS threads only contend on a loaded 2-core machine.

Run:  python benchmarks/conservation_laws.py [--n 100] [--seed 0] [--repeats 1] [--json out.json]
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # must precede the NumPy import
    _threads = sys.argv[sys.argv.index("--blas-threads") + 1] if "--blas-threads" in sys.argv else "1"
    if _threads != "0":
        for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[_v] = _threads

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from symmetry_finder import architectures, build

import noether_sym as ns


def hand_count(kind: str, dims: list[int]) -> int:
    """Independent laws derived by hand. ReLU: one rescaling charge per hidden neuron. Linear:
    per hidden layer of width d between widths a and b, the entries of the charge
    W_iW_iᵀ - W_{i+1}ᵀW_{i+1} (d x d symmetric, rank at most k = min(d, a + b)), whose image
    is the set of symmetric matrices of rank ≤ k, of dimension k·d - k(k-1)/2
    (= d(d+1)/2 when k = d: a bottleneck a + b < d makes the GL(d) charges dependent)."""
    if kind == "relu":
        return sum(dims[1:-1])
    total = 0
    for i in range(1, len(dims) - 1):
        d, k = dims[i], min(dims[i], dims[i - 1] + dims[i + 1])
        total += k * d - k * (k - 1) // 2
    return total


def run_case(kind: str, dims: list[int], bias: bool, seed: int) -> dict:
    loss = build(kind, dims, bias)
    t0 = time.perf_counter()
    sym = ns.find_symmetries(loss)
    t_find = time.perf_counter() - t0
    row = {"kind": kind, "dims": dims, "bias": bias, "n": loss.n, "hand": hand_count(kind, dims),
           "charges": sym.n_independent_charges, "finder_seconds": t_find}
    for mode, kw in (("bound", {"quadratic": sym.generators}), ("standalone", {})):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            laws = ns.conservation_laws(loss, seed=seed, **kw)
            row[mode] = laws.n_laws
            row[mode + "_how"] = laws.certificate["certified_by"]
            row[mode + "_ranks"] = laws.ranks
        except ns.NoetherSymError as exc:
            row[mode] = None
            row[mode + "_how"] = f"{type(exc).__name__}: {str(exc)[:120]}"
        row[mode + "_seconds"] = time.perf_counter() - t0
        row[mode + "_cpu_seconds"] = time.process_time() - c0  # this process only: less sensitive to load
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="passes; per-case times are medians over them")
    ap.add_argument("--blas-threads", default="1", help="BLAS threads (0: the library default)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    archs = architectures(args.n, args.seed)
    passes = []
    for rep in range(args.repeats):
        rows = []
        for kind, dims, bias in archs:
            r = run_case(kind, dims, bias, args.seed)
            rows.append(r)
            if rep == 0:
                print(f"{kind:6s} {'-'.join(map(str, dims)):12s} bias={int(bias)} n={r['n']:4d} hand={r['hand']:3d} "
                      f"charges={r['charges']:3d} laws(bound)={r['bound']!s:>4s} {r['bound_seconds']:6.3f}s "
                      f"laws(standalone)={r['standalone']!s:>4s} {r['standalone_seconds']:6.3f}s "
                      f"finder {r['finder_seconds']:5.2f}s", flush=True)
        passes.append(rows)
    rows = passes[0]
    for mode in ("bound", "standalone", "finder"):
        for i, r in enumerate(rows):
            r[mode + "_seconds"] = statistics.median(p[i][mode + "_seconds"] for p in passes)
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
          f"load average {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    summary = {}
    for mode in ("bound", "standalone"):
        for kind in ("linear", "relu"):
            sel = [r for r in rows if r["kind"] == kind]
            ts = [r[mode + "_seconds"] for r in sel]
            right = sum(r[mode] == r["hand"] for r in sel)
            refused = sum(r[mode] is None for r in sel)
            wrong = len(sel) - right - refused
            summary[f"{mode}/{kind}"] = {"cases": len(sel), "right": right, "refused": refused, "wrong": wrong,
                                         "median_s": statistics.median(ts), "max_s": max(ts)}
            print(f"{mode:10s} {kind:6s}: {len(sel)} cases, {right} right, {refused} refused, {wrong} WRONG; "
                  f"median {statistics.median(ts):.3f} s, max {max(ts):.3f} s per case")
    ts = [r["bound_seconds"] for r in rows]
    cs = [r["bound_cpu_seconds"] for r in passes[0]]
    print(f"n_conservation_laws (bound mode) over all {len(rows)}: median {statistics.median(ts):.3f} s, "
          f"max {max(ts):.3f} s, {sum(t <= 1 for t in ts)} cases <= 1 s; CPU time of the process (first pass): "
          f"median {statistics.median(cs):.3f} s, max {max(cs):.3f} s, {sum(c <= 1 for c in cs)} cases <= 1 s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "summary": summary}, fh, indent=1, default=str)
    wrong = sum(v["wrong"] for v in summary.values())
    return 0 if not wrong else 1


if __name__ == "__main__":
    raise SystemExit(main())
