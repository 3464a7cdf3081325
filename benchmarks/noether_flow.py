"""Speed and results of ``noether_flow`` (E22): the 2-2-2 net of THEORY §7.2's caveat and a 4-6-4
linear net, wall time per call and the process's peak resident memory (ru_maxrss) after it.

Usage: python benchmarks/noether_flow.py [--quick]   (--quick skips the 4-6-4 net)

Figures: benchmarks/RESULTS.md, section "Noether flow (E22)".
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


def main() -> None:
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")
    two_layer()
    if "--quick" not in sys.argv:
        four_six_four()


if __name__ == "__main__":
    main()
