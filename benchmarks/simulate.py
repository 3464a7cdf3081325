"""Benchmark: ns.simulate (numba and NumPy backends) against hand-written NumPy, PyTorch and two floors.

Four cases, each timed in one process, interleaved, medians over ``--repeats`` runs
(replica-steps per second; ratio = ours / baseline):

(a) rescaling: the model of THEORY §7.1, f = u (wᵀx), x ~ N(0, diag(1, 4, 1/4)),
    y = βᵀx + ε, σ² = 1/2; 1,000 replicas, batch 1, η = 0.01 (a symbolic Loss).
(b) boost: the user loss (x(t₁² − t₂²) − 3x − ε)², x ~ N(0, 1), ε ~ N(0, 1/2);
    500 replicas, batch 1, η = 0.005, from t = (2, 1).
(c) relu: ``ns.families.teacher_net([2, 16, 1], "relu", bias=True)`` (x ~ N(0, I),
    y = x₀ + ε); 500 replicas, batch 1, η = 0.01.
(d) 30-40-30: the catalog family ``matrix-factorization-30-40-30`` through its own data
    model (random symbols x ~ N(0, I), y = x + ε); 64 replicas, batch 16, η = 0.002.

Baselines, in the same process:

* hand-written NumPy: the same model's SGD written out with batched NumPy arrays (the
  closed-form gradient, or batched matmuls for the networks), data drawn from NumPy's
  Generator in blocks of steps (one call per block for all replicas, as one would write it);
* PyTorch CPU for (d): batched ``bmm`` forward, autograd backward, data from torch's
  generator (``--torch-threads``, default 1);
* the random-number floor: drawing the same normals alone with NumPy's Generator, in the
  same blocks;
* the arithmetic floor: the case's floating-point operations (counted per replica-step
  below) at the machine's measured matmul rate (float64 ``np.dot`` of 1000 x 1000 matrices).

Compile time: kernels are compiled into a fresh cache directory (``NOETHER_SYM_CACHE``,
a temporary directory unless ``--keep-cache``) and the first-call compile time of each is
reported, then the time to load the compiled kernel from that disk cache in a new process.

Peak memory: ``tracemalloc`` peak of one shorter run of each (allocations made through
Python's allocator: NumPy arrays; the compiled kernel's per-replica scratch is a few KB)
and the process's maximum resident set size at the end.

Run:  python benchmarks/simulate.py [--repeats 3] [--scale 1.0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

if __name__ == "__main__" and "--keep-cache" not in sys.argv:  # before noether_sym is imported: a fresh cache
    os.environ["NOETHER_SYM_CACHE"] = tempfile.mkdtemp(prefix="ns_bench_cache_")

import numpy as np
import sympy as sp
from sympy.stats import Normal

import noether_sym as ns

BETA = np.array([1.0, -0.5, 2.0])
K_BLOCK = 256  # steps of data drawn per call by the hand-written baselines


# ------------------------------------------------------------------------------------------
# the models
# ------------------------------------------------------------------------------------------


def rescaling_loss() -> ns.Loss:
    u = sp.Symbol("u")
    w = ns.vector("w", 3)
    xs = [Normal("x_0", 0, 1), Normal("x_1", 0, 2), Normal("x_2", 0, sp.Rational(1, 2))]
    eps = Normal("eps", 0, sp.sqrt(sp.Rational(1, 2)))
    y = sum(sp.nsimplify(b) * xi for b, xi in zip(BETA, xs)) + eps
    return ns.Loss((u * sum(w[i] * xs[i] for i in range(3)) - y) ** 2, [u, w], name="rescaling 7.1")


def boost_loss() -> ns.Loss:
    t1, t2 = sp.symbols("t1 t2")
    x, eps = Normal("x", 0, 1), Normal("eps", 0, sp.sqrt(sp.Rational(1, 2)))
    return ns.Loss((x * (t1**2 - t2**2) - 3 * x - eps) ** 2, [t1, t2], name="boost")


def relu_loss() -> ns.Loss:
    return ns.families.teacher_net([2, 16, 1], "relu", bias=True)


def mf_loss() -> ns.Loss:
    return ns.families.build("matrix-factorization-30-40-30")


def start(case: str, loss: ns.Loss) -> np.ndarray:
    if case == "rescaling":
        return np.concatenate([[2.0], BETA / 2])
    if case == "boost":
        return np.array([2.0, 1.0])
    if case == "relu":
        return np.random.default_rng(0).standard_normal(loss.n) * 0.5
    return ns.families.get("matrix-factorization-30-40-30").theta0(loss)


# ------------------------------------------------------------------------------------------
# hand-written NumPy SGD of each model
# ------------------------------------------------------------------------------------------


def numpy_rescaling(R: int, B: int, steps: int, seed: int, lr: float, th0: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stds = np.array([np.sqrt(0.5), 1.0, 2.0, 0.5])
    u = np.full(R, th0[0])
    w = np.tile(th0[1:], (R, 1))
    for k in range(steps):
        if k % K_BLOCK == 0:
            blk = rng.standard_normal((K_BLOCK, R, 4)) * stds
        z = blk[k % K_BLOCK]
        x = z[:, 1:]
        wx = np.einsum("ri,ri->r", w, x)
        r = u * wx - (x @ BETA + z[:, 0])
        gu = 2.0 * r * wx
        gw = (2.0 * r * u)[:, None] * x
        u = u - lr * gu
        w = w - lr * gw
    return np.column_stack([u, w])


def numpy_boost(R: int, B: int, steps: int, seed: int, lr: float, th0: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = np.sqrt(0.5)
    t1 = np.full(R, th0[0])
    t2 = np.full(R, th0[1])
    for k in range(steps):
        if k % K_BLOCK == 0:
            blk = rng.standard_normal((K_BLOCK, 2, R))
        x, e = blk[k % K_BLOCK]
        r2x = 2.0 * (x * (t1 * t1 - t2 * t2) - 3.0 * x - s * e) * x
        t1, t2 = t1 - lr * 2.0 * r2x * t1, t2 + lr * 2.0 * r2x * t2
    return np.column_stack([t1, t2])


def numpy_relu(R: int, B: int, steps: int, seed: int, lr: float, th0: np.ndarray) -> np.ndarray:
    """ReLU 2-16-1 with hidden biases, batch 1, per-replica weights as batched arrays."""
    rng = np.random.default_rng(seed)
    s = np.sqrt(0.5)
    W1 = np.tile(th0[:32].reshape(16, 2), (R, 1, 1))
    b1 = np.tile(th0[32:48], (R, 1))
    W2 = np.tile(th0[48:64], (R, 1))
    for k in range(steps):
        if k % K_BLOCK == 0:
            blk = rng.standard_normal((K_BLOCK, R, 3))
        z = blk[k % K_BLOCK]
        x = z[:, :2]
        y = x[:, 0] + s * z[:, 2]
        pre = np.einsum("rij,rj->ri", W1, x) + b1
        h = np.maximum(pre, 0.0)
        d = 2.0 * (np.einsum("ri,ri->r", W2, h) - y)
        gW2 = d[:, None] * h
        dh = (d[:, None] * W2) * (pre > 0)
        W1 -= lr * dh[:, :, None] * x[:, None, :]
        b1 -= lr * dh
        W2 -= lr * gW2
    return np.concatenate([W1.reshape(R, -1), b1, W2], axis=1)


def numpy_mf(R: int, B: int, steps: int, seed: int, lr: float, th0: np.ndarray) -> np.ndarray:
    """Linear 30-40-30, batched matmuls; x ~ N(0, I), y = x + ε, ε ~ N(0, I/2)."""
    d0, d1, d2 = 30, 40, 30
    rng = np.random.default_rng(seed)
    s = np.sqrt(0.5)
    A = np.tile(th0[: d1 * d0].reshape(d1, d0), (R, 1, 1))
    U = np.tile(th0[d1 * d0 :].reshape(d2, d1), (R, 1, 1))
    K = 16
    for k in range(steps):
        if k % K == 0:
            blk = rng.standard_normal((K, R, B, d0 + d2))
        z = blk[k % K]
        x = z[..., :d0]
        y = x + s * z[..., d0:]
        h = x @ A.transpose(0, 2, 1)
        f = h @ U.transpose(0, 2, 1)
        d = (2.0 / B) * (f - y)
        gU = d.transpose(0, 2, 1) @ h
        gA = (d @ U).transpose(0, 2, 1) @ x
        A -= lr * gA
        U -= lr * gU
    return np.concatenate([A.reshape(R, -1), U.reshape(R, -1)], axis=1)


def torch_mf(R: int, B: int, steps: int, seed: int, lr: float, th0: np.ndarray) -> np.ndarray:
    import torch

    d0, d1, d2 = 30, 40, 30
    g = torch.Generator().manual_seed(seed)
    A = torch.tensor(np.tile(th0[: d1 * d0].reshape(d1, d0), (R, 1, 1)), dtype=torch.float64, requires_grad=True)
    U = torch.tensor(np.tile(th0[d1 * d0 :].reshape(d2, d1), (R, 1, 1)), dtype=torch.float64, requires_grad=True)
    s = float(np.sqrt(0.5))
    for _ in range(steps):
        x = torch.randn(R, B, d0, generator=g, dtype=torch.float64)
        y = x + s * torch.randn(R, B, d2, generator=g, dtype=torch.float64)
        f = torch.bmm(torch.bmm(x, A.transpose(1, 2)), U.transpose(1, 2))
        loss = ((f - y) ** 2).sum(-1).mean(-1).sum()  # each replica: its batch-mean loss
        gA, gU = torch.autograd.grad(loss, (A, U))
        with torch.no_grad():
            A -= lr * gA
            U -= lr * gU
    return torch.cat([A.detach().reshape(R, -1), U.detach().reshape(R, -1)], 1).numpy()


#: case -> (loss builder, hand-written baseline, replicas, batch, steps, lr, normals per
#: sample, flops per replica-step (hand count: forward + backward + update))
CASES = {
    "rescaling": (rescaling_loss, numpy_rescaling, 1000, 1, 20_000, 0.01, 4, 40),
    "boost": (boost_loss, numpy_boost, 500, 1, 20_000, 0.005, 2, 25),
    "relu": (relu_loss, numpy_relu, 500, 1, 10_000, 0.01, 3, 6 * 64 + 2 * 64),
    "30-40-30": (mf_loss, numpy_mf, 64, 16, 2_000, 0.002, 60, 16 * 6 * 2400 + 16 * 60 + 2 * 2400),
}


def statistic(case: str, th: np.ndarray) -> float:
    """A model-level number both implementations should agree on (in distribution)."""
    if case == "rescaling":
        return float(np.mean(th[:, 0] ** 2))
    if case == "boost":
        return float(np.mean(th[:, 0] ** 2 - th[:, 1] ** 2))  # → 3 at the minimum manifold
    return float(np.mean(np.sum(th * th, axis=1)))


# ------------------------------------------------------------------------------------------
# floors
# ------------------------------------------------------------------------------------------


def rng_floor(R: int, B: int, steps: int, normals: int, seed: int) -> float:
    """Seconds to draw the run's normals alone with NumPy's Generator, in blocks of steps."""
    rng = np.random.default_rng(seed)
    K = max(1, min(K_BLOCK, (1 << 22) // max(1, R * B * normals)))
    t = time.perf_counter()
    for k in range(0, steps, K):
        rng.standard_normal((min(K, steps - k), R, B, normals))
    return time.perf_counter() - t


def matmul_rate(size: int = 1000, repeats: int = 5) -> float:
    """The machine's float64 matmul rate (flop/s), best of ``repeats``."""
    a = np.random.default_rng(0).standard_normal((size, size))
    b = a.T.copy()
    np.dot(a, b)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.dot(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * size**3 / best


# ------------------------------------------------------------------------------------------
# harness
# ------------------------------------------------------------------------------------------


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return time.perf_counter() - t, out


def peak_mb(fn, *a, **kw) -> float:
    tracemalloc.start()
    try:
        fn(*a, **kw)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def ours(loss, th0, R, B, steps, seed, lr, backend="numba"):
    res = ns.simulate(loss, th0, lr=lr, batch_size=B, steps=steps, replicas=R, seed=seed, backend=backend)
    assert res.settings["backend"] == backend, res.settings
    return res.theta


CACHE_PROBE = """
import time, noether_sym as ns, sys
sys.path.insert(0, {bench!r})
from simulate import CASES
t = time.perf_counter()
loss = CASES[{case!r}][0]()
built = time.perf_counter() - t
from noether_sym.simulate._fused import fused_kernel
k = fused_kernel(loss, None, "sample", None, None, CASES[{case!r}][3])
print(k.compile_seconds)
"""


def cache_load_seconds(case: str) -> float:
    """The kernel's first call in a new process that finds it in the disk cache."""
    code = CACHE_PROBE.format(bench=os.path.dirname(os.path.abspath(__file__)), case=case)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every case's steps")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1: on the shared "
                    "2-core machine under load, 2 threads spin and ran 17x slower, 545 s against 33 s)")
    ap.add_argument("--with-numpy-backend", action="store_true", help="also time ns.simulate(backend='numpy')")
    ap.add_argument("--keep-cache", action="store_true", help="use the normal kernel cache (no compile timing)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    load0 = os.getloadavg()

    torch_threads = []
    if not args.no_torch:
        try:
            import torch

            torch_threads = [args.torch_threads]
            torch_version = torch.__version__
        except ImportError:
            torch_version = None
    else:
        torch_version = None

    setup: dict[str, dict[str, float]] = {}
    models = {}
    for c in cases:
        build, _, R, B, steps, lr, _, _ = CASES[c]
        t, loss = timed(build)
        th0 = start(c, loss)
        tc, _ = timed(ours, loss, th0, 2, B, 2, args.seed, lr)  # compile (fresh cache) + tiny run
        kernel = [v for k, v in loss._cache.items() if isinstance(k, tuple) and k and k[0] == "fused_kernel"][0]
        setup[c] = {"build_loss_s": t, "first_call_s": tc, "compile_s": kernel.compile_seconds}
        ours(loss, th0, 2, B, 2, args.seed, lr, backend="numpy")
        models[c] = (loss, th0)
        print(f"{c}: compiled in {kernel.compile_seconds:.1f} s", file=sys.stderr, flush=True)
    for c in cases:
        setup[c]["cache_load_s"] = cache_load_seconds(c)

    rate = matmul_rate()
    times: dict[str, dict[str, list[float]]] = {c: {} for c in cases}
    stats: dict[str, dict[str, float]] = {c: {} for c in cases}
    for rep in range(args.repeats):
        for c in cases:
            _, base, R, B, steps, lr, normals, _ = CASES[c]
            steps = max(1, int(steps * args.scale))
            loss, th0 = models[c]
            runs = {"ours": lambda: ours(loss, th0, R, B, steps, args.seed + rep, lr),
                    "numpy": lambda: base(R, B, steps, args.seed + rep, lr, th0),
                    "rng_floor": lambda: rng_floor(R, B, steps, normals, args.seed + rep)}
            if args.with_numpy_backend:
                runs["ours_numpy_backend"] = lambda: ours(loss, th0, R, B, steps, args.seed + rep, lr, "numpy")
            if c == "30-40-30":
                for nt in torch_threads:
                    def run_torch(nt=nt):
                        import torch

                        torch.set_num_threads(nt)
                        return torch_mf(R, B, steps, args.seed + rep, lr, th0)
                    runs[f"torch_{nt}t"] = run_torch
            for name, fn in runs.items():
                dt, out = timed(fn)
                times[c].setdefault(name, []).append(dt)
                if isinstance(out, np.ndarray):
                    stats[c][name] = statistic(c, out)
            print(f"repeat {rep + 1} {c}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times[c].items()),
                  file=sys.stderr, flush=True)

    summary = {
        "benchmark": "simulate", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                    "processor": platform.processor(), "torch": torch_version,
                    "loadavg_start": load0, "loadavg_end": os.getloadavg()},
        "matmul_gflops": rate / 1e9, "repeats": args.repeats, "cases": {},
    }
    for c in cases:
        _, base, R, B, steps, lr, normals, flops = CASES[c]
        steps = max(1, int(steps * args.scale))
        loss, th0 = models[c]
        med = {k: statistics.median(v) for k, v in times[c].items()}
        work = R * steps
        torch_keys = [k for k in med if k.startswith("torch")]
        best_torch = min((med[k] for k in torch_keys), default=None)
        flop_floor = flops * work / rate
        short = max(1, steps // 10)
        entry = {
            "replicas": R, "batch": B, "steps": steps, "lr": lr,
            "seconds_median": med, "seconds_all": times[c],
            "replica_steps_per_s": {k: work / v for k, v in med.items() if k != "rng_floor"},
            "ratio_vs_numpy": med["numpy"] / med["ours"],
            "ratio_vs_torch": None if best_torch is None else best_torch / med["ours"],
            "rng_floor_s": med["rng_floor"], "ours_over_rng_floor": med["ours"] / med["rng_floor"],
            "flop_floor_s": flop_floor, "ours_over_flop_floor": med["ours"] / flop_floor,
            "statistic (last repeat)": stats[c],
            "peak_MB": {"ours": peak_mb(ours, loss, th0, R, B, short, args.seed, lr),
                        "numpy": peak_mb(base, R, B, short, args.seed, lr, th0)},
            "setup": setup[c],
        }
        if c == "30-40-30" and torch_keys:
            import torch

            torch.set_num_threads(min(torch_threads, key=lambda nt: med[f"torch_{nt}t"]))
            entry["peak_MB"]["torch"] = peak_mb(torch_mf, R, B, short, args.seed, lr, th0)
        summary["cases"][c] = entry
    summary["process_max_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
