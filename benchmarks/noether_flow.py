"""Speed and results of ``noether_flow`` (E22): the 2-2-2 net of THEORY §7.2's caveat and a 4-6-4
linear net, wall time per call and the process's peak resident memory (ru_maxrss) after it.

Usage: python benchmarks/noether_flow.py [--quick]   (--quick skips the 4-6-4 net)
       python benchmarks/noether_flow.py --session5 [--repeats 3] [--timeout 120]
           the cases of "Noether flow, session 5": softmax (drift at round-off), deep-linear (the
           derive point), two square units on a dataset (seed 12: a fixed point; seed 11: a limit
           cycle), each call timed with its drift-evaluation count, repeats interleaved, median;
           PYTHONPATH=<another checkout> runs the same cases on other code (before/after)

Figures: benchmarks/RESULTS.md, sections "Noether flow (E22)" and "Noether flow, session 5".
"""

from __future__ import annotations

import platform
import resource
import sys
import time

import numpy as np
import sympy as sp

import noether_sym as ns

HALF = sp.Rational(1, 2)


def run(name: str, loss: ns.Loss, theta: np.ndarray, report) -> None:
    t = time.perf_counter()
    flow = ns.noether_flow(loss, theta)
    sec = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name}: n = {loss.n}, {sec:.1f} s, process peak RSS {peak:.0f} MiB, kind {flow.kind!r}, "
          f"rotation_rate {flow.rotation_rate:.5f}, tangent_dim {flow.tangent_dim}, gap {flow.gap:.3g}, "
          f"{flow._core.evaluations} drift evaluations, {flow.method}")
    report(flow)


def two_layer() -> None:
    V = sp.Matrix([[1, HALF], [-HALF, 1]])
    W = np.array([[1.5, 0.3], [-0.2, 0.8]])
    U = np.array(V.tolist(), dtype=float) @ np.linalg.inv(W)
    net = ns.families.linear_net([2, 2, 2])
    for noise in ([HALF, 1], [1, 1]):
        loss = ns.gaussian_linear_teacher(net, net.data_symbols[:2], net.data_symbols[2:], V, input_std=[1, 2],
                                          noise_std=noise)

        def q(flow):
            th = flow.theta
            Wt, Ut = th[:4].reshape(2, 2), th[4:].reshape(2, 2)
            print(f"   eig Q = {np.round(np.linalg.eigvalsh(Wt @ Wt.T - Ut.T @ Ut), 5).tolist()}")

        run(f"2-2-2, Σ_ε = diag{tuple(float(s) ** 2 for s in noise)}", loss, np.concatenate([W.ravel(), U.ravel()]), q)


def four_six_four() -> None:
    V = sp.Matrix(4, 4, lambda i, j: sp.Rational(i + 2 * j + 1, 7) if i != j else 1)
    net = ns.families.linear_net([4, 6, 4])
    loss = ns.gaussian_linear_teacher(net, net.data_symbols[:4], net.data_symbols[4:], V, input_std=[1, 2, 1, HALF],
                                      noise_std=[HALF, 1, 1, 2])
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 4))
    U = np.array(V.tolist(), dtype=float) @ np.linalg.pinv(W) + 0.3 * rng.normal(size=(4, 6))  # off the manifold
    run("4-6-4 (start off the manifold)", loss, np.concatenate([W.ravel(), U.ravel()]), lambda f: None)


def _square_units(seed: int) -> ns.Loss:
    a0, a1, v1, c0, c1, v2, x0, x1, ys = sp.symbols("a0 a1 v1 c0 c1 v2 x0 x1 ys")
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.5, 1.5, (40, 2))
    Y = X[:, 0] ** 2 + 0.5 * X[:, 1] ** 2 + 0.6 * X[:, 0] * X[:, 1] + 0.3 * rng.standard_normal(40)
    f = v1 * (a0 * x0 + a1 * x1) ** 2 + v2 * (c0 * x0 + c1 * x1) ** 2
    return ns.Loss((f - ys) ** 2, [a0, a1, v1, c0, c1, v2], data={x0: X[:, 0], x1: X[:, 1], ys: Y})


def _cli_point(loss: ns.Loss) -> list:
    rng = np.random.default_rng(0)  # the command line's default point (benchmarks/derive.py)
    return [sp.Rational(str(v)) for v in np.round(rng.standard_normal(loss.n), 2)]


def session5(repeats: int, timeout: float = 120.0) -> None:
    """Each case: a fresh Loss, one ``noether_flow`` call; repeats interleaved; median."""
    import os
    import signal
    import statistics

    def fam(name: str) -> tuple:
        loss = ns.families.build(name)
        return loss, _cli_point(loss), {}

    cases = {
        "softmax (catalog, CLI point)": lambda: fam("softmax"),
        "deep-linear (catalog, CLI point)": lambda: fam("deep-linear"),
        "square units, dataset seed 12": lambda: (_square_units(12), [1.0, 0.2, 0.8, 0.1, 0.9, 0.6], {}),
        "square units, dataset seed 11": lambda: (_square_units(11), [1.0, 0.2, 0.8, 0.1, 0.9, 0.6], {}),
    }
    print(f"# noether_sym from {os.path.dirname(ns.__file__)}, load at start {os.getloadavg()}", flush=True)

    def alarm(*_: object) -> None:
        raise TimeoutError

    signal.signal(signal.SIGALRM, alarm)
    times: dict[str, list] = {k: [] for k in cases}
    for r in range(repeats):
        for name, make in cases.items():
            loss, th, kw = make()
            t = time.perf_counter()
            signal.alarm(int(timeout))
            try:
                flow = ns.noether_flow(loss, th, **kw)
                sec = time.perf_counter() - t
                what = f"{flow.kind}, {flow._core.evaluations} drift evaluations, τ = {flow.tau:.4g}"
                if getattr(flow, "period", 0.0):
                    what += f", period {flow.period:.6g}"
            except TimeoutError:
                sec, what = None, f"> {timeout:.0f} s"
            finally:
                signal.alarm(0)
            times[name].append(sec)
            shown = f"{sec:.2f} s" if sec is not None else what
            print(f"  round {r + 1} {name}: {shown} ({what})", flush=True)
    print(f"# load at end {os.getloadavg()}")
    for name, ts in times.items():
        ok = [t for t in ts if t is not None]
        print(f"{name}: median {statistics.median(ok):.2f} s" if len(ok) == len(ts) else f"{name}: > {timeout:.0f} s")


def main() -> None:
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")
    if "--session5" in sys.argv:
        k = sys.argv.index("--repeats") + 1 if "--repeats" in sys.argv else None
        j = sys.argv.index("--timeout") + 1 if "--timeout" in sys.argv else None
        session5(int(sys.argv[k]) if k else 3, float(sys.argv[j]) if j else 120.0)
        return
    two_layer()
    if "--quick" not in sys.argv:
        four_six_four()


if __name__ == "__main__":
    main()
