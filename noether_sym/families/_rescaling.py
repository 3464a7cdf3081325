"""Catalog: the rescaling model f(x) = u (wᵀx) with a Gaussian linear teacher (THEORY §7.1)."""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError
from ..loss._loss import Loss, vector
from ._common import exact, WIDTH, teacher_data, variances

__all__ = ["rescaling", "rescaling_start", "WORKED_SIGMA_X", "WORKED_BETA", "WORKED_NOISE_VAR"]

#: THEORY §7.1 worked example: Σ_x = diag(1, 4, 1/4), β = (1, −1/2, 2), σ² = 1/2
WORKED_SIGMA_X = (sp.Integer(1), sp.Integer(4), sp.Rational(1, 4))
WORKED_BETA = (sp.Integer(1), sp.Rational(-1, 2), sp.Integer(2))
WORKED_NOISE_VAR = sp.Rational(1, 2)


def rescaling(d: int | None = None, Sigma_x: Any = None, beta: Any = None, noise_var: Any = WORKED_NOISE_VAR) -> Loss:
    """The rescaling model ℓ = (u wᵀx − y)², x ~ N(0, Σ_x), y = βᵀx + ε, ε ~ N(0, σ²) (THEORY §7.1).

    (u, w) → (e^λ u, e^{−λ} w) leaves ℓ unchanged per sample: one generator
    A = diag(1, −1, ..., −1), charge u² − ‖w‖², equilibrium (E17).

    Parameters
    ----------
    d
        Input dimension (default: ``len(beta)``, or 3).
    Sigma_x
        Input covariance, diagonal: a number, ``d`` variances or a diagonal matrix. Default:
        the worked example's diag(1, 4, 1/4) when ``d == 3``, else the identity.
    beta
        Teacher vector. Default: the worked example's (1, −1/2, 2) when ``d == 3``, else
        all ones.
    noise_var
        Label-noise variance σ² (default 1/2).

    Returns
    -------
    Loss
        Parameters ``u, w_0..w_{d-1}``; random symbols ``X0..X{d-1}`` (inputs) and ``E0``.

    Examples
    --------
    >>> import noether_sym as ns
    >>> loss = ns.families.rescaling()
    >>> [str(p) for p in loss.params], [str(s) for s in loss.random_symbols]
    (['u', 'w_0', 'w_1', 'w_2'], ['E0', 'X0', 'X1', 'X2'])
    """
    if d is None:
        d = len(beta) if beta is not None else (len(Sigma_x) if isinstance(Sigma_x, (list, tuple)) else 3)
    d = WIDTH(d, "d")
    if Sigma_x is None:
        Sigma_x = list(WORKED_SIGMA_X) if d == 3 else 1
    if beta is None:
        beta = list(WORKED_BETA) if d == 3 else [1] * d
    if isinstance(beta, (int, float)) or len(beta) != d:
        raise InvalidArgumentError(f"beta must list d = {d} numbers; got {beta!r}")
    b = [exact(v, "beta") for v in beta]
    var_x = variances(Sigma_x, d, "Sigma_x")
    var_eps = variances(noise_var, 1, "noise_var")
    u = sp.Symbol("u")
    w = vector("w", d)
    x = [sp.Symbol(f"x_{i}") for i in range(d)]
    y = sp.Symbol("y")
    expr = (u * sp.Add(*[w[i] * x[i] for i in range(d)]) - y) ** 2
    plain = Loss(expr, [u, w], data=[*x, y], name=f"rescaling d={d}", description="u (w^T x), squared loss")
    return teacher_data(plain, x, [y], sp.Matrix([b]), var_x, var_eps, name=f"rescaling d={d}")


def rescaling_start(loss: Loss, rng: np.random.Generator) -> np.ndarray:
    """THEORY §7.1 start: u = 2, w = β/2 (a minimum, u² = 4), β read off the teacher."""
    beta = _teacher_vector(loss)
    return np.concatenate([[2.0], beta / 2.0])


def _teacher_vector(loss: Loss) -> np.ndarray:
    """β from the data model: the loss is (u wᵀX − βᵀX − E)², so at θ = 0 its base is
    −βᵀX − E and β_i is minus its X_i-coefficient."""
    base = loss.expr.base if isinstance(loss.expr, sp.Pow) else None
    X = sorted((s for s in loss.random_symbols if s.name.startswith("X")), key=lambda s: int(s.name[1:]))
    if base is None or len(X) != loss.n - 1:
        raise InvalidArgumentError("rescaling_start expects a loss built by ns.families.rescaling")
    at0 = base.xreplace({p: 0 for p in loss.params})
    return np.array([-float(sp.diff(at0, Xi)) for Xi in X], dtype=float)
