"""Catalog: scale-invariant losses ℓ(θ) = F(θ/‖θ‖) on a block -- the divergent class (THEORY §7.5).

A = I on the normalized block is positive semidefinite: under SGD without weight decay the
block norm grows forever, exactly ‖θ_{k+1}‖² = ‖θ_k‖² + η²‖ĝ_k‖² (E10); weight decay gives
the equilibrium norm (E18).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp
from sympy.stats import Normal

from .._errors import InvalidArgumentError
from ..loss._loss import Loss, vector
from ._common import cycle, exact, WIDTH, teacher_data, variances
from ._rescaling import WORKED_BETA

__all__ = ["normalized_linear", "scale_invariant_2d", "normalized_start"]


def normalized_linear(
    d: int = 3,
    *,
    Sigma_x: Any = 1,
    beta: Any = None,
    noise_var: Any = sp.Rational(1, 2),
    gain: bool = True,
) -> Loss:
    """A normalized linear model ℓ = (g · wᵀx/‖w‖ − y)², x ~ N(0, Σ_x), y = βᵀx + ε (THEORY §7.5).

    ℓ(e^λ w) = ℓ(w) per sample (weight normalization): one generator, A = I on the w block
    (and 0 on the trainable gain g), semidefinite -- the divergent class.

    Parameters
    ----------
    d
        Input dimension.
    Sigma_x
        Diagonal input covariance (number, variances, or diagonal matrix).
    beta
        Teacher vector; default (1, −1/2, 2) cycled over the d indices.
    noise_var
        Label-noise variance σ².
    gain
        Train a scalar gain g (first parameter); without it f = wᵀx/‖w‖.

    Examples
    --------
    >>> import noether_sym as ns
    >>> loss = ns.families.normalized_linear(2)
    >>> [str(p) for p in loss.params]
    ['g', 'w_0', 'w_1']
    """
    d = WIDTH(d, "d")
    if d < 2:
        raise InvalidArgumentError("d must be at least 2 (for d = 1, w/|w| is a sign and the loss is not differentiable in w)")
    b = cycle(WORKED_BETA, d) if beta is None else [exact(v, "beta") for v in beta]
    if len(b) != d:
        raise InvalidArgumentError(f"beta must list d = {d} numbers; got {len(b)}")
    w = vector("w", d)
    x = [sp.Symbol(f"x_{i}") for i in range(d)]
    y = sp.Symbol("y")
    g = sp.Symbol("g")
    f = sp.Add(*[w[i] * x[i] for i in range(d)]) / sp.sqrt(sp.Add(*[wi**2 for wi in w]))
    params: list[Any] = [w]
    if gain:
        f = g * f
        params = [g, w]
    plain = Loss((f - y) ** 2, params, data=[*x, y], name=f"normalized-linear d={d}",
                 description="g w^T x / |w|, squared loss")
    return teacher_data(plain, x, [y], sp.Matrix([b]), variances(Sigma_x, d, "Sigma_x"),
                        variances(noise_var, 1, "noise_var"), name=f"normalized-linear d={d}")


def scale_invariant_2d(variances_xz: Any = (1, sp.Rational(1, 4))) -> Loss:
    """A 2-D scale-invariant toy: ℓ(a, b) = (a x + b z)² / (a² + b²), x, z independent normals.

    ℓ depends on (a, b) only through the direction, so A = I (2 x 2) is its only generator
    (divergent class, THEORY §7.5). The population loss (a² s_x + b² s_z)/(a² + b²) is
    minimal along the axis of the smaller variance, where the noise is still non-zero.

    Parameters
    ----------
    variances_xz
        The variances (s_x, s_z) of x and z; default (1, 1/4).

    Examples
    --------
    >>> import noether_sym as ns
    >>> ns.families.scale_invariant_2d().expr
    (a*x + b*z)**2/(a**2 + b**2)
    """
    sx, sz = variances(list(variances_xz), 2, "variances_xz")
    a, b = sp.symbols("a b")
    x, z = Normal("x", 0, sp.sqrt(sx)), Normal("z", 0, sp.sqrt(sz))
    return Loss((a * x + b * z) ** 2 / (a**2 + b**2), [a, b], name="scale-invariant-2d",
                description="(a x + b z)^2/(a^2 + b^2)")


def normalized_start(loss: Loss, rng: np.random.Generator) -> np.ndarray:
    """A random start with unit-norm scale-invariant part: vector blocks (w) get a random unit
    vector and scalars (the gain) 1; a loss of scalars only (the 2-D toy) gets one random
    unit vector."""
    if all(blk.shape == () for blk in loss.blocks):
        v = rng.standard_normal(loss.n)
        return v / np.linalg.norm(v)
    out = np.ones(loss.n)
    for blk in loss.blocks:
        if blk.shape != ():
            v = rng.standard_normal(blk.slice.stop - blk.slice.start)
            out[blk.slice] = v / np.linalg.norm(v)
    return out
