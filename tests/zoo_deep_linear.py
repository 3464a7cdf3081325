"""The three-layer linear net f = W3 W2 W1 x (widths 2-2-2-2) with anisotropic data, and its
independent, hand-written SGD (shared by tests/test_zoo.py, benchmarks/three_layer.py and
benchmarks/zoo_figures.py).

x ~ N(0, diag(1, 4)), y = V x + ε, ε ~ N(0, diag(1/4, 1)), V = [[1, 1/2], [−1/2, 1]]; the start
is on the minimum manifold (W3 W2 W1 = V) but off balance. The invariants compared are the
eigenvalues of the two balance matrices Q1 = W1W1ᵀ − W2ᵀW2, Q2 = W2W2ᵀ − W3ᵀW3 (rotations
of the hidden frames conjugate them) and the turning rates of their eigenvectors.

The reference SGD is a numba kernel written here, independent of the package (not
``ns.simulate``, not its Philox streams): batch-1 SGD on ℓ = ‖W3W2W1x − y‖², one replica per
parallel iteration, each with its own xoshiro256** stream seeded by splitmix64 and Gaussian
draws by Marsaglia's polar method. Every replica runs to τ = η²k = ``tau_end`` at its own η
and records, in bins of τ, the sums of its observations (eig Q1, eig Q2 and the unwrapped
eigenvector angles, observed every ~0.05/η steps). The window averages over τ ≥ ``tau_burn``
and the η → 0 extrapolation (weighted least-squares polynomial in η, with its χ²) are done
afterwards in NumPy. ``e22_drift`` is (E22) computed by hand for this net (exact H and Σ on the
manifold), to check ``ns.noether_flow``'s drift independently of SGD.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

import noether_sym as ns

HALF = sp.Rational(1, 2)
V = np.array([[1.0, 0.5], [-0.5, 1.0]])
SX = np.array([1.0, 2.0])  # input standard deviations
SE = np.array([0.5, 1.0])  # label-noise standard deviations
W1_0 = np.array([[1.2, 0.3], [-0.2, 0.8]])
W2_0 = np.array([[0.9, -0.4], [0.3, 1.1]])
THETA0 = np.concatenate([W1_0.ravel(), W2_0.ravel(), (V @ np.linalg.inv(W2_0 @ W1_0)).ravel()])
#: the CI test's setting (tests/test_zoo.py); benchmarks/three_layer.py runs longer and smaller
LRS = (0.004, 0.003, 0.002, 0.0015, 0.001)
PER_GROUP = 128
TAU_BURN, TAU_END = 2.0, 3.5
BIN = 0.05  # width of the τ bins the kernel records
NAMES = ("eig Q1 low", "eig Q1 high", "eig Q2 low", "eig Q2 high", "frame 1 rate", "frame 2 rate")

_GOLD = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_KERNEL = []


def loss() -> ns.Loss:
    net = ns.families.linear_net([2, 2, 2, 2])
    return ns.gaussian_linear_teacher(net, net.data_symbols[:2], net.data_symbols[2:],
                                      [[1, HALF], [-HALF, 1]], input_std=[1, 2], noise_std=[HALF, 1])


def invariants(theta: np.ndarray) -> np.ndarray:
    """(eig Q1, eig Q2), ascending, from θ in the [W1, W2, W3] (row-major) layout."""
    W1, W2, W3 = (np.asarray(theta, dtype=float)[4 * i: 4 * i + 4].reshape(2, 2) for i in range(3))
    return np.concatenate([np.linalg.eigvalsh(W1 @ W1.T - W2.T @ W2), np.linalg.eigvalsh(W2 @ W2.T - W3.T @ W3)])


def layer_rates(J: np.ndarray) -> tuple[float, float]:
    """The turning rates of the two hidden frames in an antisymmetric generator J on θ: the
    rotation of hidden layer 1 acts on W1's rows (θ indices 0-3, as K1 ⊗ I), that of layer 2
    on W3's columns (indices 8-11, as I ⊗ K2)."""
    return abs(float(J[0, 2])), abs(float(J[8, 9]))


