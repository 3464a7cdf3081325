"""The three-layer linear net f = W3 W2 W1 x (widths 2-2-2-2) with anisotropic data, and its
independent, hand-written SGD (shared by tests/test_zoo.py and benchmarks/zoo_figures.py).

x ~ N(0, diag(1, 4)), y = V x + ε, ε ~ N(0, diag(1/4, 1)), V = [[1, 1/2], [−1/2, 1]]; the start
is on the minimum manifold (W3 W2 W1 = V) but off balance. The invariants compared are the
eigenvalues of the two balance matrices Q1 = W1W1ᵀ − W2ᵀW2, Q2 = W2W2ᵀ − W3ᵀW3 (rotations
of the hidden frames conjugate them) and the turning rates of their eigenvectors.

The SGD steps groups of replicas, one learning rate per group, in one set of arrays (the
per-step cost is Python overhead, so extra replicas are nearly free): all groups take the
steps the smallest η needs to reach τ = η²k = TAU_BURN + TAU_AVG, and each group averages over
its own τ ≥ TAU_BURN. The η → 0 value is the weighted least-squares quadratic in η.
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
LRS = (0.007, 0.006, 0.005, 0.0042, 0.0035, 0.003, 0.0025)
PER_GROUP = 128
TAU_BURN, TAU_AVG = 1.5, 1.0
NAMES = ("eig Q1 low", "eig Q1 high", "eig Q2 low", "eig Q2 high", "frame 1 rate", "frame 2 rate")


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


def _sym2(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m, d = (a + c) / 2, np.sqrt(((a - c) / 2) ** 2 + b**2)
    return m - d, m + d, np.arctan2(2 * b, a - c)


def _observe(a1: np.ndarray, a2: np.ndarray, a3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """eig Q1, eig Q2 and the doubled angles of their eigenvectors; layers as (2, 2, R)."""
    def gram_rows(W: np.ndarray) -> tuple[np.ndarray, ...]:
        return W[0, 0] ** 2 + W[0, 1] ** 2, W[0, 0] * W[1, 0] + W[0, 1] * W[1, 1], W[1, 0] ** 2 + W[1, 1] ** 2

    def gram_cols(W: np.ndarray) -> tuple[np.ndarray, ...]:
        return W[0, 0] ** 2 + W[1, 0] ** 2, W[0, 0] * W[0, 1] + W[1, 0] * W[1, 1], W[0, 1] ** 2 + W[1, 1] ** 2

    l1, h1, p1 = _sym2(*(r - c for r, c in zip(gram_rows(a1), gram_cols(a2))))
    l2, h2, p2 = _sym2(*(r - c for r, c in zip(gram_rows(a2), gram_cols(a3))))
    return np.stack([l1, h1, l2, h2]), np.stack([p1, p2])


def sgd(lrs: tuple[float, ...] = LRS, per_group: int = PER_GROUP, seed: int = 0, block: int = 500,
        dtau: float = 0.01) -> list[tuple[np.ndarray, np.ndarray]]:
    """Batch-1 SGD of every group; per group the per-replica values (6, R) (time averages of
    eig Q1, eig Q2 over τ ≥ TAU_BURN, and |slope| of each eigenvector angle against τ) and the
    mask of replicas that stayed finite."""
    lrs_a = np.asarray(lrs, dtype=float)
    R = lrs_a.size * per_group
    lr = np.repeat(lrs_a, per_group)
    rng = np.random.default_rng(seed)
    A = [np.repeat(THETA0[4 * i: 4 * i + 4].reshape(2, 2)[:, :, None], R, axis=2).copy() for i in range(3)]
    K = round((TAU_BURN + TAU_AVG) / float(lrs_a.min()) ** 2)
    every = max(1, round(dtau / float(lrs_a.min()) ** 2))
    acc, cnt = np.zeros((4, R)), np.zeros(R)
    phis, taus = [], []
    two_lr = 2 * lr
    k = 0
    with np.errstate(all="ignore"):
        while k < K:
            B = min(block, K - k)
            X = rng.standard_normal((B, 2, R)) * SX[:, None]
            Y = np.einsum("ij,bjr->bir", V, X) + rng.standard_normal((B, 2, R)) * SE[:, None]
            a1, a2, a3 = A
            for i in range(B):
                x = X[i]
                h1 = a1[:, 0] * x[0] + a1[:, 1] * x[1]
                h2 = a2[:, 0] * h1[0] + a2[:, 1] * h1[1]
                r = two_lr * (a3[:, 0] * h2[0] + a3[:, 1] * h2[1] - Y[i])  # η ∂ℓ/∂f, ℓ = ‖f − y‖²
                b2 = a3[0] * r[0] + a3[1] * r[1]  # W3ᵀ r
                b1 = a2[0] * b2[0] + a2[1] * b2[1]  # W2ᵀ W3ᵀ r
                a3 -= r[:, None] * h2[None]
                a2 -= b2[:, None] * h1[None]
                a1 -= b1[:, None] * x[None]
                k += 1
                if k % every == 0:
                    tau = k * lr**2
                    e, p = _observe(a1, a2, a3)
                    on = tau >= TAU_BURN
                    acc += np.where(on, e, 0.0)
                    cnt += on
                    phis.append(p)
                    taus.append(tau)
    mean = acc / np.maximum(cnt, 1)
    ph = np.unwrap(np.array(phis), axis=0) / 2  # (T, 2, R) eigenvector angles
    t = np.array(taus)
    w = (t >= TAU_BURN).astype(float)
    tm = (w * t).sum(0) / w.sum(0)
    pm = np.einsum("tr,tjr->jr", w, ph) / w.sum(0)
    slope = np.einsum("tr,tjr->jr", w * (t - tm), ph - pm) / (w * (t - tm) ** 2).sum(0)
    out = np.concatenate([mean, np.abs(slope)])
    groups = []
    for g in range(lrs_a.size):
        o = out[:, g * per_group:(g + 1) * per_group]
        groups.append((o, np.isfinite(o).all(0) & (np.abs(o) < 1e3).all(0)))
    return groups


def measure(seed: int = 0, lrs: tuple[float, ...] = LRS, per_group: int = PER_GROUP) -> dict:
    """Per-η means and standard errors of the six quantities, and the η → 0 estimate: the
    weighted least-squares fit m₀ + aη + bη² (its standard error from the fit's covariance)."""
    groups = sgd(lrs, per_group, seed)
    means = np.array([o[:, ok].mean(1) for o, ok in groups])
    ses = np.array([o[:, ok].std(1, ddof=1) / np.sqrt(ok.sum()) for o, ok in groups])
    eta = np.asarray(lrs, dtype=float)
    X = np.stack([np.ones_like(eta), eta, eta**2], axis=1)
    est, se = np.empty(means.shape[1]), np.empty(means.shape[1])
    for j in range(means.shape[1]):
        Wt = 1.0 / ses[:, j] ** 2
        C = np.linalg.inv(X.T @ (Wt[:, None] * X))
        coef = C @ (X.T @ (Wt * means[:, j]))
        est[j], se[j] = coef[0], np.sqrt(C[0, 0])
    return {"lrs": tuple(lrs), "means": means, "ses": ses, "estimate": est, "se": se,
            "diverged": int(sum((~ok).sum() for _, ok in groups))}
