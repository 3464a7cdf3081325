"""Theory: the noise side of every balance -- Σ(θ) at a point, exact when the moments are.

Owns what :func:`~noether_sym.noise_equilibrium`, the joint equilibrium and the sharpness
share: the hyper-parameter constraints (``HPARAMS``, checked by :func:`_check_hparams`
through ``noether_sym._validate``), the noise matrix Σ(θ) (or, for the discrete-time
drift (E11), M_S = ∇L∇Lᵀ + c·Σ with the minibatch factor c of ``minibatch_factor``, the
same sampling with replacement as ``simulate``), θ as exact rationals, exact evaluation
of polynomial matrices, and the move θ -> e^{λA}θ.

Design
------
Σ(θ) is cached on the Loss per (θ, S, discrete, values): a derivation asks for it once
per generator at the same point. Exact moments are used when the data model has them;
otherwise moments are estimated and the result says so (``exact=False`` with a
standard error).
"""


from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp
from sympy import QQ

from .._errors import InvalidArgumentError
from .._validate import Integer, Optional, Real, validate
from ..data._model import minibatch_factor
from ..data._moments import moments
from ..loss._loss import Loss
from ._spectrum import Spectrum

__all__ = []



#: the hyper-parameters every balance takes: S ≥ 1, γ ≥ 0, η > 0 (None: not given)
HPARAMS = {
    "batch_size": Integer(1),
    "weight_decay": Real(0.0),
    "lr": Optional(Real(0.0, None, low_open=True)),
    "digits": Integer(5, 1000),
}


def _check_hparams(batch_size: Any, weight_decay: Any, lr: Any, digits: Any = 30) -> dict[str, Any]:
    """S, γ, η and digits checked and in canonical form; η is required when γ > 0."""
    hp = validate(HPARAMS, batch_size=batch_size, weight_decay=weight_decay, lr=lr, digits=digits)
    if hp["weight_decay"] > 0 and hp["lr"] is None:
        raise InvalidArgumentError("with weight decay the balance (η/S)G = 2γC involves η: pass lr=...")
    return hp


def _noise_matrix(loss: Loss, theta_vec: sp.Matrix, batch_size: int, discrete: bool, n_samples: int | None, seed: int, values: Any) -> tuple[Any, bool, dict]:
    """Σ(θ) (or the discrete M_S = ∇L∇Lᵀ + Σ/S), exact when the moments are."""

    key = ("noise_matrix", tuple(theta_vec), batch_size, discrete, n_samples, seed,
           None if not values else tuple(sorted((str(k), str(v)) for k, v in values.items())))
    if key in loss._cache:
        return loss._cache[key]
    out = _noise_matrix_uncached(loss, theta_vec, batch_size, discrete, n_samples, seed, values)
    loss._cache[key] = out
    return out


def _noise_matrix_uncached(loss: Loss, theta_vec: sp.Matrix, batch_size: int, discrete: bool, n_samples: int | None, seed: int, values: Any) -> tuple[Any, bool, dict]:

    info: dict[str, Any] = {}
    try:
        mom = moments(loss, values=values)
        exact = mom.exact and isinstance(mom.covariance, sp.MatrixBase) and mom.theta is None
    except Exception as exc:  # noqa: BLE001 - fall back to numeric moments below
        if type(exc).__name__ in ("InvalidDataError",):
            raise
        mom, exact = None, False
    if mom is not None and exact:
        mom_at = mom.at(list(theta_vec), values=values)
        Sigma, g = mom_at.covariance, mom_at.mean_grad
        free = set().union(*[e.free_symbols for e in Sigma]) if Sigma.shape[0] else set()
        if free:
            raise InvalidArgumentError(
                f"the noise covariance depends on symbol(s) {', '.join(sorted(map(str, free)))}; "
                "give them numbers with values={symbol: number}"
            )
        info["moments"] = mom.method
    else:
        mom = moments(loss, theta=np.array([float(v) for v in theta_vec]), n_samples=n_samples, seed=seed, values=values)
        Sigma = np.asarray(mom.covariance, dtype=float)
        g = np.asarray(mom.mean_grad, dtype=float)
        exact = False
        info["moments"] = mom.method
        info["standard_error"] = mom.standard_error
        info["n_samples"] = mom.n_samples
    if discrete:
        N = loss.n_samples
        # the same sampling as simulate's default: S rows drawn with replacement
        factor = minibatch_factor(batch_size, N)
        if isinstance(Sigma, sp.MatrixBase):
            Sigma = g * g.T + Sigma * factor
        else:
            Sigma = np.outer(g, g) + Sigma * float(factor)
        info["discrete_factor"] = str(factor)
    return Sigma, exact, info


def _eval_exact(loss: Loss, key: str, M: sp.Matrix, theta: sp.Matrix, values: Any) -> sp.Matrix:
    """Evaluate a matrix of polynomials in θ exactly at a rational θ (cached sparse Polys)."""

    ck = ("poly_eval", key, None if not values else tuple(sorted((str(k), str(v)) for k, v in values.items())))
    polys = loss._cache.get(ck)
    if polys is None:
        gens = list(loss.params)
        polys = {}
        for (i, j), e in M.todok().items():
            e = sp.sympify(e)
            if e == 0:
                continue
            try:
                polys[(i, j)] = sp.Poly(e, *gens, domain=QQ)
            except (sp.PolynomialError, sp.polys.polyerrors.CoercionFailed):
                polys[(i, j)] = e  # not a rational polynomial: substitute symbolically
        loss._cache[ck] = polys
    vals = [sp.Rational(v) for v in theta]
    out = sp.zeros(*M.shape)
    rep = dict(zip(loss.params, vals))
    for (i, j), p in polys.items():
        out[i, j] = p.eval(tuple(vals)) if isinstance(p, sp.Poly) else p.xreplace(rep)
    return out


def _exact_theta(loss: Loss, theta: Any, th: np.ndarray) -> sp.Matrix:
    """θ as exact rationals: user's integers / rationals kept, floats converted exactly."""

    if isinstance(theta, Mapping):
        raw = [None] * loss.n
        for k, v in theta.items():
            raw[loss.index(k)] = v
    elif isinstance(theta, np.ndarray):
        raw = [float(v) for v in theta]
    else:
        raw = list(theta)

    def conv(v: Any, f: float) -> sp.Expr:
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return sp.Integer(int(v))
        if isinstance(v, sp.Basic) and v.is_Rational:
            return v
        return sp.Rational(f)  # exact value of the binary float

    return sp.Matrix([conv(v, f) for v, f in zip(raw, th)])


def _move(spec: Spectrum, th: np.ndarray, lam: float) -> np.ndarray:
    out = np.zeros_like(th)
    for a, P in zip(spec.floats, spec.projectors):
        Pn = np.array(P.tolist(), dtype=float) if isinstance(P, sp.MatrixBase) else P
        out += math.exp(lam * a) * (Pn @ th)
    return out
