"""Compile a Loss to batched NumPy functions: per-sample loss, gradient, kinks, Hessian-vector.

One :class:`CompiledLoss` per Loss, cached on it (``compiled(loss)``). Arrays broadcast:
``theta`` has shape ``(..., n)``, ``x`` shape ``(..., d)`` (d data symbols, then the
constants), and every output has the broadcast leading shape. One call evaluates a whole
(replicas x batch) block; nothing loops over replicas in Python.
"""


from __future__ import annotations

from typing import Any

import numpy as np

from ..loss._loss import Loss
from ._codegen import CompiledFunction, _float_literal, compile_graph
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
        # the NumPy code is generated on first use: for a network with 10⁵ parameters Python's
        # compile() of it takes seconds, and the exact engine needs only the graph; what the
        # code could not represent is refused now, as when the code was generated here
        for nd in self.graph.nodes:
            if nd.op == "const":
                _float_literal(nd.data, "constant")
            elif nd.op == "pow":
                _float_literal(nd.data, "exponent")
        self._vg_code: Any = None
        self._v_code: Any = None
        self._grad_bare: Any = None  # the gradient alone, unbroadcast (grad_mean, grad_sums)

    @property
    def _value_grad(self) -> Any:
        if self._vg_code is None:
            self._vg_code = compile_graph(
                self.graph, [self.root], grad_of=self.root, wrt=self.theta_nodes, kinks=True, name="value_grad"
            )
        return self._vg_code

    @property
    def _value(self) -> Any:
        if self._v_code is None:
            self._v_code = compile_graph(self.graph, [self.root], name="value")
        return self._v_code

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

    def grad_mean(self, theta: np.ndarray, x: np.ndarray | None = None, *, block: int = 1 << 16) -> np.ndarray:
        """Mean per-sample gradient over data rows: θ (B, n), x (N, d) -> (B, n).

        One call covers every point and every row (θ columns of shape (B, 1) against data
        columns of shape (1, N), in blocks of at most ``block`` elements): no value, no kink
        arguments and no broadcasting of the gradient entries (an entry that does not depend
        on the rows is summed as N copies). For the means a gradient flow takes thousands of.
        """
        th = np.asarray(theta, dtype=float)
        if th.ndim != 2 or th.shape[1] != self.n:
            raise ValueError(f"theta must have shape (B, {self.n}); got {th.shape}")
        if x is None or not self.d:
            return np.asarray(self.grad(th, x), dtype=float).reshape(th.shape)
        X = np.asarray(x, dtype=float)
        bare = self._bare()
        B, N = th.shape[0], X.shape[0]
        tcols = [th[:, i:i + 1] for i in range(self.n)]
        out = np.zeros((B, self.n))
        step = max(1, block // max(B, 1))
        for a in range(0, N, step):
            xb = X[a:a + step]
            m = xb.shape[0]
            xcols = [np.ascontiguousarray(xb[:, j])[None, :] for j in range(self.d)]
            _, grads = bare(*tcols, *xcols)
            for i, g in enumerate(grads):
                g = np.asarray(g)
                if g.ndim == 0:  # the same for every point and row
                    out[:, i] += m * float(g)
                elif g.shape[1] == m:  # (B, m) or (1, m)
                    out[:, i] += g.sum(axis=1)
                else:  # constant along the rows: m copies
                    out[:, i] += m * g[:, 0]
        return out / N

    def grad_sums(self, theta: np.ndarray, owner: np.ndarray, x: np.ndarray, weights: np.ndarray, *,
                  block: int = 1 << 15) -> np.ndarray:
        """Weighted sums of per-sample gradients, each row at its own point: θ (B, n), and
        rows ``x`` (M, d) with ``weights`` (M,) belonging to the points ``owner`` (M,) ->
        ``out[b] = Σ_{r: owner[r] = b} weights[r] ∇ℓ(θ_b, x_r)``, shape (B, n).

        One generated call per block of ``block`` rows (the gradient alone, unbroadcast), the
        sums per point by ``np.bincount``: a cubature rule's E[g] at a batch of points.
        """
        th = np.asarray(theta, dtype=float)
        if th.ndim != 2 or th.shape[1] != self.n:
            raise ValueError(f"theta must have shape (B, {self.n}); got {th.shape}")
        X = np.asarray(x, dtype=float)
        own = np.asarray(owner, dtype=np.intp)
        w = np.asarray(weights, dtype=float)
        B = th.shape[0]
        out = np.zeros((B, self.n))
        bare = self._bare()
        for a in range(0, X.shape[0], block):
            ob, wb = own[a:a + block], w[a:a + block]
            m = ob.size
            tcols = [th[:, i][ob] for i in range(self.n)]
            xcols = [np.ascontiguousarray(X[a:a + block, j]) for j in range(self.d)]
            _, grads = bare(*tcols, *xcols)
            for i, g in enumerate(grads):
                col = np.broadcast_to(np.asarray(g, dtype=float), (m,)) * wb
                out[:, i] += np.bincount(ob, weights=col, minlength=B)
        return out  # a non-finite per-sample gradient leaves its point's sum non-finite

    def _bare(self) -> CompiledFunction:
        """The gradient alone, unbroadcast (no value, no kink arguments), compiled on first use."""
        if self._grad_bare is None:
            self._grad_bare = compile_graph(self.graph, [], grad_of=self.root, wrt=self.theta_nodes, name="grad_bare",
                                            broadcast=False)
        return self._grad_bare

    def hvp(self, theta: np.ndarray, v: np.ndarray, x: np.ndarray | None = None, h: float = 1e-30) -> np.ndarray:
        """Hessian-vector products H(θ, x) v by the complex step (exact to rounding).

        ``theta`` (..., n) and ``v`` (..., n) broadcast; the code compares real parts only, so
        ``Im ∇ℓ(θ + i h v) / h`` is H v without subtractive cancellation.
        """
        th = np.asarray(theta, dtype=complex) + 1j * h * np.asarray(v)
        cols = [np.asarray(c) for c in self._inputs(th, x)]
        shape = np.broadcast_shapes(*[c.shape for c in cols])
        out = np.empty(shape + (self.n,))
        bare = self._bare()
        # the gradient alone (no value, no kink arguments), each entry's imaginary part written
        # straight into the result, in blocks along the longest axis: complex temporaries of
        # ~_HVP_BLOCK elements stay in cache instead of streaming arrays of millions
        if not shape:  # one point, one sample
            _, grads = bare(*cols)
            for i, g in enumerate(grads):
                out[i] = np.imag(g) / h
            return out
        ax = int(np.argmax(shape))
        size = int(np.prod(shape))
        step = shape[ax] if size <= _HVP_BLOCK else max(1, _HVP_BLOCK * shape[ax] // size)
        for a in range(0, shape[ax], step):
            part = [c[_along(c, len(shape), ax, a, step)] for c in cols]
            _, grads = bare(*part)
            dest = out[(slice(None),) * ax + (slice(a, a + step),)]
            for i, g in enumerate(grads):
                dest[..., i] = np.imag(g) / h
        return out


#: elements per block of the complex-step Hessian-vector products
_HVP_BLOCK = 1 << 15


def _along(c: np.ndarray, ndim: int, ax: int, a: int, step: int) -> tuple:
    """Index of block [a, a + step) along axis ``ax`` of the broadcast shape (of ``ndim``
    axes) for an input ``c`` that broadcasts to it (its own axis there may be 1 or absent)."""
    k = ax - (ndim - c.ndim)
    if k < 0 or c.shape[k] == 1:
        return (Ellipsis,)
    return (slice(None),) * k + (slice(a, a + step),)


def compiled(loss: Loss) -> CompiledLoss:
    """The CompiledLoss of ``loss`` (built once, cached on the Loss)."""
    c = loss._cache.get("compiled")
    if c is None:
        c = CompiledLoss(loss)
        loss._cache["compiled"] = c
    return c