def step(theta: np.ndarray, x: np.ndarray, y: np.ndarray, lr: float) -> np.ndarray:
    """One SGD step on ℓ = ‖W3W2W1x − y‖² in plain NumPy matrix form (the kernel's check)."""
    W1, W2, W3 = (np.asarray(theta, dtype=float)[4 * i: 4 * i + 4].reshape(2, 2) for i in range(3))
    h1 = W1 @ x
    h2 = W2 @ h1
    r = 2 * (W3 @ h2 - y)
    return np.concatenate([(W1 - lr * np.outer(W2.T @ W3.T @ r, x)).ravel(),
                           (W2 - lr * np.outer(W3.T @ r, h1)).ravel(), (W3 - lr * np.outer(r, h2)).ravel()])


def _build():
    """Compile the kernel (numba; once per process)."""
    import numba as nb

    U = np.uint64
    TWO_PI = 6.283185307179586

    @nb.njit(inline="always")
    def rotl(v, k):
        return (v << U(k)) | (v >> U(64 - k))

    @nb.njit(inline="always")
    def splitmix(v):
        z = (v ^ (v >> U(30))) * _MIX1
        z = (z ^ (z >> U(27))) * _MIX2
        return z ^ (z >> U(31))

    @nb.njit(inline="always")
    def uniform(s):  # xoshiro256**, 53-bit double in [0, 1)
        out = rotl(s[1] * U(5), 7) * U(9)
        t = s[1] << U(17)
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return (out >> U(11)) * (1.0 / 9007199254740992.0)

    @nb.njit(inline="always")
    def normal_pair(s):  # Marsaglia's polar method
        while True:
            a = 2.0 * uniform(s) - 1.0
            b = 2.0 * uniform(s) - 1.0
            q = a * a + b * b
            if 0.0 < q < 1.0:
                f = np.sqrt(-2.0 * np.log(q) / q)
                return a * f, b * f

    @nb.njit(inline="always")
    def eig2(a, b, c):  # eigenvalues of [[a, b], [b, c]] and the doubled angle of the top eigenvector
        m, d = 0.5 * (a + c), np.sqrt(0.25 * (a - c) ** 2 + b * b)
        return m - d, m + d, np.arctan2(2.0 * b, a - c)

    @nb.njit(inline="always")
    def unwrap(p, prev):
        d = p - prev
        return d - TWO_PI * np.floor(d / TWO_PI + 0.5)

    @nb.njit(inline="always")
    def update(w, xa, xb, ya, yb, two_lr):  # one step of ℓ = ‖W3W2W1x − y‖², in place
        h1a, h1b = w[0] * xa + w[1] * xb, w[2] * xa + w[3] * xb
        h2a, h2b = w[4] * h1a + w[5] * h1b, w[6] * h1a + w[7] * h1b
        ra = two_lr * (w[8] * h2a + w[9] * h2b - ya)  # η ∂ℓ/∂f
        rb = two_lr * (w[10] * h2a + w[11] * h2b - yb)
        b2a, b2b = w[8] * ra + w[10] * rb, w[9] * ra + w[11] * rb  # η W3ᵀ ∂ℓ/∂f
        b1a, b1b = w[4] * b2a + w[6] * b2b, w[5] * b2a + w[7] * b2b  # η W2ᵀW3ᵀ ∂ℓ/∂f
        w[8] -= ra * h2a
        w[9] -= ra * h2b
        w[10] -= rb * h2a
        w[11] -= rb * h2b
        w[4] -= b2a * h1a
        w[5] -= b2a * h1b
        w[6] -= b2b * h1a
        w[7] -= b2b * h1b
        w[0] -= b1a * xa
        w[1] -= b1a * xb
        w[2] -= b1b * xa
        w[3] -= b1b * xb
        return ra, rb

    @nb.njit
    def one_step(w, x, y, lr):
        update(w, x[0], x[1], y[0], y[1], 2.0 * lr)

    @nb.njit
    def draws(n, seed):
        s = np.empty(4, np.uint64)
        v = U(seed) * _GOLD
        for i in range(4):
            v = v + _GOLD
            s[i] = splitmix(v)
        out = np.empty(2 * n)
        for i in range(n):
            out[2 * i], out[2 * i + 1] = normal_pair(s)
        return out

    @nb.njit(parallel=True)
    def run(theta0, lr, steps, every, seed, Vm, sx, se, bw, sums, cnt, div):
        nbins = cnt.shape[1]
        for r in nb.prange(lr.shape[0]):
            s = np.empty(4, np.uint64)
            v = U(seed) * _GOLD + U(r) * _MIX1
            for i in range(4):
                v = v + _GOLD
                s[i] = splitmix(v)
            w = theta0.copy()  # W1 = w[0:4], W2 = w[4:8], W3 = w[8:12], row-major
            two_lr, lr2, m = 2.0 * lr[r], lr[r] * lr[r], every[r]
            p1o = p2o = c1 = c2 = 0.0
            first = True
            for k in range(1, steps[r] + 1):
                n1, n2 = normal_pair(s)
                xa, xb = n1 * sx[0], n2 * sx[1]
                n1, n2 = normal_pair(s)
                ya = Vm[0, 0] * xa + Vm[0, 1] * xb + n1 * se[0]
                yb = Vm[1, 0] * xa + Vm[1, 1] * xb + n2 * se[1]
                ra, rb = update(w, xa, xb, ya, yb, two_lr)
                if k % m != 0:
                    continue
                if not abs(ra) + abs(rb) < 1e6:
                    div[r] = True
                    break
                l1, g1, p1 = eig2(w[0] * w[0] + w[1] * w[1] - w[4] * w[4] - w[6] * w[6],
                                  w[0] * w[2] + w[1] * w[3] - w[4] * w[5] - w[6] * w[7],
                                  w[2] * w[2] + w[3] * w[3] - w[5] * w[5] - w[7] * w[7])
                l2, g2, p2 = eig2(w[4] * w[4] + w[5] * w[5] - w[8] * w[8] - w[10] * w[10],
                                  w[4] * w[6] + w[5] * w[7] - w[8] * w[9] - w[10] * w[11],
                                  w[6] * w[6] + w[7] * w[7] - w[9] * w[9] - w[11] * w[11])
                if first:
                    c1, c2, first = p1, p2, False
                else:
                    c1 += unwrap(p1, p1o)
                    c2 += unwrap(p2, p2o)
                p1o, p2o = p1, p2
                j = int(k * lr2 / bw)
                if j < nbins:
                    sums[r, j, 0] += l1
                    sums[r, j, 1] += g1
                    sums[r, j, 2] += l2
                    sums[r, j, 3] += g2
                    sums[r, j, 4] += 0.5 * c1
                    sums[r, j, 5] += 0.5 * c2
                    cnt[r, j] += 1

    return run, one_step, draws


