"""Models and formulas shared by several test files.

Each helper is an independent reference: a loss written out from THEORY, or a closed-form
count derived from the theory, never read off the implementation. Test files import them
with ``from helpers import ...`` (tests/ is on ``sys.path``, see conftest.py).
"""

from __future__ import annotations

import sympy as sp
from sympy.stats import Normal

import noether_sym as ns

__all__ = ["gl_count", "rescaling_71", "rescaling_loss", "scale_invariant_loss"]


def rescaling_71() -> tuple[ns.Loss, sp.Symbol, sp.Matrix]:
    """THEORY §7.1: f = u (wᵀx), Σ_x = diag(1, 4, 1/4), β = (1, −1/2, 2), σ² = 1/2.

    Returns the loss, the scalar parameter u and the 3-vector parameter w.
    """
    u = sp.Symbol("u")
    w = ns.vector("w", 3)
    xs = [Normal("x_0", 0, 1), Normal("x_1", 0, 2), Normal("x_2", 0, sp.Rational(1, 2))]
    eps = Normal("eps", 0, sp.sqrt(sp.Rational(1, 2)))
    beta = [1, -sp.Rational(1, 2), 2]
    y = sum(b * xi for b, xi in zip(beta, xs)) + eps
    return ns.Loss((u * sum(w[i] * xs[i] for i in range(3)) - y) ** 2, [u, w], name="rescaling 7.1"), u, w


def rescaling_loss() -> ns.Loss:
    """The loss of :func:`rescaling_71` alone."""
    return rescaling_71()[0]


def scale_invariant_loss() -> ns.Loss:
    """ℓ = (a/‖(a, b)‖ · x − y)²: invariant under θ -> cθ, A = I (THEORY §7.5)."""
    a, b = sp.symbols("a b")
    x, y = Normal("x", 0, 1), Normal("y", 0, 1)
    return ns.Loss((a / sp.sqrt(a**2 + b**2) * x - y) ** 2, [a, b], name="scale-invariant")


def gl_count(dims: list[int]) -> int:
    """§7.2-7.3: one GL(d_i) per hidden layer, Σ d_i(d_i+1)/2 symmetric generators."""
    return sum(d * (d + 1) // 2 for d in dims[1:-1])
