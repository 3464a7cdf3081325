"""Figures of three zoo cases: the toolkit's prediction against the independent SGD.

Each panel shows one observable against the learning rate η: the prediction (horizontal
line), the SGD measurement at every η with its standard error (error bars), the η → 0 fit and
its extrapolation at η = 0 with its error bar, and, where one exists, the wrong answer the
case guards against (dashed). The cases and the hand-written SGD are those of tests/test_zoo.py
(tests/zoo_cases.py, tests/zoo_deep_linear.py).

Run:  python benchmarks/zoo_figures.py [--out docs/figures] [--only rescaling|relu|deep]
Writes docs/figures/zoo-rescaling-off.png, zoo-relu-shared-pattern.png, zoo-three-layer.png
and prints the numbers it plots.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import zoo_cases as Z
import zoo_deep_linear as D

import noether_sym as ns


def _panel(ax, eta, means, ses, pred, est, se, fit, title, wrong=None):
    """One observable: measurements, the fit and its η → 0 value, the prediction. The y-range
    is that of the data; a wrong answer outside it is named in the legend, not drawn."""
    from matplotlib.ticker import MaxNLocator

    grid = np.linspace(0.0, max(eta) * 1.05, 100)
    ax.axhline(pred, color="C0", lw=2, label=f"toolkit prediction {pred:.4f}")
    ax.plot(grid, fit(grid), color="C1", lw=1, ls=":", label="η → 0 fit")
    ax.errorbar(eta, means, yerr=ses, fmt="o", color="C1", ms=5, capsize=3, label="SGD at η (± 1 s.e.)")
    ax.errorbar([0.0], [est], yerr=[4 * se], fmt="s", color="k", ms=6, capsize=4,
                label=f"η → 0 estimate {est:.4f} (± 4 s.e.)")
    near = [wrong[0]] if wrong is not None and abs(wrong[0] - pred) <= 0.1 * abs(pred) else []
    vals = np.concatenate([np.asarray(means) + ses, np.asarray(means) - ses, [pred, est + 4 * se, est - 4 * se], near])
    lo, hi = float(vals.min()), float(vals.max())
    pad = 0.25 * max(hi - lo, 1e-3 * max(1.0, abs(pred)))
    lo, hi = lo - pad, hi + pad
    if wrong is not None:
        if lo <= wrong[0] <= hi:
            ax.axhline(wrong[0], color="C3", lw=1.5, ls="--", label=f"{wrong[1]} {wrong[0]:.4f}")
        else:
            ax.plot([], [], color="C3", lw=1.5, ls="--", label=f"{wrong[1]} {wrong[0]:.4f} (off scale)")
    ax.set_ylim(lo, hi)
    ax.set_title(title)
    ax.set_xlabel("learning rate η")
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.set_xlim(-0.04 * max(eta), max(eta) * 1.08)
    ax.legend(fontsize=7, loc="best")


def _two_point(case_name, wrong_values, wrong_label, out, title):
    import matplotlib.pyplot as plt

    case = Z.CASES[case_name]()
    pred, how = Z.predict(case)
    m = Z.measure(case)
    eta = np.array(m["lrs"])
    means, ses = np.array(m["means"]), np.array(m["ses"])
    k = len(case.observables)
    cols = min(k, 2)
    rows_ = -(-k // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(5.6 * cols, 4.2 * rows_ + 0.4), squeeze=False)
    for j, name in enumerate(case.observables):
        slope = (means[1, j] - means[0, j]) / (eta[1] - eta[0])
        est = m["estimate"][j]
        wrong = None if wrong_values is None else (wrong_values[j], wrong_label)
        _panel(axes.flat[j], eta, means[:, j], ses[:, j], pred[j], est, m["se"][j],
               lambda g, e=est, s=slope: e + s * g, name, wrong)
        print(f"{case_name} {name}: predicted {pred[j]:.5f}; SGD η={eta[0]}: {means[0, j]:.5f} ± {ses[0, j]:.5f}, "
              f"2η: {means[1, j]:.5f} ± {ses[1, j]:.5f}; η → 0 {est:.5f} ± {m['se'][j]:.5f}; diverged {m['diverged']}")
    fig.suptitle(textwrap.fill(f"{title}: {case.name}; prediction: {how}", 75 * cols), fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def rescaling(outdir: Path) -> None:
    # the README's example: the orbit of the start itself balances at u² = 2, the minimum at 1
    _two_point("rescaling_off", [2.0], "balance on the start's own orbit", outdir / "zoo-rescaling-off.png",
               "Rescaling from (2, 1), a start off the minimum manifold")


def relu(outdir: Path) -> None:
    # per-unit balance (the two global rescaling generators) misses the local GL(2)
    case = Z.CASES["relu_shared_pattern"]()
    gens = ns.find_symmetries(case.loss).generators
    per_unit = ns.joint_equilibrium(case.loss, gens, theta=case.theta0, values=None).theta
    _two_point("relu_shared_pattern", list(np.asarray(per_unit, dtype=float)), "per-unit balance",
               outdir / "zoo-relu-shared-pattern.png", "Two ReLU units sharing their activation pattern")


def deep_figure(flow, m: dict, path: Path, tau_burn: float = D.TAU_BURN) -> None:
    """The three-layer panels from a measurement of ``zoo_deep_linear.summarize`` and its fit."""
    import matplotlib.pyplot as plt

    pred = np.concatenate([D.invariants(flow.theta), D.layer_rates(flow.rotation_generator)])
    eta = np.array(m["lrs"])
    coef = m["fit"]["coef"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for j, name in enumerate(D.NAMES):
        _panel(axes.flat[j], eta, m["means"][:, j], m["ses"][:, j], pred[j], m["estimate"][j], m["se"][j],
               lambda g, c=coef[j]: np.polyval(c[::-1], g), name)
        print(f"three-layer {name}: predicted {pred[j]:.5f}; η → 0 {m['estimate'][j]:.5f} ± {m['se'][j]:.5f} "
              f"({100 * (m['estimate'][j] - pred[j]) / abs(pred[j]):+.2f}%); per η: "
              + ", ".join(f"{e}: {v:.5f} ± {s:.5f}" for e, v, s in zip(eta, m["means"][:, j], m["ses"][:, j])))
    n = m["run"]["lr"].size // len(eta)
    fig.suptitle(textwrap.fill("Three-layer linear net 2-2-2-2, Σx = diag(1, 4), Σε = diag(1/4, 1), start off balance: "
                 f"noether_flow ({flow.kind}, rate {flow.rotation_rate:.4f} rad per unit η²k) against batch-1 SGD "
                 f"({n} replicas per η, averaged over τ = η²k ∈ [{tau_burn:g}, {m.get('tau_end', D.TAU_END):g}]; rates in radians per unit η²k; "
                 f"fit: weighted polynomial of degree {coef.shape[1] - 1} in η)", 180), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def deep(outdir: Path) -> None:
    # the long measurement (and this figure with it) is benchmarks/three_layer.py --figure
    flow = ns.noether_flow(D.loss(), D.THETA0, batch_size=1)
    deep_figure(flow, D.measure(seed=0), outdir / "zoo-three-layer.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    ap.add_argument("--only", choices=["rescaling", "relu", "deep"])
    args = ap.parse_args()
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    for name, fn in [("rescaling", rescaling), ("relu", relu), ("deep", deep)]:
        if args.only in (None, name):
            t = time.perf_counter()
            fn(outdir)
            print(f"{name}: {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