def sgd(lrs: tuple[float, ...] = LRS, per_group: int = PER_GROUP, seed: int = 0, tau_end: float = TAU_END,
        bin_width: float = BIN) -> dict:
    """Batch-1 SGD of ``per_group`` replicas at every η to τ = η²k = ``tau_end``.

    Returns the per-replica bin means ``(R, nbins, 6)`` (eig Q1, eig Q2, the two eigenvector
    angles, unwrapped), the bin centres, each replica's η and the divergence mask. Replicas
    of the groups are interleaved so the two threads get equal work."""
    if not _KERNEL:
        _KERNEL.append(_build())
    lrs_a = np.asarray(lrs, dtype=float)
    lr = np.tile(lrs_a, per_group)
    nbins = round(tau_end / bin_width)
    steps = np.round(tau_end / lr**2).astype(np.int64)
    every = np.maximum(1, np.round(0.05 / lr)).astype(np.int64)
    sums, cnt = np.zeros((lr.size, nbins, 6)), np.zeros((lr.size, nbins))
    div = np.zeros(lr.size, dtype=bool)
    _KERNEL[0][0](THETA0.copy(), lr, steps, every, int(seed), V, SX, SE, float(bin_width), sums, cnt, div)
    with np.errstate(all="ignore"):
        bins = sums / cnt[:, :, None]
    return {"lrs": tuple(float(e) for e in lrs_a), "lr": lr, "bins": bins, "tau": (np.arange(nbins) + 0.5) * bin_width,
            "diverged": div | ~np.isfinite(bins).all((1, 2))}


