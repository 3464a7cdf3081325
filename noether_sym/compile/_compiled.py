"""Compile a Loss to batched NumPy functions: per-sample loss, gradient, kinks, Hessian-vector.

One :class:`CompiledLoss` per Loss, cached on it (``compiled(loss)``). Arrays broadcast:
``theta`` has shape ``(..., n)``, ``x`` shape ``(..., d)`` (d data symbols, then the
constants), and every output has the broadcast leading shape. One call evaluates a whole
(replicas x batch) block; nothing loops over replicas in Python.
"""


from __future__ import annotations

import numpy as np

from ..loss._loss import Loss
from ._codegen import compile_graph
from ._graph import Graph

__all__ = ['CompiledLoss', 'compiled']



class CompiledLoss:
    """NumPy code generated from ``loss.sample_expr`` (value, gradient, kink arguments)."""

    def __init__(self, loss: Loss) -> None:
        self.loss = loss
        self.n = loss.n
        self.d = len(loss.x) + len(loss.c)
        self.graph = Graph(loss.symbols)
        self.root = self.graph.add(loss.sample_expr)
        self.theta_nodes = list(range(self.n))  # inputs are the first graph nodes, in order
        self._value_grad = compile_graph(
            self.graph, [self.root], grad_of=self.root, wrt=self.theta_nodes, kinks=True, name="value_grad"
        )
        self._value = compile_graph(self.graph, [self.root], name="value")

    @property
    def n_kinks(self) -> int:
        return len(self.graph.kinks)

    def _inputs(self, theta: np.ndarray, x: np.ndarray | None) -> list:
        theta = np.asarray(theta)
        cols = [theta[..., i] for i in range(self.n)]
        if self.d:
            if x is None:
                raise ValueError("this loss needs data values x")
            x = np.asarray(x)
            cols += [x[..., j] for j in range(self.d)]
        return cols

    def value(self, theta: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """Per-sample loss ℓ(θ, x), broadcast over leading axes."""
        return self._value(*self._inputs(theta, x))[0][0]

    def value_grad(
        self, theta: np.ndarray, x: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ℓ, ∇_θ ℓ with shape (..., n), kink arguments with shape (..., n_kinks))."""
        (val,), grads, kinks = self._value_grad(*self._inputs(theta, x))
        g = np.stack(grads, axis=-1)
        k = np.stack(kinks, axis=-1) if kinks else np.zeros(val.shape + (0,))
        return val, g, k

    def grad(self, theta: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """Per-sample gradient, shape (..., n)."""
        return self.value_grad(theta, x)[1]

    def hvp(self, theta: np.ndarray, v: np.ndarray, x: np.ndarray | None = None, h: float = 1e-30) -> np.ndarray:
        """Hessian-vector products H(θ, x) v by the complex step (exact to rounding).

        ``theta`` (..., n) and ``v`` (..., n) broadcast; the code compares real parts only, so
        ``Im ∇ℓ(θ + i h v) / h`` is H v without subtractive cancellation.
        """
        th = np.asarray(theta, dtype=complex) + 1j * h * np.asarray(v)
        return self.value_grad(th, x)[1].imag / h


def compiled(loss: Loss) -> CompiledLoss:
    """The CompiledLoss of ``loss`` (built once, cached on the Loss)."""
    c = loss._cache.get("compiled")
    if c is None:
        c = CompiledLoss(loss)
        loss._cache["compiled"] = c
    return c

