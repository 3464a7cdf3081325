"""Benchmark: all conservation laws of gradient flow on the 100 random architectures of symmetry_finder.py.

Claim: `Symmetries.n_conservation_laws` (n - dim Lie(V)(θ), Marcotte, Gribonval, Peyré 2023)
equals `n_independent_charges` on linear and ReLU networks (as they prove: every law is
quadratic there), and takes at most 1 s per case on the 2-core machine (their reference
implementation: 41 s per linear and 136 s per ReLU case on 64 cores).

Run:  python benchmarks/conservation_laws.py [--n 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import noether_sym as ns  # noqa: E402
from symmetry_finder import architectures, build, expected_generators  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--finder", action="store_true", help="also compare with find_symmetries' count")
    args = ap.parse_args(argv)
    times = {"linear": [], "relu": []}
    mismatches = []
    for kind, dims, bias in architectures(args.n, args.seed):
        loss = build(kind, dims, bias)
        t0 = time.perf_counter()
        laws = ns.conservation_laws(loss)
        times[kind].append(time.perf_counter() - t0)
        # the known count of independent charges (Σ d(d+1)/2 linear, Σ widths ReLU)
        want = expected_generators(kind, dims)
        got = ns.find_symmetries(loss).n_independent_charges if args.finder else want
        if not laws.n_laws == want == got:
            mismatches.append((kind, dims, bias, loss.n, laws.n_laws, want, got, laws.ranks))
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, python {platform.python_version()}")
    for kind, ts in times.items():
        print(f"{kind}: {len(ts)} cases, median {statistics.median(ts):.3f} s, max {max(ts):.3f} s, "
              f"total {sum(ts):.1f} s")
    print(f"n_conservation_laws == known charge count{' == finder' if args.finder else ''}: {args.n - len(mismatches)} of {args.n}")
    for m in mismatches:
        print("  mismatch:", m)
    return 0 if not mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
