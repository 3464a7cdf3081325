"""Benchmark: ns.simulate against hand-written batched NumPy SGD for the same model.

Two cases, each timed against a baseline run in the same process, interleaved, medians over
``--repeats`` runs (replica-steps per second, ratio = ours / baseline, ≥ 0.8 is the target):

(a) the rescaling model of THEORY §7.1, f = u (wᵀx), d = 3, x ~ N(0, diag(1, 4, 1/4)),
    y = βᵀx + ε, σ² = 1/2; 1,000 replicas, batch 1, 20,000 steps, η = 0.01, from u = 2,
    w = β/2. The loss is the symbolic Loss (random symbols), simulated through the compiled
    gradient. Baseline: the closed-form gradient in NumPy.
(b) the two-layer linear network 30-40-30 of the paper's figure 2 (x ~ N(0, I), y = x + ε,
    ε ~ N(0, 0.5² I)); 64 replicas, batch 16, η = 0.01. ``ns.families.linear_net`` with its
    matrix-form gradient (``loss.fast_grad``). Baselines: batched NumPy matmuls, and
    PyTorch CPU (autograd on batched weights, if torch is installed).

Fairness: the NumPy baselines draw exactly the same random numbers as ns.simulate -- one
``SeedSequence(seed).spawn(replicas)`` stream per replica, blocks of K steps per replica
(K = ``block_steps``), the same draw calls (for (a) one ``rng.normal`` per data symbol, as
``make_sampler`` does; for (b) one ``standard_normal`` per block) -- so they see the same
data; the final parameters are compared. PyTorch draws from its own generator.

Peak memory: ``tracemalloc`` peak of one shorter run of each (allocations made by NumPy),
and the process's maximum resident set size at the end.

Run:  python benchmarks/simulate.py [--repeats 3] [--steps-a 20000] [--steps-b 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
import tracemalloc

import numpy as np
import sympy as sp
from sympy.stats import Normal

import noether_sym as ns
from noether_sym.simulate._run import block_steps, simulate

BETA = np.array([1.0, -0.5, 2.0])
STD_A = {"eps": np.sqrt(0.5), "x_0": 1.0, "x_1": 2.0, "x_2": 0.5}


# ------------------------------------------------------------------------------------------
# (a) rescaling model
# ------------------------------------------------------------------------------------------


def rescaling_loss() -> ns.Loss:
    u = sp.Symbol("u")
    w = ns.vector("w", 3)
    xs = [Normal("x_0", 0, 1), Normal("x_1", 0, 2), Normal("x_2", 0, sp.Rational(1, 2))]
    eps = Normal("eps", 0, sp.sqrt(sp.Rational(1, 2)))
    y = sum(sp.nsimplify(b) * xi for b, xi in zip(BETA, xs)) + eps
    return ns.Loss((u * sum(w[i] * xs[i] for i in range(3)) - y) ** 2, [u, w], name="rescaling 7.1")


def theta0_a() -> np.ndarray:
    return np.concatenate([[2.0], BETA / 2])


def ours_a(loss: ns.Loss, R: int, steps: int, seed: int) -> np.ndarray:
    return simulate(loss, theta0_a(), lr=0.01, batch_size=1, steps=steps, replicas=R, seed=seed).theta


def baseline_a(R: int, steps: int, seed: int, lr: float = 0.01) -> np.ndarray:
    """Hand-written batched SGD for ℓ = (u wᵀx − βᵀx − ε)², per-replica streams and blocks."""
    K = block_steps(1, 4)
    gens = [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(R)]
    stds = [STD_A[k] for k in ("eps", "x_0", "x_1", "x_2")]  # the data columns, in loss.x order
    u = np.full(R, 2.0)
    w = np.tile(BETA / 2, (R, 1))
    blk = np.empty((K, R, 4))
    for k in range(steps):
        if k % K == 0:
            for i, g in enumerate(gens):
                for j, s in enumerate(stds):
                    blk[:, i, j] = g.normal(0.0, s, size=(K, 1))[:, 0]
        z = blk[k % K]
        x = z[:, 1:]
        wx = np.einsum("ri,ri->r", w, x)
        r = u * wx - (x @ BETA + z[:, 0])
        gu = 2.0 * r * wx
        gw = (2.0 * r * u)[:, None] * x
        u = u - lr * gu
        w = w - lr * gw
    return np.column_stack([u, w])


# ------------------------------------------------------------------------------------------
# (b) two-layer linear network 30-40-30
# ------------------------------------------------------------------------------------------

DIMS_B = (30, 40, 30)
NOISE_B = 0.5


class Teacher:
    """x ~ N(0, I), y = x + σ ε: rows (x_0.., y_0..) of the catalog linear network."""

    dataset_size = None

    def __init__(self, d: int, noise: float) -> None:
        self.k, self.d, self.noise = d, 2 * d, noise

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        z = rng.standard_normal(tuple(shape) + (self.d,))
        z[..., self.k :] *= self.noise
        z[..., self.k :] += z[..., : self.k]
        return z

    def take(self, idx):  # pragma: no cover - not a dataset
        raise NotImplementedError


def theta0_b(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d0, d1, d2 = DIMS_B
    return rng.standard_normal((d1, d0)) / np.sqrt(d0), rng.standard_normal((d2, d1)) / np.sqrt(d1)


def ours_b(net: ns.Loss, R: int, B: int, steps: int, seed: int) -> np.ndarray:
    W1, W2 = theta0_b()
    th0 = np.concatenate([W1.ravel(), W2.ravel()])
    return simulate(net, th0, lr=0.01, batch_size=B, steps=steps, replicas=R, seed=seed,
                    sampler=Teacher(DIMS_B[0], NOISE_B)).theta


def baseline_b(R: int, B: int, steps: int, seed: int, lr: float = 0.01) -> np.ndarray:
    """Hand-written batched SGD with matmuls, per-replica streams and blocks."""
    d0, d1, d2 = DIMS_B
    K = block_steps(B, d0 + d2)
    gens = [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(R)]
    W1, W2 = theta0_b()
    A = np.tile(W1, (R, 1, 1))
    U = np.tile(W2, (R, 1, 1))
    blk = np.empty((K, R, B, d0 + d2))
    for k in range(steps):
        if k % K == 0:
            for i, g in enumerate(gens):
                z = g.standard_normal((K, B, d0 + d2))
                z[..., d0:] *= NOISE_B
                z[..., d0:] += z[..., :d0]
                blk[:, i] = z
        x = blk[k % K, :, :, :d0]
        y = blk[k % K, :, :, d0:]
        h = x @ A.transpose(0, 2, 1)
        f = h @ U.transpose(0, 2, 1)
        d = 2.0 * (f - y)
        gU = d.transpose(0, 2, 1) @ h / B
        gA = (d @ U).transpose(0, 2, 1) @ x / B
        A = A - lr * gA
        U = U - lr * gU
    return np.concatenate([A.reshape(R, -1), U.reshape(R, -1)], axis=1)


def torch_b(R: int, B: int, steps: int, seed: int, lr: float = 0.01):
    """PyTorch CPU: autograd on batched weights (R, ., .); data from torch's generator."""
    import torch  # noqa: PLC0415

    d0, d1, d2 = DIMS_B
    W1, W2 = theta0_b()
    g = torch.Generator().manual_seed(seed)
    A = torch.tensor(np.tile(W1, (R, 1, 1)), dtype=torch.float64, requires_grad=True)
    U = torch.tensor(np.tile(W2, (R, 1, 1)), dtype=torch.float64, requires_grad=True)
    for _ in range(steps):
        x = torch.randn(R, B, d0, generator=g, dtype=torch.float64)
        y = x + NOISE_B * torch.randn(R, B, d2, generator=g, dtype=torch.float64)
        f = torch.bmm(torch.bmm(x, A.transpose(1, 2)), U.transpose(1, 2))
        loss = ((f - y) ** 2).sum(-1).mean(-1).sum()  # each replica: its batch-mean loss
        gA, gU = torch.autograd.grad(loss, (A, U))
        with torch.no_grad():
            A -= lr * gA
            U -= lr * gU
    return torch.cat([A.detach().reshape(R, -1), U.detach().reshape(R, -1)], 1).numpy()