def window(run: dict, tau_burn: float = TAU_BURN, tau_end: float = TAU_END) -> np.ndarray:
    """Per replica (6, R): the averages of eig Q1, eig Q2 over the bins in [τ_burn, τ_end) and
    |slope| of each eigenvector angle against τ there (least squares over the bin means)."""
    t = run["tau"]
    on = (t >= tau_burn) & (t < tau_end)
    b = run["bins"][:, on]
    tt = t[on] - t[on].mean()
    slope = np.einsum("t,rtj->jr", tt, b[:, :, 4:] - b[:, :, 4:].mean(1, keepdims=True)) / (tt @ tt)
    return np.concatenate([b[:, :, :4].mean(1).T, np.abs(slope)])


def fit(eta: np.ndarray, means: np.ndarray, ses: np.ndarray, degree: int) -> dict:
    """Weighted least-squares polynomial in η of each column: the η → 0 value, its standard
    error (from the fit's covariance), the coefficients, χ² and the degrees of freedom."""
    X = np.vander(np.asarray(eta, dtype=float), degree + 1, increasing=True)
    k = means.shape[1]
    est, se, chi2, coef = np.empty(k), np.empty(k), np.empty(k), np.empty((k, degree + 1))
    for j in range(k):
        w = 1.0 / ses[:, j] ** 2
        C = np.linalg.inv(X.T @ (w[:, None] * X))
        coef[j] = C @ (X.T @ (w * means[:, j]))
        est[j], se[j] = coef[j, 0], np.sqrt(C[0, 0])
        chi2[j] = float(w @ (means[:, j] - X @ coef[j]) ** 2)
    return {"estimate": est, "se": se, "coef": coef, "chi2": chi2, "dof": len(eta) - degree - 1}


def summarize(run: dict, tau_burn: float = TAU_BURN, tau_end: float = TAU_END, degree: int = 2,
              max_eta: float | None = None) -> dict:
    """Per-η means and standard errors of the six quantities over the clean replicas of a run
    (``sgd``), and the η → 0 estimate of a weighted least-squares polynomial of ``degree`` in η
    over the rates ≤ ``max_eta`` (all by default; ``fit``)."""
    lrs = run["lrs"]
    vals = window(run, tau_burn, tau_end)
    g = np.arange(run["lr"].size) % len(lrs)
    ok = ~run["diverged"]
    means = np.array([vals[:, (g == i) & ok].mean(1) for i in range(len(lrs))])
    ses = np.array([vals[:, (g == i) & ok].std(1, ddof=1) / np.sqrt(((g == i) & ok).sum()) for i in range(len(lrs))])
    sel = np.asarray(lrs) <= (np.inf if max_eta is None else max_eta * (1 + 1e-12))
    f = fit(np.asarray(lrs)[sel], means[sel], ses[sel], degree)
    return {"lrs": tuple(lrs), "means": means, "ses": ses, "estimate": f["estimate"], "se": f["se"], "fit": f,
            "fit_lrs": tuple(np.asarray(lrs)[sel]), "diverged": int((~ok).sum()), "run": run,
            "tau_burn": tau_burn, "tau_end": tau_end}


def measure(seed: int = 0, lrs: tuple[float, ...] = LRS, per_group: int = PER_GROUP, tau_burn: float = TAU_BURN,
            tau_end: float = TAU_END, degree: int = 2, max_eta: float | None = None) -> dict:
    """``sgd`` then ``summarize``: per-η means, standard errors and the η → 0 estimate."""
    return summarize(sgd(lrs, per_group, seed, tau_end), tau_burn, tau_end, degree, max_eta)


def kernel_step(theta: np.ndarray, x: np.ndarray, y: np.ndarray, lr: float) -> np.ndarray:
    """The kernel's own update applied once (to check it against ``step``)."""
    if not _KERNEL:
        _KERNEL.append(_build())
    w = np.array(theta, dtype=float)
    _KERNEL[0][1](w, np.asarray(x, dtype=float), np.asarray(y, dtype=float), float(lr))
    return w


