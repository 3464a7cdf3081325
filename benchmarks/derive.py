"""Benchmark: `derive` on every catalog family, and exact expectations at scale.

Claims: `ns.derive(loss, θ)` (symmetries, charges, drift laws, equilibria, sharpness) takes
≤ 2 s per catalog family at its default size, from Φ(θ₀), the point gradient flow from the
family's default start lands on (timed separately: most default starts are off the minimum
manifold); three fixed cases (with rational starts) are timed as well. Baseline in the same process: the noise
covariance at θ alone by Monte Carlo with 10⁶ samples (about 3 digits), what a purely
numeric toolkit computes instead of the exact moments.

Run:  python benchmarks/derive.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import sympy as sp

import noether_sym as ns


def cases() -> list[tuple[str, ns.Loss, list]]:
    out = []
    u, w0, w1, w2 = sp.symbols("u w0 w1 w2")
    from sympy.stats import Normal

    x = [Normal("x0", 0, 1), Normal("x1", 0, 2), Normal("x2", 0, sp.Rational(1, 2))]
    eps = Normal("eps", 0, sp.sqrt(sp.Rational(1, 2)))
    y = x[0] - x[1] / 2 + 2 * x[2] + eps
    resc = ns.Loss((u * (w0 * x[0] + w1 * x[1] + w2 * x[2]) - y) ** 2, [u, w0, w1, w2], name="rescaling §7.1")
    out.append(("rescaling", resc, [2, sp.Rational(1, 2), -sp.Rational(1, 4), 1]))
    rng = np.random.default_rng(0)
    for name, dims in (("linear-net", [2, 2, 2]), ("relu-net", [2, 3, 1])):
        loss = ns.families.build(name, dims=dims)  # catalog families carry their Gaussian data
        th = [sp.Rational(str(v)) for v in np.round(rng.standard_normal(loss.n), 2)]
        out.append((f"{name} {'-'.join(map(str, dims))}", loss, th))
    for name in ns.families.names():
        fam = ns.families.get(name)
        loss = fam.build()
        out.append((f"catalog {name}", loss, list(fam.theta0(loss))))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--flow-budget", type=int, default=3000, help="gradient evaluations of the flow to Φ(θ₀)")
    args = ap.parse_args(argv)
    rows = []
    for name, _, _ in cases():
        t_ex, t_flow = [], []
        for _ in range(args.repeats):
            loss, th = next((l, t) for n, l, t in cases() if n == name)  # fresh: no caches
            t0 = time.perf_counter()
            try:
                phi = ns.gradient_flow_limit(loss, th, max_evaluations=args.flow_budget)
                start, note = phi.theta, ("projected" if phi.moved else "on the manifold")
            except ns.GradientFlowError as exc:
                start, note = th, f"flow refused: {str(exc)[:60]}"
            t_flow.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ns.derive(loss, start)
            t_ex.append(time.perf_counter() - t0)
        rows.append({"family": name, "median_seconds": statistics.median(t_ex), "runs": t_ex,
                     "flow_median_seconds": statistics.median(t_flow), "start": note})
        print(f"{name:32s} derive median {statistics.median(t_ex):.3f} s   gradient flow to Φ(θ₀) "
              f"{statistics.median(t_flow):.3f} s ({note})", flush=True)
    # baseline: the noise covariance at θ by Monte Carlo with 10⁶ samples (≈ 3 significant
    # digits), what a numeric toolkit does instead of the exact moments used by derive
    name, _, th = cases()[0]
    t_mc = []
    for _ in range(args.repeats):
        loss_b = cases()[0][1]
        t0 = time.perf_counter()
        ns.moments(loss_b, theta=[float(v) for v in th], method="numeric", n_samples=1_000_000)
        t_mc.append(time.perf_counter() - t0)
    base = statistics.median(t_mc)
    summary = {
        "families": rows,
        "baseline_monte_carlo_1e6_rescaling_s": base,
        "ratio_baseline_over_derive_rescaling": base / rows[0]["median_seconds"],
        "max_derive_seconds": max(r["median_seconds"] for r in rows),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