# ------------------------------------------------------------------------------------------
# harness
# ------------------------------------------------------------------------------------------


def timed(fn, *a):
    t = time.perf_counter()
    out = fn(*a)
    return time.perf_counter() - t, out


def peak_bytes(fn, *a) -> int:
    tracemalloc.start()
    try:
        fn(*a)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps-a", type=int, default=20_000)
    ap.add_argument("--replicas-a", type=int, default=1000)
    ap.add_argument("--steps-b", type=int, default=2000)
    ap.add_argument("--replicas-b", type=int, default=64)
    ap.add_argument("--batch-b", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1: on a shared "
                    "2-core machine more threads contend and run many times slower)")
    ap.add_argument("--json", default=None, help="also write the summary to this file")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    loss_a = rescaling_loss()
    net = ns.families.linear_net(list(DIMS_B))
    setup = time.perf_counter() - t0
    # warm-up (compilation, caches), not timed
    ours_a(loss_a, 4, 10, args.seed)
    ours_b(net, 2, args.batch_b, 10, args.seed)
    try:
        if args.no_torch:
            raise ImportError
        import torch  # noqa: PLC0415

        torch.set_num_threads(args.torch_threads)
        torch_b(2, args.batch_b, 10, args.seed)
        torch_info = {"version": torch.__version__, "threads": torch.get_num_threads()}
    except ImportError:
        torch_info = None

    Ra, Sa = args.replicas_a, args.steps_a
    Rb, Bb, Sb = args.replicas_b, args.batch_b, args.steps_b
    times: dict[str, list[float]] = {"a_ours": [], "a_numpy": [], "b_ours": [], "b_numpy": [], "b_torch": []}
    checks: dict[str, float] = {}
    for rep in range(args.repeats):
        dt, th_o = timed(ours_a, loss_a, Ra, Sa, args.seed)
        times["a_ours"].append(dt)
        dt, th_b = timed(baseline_a, Ra, Sa, args.seed)
        times["a_numpy"].append(dt)
        checks["a_max_abs_diff_theta"] = float(np.max(np.abs(th_o - th_b)))
        checks["a_mean_u2_ours"] = float(np.mean(th_o[:, 0] ** 2))
        dt, tb_o = timed(ours_b, net, Rb, Bb, Sb, args.seed)
        times["b_ours"].append(dt)
        dt, tb_b = timed(baseline_b, Rb, Bb, Sb, args.seed)
        times["b_numpy"].append(dt)
        checks["b_max_abs_diff_theta"] = float(np.max(np.abs(tb_o - tb_b)))
        if torch_info is not None:
            dt, _ = timed(torch_b, Rb, Bb, Sb, args.seed)
            times["b_torch"].append(dt)
        print(f"repeat {rep + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items() if v),
              file=sys.stderr, flush=True)

    med = {k: statistics.median(v) for k, v in times.items() if v}
    rate = {
        "a_ours": Ra * Sa / med["a_ours"],
        "a_numpy": Ra * Sa / med["a_numpy"],
        "b_ours": Rb * Sb / med["b_ours"],
        "b_numpy": Rb * Sb / med["b_numpy"],
    }
    if "b_torch" in med:
        rate["b_torch"] = Rb * Sb / med["b_torch"]
    short_a, short_b = max(1, Sa // 10), max(1, Sb // 10)
    memory = {
        "a_ours_tracemalloc_peak_MB": peak_bytes(ours_a, loss_a, Ra, short_a, args.seed) / 2**20,
        "a_numpy_tracemalloc_peak_MB": peak_bytes(baseline_a, Ra, short_a, args.seed) / 2**20,
        "b_ours_tracemalloc_peak_MB": peak_bytes(ours_b, net, Rb, Bb, short_b, args.seed) / 2**20,
        "b_numpy_tracemalloc_peak_MB": peak_bytes(baseline_b, Rb, Bb, short_b, args.seed) / 2**20,
        "process_max_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    summary = {
        "benchmark": "simulate",
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "processor": platform.processor(),
                    "torch": torch_info},
        "setup_seconds": setup,
        "repeats": args.repeats,
        "a": {
            "case": "rescaling u(w.x), d=3 (THEORY 7.1)", "replicas": Ra, "batch": 1, "steps": Sa,
            "seconds_median": {"ours": med["a_ours"], "numpy": med["a_numpy"]},
            "replica_steps_per_s": {"ours": rate["a_ours"], "numpy": rate["a_numpy"]},
            "ratio_ours_over_numpy": rate["a_ours"] / rate["a_numpy"],
            "seconds_all": {"ours": times["a_ours"], "numpy": times["a_numpy"]},
        },
        "b": {
            "case": "linear net 30-40-30 (paper fig. 2)", "replicas": Rb, "batch": Bb, "steps": Sb,
            "seconds_median": {k[2:]: med[k] for k in ("b_ours", "b_numpy", "b_torch") if k in med},
            "replica_steps_per_s": {k[2:]: rate[k] for k in ("b_ours", "b_numpy", "b_torch") if k in rate},
            "ratio_ours_over_numpy": rate["b_ours"] / rate["b_numpy"],
            "ratio_ours_over_torch": rate["b_ours"] / rate["b_torch"] if "b_torch" in rate else None,
            "seconds_all": {k[2:]: times[k] for k in ("b_ours", "b_numpy", "b_torch") if times[k]},
        },
        "checks": checks,
        "memory": memory,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