def kernel_normals(n: int, seed: int = 0) -> np.ndarray:
    """2n standard normal draws of the kernel's generator (to check its moments)."""
    if not _KERNEL:
        _KERNEL.append(_build())
    return _KERNEL[0][2](int(n), int(seed))


def _layers(t: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(t, dtype=float)[4 * i: 4 * i + 4].reshape(2, 2) for i in range(3)]


def e22_drift(theta: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """(E22) at a point θ of the manifold, by hand: dθ/dτ = −½ P_T ∇_θ Tr(∇²L(θ) Λ).

    On the manifold (W3W2W1 = V) the residual is −ε, so with A(x) = ∂f/∂θ (linear in x)
    H = 2 E[AᵀA] and Σ = 4 E[Aᵀ Σ_ε A], exact from Σ_x's diagonal. Λ solves HΛ + ΛH = Σ on
    H's range; Tr(∇²L Λ) = Σ_k μ_k ∂²_s L(θ + s u_k) over Λ's eigenpairs, with
    L = Tr((W − V) Σ_x (W − V)ᵀ) + const differentiated along u by hand, and its gradient by
    Richardson-extrapolated central differences (error O(h⁴))."""
    th = np.asarray(theta, dtype=float)
    basis = [_layers(e) for e in np.eye(12)]

    def jac(t: np.ndarray, x: np.ndarray) -> np.ndarray:
        W1, W2, W3 = _layers(t)
        return np.stack([(U3 @ W2 @ W1 + W3 @ U2 @ W1 + W3 @ W2 @ U1) @ x for U1, U2, U3 in basis], axis=1)

    A = [jac(th, e) * s for e, s in zip(np.eye(2), SX)]
    H = sum(2 * a.T @ a for a in A)
    S = sum(4 * a.T @ np.diag(SE**2) @ a for a in A)
    lam, U = np.linalg.eigh(H)
    normal = lam > 1e-8 * lam.max()
    N, ln = U[:, normal], lam[normal]
    mu, Uk = np.linalg.eigh(N @ ((N.T @ S @ N) / (ln[:, None] + ln[None, :])) @ N.T)
    dirs = [_layers(u) for u in Uk.T]
    Sx = np.diag(SX**2)

    def trace_hess_lam(t: np.ndarray) -> float:
        W1, W2, W3 = _layers(t)
        Dm, out = W3 @ W2 @ W1 - V, 0.0
        for m, (U1, U2, U3) in zip(mu, dirs):
            d1 = U3 @ W2 @ W1 + W3 @ U2 @ W1 + W3 @ W2 @ U1
            d2 = 2 * (U3 @ U2 @ W1 + U3 @ W2 @ U1 + W3 @ U2 @ U1)
            out += m * (2 * np.trace(d1 @ Sx @ d1.T) + 2 * np.trace(Dm @ Sx @ d2.T))
        return out

    def grad(step: float) -> np.ndarray:
        return np.array([(trace_hess_lam(th + step * e) - trace_hess_lam(th - step * e)) / (2 * step)
                         for e in np.eye(12)])

    g = (4 * grad(h) - grad(2 * h)) / 3
    return -0.5 * (np.eye(12) - N @ N.T) @ g


def motion(theta: np.ndarray, v: np.ndarray) -> np.ndarray:
    """For a velocity v at θ: d(eig Q1)/dτ, d(eig Q2)/dτ and the angular speeds of the two
    eigenvector frames (first-order perturbation of the 2×2 symmetric Q1, Q2)."""
    W1, W2, W3 = _layers(theta)
    d1, d2, d3 = _layers(v)
    pairs = ((W1 @ W1.T - W2.T @ W2, d1 @ W1.T + W1 @ d1.T - d2.T @ W2 - W2.T @ d2),
             (W2 @ W2.T - W3.T @ W3, d2 @ W2.T + W2 @ d2.T - d3.T @ W3 - W3.T @ d3))
    eig, rate = [], []
    for Q, dQ in pairs:
        lam, P = np.linalg.eigh(Q)
        eig += [P[:, 0] @ dQ @ P[:, 0], P[:, 1] @ dQ @ P[:, 1]]
        rate.append(abs(P[:, 0] @ dQ @ P[:, 1]) / (lam[1] - lam[0]))
    return np.array(eig + rate)
