"""Catalog: a softmax (multinomial logistic) classifier on a finite dataset (THEORY §7.6).

ℓ = −Σ_c y_c z_c + log Σ_c exp(z_c), z = W x (+ b): adding the same vector to every row of
W (and the same number to every bias) shifts all logits equally and leaves ℓ unchanged --
a translation symmetry, charge vᵀθ, conserved by GD and SGD alike.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError
from .._validate import Integer
from ..loss._loss import Loss, matrix, vector
from ._common import WIDTH

__all__ = ["softmax_classifier", "softmax_start"]


def softmax_classifier(
    d: int = 2,
    classes: int = 3,
    *,
    n_samples: int = 48,
    bias: bool = False,
    seed: int = 0,
) -> Loss:
    """Softmax classifier with cross-entropy on a fixed dataset of Gaussian clusters (THEORY §7.6).

    The dataset: class c = i mod ``classes`` for sample i, center 2·(cos, sin)(2πc/classes)
    in the first two input coordinates, plus N(0, 1) noise, rounded to multiples of 1/16
    (exact binary fractions, so empirical moments are exact); ``y`` is one-hot.

    Symmetries: the translations W → W + 1 aᵀ (b → b + c·1) are not exponential, but they
    induce exponential ones: A = J ⊗ B (J the all-ones classes x classes matrix, B ∈ Sym(m),
    m = d, or d + 1 with biases), d(d+1)/2 generators (m(m+1)/2 with biases) whose charges
    are the products (Σ_c W_ci)(Σ_c W_cj) of translation charges; Tr[AΣ] ≡ 0.

    Parameters
    ----------
    d
        Input dimension.
    classes
        Number of classes (≥ 2).
    n_samples
        Dataset size.
    bias
        Per-class biases b (after W).
    seed
        Seed of the dataset's noise.

    Examples
    --------
    >>> import noether_sym as ns
    >>> loss = ns.families.softmax_classifier()
    >>> loss.n, loss.n_samples
    (6, 48)
    """
    d = WIDTH(d, "d")
    k = WIDTH(classes, "classes")
    N = Integer(1, 10**7)(n_samples, "n_samples")
    if k < 2:
        raise InvalidArgumentError("classes must be at least 2")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgumentError(f"seed must be a non-negative integer; got {seed!r}")
    W = matrix("W", k, d)
    x = [sp.Symbol(f"x_{i}") for i in range(d)]
    y = [sp.Symbol(f"y_{c}") for c in range(k)]
    z = [sp.Add(*[W[c, i] * x[i] for i in range(d)]) for c in range(k)]
    params: list = [W]
    if bias:
        b = vector("b", k)
        z = [z[c] + b[c] for c in range(k)]
        params.append(b)
    # cross-entropy -Σ_c y_c log softmax(z)_c = Σ_c y_c (logsumexp(z) − z_c): written so, the
    # logit shift is a symmetry for every label vector y (as (E3) asks of every sample), not
    # only for one-hot y with Σ_c y_c = 1
    lse = sp.log(sp.Add(*[sp.exp(zc) for zc in z]))
    expr = sp.Add(*[y[c] * (lse - z[c]) for c in range(k)])
    rng = np.random.default_rng(seed)
    labels = np.arange(N) % k
    X = rng.standard_normal((N, d))
    angle = 2 * np.pi * labels / k
    X[:, 0] += 2 * np.cos(angle)
    if d > 1:
        X[:, 1] += 2 * np.sin(angle)
    X = np.round(X * 16) / 16
    Y = np.eye(k)[labels]
    data = {tuple(x): X, tuple(y): Y}
    return Loss(expr, params, data=data, name=f"softmax d={d} classes={k}{' +bias' if bias else ''}",
                description="softmax cross-entropy, finite dataset")


def softmax_start(loss: Loss, rng: np.random.Generator) -> np.ndarray:
    """A small random start, N(0, 0.5²) entries."""
    return 0.5 * rng.standard_normal(loss.n)
