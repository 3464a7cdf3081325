"""Benchmark: `derive` on every catalog family, as a user runs it.

Claim: ``noether-sym derive FAMILY`` (``ns.derive`` at the command line's default point: a
seeded random point with two decimals, taken exactly) takes ≤ 2 s per catalog family at its
default size. Each timed call is the whole derivation: symmetries, charges, drift laws, the
gradient flow to Φ(θ₀), the equilibria and sharpness of every generator, and the Noether flow
(E22) where the per-generator predictions do not apply. Every call gets a fresh Loss (no
caches carried over); the repeats are interleaved (repeat 1 of every family, then repeat 2,
...), the median is reported, and the load average is recorded with the figures. A call
that exceeds ``--timeout`` is recorded as "> timeout".

Baseline in the same process: the noise covariance at θ alone by Monte Carlo with 10⁶
samples (about 3 digits) on the rescaling family -- what a purely numeric toolkit computes
instead of the exact moments.

Run:  python benchmarks/derive.py [--repeats 3] [--timeout 60] [--families a,b,...]
      (PYTHONPATH=<another checkout> runs the same benchmark on other code: before/after)
Figures: benchmarks/RESULTS.md, section "derive per catalog family".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import time

import numpy as np
import sympy as sp

import noether_sym as ns

#: families left out: a 2,400-parameter factorization whose build alone exceeds the budget
SKIP = ("matrix-factorization-30-40-30",)


class _Timeout(Exception):
    pass


def _alarm(*_: object) -> None:
    raise _Timeout()


def cli_point(loss: ns.Loss, seed: int = 0) -> list:
    """The command line's default point: N(0, 1) entries rounded to two decimals, exact."""
    rng = np.random.default_rng(seed)
    return [sp.Rational(str(v)) for v in np.round(rng.standard_normal(loss.n), 2)]


def one(name: str, timeout: int) -> tuple[float | None, str]:
    """Seconds of one derive (None past the timeout) and what it predicted."""
    signal.signal(signal.SIGALRM, _alarm)
    t0 = time.perf_counter()
    signal.alarm(timeout)
    try:
        loss = ns.families.build(name)
        d = ns.derive(loss, cli_point(loss))
        what = getattr(d, "prediction", "?")
    except _Timeout:
        return None, "timeout"
    finally:
        signal.alarm(0)
    return time.perf_counter() - t0, what


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=60, help="seconds before a call counts as '> timeout'")
    ap.add_argument("--families", default=None, help="comma-separated subset (default: the whole catalog)")
    args = ap.parse_args(argv)
    names = args.families.split(",") if args.families else [n for n in ns.families.names() if n not in SKIP]
    print(f"# {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"noether_sym from {os.path.dirname(ns.__file__)}, load at start {os.getloadavg()}", flush=True)
    times: dict[str, list[float | None]] = {n: [] for n in names}
    what: dict[str, str] = {}
    for r in range(args.repeats):  # interleaved: every family once per round
        for n in names:
            if r and times[n] and times[n][-1] is None:
                times[n].append(None)  # timed out once: do not spend the timeout again
                continue
            sec, w = one(n, args.timeout)
            times[n].append(sec)
            what[n] = w
            print(f"  round {r + 1} {n:30s} {'> %d' % args.timeout if sec is None else '%.2f' % sec} s  ({w})",
                  flush=True)
    rows = []
    for n in names:
        done = [t for t in times[n] if t is not None]
        med = statistics.median(done) if len(done) == len(times[n]) else None
        rows.append({"family": n, "median_seconds": med, "runs": times[n], "prediction": what.get(n)})
    base = []
    for _ in range(args.repeats):
        loss_b = ns.families.build("rescaling")
        th = [float(v) for v in cli_point(loss_b)]
        t0 = time.perf_counter()
        ns.moments(loss_b, theta=th, method="numeric", n_samples=1_000_000)
        base.append(time.perf_counter() - t0)
    print(f"# load at end {os.getloadavg()}")
    print(f"{'family':30s} median")
    for row in rows:
        m = row["median_seconds"]
        print(f"{row['family']:30s} {'> %d s' % args.timeout if m is None else '%.2f s' % m}  ({row['prediction']})")
    resc = next((r["median_seconds"] for r in rows if r["family"] == "rescaling"), None)
    print(json.dumps({
        "families": rows,
        "baseline_monte_carlo_1e6_rescaling_s": statistics.median(base),
        "ratio_baseline_over_derive_rescaling": None if not resc else statistics.median(base) / resc,
        "within_2s": [r["family"] for r in rows if r["median_seconds"] is not None and r["median_seconds"] <= 2],
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
