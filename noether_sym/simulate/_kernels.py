"""Simulate: the batch gradient of one SGD step, on a whole (replicas x batch) block at once.

Three kernels share one interface (``grad``, ``derive``, ``rows``, ``loss_value``, ``hvp``):

* ``_CompiledKernel``: the per-sample gradient generated from ``loss.sample_expr``
  (:class:`StepGradient`), θ as contiguous columns ``(n, R)``;
* ``_FastKernel``: the families' matrix-form ``loss.fast_grad``, θ as rows ``(R, n)``;
* ``_MeanGradKernel``: GD on random-symbol data, the exact E[g] from the data moments.

Design
------
The step gradient is compiled without output broadcasting
(``compile_graph(..., broadcast=False)``): the step assigns it into a preallocated array,
which broadcasts anyway. The θ-free parts of the loss (a target ``βᵀx + ε``) are split off
(:func:`_hoist_data_terms`) and evaluated once per block of draws instead of every step.
"""


from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError, NoetherSymError
from ..compile._codegen import compile_graph
from ..compile._compiled import compiled
from ..compile._graph import Graph
from ..data._moments import moments
from ..loss._loss import Loss

__all__ = ['StepGradient', 'step_gradient']

_DERIVE_SLAB = 1 << 15  # values per call when evaluating data-only terms over a block


# ------------------------------------------------------------------------------------------
# Gradient kernels
# ------------------------------------------------------------------------------------------


def _hoist_data_terms(loss: Loss) -> tuple[sp.Expr, list[sp.Expr], list[sp.Symbol]]:
    """Split ``loss.sample_expr`` into a θ-dependent skeleton and data-only parts.

    Every maximal θ-free sub-expression that feeds a θ-dependent node (for example the
    target ``βᵀx + ε`` inside ``(u wᵀx − βᵀx − ε)²``, or all θ-free terms of a sum or
    factors of a product, grouped) becomes a new symbol z_j. The z_j are functions of the
    data alone: the simulator evaluates them once per block of draws, vectorized over all
    its steps, instead of at every step. Returns (skeleton, z expressions, z symbols).
    """
    theta = set(loss.theta)
    root = loss.sample_expr
    order: list[sp.Basic] = []
    seen: set[sp.Basic] = set()
    stack: list[tuple[sp.Basic, bool]] = [(root, False)]
    while stack:
        e, ready = stack.pop()
        if ready:
            order.append(e)
            continue
        if e in seen:
            continue
        seen.add(e)
        stack.append((e, True))
        stack.extend((a, False) for a in e.args if a not in seen)
    dep: dict[sp.Basic, bool] = {}
    for e in order:
        if e not in dep:
            dep[e] = e in theta or any(dep[a] for a in e.args)
    derived: dict[sp.Basic, sp.Symbol] = {}

    def data_symbol(e: sp.Basic) -> sp.Basic:
        if e.is_Atom or not isinstance(e, sp.Expr) or e.is_number:
            return e
        if e not in derived:
            derived[e] = sp.Dummy(f"z{len(derived)}", real=True)
        return derived[e]

    new: dict[sp.Basic, sp.Basic] = {}
    for e in order:
        if e in new or not dep[e]:
            continue
        if not e.args:
            new[e] = e
            continue
        if isinstance(e, (sp.Add, sp.Mul)):
            free = [a for a in e.args if not dep[a]]
            rest = [new[a] for a in e.args if dep[a]]
            if len(free) > 1:
                free = [data_symbol(e.func(*free))]
            else:
                free = [data_symbol(a) for a in free]
            new[e] = e.func(*free, *rest)
            continue
        args = [new[a] if dep[a] else data_symbol(a) for a in e.args]
        if isinstance(e, (sp.Max, sp.Min)):
            new[e] = e.func(*args, evaluate=False)
        elif all(a is b for a, b in zip(args, e.args)):
            new[e] = e
        else:
            new[e] = e.func(*args)
    return new[root], list(derived), list(derived.values())


