"""The three-layer linear net 2-2-2-2 with anisotropic data: ``ns.noether_flow`` against an
independent SGD's η → 0 limit.

The net, its data and the reference SGD (a hand-written numba kernel with its own random
streams, batch size 1, never ``ns.simulate``) are in tests/zoo_deep_linear.py. Every replica
runs to τ = η²k = ``--tau-end`` and is averaged over τ ≥ ``--tau-burn``; the per-η means are
extrapolated to η = 0 by weighted least-squares polynomials in η (linear on the smaller rates,
quadratic and cubic on all), each with its χ² so the fit's adequacy is visible. Prints the flow,
the per-η table, the fits with their residuals and the verdict |SGD − flow| ≤ 1% + 3 s.e.

Run:  python benchmarks/three_layer.py --save run.npz        (the RESULTS.md measurement)
      python benchmarks/three_layer.py --load run.npz --figure docs/figures/zoo-three-layer.png
      python benchmarks/three_layer.py --quick               (the CI test's setting)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import zoo_deep_linear as D

import noether_sym as ns

LRS = (0.004, 0.003, 0.002, 0.0015, 0.001, 0.0007, 0.0005)


def _rel(v: float, p: float) -> str:
    return f"{100 * v / abs(p):+.2f}%"


def report(m: dict, pred: np.ndarray, label: str) -> dict:
    """Print the per-η table and the fits; return the fits by name."""
    eta = np.asarray(m["lrs"])
    print(f"\n{label}: {m['means'].shape[0]} rates, {m['run']['lr'].size} replicas, {m['diverged']} diverged")
    print("η        " + "".join(f"{n:>22}" for n in D.NAMES))
    for i, e in enumerate(eta):
        print(f"{e:<9g}" + "".join(f"{m['means'][i, j]:>10.5f} ± {m['ses'][i, j]:.5f}" for j in range(6)))
    fits = {"linear, η ≤ 0.0015": (eta <= 0.0015 + 1e-12, 1), "linear, all": (np.ones(eta.size, bool), 1),
            "quadratic, all": (np.ones(eta.size, bool), 2), "cubic, all": (np.ones(eta.size, bool), 3)}
    out = {}
    print("\nη → 0, SGD − flow relative to |flow| ± 1 s.e.; χ²/dof; verdict |Δ| ≤ 1% + 3 s.e.")
    for name, (sel, deg) in fits.items():
        if sel.sum() <= deg + 1:
            continue
        f = D.fit(eta[sel], m["means"][sel], m["ses"][sel], deg)
        out[name] = f
        cells = []
        for j in range(6):
            d = f["estimate"][j] - pred[j]
            ok = abs(d) <= 0.01 * abs(pred[j]) + 3 * f["se"][j]
            cells.append(f"{_rel(d, pred[j])} ± {100 * f['se'][j] / abs(pred[j]):.2f}% "
                         f"χ² {f['chi2'][j]:.1f}/{f['dof']} {'ok' if ok else 'MISS'}")
        print(f"  {name:<18}" + " | ".join(cells))
    q = out["quadratic, all"]
    X = np.vander(eta, 3, increasing=True)
    print("  quadratic residuals (units of s.e.), rows η, columns the six quantities:")
    for i, e in enumerate(eta):
        print(f"    {e:<9g}" + " ".join(f"{(m['means'][i, j] - X[i] @ q['coef'][j]) / m['ses'][i, j]:+6.2f}"
                                      for j in range(6)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lrs", type=float, nargs="+", default=list(LRS))
    ap.add_argument("--per-group", type=int, default=128)
    ap.add_argument("--tau-burn", type=float, default=2.0)
    ap.add_argument("--tau-end", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="the CI test's setting (tests/zoo_deep_linear.py)")
    ap.add_argument("--figure", help="also draw the figure (benchmarks/zoo_figures.py's three-layer panel) here")
    ap.add_argument("--figure-fit", type=int, default=2, help="degree of the figure's η → 0 fit (all rates)")
    ap.add_argument("--save", help="save the SGD run (npz) here")
    ap.add_argument("--load", help="reuse a saved SGD run instead of running SGD (its rates and window)")
    a = ap.parse_args()
    if a.quick:
        a.lrs, a.per_group, a.tau_burn, a.tau_end = list(D.LRS), D.PER_GROUP, D.TAU_BURN, D.TAU_END
    print(f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"NumPy {np.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load {os.getloadavg()[0]:.1f}")

    t = time.perf_counter()
    flow = ns.noether_flow(D.loss(), D.THETA0, batch_size=1)
    t_flow = time.perf_counter() - t
    pred = np.concatenate([D.invariants(flow.theta), D.layer_rates(flow.rotation_generator)])
    tau, th = flow.trajectory
    # the flow's transient at the burn-in: its distance from the stationary invariants at the last
    # trajectory point before τ_burn (an upper bound: the distance shrinks monotonically here)
    i_b = max(int(np.searchsorted(tau, a.tau_burn)) - 1, 0)
    transient = np.abs(D.invariants(th[i_b]) - pred[:4]) / np.abs(pred[:4])
    print(f"noether_flow: {flow.kind}, rotation_rate {flow.rotation_rate:.5f}, {t_flow:.1f} s; "
          + ", ".join(f"{n} {p:.5f}" for n, p in zip(D.NAMES, pred)))
    print(f"  flow's distance from its stationary invariants at τ = {tau[i_b]:.2f} ≤ τ_burn = {a.tau_burn}: "
          + ", ".join(f"{100 * v:.3f}%" for v in transient))

    v = D.e22_drift(flow.theta)
    print("  (E22) by hand at the flow's θ*: relative distance from Jθ* "
          f"{np.linalg.norm(v - flow.rotation_generator @ flow.theta) / np.linalg.norm(v):.1e}; "
          "d eig/dτ " + ", ".join(f"{x:.1e}" for x in D.motion(flow.theta, v)[:4])
          + "; frame rates " + ", ".join(f"{x:.6f}" for x in D.motion(flow.theta, v)[4:]))

    t = time.perf_counter()
    if a.load:
        z = np.load(a.load)
        run = {k: z[k] for k in ("lr", "bins", "tau", "diverged")}
        run["lrs"] = tuple(float(e) for e in z["lrs"])
        a.lrs, a.per_group, a.tau_end = list(run["lrs"]), run["lr"].size // len(run["lrs"]), float(z["tau_end"])
    else:
        run = D.sgd(tuple(a.lrs), a.per_group, a.seed, a.tau_end)
    if a.save:
        np.savez_compressed(a.save, lrs=np.array(run["lrs"]), tau_end=a.tau_end,
                            **{k: run[k] for k in ("lr", "bins", "tau", "diverged")})
    m = D.summarize(run, a.tau_burn, a.tau_end)
    t_sgd = time.perf_counter() - t
    print(f"SGD: rates {a.lrs}, {a.per_group} replicas each, τ ∈ [{a.tau_burn}, {a.tau_end}], "
          f"{t_sgd:.0f} s (load now {os.getloadavg()[0]:.1f})")
    report(m, pred, f"window τ ∈ [{a.tau_burn}, {a.tau_end}]")
    # stationarity: the two halves of the window separately, quadratic fit
    mid = (a.tau_burn + a.tau_end) / 2
    print("\nstationarity: quadratic η → 0 on each half of the window (SGD − flow, relative ± s.e.)")
    for lo, hi in ((a.tau_burn, mid), (mid, a.tau_end)):
        vals = D.window(m["run"], lo, hi)
        g = np.arange(vals.shape[1]) % len(a.lrs)
        ok = ~m["run"]["diverged"]
        means = np.array([vals[:, (g == i) & ok].mean(1) for i in range(len(a.lrs))])
        ses = np.array([vals[:, (g == i) & ok].std(1, ddof=1) / np.sqrt(((g == i) & ok).sum())
                        for i in range(len(a.lrs))])
        f = D.fit(np.asarray(a.lrs), means, ses, 2)
        print(f"  τ ∈ [{lo}, {hi}): " + ", ".join(f"{n} {_rel(f['estimate'][j] - pred[j], pred[j])} ± "
                                                 f"{100 * f['se'][j] / abs(pred[j]):.2f}%"
                                                 for j, n in enumerate(D.NAMES[:4])))
    if a.figure:
        import zoo_figures

        zoo_figures.deep_figure(flow, D.summarize(run, a.tau_burn, a.tau_end, a.figure_fit), Path(a.figure),
                                a.tau_burn)
        print(f"figure: {a.figure}")


if __name__ == "__main__":
    main()
