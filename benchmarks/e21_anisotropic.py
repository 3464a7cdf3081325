"""(E21) against simulated SGD for a two-layer linear net (2, 2, 2) -- an experiment, not a
speed claim: how far the η → 0 limit of SGD's stationary state lies from the closed form
when Σ_x and Σ_ε are both anisotropic, and when only one of them is.

Usage: python benchmarks/e21_anisotropic.py [--quick]

For each data model it runs ns.compare at η, 2η, 4η (equal η²k, tail half, 100 replicas)
from the same imbalanced minimum U W = V and prints the eigenvalues of Q = WWᵀ − UᵀU:
predicted (E21), measured per η, and the Richardson estimates. Figures (2026-11-28, this
machine, loaded): see benchmarks/RESULTS.md, section "(E21) with anisotropic data".
"""

from __future__ import annotations

import sys
import time

import numpy as np
import sympy as sp

import noether_sym as ns

V = sp.Matrix([[1, sp.Rational(1, 2)], [-sp.Rational(1, 2), 1]])
W = np.array([[1.5, 0.3], [-0.2, 0.8]])
U = np.array(V.tolist(), dtype=float) @ np.linalg.inv(W)


def q_eigenvalues(T: np.ndarray) -> np.ndarray:
    Wt = T[..., :4].reshape(T.shape[:-1] + (2, 2))
    Ut = T[..., 4:].reshape(T.shape[:-1] + (2, 2))
    return np.linalg.eigvalsh(Wt @ np.swapaxes(Wt, -1, -2) - np.swapaxes(Ut, -1, -2) @ Ut)


def case(input_std, noise_std, lr, steps):
    net = ns.families.linear_net([2, 2, 2])
    loss = ns.gaussian_linear_teacher(net, net.data_symbols[:2], net.data_symbols[2:], V,
                                      input_std=input_std, noise_std=noise_std)
    Sx = np.diag([float(s) ** 2 for s in input_std])
    Se = np.diag([float(s) ** 2 for s in noise_std])
    eq = ns.two_layer_equilibrium(U, W, Sx, Se)
    t = time.perf_counter()
    cmp = ns.compare(loss, np.concatenate([W.ravel(), U.ravel()]), lr=lr, batch_size=1, steps=steps, replicas=100,
                     observables={"eig Q": q_eigenvalues}, predicted=np.concatenate([eq.W.ravel(), eq.U.ravel()]),
                     tail=0.5, seed=0, order="linear")
    from noether_sym import richardson

    quad = richardson([r.value for r in cmp.runs], [r.sem for r in cmp.runs], order="quadratic")[0]
    print(f"Σ_x = diag{tuple(float(s) ** 2 for s in input_std)}, Σ_ε = diag{tuple(float(s) ** 2 for s in noise_std)}"
          f"  ({time.perf_counter() - t:.0f} s)")
    print(cmp.table())
    print(f"  relative error, linear Richardson: {np.round(cmp.relative_error('richardson'), 4).tolist()}; "
          f"quadratic: {np.round(np.abs(quad - cmp.predicted) / np.abs(cmp.predicted), 4).tolist()}")


def main() -> None:
    quick = "--quick" in sys.argv
    lr, steps = (0.005, 160_000) if quick else (0.0025, 640_000)
    half = sp.Rational(1, 2)
    case([1, 2], [half, 1], lr, steps)  # both anisotropic
    case([1, 1], [half, 1], lr, steps)  # noise only
    case([1, 2], [1, 1], lr, steps)  # input only


if __name__ == "__main__":
    main()
