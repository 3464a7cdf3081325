"""Benchmark: deterministic cone moments of ReLU networks on Gaussian data (data/_piecewise.py).

Claims: the deterministic Σ(θ) (with E[ℓ], ∇L, M and an error estimate) of a 2-8-1 ReLU
network with biases on x ~ N(0, I₂), y = x₁ − x₂/2 + ε, ε ~ N(0, 1/4), takes ≤ 5 s; the
two-unit network f = v₁relu(w₁x+b₁) + v₂relu(w₂x+b₂), x ~ N(0, 1), y = relu(x) + ε,
ε ~ N(0, 1/4) gets the same noise-equilibrium numbers for seeds 0, 1, 2 (no Monte Carlo).

With ``--flow``: Φ(θ₀) of the two-unit net from θ₀ (gradient flow on the deterministic cone
∇L, LSODA with the differenced Hessian as Jacobian) against the former Monte Carlo flow
(4,000 fixed draws, stopped at its standard error), both timed in this process, with the
exact ‖∇L‖ at each end point; and the Noether flow (E22) of THEORY §10's two units without
biases on the cone population against the Monte Carlo data nodes (1,024 draws x 2
reflections) it used before (the baseline forced by switching the cone route off).

Run:  python benchmarks/relu_moments.py [--repeats 3] [--flow]
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
    ap.add_argument("--flow", action="store_true", help="time Φ(θ₀) and the Noether flow (cones vs Monte Carlo)")
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
    Hb = ns.cone_derivatives(loss).hessian(th)
    t_b = time.perf_counter() - t0
    t0 = time.perf_counter()
    H, err = ns.cone_hessian(loss, th)
    t_h = time.perf_counter() - t0
    print(f"2-8-1 population Hessian: batched ConeDerivatives.hessian {t_b:.2f} s vs cone_hessian {t_h:.2f} s "
          f"(ratio {t_b / t_h:.2f}); max difference {np.abs(Hb - H).max():.1e}, cone_hessian's error estimate "
          f"{err.max():.1e}")

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
    if args.flow:
        flows()


def flows() -> None:
    from noether_sym.theory import _gradient_flow, _population

    theta = np.array([1.5, 0.2, 0.5, -0.3, 0.1, 0.8])
    loss = two_unit()
    exact_grad = ns.cone_derivatives(loss).grad
    t0 = time.perf_counter()
    phi = ns.gradient_flow_limit(loss, theta)
    t_cone = time.perf_counter() - t0
    print(f"Φ(θ₀), cone ∇L: {t_cone:.1f} s, flow time {phi.time:.3g}, ‖∇L(Φ)‖ = {phi.grad_norm:.2g}, "
          f"Φ = {np.round(phi.theta, 6).tolist()}")
    loss_mc = two_unit()
    saved = _gradient_flow._cone_route
    _gradient_flow._cone_route = lambda *a, **k: None  # baseline: the former Monte Carlo flow
    try:
        t0 = time.perf_counter()
        mc = ns.gradient_flow_limit(loss_mc, theta)
        t_mc = time.perf_counter() - t0
    finally:
        _gradient_flow._cone_route = saved
    g_mc = float(np.linalg.norm(exact_grad(mc.theta[None, :])[0]))
    print(f"Φ(θ₀), Monte Carlo ∇L (4,000 draws): {t_mc:.1f} s, stopped at its s.e. {mc.tol:.2g}; exact ‖∇L‖ there "
          f"= {g_mc:.2g}, |Φ_mc − Φ| = {np.linalg.norm(mc.theta - phi.theta):.3g}")

    w1, v1, w2, v2 = sp.symbols("w1 v1 w2 v2")
    x, e = Normal("x", 0, 1), Normal("e", 0, sp.Rational(1, 2))
    relu = lambda z: sp.Max(0, z)
    make = lambda: ns.Loss((v1 * relu(w1 * x) + v2 * relu(w2 * x) - relu(x) - e) ** 2, [w1, v1, w2, v2])
    t0 = time.perf_counter()
    fc = ns.noether_flow(make(), [1, 0.1, 0.5, 0.3])
    t_fc = time.perf_counter() - t0
    saved = _population._cone_route
    _population._cone_route = lambda *a, **k: None
    try:
        t0 = time.perf_counter()
        fm = ns.noether_flow(make(), [1, 0.1, 0.5, 0.3], n_samples=1024)
        t_fm = time.perf_counter() - t0
    finally:
        _population._cone_route = saved
    print(f"noether_flow §10, cone population: {t_fc:.1f} s, θ = {np.round(fc.theta, 5).tolist()} ({fc.kind})")
    print(f"noether_flow §10, Monte Carlo nodes (1,024 x 2): {t_fm:.1f} s, θ = {np.round(fm.theta, 5).tolist()} "
          f"({fm.kind}); ratio cone / MC time {t_fc / t_fm:.2f}")


if __name__ == "__main__":
    main()
