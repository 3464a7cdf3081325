"""Benchmark: exact data expectations E[g], M = E[g gᵀ], Σ for a 3-3-3 linear net, Gaussian data.

Claim (issue 3, item 1): ``moments(loss)`` for the two-layer linear network with widths
(3, 3, 3) (18 parameters) and Gaussian data from a linear teacher (x ~ N(0, diag s²),
y = V x + ε, six independent Normals) takes at most 10 s on the 2-core machine.

Timed: the median over ``--repeats`` runs of ``moments()`` on a freshly built Loss (no
cached result; SymPy's global cache stays warm after the first run, which is why the first
run is reported separately), then ``compiled_moments`` (build) and one evaluation at 1000
points.

Baseline, run in the same process: the naive route, ``sympy.stats.E`` on one entry of M
(``E[g_0 g_9]`` of the expanded product), extrapolated to the n(n+1)/2 + n = 189 distinct
entries of M and E[g]. With ``--baseline mean`` the (cheaper) entry ``E[g_0]`` is timed
instead and extrapolated the same way. For scale, the numeric route at one θ (Monte Carlo,
10⁶ samples) is also timed; it gives one point with ~1e-3 relative standard errors, not
the exact polynomials.

Run:  python benchmarks/expectations.py [--repeats 5] [--baseline m|mean|none] [--json out.json]
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
import sympy as sp
from sympy.stats import E

import noether_sym as ns
from noether_sym.data._model import gaussian_linear_teacher
from noether_sym.data._moments import compiled_moments, moments


def build() -> ns.Loss:
    net = ns.families.linear_net([3, 3, 3])
    V = sp.Matrix([[1, 2, 0], [0, -1, 1], [sp.Rational(1, 2), 0, 3]])
    return gaussian_linear_teacher(
        net,
        net.data_symbols[:3],
        net.data_symbols[3:],
        V,
        input_std=[1, 2, sp.Rational(1, 2)],
        noise_std=[1, sp.Rational(1, 3), 2],
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline", choices=["m", "mean", "none"], default="m")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    times = []
    first = None
    for r in range(args.repeats):
        loss = build()
        t0 = time.perf_counter()
        mom = moments(loss)
        dt = time.perf_counter() - t0
        first = dt if first is None else first
        times.append(dt)
    n = loss.n
    terms = sum(len(sp.Add.make_args(e)) for e in mom.covariance)

    t0 = time.perf_counter()
    f = compiled_moments(loss)
    t_compile = time.perf_counter() - t0
    th = np.random.default_rng(0).normal(size=(1000, n))
    t0 = time.perf_counter()
    f(th)
    t_eval = time.perf_counter() - t0

    t0 = time.perf_counter()
    moments(loss, theta=th[0], method="numeric", n_samples=10**6)
    t_mc = time.perf_counter() - t0

    summary = {
        "case": "linear-net 3-3-3, Gaussian linear teacher (6 independent Normals)",
        "n_params": n,
        "repeats": args.repeats,
        "median_seconds_moments": statistics.median(times),
        "first_run_seconds_moments": first,
        "all_seconds_moments": times,
        "covariance_terms_total": terms,
        "seconds_compiled_moments_build": t_compile,
        "seconds_compiled_moments_eval_1000_points": t_eval,
        "seconds_monte_carlo_1e6_one_point": t_mc,
        "claim_max_seconds": 10.0,
        "claim_ok": statistics.median(times) <= 10.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}",
    }
    if args.baseline != "none":
        loss = build()
        g0 = sp.diff(loss.expr, loss.params[0])
        if args.baseline == "m":
            g9 = sp.diff(loss.expr, loss.params[9])
            target, what = sp.expand(g0 * g9), "E[g_0 g_9] (one entry of M)"
        else:
            target, what = g0, "E[g_0] (one entry of the mean gradient)"
        t0 = time.perf_counter()
        E(target)
        t_entry = time.perf_counter() - t0
        n_entries = n * (n + 1) // 2 + n
        summary["baseline"] = {
            "method": f"sympy.stats.E on {what}, extrapolated to {n_entries} entries",
            "seconds_one_entry": t_entry,
            "extrapolated_seconds_all_entries": t_entry * n_entries,
            "speedup_over_baseline": t_entry * n_entries / statistics.median(times),
        }
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(summary, fh, indent=1)
    return 0 if summary["claim_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
