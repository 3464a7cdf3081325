"""Catalog: the diagonal network of the law of balance, f = (Σ_i u_i w_i) x (THEORY §7.6)."""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from ..loss._loss import Loss, vector
from ._common import cycle, exact, WIDTH, teacher_data, variances

__all__ = ["diagonal_net", "diagonal_start"]


def diagonal_net(
    d: int = 2,
    *,
    shared_input: bool = True,
    v_star: Any = 1,
    Sigma_x: Any = 1,
    noise_var: Any = sp.Rational(1, 2),
) -> Loss:
    """Diagonal network with squared loss and a Gaussian teacher (THEORY §7.6).

    With ``shared_input`` (THEORY §7.6, the law of balance): f = (Σ_i u_i w_i) x, scalar
    x ~ N(0, Σ_x), y = v* x + ε. Each index carries the rescaling (u_i, w_i) →
    (e^λ u_i, e^{−λ} w_i) with d/dt(u_i² − w_i²) as in §7.6; but since f only sees uᵀw, the
    whole (u, w) → (M u, M^{−T} w) group acts: the generators are diag(M, −M), M ∈ Sym(d),
    d(d+1)/2 of them (this is the linear network of widths (1, d, 1)). With
    ``shared_input=False``: f = Σ_i u_i w_i x_i, x ~ N(0, Σ_x) in R^d, y = Σ_i v*_i x_i + ε,
    exactly one generator per index.

    Parameters
    ----------
    d
        Number of (u_i, w_i) pairs.
    shared_input
        Scalar input shared by all indices (default) or one input per index.
    v_star
        Teacher: a number, or (``shared_input=False``) one per index.
    Sigma_x, noise_var
        Input variance(s) and label-noise variance.

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.diagonal_net(2).expr
    ((u_0*w_0 + u_1*w_1)*X0 - E0 - X0)**2
    """
    d = WIDTH(d, "d")
    u, w = vector("u", d), vector("w", d)
    y = sp.Symbol("y")
    if shared_input:
        x = [sp.Symbol("x")]
        f = sp.Add(*[u[i] * w[i] for i in range(d)]) * x[0]
        V = sp.Matrix([[exact(v_star, "v_star")]])
    else:
        x = [sp.Symbol(f"x_{i}") for i in range(d)]
        f = sp.Add(*[u[i] * w[i] * x[i] for i in range(d)])
        vs = v_star if isinstance(v_star, (list, tuple)) else [v_star]
        V = sp.Matrix([cycle(vs, d)])
    name = f"diagonal-net d={d}{'' if shared_input else ' per-index inputs'}"
    plain = Loss((f - y) ** 2, [u, w], data=[*x, y], name=name, description="(sum_i u_i w_i) x, squared loss")
    return teacher_data(plain, x, [y], V, variances(Sigma_x, len(x), "Sigma_x"),
                        variances(noise_var, 1, "noise_var"), name=name)


def diagonal_start(loss: Loss, rng: np.random.Generator) -> np.ndarray:
    """An imbalanced start: u_i ~ 1.5 ± 0.1, w_i ~ 0.25 ± 0.1 (u_i² − w_i² far from 0)."""
    d = loss.n // 2
    return np.concatenate([1.5 + 0.1 * rng.standard_normal(d), 0.25 + 0.1 * rng.standard_normal(d)])