class StepGradient:
    """The per-sample gradient compiled for the step loop (cached on the loss).

    Two generated functions: ``derive(*x columns) -> z columns``, the data-only parts of the
    loss (:func:`_hoist_data_terms`), evaluated once per block of draws; and
    ``f(*θ columns, *x columns, *z columns) -> ((), [∂ℓ/∂θ_i])`` with unbroadcast outputs
    (each broadcastable to the input shape: ``compile_graph(..., broadcast=False)``).
    """

    def __init__(self, loss: Loss) -> None:
        self.n = loss.n
        data = (*loss.x, *loss.c)
        try:
            skeleton, zexprs, zsyms = _hoist_data_terms(loss)
        except Exception:  # noqa: BLE001 - rewriting is an optimization: fall back to the loss itself
            skeleton, zexprs, zsyms = loss.sample_expr, [], []
        self.m = len(zsyms)
        graph = Graph((*loss.theta, *data, *zsyms))
        root = graph.add(skeleton)
        # bare outputs: the step assigns them into a preallocated array, which broadcasts
        self.f = compile_graph(graph, [], grad_of=root, wrt=list(range(self.n)), name="step_gradient",
                               broadcast=False)
        self.derive_fn = None
        if self.m:
            gz = Graph(data)
            self.derive_fn = compile_graph(gz, [gz.add(e) for e in zexprs], name="derived_data")

    def derive(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray | None:
        """Data rows ``(..., d)`` -> the data-only parts ``(m, ...)`` (None if there are none),
        written into ``out`` when it has the right shape."""
        if not self.m:
            return None
        shape = (self.m,) + X.shape[:-1]
        Z = out if out is not None and out.shape == shape and out.flags.c_contiguous else np.empty(shape)
        # in slabs along the first axis that stay in cache: on a whole block, every
        # operation would stream (and page-fault) megabytes of temporaries
        per = max(1, int(np.prod(X.shape[1:-1], dtype=np.int64)))
        step = max(1, _DERIVE_SLAB // per)
        for a in range(0, X.shape[0], step):
            outs = self.derive_fn(*np.moveaxis(X[a : a + step], -1, 0))[0]
            for j, z in enumerate(outs):
                Z[j, a : a + step] = z
        return Z

    @property
    def source(self) -> str:
        return self.f.source


def step_gradient(loss: Loss) -> StepGradient:
    """The :class:`StepGradient` of ``loss`` (built once, cached on the loss)."""
    f = loss._cache.get("step_gradient")
    if f is None:
        f = loss._cache["step_gradient"] = StepGradient(loss)
    return f


class _CompiledKernel:
    """Batch gradient from the compiled scalar code. Layout "cols": θ is (n, R), so that each
    parameter is a contiguous column for the generated code. A batch of data is (R, B, d)
    (or (1, N, d) for a full dataset shared by all replicas), as for every kernel: its
    columns are strided views, cheaper than transposing each block of draws. ``Z`` holds
    the data-only parts of the loss for the batch, ``(m, R, B)`` (see :meth:`derive`)."""

    layout = "cols"

    def __init__(self, loss: Loss) -> None:
        self.loss = loss
        self.n = loss.n
        self.step = step_gradient(loss)
        self.f = self.step.f
        self._buf: np.ndarray | None = None

    def derive(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray | None:
        return self.step.derive(X, out)

    def grad(self, T: np.ndarray, X: np.ndarray | None, Z: np.ndarray | None = None) -> np.ndarray:
        n, R = T.shape
        if X is None:
            outs = self.f(*T)[1]
            G = np.empty((n, R))
            for i, g in enumerate(outs):
                G[i] = g
            return G
        B = X.shape[1]
        if B == 1 and X.shape[0] == R:
            outs = self.f(*T, *X[:, 0, :].T, *(() if Z is None else Z[:, :, 0]))[1]
            G = np.empty((n, R))
            for i, g in enumerate(outs):
                G[i] = g
            return G
        outs = self.f(*T[:, :, None], *np.moveaxis(X, -1, 0), *(() if Z is None else Z))[1]
        buf = self._buf
        if buf is None or buf.shape != (n, R, B):
            buf = self._buf = np.empty((n, R, B))
        for i, g in enumerate(outs):
            buf[i] = g
        return buf.mean(axis=2)

    def rows(self, T: np.ndarray) -> np.ndarray:
        return T.T

    def loss_value(self, T: np.ndarray, X: np.ndarray | None) -> np.ndarray:
        c = compiled(self.loss)
        th = self.rows(T)
        if X is None:
            return c.value(th, None)
        return c.value(th[:, None, :], X).mean(axis=1)

    def hvp(self, theta_rows: np.ndarray, V: np.ndarray, X: np.ndarray | None) -> np.ndarray:
        """Batch-mean H v: theta (R, n), V (P, R, n) -> (P, R, n)."""
        c = compiled(self.loss)
        if X is None:
            return c.hvp(theta_rows[None], V, None)
        return c.hvp(theta_rows[None, :, None, :], V[:, :, None, :], X[None]).mean(axis=2)


class _FastKernel:
    """Batch gradient from ``loss.fast_grad``. Layout "rows": θ is (R, n), a batch of data
    is (R, B, d) (or (1, N, d) for a full dataset)."""

    layout = "rows"

    def __init__(self, loss: Loss) -> None:
        self.loss = loss
        self.n = loss.n
        self.fg = loss.fast_grad
        self._batch_mean = getattr(self.fg, "batch_mean", None)
        self._out = False
        if self._batch_mean is not None:
            try:
                self._out = "out" in inspect.signature(self._batch_mean).parameters
            except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
                self._out = False
        self._buf: np.ndarray | None = None
        self._d = len(loss.x) + len(loss.c)

    def _x(self, X: np.ndarray | None, R: int) -> np.ndarray:
        return np.zeros((R, 1, self._d)) if X is None else X

    @staticmethod
    def derive(X: np.ndarray, out: Any = None) -> None:
        return None

    def grad(self, T: np.ndarray, X: np.ndarray | None, Z: Any = None) -> np.ndarray:
        X = self._x(X, T.shape[0])
        if self._out:
            if self._buf is None or self._buf.shape != T.shape:
                self._buf = np.empty(T.shape)
            return self._batch_mean(T, X, out=self._buf)
        if self._batch_mean is not None:
            return self._batch_mean(T, X)
        return np.asarray(self.fg(T[:, None, :], X)).mean(axis=1)

    @staticmethod
    def rows(T: np.ndarray) -> np.ndarray:
        return T

    def loss_value(self, T: np.ndarray, X: np.ndarray | None) -> np.ndarray:
        X = self._x(X, T.shape[0])
        value = getattr(self.fg, "value", None)
        if value is not None:
            return np.asarray(value(T[:, None, :], X)).mean(axis=1)
        return compiled(self.loss).value(T[:, None, :], X).mean(axis=1)

    def hvp(self, theta_rows: np.ndarray, V: np.ndarray, X: np.ndarray | None) -> np.ndarray:
        X = self._x(X, theta_rows.shape[0])[None]
        hvp = getattr(self.fg, "hvp", None)
        if hvp is None:
            hvp = compiled(self.loss).hvp
        return np.asarray(hvp(theta_rows[None, :, None, :], V[:, :, None, :], X)).mean(axis=2)


class _MeanGradKernel:
    """GD on random-symbol data: the exact ∇L(θ) = E[g] from ``_data.moments`` (THEORY §1),
    lambdified with ``cse=True``; layout "cols", no data."""

    layout = "cols"

    def __init__(self, loss: Loss, values: Mapping | None) -> None:

        self.loss = loss
        self.n = loss.n
        key = ("simulate_mean_grad", tuple(sorted((str(k), str(v)) for k, v in (values or {}).items())))
        f = loss._cache.get(key)
        if f is None:
            try:
                mom = moments(loss, method="exact").with_values(values)
            except NoetherSymError as exc:
                raise InvalidArgumentError(
                    f"optimizer='gd' on random-symbol data needs the exact mean gradient E[g]: {exc}"
                ) from None
            entries = list(mom.mean_grad)  # SymPy expressions from the exact moments, never text
            stray = sorted({str(s) for e in entries for s in e.free_symbols} - {str(p) for p in loss.params})
            if stray:
                raise InvalidArgumentError(
                    f"the mean gradient depends on symbol(s) {', '.join(stray)} besides θ; give them "
                    "numbers with values={...}"
                )
            f = sp.lambdify(list(loss.params), entries, modules="numpy", cse=True)
            loss._cache[key] = f
        self.f = f

    @staticmethod
    def derive(X: np.ndarray, out: Any = None) -> None:
        return None

    def grad(self, T: np.ndarray, X: Any, Z: Any = None) -> np.ndarray:
        G = np.empty(T.shape)
        for i, g in enumerate(self.f(*T)):
            G[i] = g
        return G

    @staticmethod
    def rows(T: np.ndarray) -> np.ndarray:
        return T.T
