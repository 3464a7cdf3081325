"""Benchmark: deterministic cone moments of ReLU networks on Gaussian data (data/_piecewise.py).

Claims: the deterministic Σ(θ) (with E[ℓ], ∇L, M and an error estimate) of a 2-8-1 ReLU
network with biases on x ~ N(0, I₂), y = x₁ − x₂/2 + ε, ε ~ N(0, 1/4), takes ≤ 5 s; the
two-unit network f = v₁relu(w₁x+b₁) + v₂relu(w₂x+b₂), x ~ N(0, 1), y = relu(x) + ε,
ε ~ N(0, 1/4) gets the same noise-equilibrium numbers for seeds 0, 1, 2 (no Monte Carlo).

Run:  python benchmarks/relu_moments.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import sympy as sp
from sympy.stats import Normal

import noether_sym as ns


def relu_2_8_1() -> ns.Loss:
    net = ns.families.relu_net([2, 8, 1], bias=True)
    return ns.gaussian_linear_teacher(net, net.data_symbols[:2], net.data_symbols[2:], [[1, -0.5]], noise_std=0.5)


def two_unit() -> ns.Loss:
    w1, b1, v1, w2, b2, v2 = sp.symbols("w1 b1 v1 w2 b2 v2")
    x = Normal("x", 0, 1)
    eps = Normal("eps", 0, sp.Rational(1, 2))
    f = v1 * sp.Max(0, w1 * x + b1) + v2 * sp.Max(0, w2 * x + b2)
    return ns.Loss((f - sp.Max(0, x) - eps) ** 2, [w1, b1, v1, w2, b2, v2])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"date: {time.strftime('%Y-%m-%d')}")

    loss = relu_2_8_1()
    th = np.random.default_rng(0).normal(size=loss.n) * 0.7
    ns.cone_moments(loss, th)  # compile the loss and analyse its pieces once
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        cm = ns.cone_moments(loss, th)
        times.append(time.perf_counter() - t0)
    rel = cm.error["covariance"].max() / np.abs(cm.covariance).max()
    print(f"2-8-1 ReLU + biases (n = {loss.n}): median {statistics.median(times):.2f} s over {args.repeats} "
          f"(rank {cm.rank}, {cm.n_nodes:,} nodes, error estimate of Σ {rel:.1e} relative)")
    t0 = time.perf_counter()
    H, err = ns.cone_hessian(loss, th)
    print(f"2-8-1 population Hessian: {time.perf_counter() - t0:.2f} s (error estimate {err.max():.1e})")

    loss = two_unit()
    theta = [1.5, 0.2, 0.5, -0.3, 0.1, 0.8]
    t0 = time.perf_counter()
    cm = ns.cone_moments(loss, theta)
    print(f"two-unit net, 1-D input: {time.perf_counter() - t0:.3f} s, rank {cm.rank}, "
          f"error estimate of Σ {cm.error['covariance'].max():.1e}")
    sym = ns.find_symmetries(loss)
    for s in (0, 1, 2):
        out = []
        for A in sym.generators:
            eq = ns.noise_equilibrium(loss, A, theta=theta, batch_size=1, seed=s)
            out.append(f"{eq.kind} λ* = {eq.lam!r}")
        print(f"seed {s}: " + "; ".join(out))


if __name__ == "__main__":
    main()
