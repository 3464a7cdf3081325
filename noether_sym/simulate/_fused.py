"""Simulate: the fused compiled backend -- one numba kernel runs every step of every replica.

The NumPy step loop (:mod:`noether_sym.simulate._run`) issues a few array operations per
node of the loss per step; at batch 1 and a few parameters each of them costs more in
dispatch than in arithmetic. Here the whole run is one compiled function: a loop over
replicas, and inside it, for every step, the data draw of each sample, the per-sample
gradient, the batch mean, the update (weight decay, heavy-ball momentum, schedule), the
divergence test and the records at stride ``every``. θ of a replica never leaves the core
that runs it. The kernel releases the GIL and the replicas are split into one contiguous
share per thread (``NOETHER_SYM_THREADS``, default the usable cores); plain threads rather
than ``numba.prange`` because the parallel transform multiplies the compile time.

Compile time and cache: the kernel module is generated per loss (and data mode) and
compiled on its first use, then kept on disk (:func:`~noether_sym.compile._numba.load_generated`):
measured 30-104 s for the benchmark's kernels on the shared 2-core machine under load ~20
(see benchmarks/RESULTS.md), about 2 s to load from the cache in a new process.

Two kernel shapes, both generated from the loss:

* scalar: the per-sample value and gradient written from the expression DAG
  (:func:`~noether_sym.compile._numba.scalar_gradient_source`), any loss the NumPy
  compiler handles except functions known to SciPy only;
* network: a feed-forward network with squared loss whose ``fast_grad`` is a
  :class:`~noether_sym.compile._matrix_grads.MatrixGradient` (possibly seen through an
  affine data map, :class:`~noether_sym.compile._matrix_grads.DataMapGradient`): the
  matrix-form forward and backward pass as loops over each layer's weights (the matmuls of
  one sample), the activation generated from its SymPy form.

Random numbers
--------------
Replica r draws from Philox4x32-10 keyed by the seed (two 32-bit words of
``SeedSequence(seed).generate_state``) with r in the high half of the counter and the
draw index in the low half: block ``(k·B + b)·P + j`` is the j-th of the P blocks of
sample b of step k. So replica r's numbers depend on (seed, r) only -- not on the number
of replicas, the chunking or the thread count -- and are addressed, not consumed: a
replica's trajectory is bit-identical in every run with the same seed. Normal columns are
paired and take one block per pair (ziggurat, 64 bits each); uniform, Bernoulli,
Rademacher columns and a dataset row index take one uniform each, paired per block.

The NumPy backend draws from PCG64 streams (``SeedSequence(seed).spawn``) with NumPy's
own normal sampler: the two backends see different data for the same seed, with the same
distribution, so their statistics agree and their bits do not.
"""


from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from sympy.stats.crv_types import NormalDistribution, UniformDistribution
from sympy.stats.frv_types import BernoulliDistribution, RademacherDistribution

from .._errors import (
    InvalidArgumentError,
    MissingDependencyError,
    NoetherSymError,
    ResourceLimitError,
    UnsupportedExpressionError,
)
from ..compile._graph import Graph
from ..compile._matrix_grads import DataMapGradient, MatrixGradient
from ..compile._numba import (
    float_literal,
    load_generated,
    numba_status,
    scalar_activation_source,
    scalar_gradient_source,
)
from ..data._sample import _numeric_args, _value_map
from ..loss._loss import Loss
from ._result import OVERFLOW
from ._schedule import _schedule_factors

__all__ = ['BackendFallbackWarning', 'FusedKernel', 'fused_kernel', 'philox_key', 'run_fused', 'select_kernel']

#: from this batch size on, a network's batch goes through matmuls (BLAS) instead of per-sample loops
_BATCH_MIN = 4
#: from this many parameters on, a network runs through its per-layer code even at batch < _BATCH_MIN
_NETWORK_MIN_N = 256
#: the largest expression DAG written as one scalar kernel (numba's compile time grows with it)
MAX_FUSED_NODES = 6000


class NotFusable(NoetherSymError):
    """This run has a feature the fused kernel does not implement (the message says which)."""


def philox_key(seed: int) -> tuple[int, int]:
    """The Philox key of a seed: two 32-bit words of ``SeedSequence(seed)``."""
    w = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint32)
    return int(w[0]), int(w[1])


# ------------------------------------------------------------------------------------------
# data draws
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Draws:
    """How one sample's data row is made in the kernel: the draw statements (source lines,
    filling ``x``), the module-level tables they read (``prelude``), the constants' lines
    and the number P of Philox blocks per sample."""

    lines: tuple[str, ...]
    prelude: str
    const_lines: tuple[str, ...]
    P: int
    dataset: np.ndarray | None


#: the draw loops: normal columns in pairs (one block each), then the other columns in
#: pairs of uniforms (kind 0: a + b u, 1: Bernoulli (u < a: b, else c), 2: Rademacher)
_DRAW_LINES = (
    "for _p in range(NPAIR):",
    "    _z1, _z2 = normal_pair(ctr + _p, rid, k0, k1)",
    "    x[NIDX[2 * _p]] = NMEAN[2 * _p] + NSTD[2 * _p] * _z1",
    "    if 2 * _p + 1 < NNORM:",
    "        x[NIDX[2 * _p + 1]] = NMEAN[2 * _p + 1] + NSTD[2 * _p + 1] * _z2",
    "for _p in range(UPAIR):",
    "    _u1, _u2 = uniform_pair(ctr + NPAIR + _p, rid, k0, k1)",
    "    x[UIDX[2 * _p]] = _column_value(2 * _p, _u2)",
    "    if 2 * _p + 1 < NUNIF:",
    "        x[UIDX[2 * _p + 1]] = _column_value(2 * _p + 1, 1.0 - _u1)",
)

_COLUMN_VALUE = '''
@_nb.njit(cache=True)
def _column_value(c, u):
    kind = UKIND[c]
    if kind == 0:
        return UA[c] + UB[c] * u
    if kind == 1:
        return UB[c] if u < UA[c] else UC[c]
    return 1.0 if u < 0.5 else -1.0
'''


def _table(name: str, values: Any, kind: str) -> str:
    vals = list(values) or [0]
    text = ", ".join(float_literal(v, "distribution parameter") if kind == "f" else str(int(v)) for v in vals)
    dtype = "_np.float64" if kind == "f" else "_np.int64"
    return f"{name} = _np.array([{text}], dtype={dtype})"


def _columns(loss: Loss, values: Any, mode: str, N: int | None, sampler_rows: np.ndarray | None) -> _Draws:
    d = len(loss.x) + len(loss.c)
    if mode == "none" or d == 0:
        return _Draws((), "", (), 0, None)
    if mode == "full":
        return _Draws(("for _c in range(__DX__):", "    x[_c] = rows[b, _c]"), "", (), 0, sampler_rows)
    if N is not None:  # sampled with replacement from a dataset: one uniform for the row index
        lines = (
            "_u1, _u2 = uniform_pair(ctr, rid, k0, k1)",
            f"_row = min(int(_u2 * {N}), {N - 1})",
            "for _c in range(__DX__):",
            "    x[_c] = rows[_row, _c]",
        )
        return _Draws(lines, "", (), 1, sampler_rows)
    vals = _value_map(loss, values)
    normals: list[tuple[int, float, float]] = []
    others: list[tuple[int, int, float, float, float]] = []
    for j, X in enumerate(loss.random_symbols):
        dist = X.pspace.distribution
        a = _numeric_args(X, vals)
        if isinstance(dist, NormalDistribution):
            normals.append((j, a[0], a[1]))
        elif isinstance(dist, UniformDistribution):
            others.append((j, 0, a[0], a[1] - a[0], 0.0))
        elif isinstance(dist, BernoulliDistribution):
            others.append((j, 1, a[0], a[1], a[2]))
        elif isinstance(dist, RademacherDistribution):
            others.append((j, 2, 0.0, 0.0, 0.0))
        else:
            raise NotFusable(
                f"the random symbol {X} has a {type(dist).__name__}, which the compiled sampler does not draw "
                "(it draws Normal, Uniform, Bernoulli and Rademacher)"
            )
    npair, upair = -(-len(normals) // 2), -(-len(others) // 2)
    prelude = "\n".join([
        f"NNORM = {len(normals)}", f"NPAIR = {npair}", f"NUNIF = {len(others)}", f"UPAIR = {upair}",
        _table("NIDX", [c[0] for c in normals], "i"), _table("NMEAN", [c[1] for c in normals], "f"),
        _table("NSTD", [c[2] for c in normals], "f"), _table("UIDX", [c[0] for c in others], "i"),
        _table("UKIND", [c[1] for c in others], "i"), _table("UA", [c[2] for c in others], "f"),
        _table("UB", [c[3] for c in others], "f"), _table("UC", [c[4] for c in others], "f"),
    ]) + "\n" + _COLUMN_VALUE
    consts = [float(v) for v in loss.constant_values().values()] if loss.c else []
    k = len(loss.random_symbols)
    const_lines = tuple(f"x[{k + i}] = {float_literal(v, 'constant')}" for i, v in enumerate(consts))
    return _Draws(_DRAW_LINES, prelude, const_lines, npair + upair, None)


# ------------------------------------------------------------------------------------------
# kernel source
# ------------------------------------------------------------------------------------------

_RUN_TEMPLATE = '''
BATCH_MIN = __BATCH_MIN__  # from this batch size on, a network's batch goes through matmuls

@_nb.njit(cache=True, nogil=True, error_model="numpy")
def run(T, rids, k0, k1, steps, every, lr, etas, wd, mu, B, rows, out_T, div_step,
        rec_theta, rec_norm2, rec_loss, rec_gn2, rec_x, n_rec, batch_rec):
    R = T.shape[0]
    n = T.shape[1]
    limit2 = __LIMIT__ * __LIMIT__
    for i in range(R):
        rid = rids[i]
        th = T[i].copy()
        tn = _np.empty(n)
        g = _np.zeros(n)
        gs = _np.zeros(n)
        vel = _np.zeros(n)
        x1 = _np.zeros(max(__DX__, 1))
        x = x1
        XN = _np.zeros((B if __USE_BATCH__ else 1, max(__DX__, 1)))
        __SCRATCH__
        __CONSTS__
        j = 0
        for k in range(steps + 1):
            rec = n_rec > 0 and k % every == 0
            if k == steps and not rec:
                break
            lsum = 0.0
            if k < steps or batch_rec:
                for q in range(n):
                    gs[q] = 0.0
                if __USE_BATCH__ and B >= BATCH_MIN:  # the batch as matrices: BLAS matmuls
                    for b in range(B):
                        ctr = (k * B + b) * __PBLK__
                        x = XN[b]
                        __BDRAW__
                        if rec and rec_x.shape[0] > 0:
                            for _c in range(__DX__):
                                rec_x[j, i, b, _c] = x[_c]
                    lsum += __BATCH_CALL__
                else:
                    x = x1
                    for b in range(B):
                        ctr = (k * B + b) * __PBLK__
                        __DRAW__
                        if rec and rec_x.shape[0] > 0:
                            for _c in range(__DX__):
                                rec_x[j, i, b, _c] = x[_c]
                        lsum += __SAMPLE__
                        for q in range(n):
                            gs[q] += g[q]
                inv = 1.0 / B
                for q in range(n):
                    gs[q] *= inv
            if rec:
                if rec_theta.shape[0] > 0:
                    for q in range(n):
                        rec_theta[j, i, q] = th[q]
                if rec_norm2.shape[0] > 0:
                    s = 0.0
                    for q in range(n):
                        s += th[q] * th[q]
                    rec_norm2[j, i] = s
                if rec_loss.shape[0] > 0:
                    rec_loss[j, i] = lsum / B
                if rec_gn2.shape[0] > 0:
                    s = 0.0
                    for q in range(n):
                        s += gs[q] * gs[q]
                    rec_gn2[j, i] = s
                j += 1
            if k == steps:
                break
            eta = etas[k] if etas.shape[0] > 0 else lr
            if mu != 0.0:
                for q in range(n):
                    v = mu * vel[q] + gs[q]
                    if wd != 0.0:
                        v = v + th[q] * wd
                    vel[q] = v
                    tn[q] = th[q] - v * eta
            elif wd != 0.0:
                c = 1.0 - eta * wd
                for q in range(n):
                    tn[q] = th[q] * c - gs[q] * eta
            else:
                for q in range(n):
                    tn[q] = th[q] - gs[q] * eta
            s = 0.0
            for q in range(n):
                s += tn[q] * tn[q]
            if not (s <= limit2):
                bad = False
                for q in range(n):
                    if not (abs(tn[q]) <= __LIMIT__):
                        bad = True
                if bad:
                    div_step[i] = k + 1
                    break
            for q in range(n):
                th[q] = tn[q]
        for q in range(n):
            out_T[i, q] = th[q]
'''


def _indent(lines: Any, pad: int) -> str:
    return ("\n" + " " * pad).join(lines) if lines else "pass"


def _run_source(draws: _Draws, d: int, sample: str, scratch: str = "pass", batch_call: str = "") -> str:
    src = _RUN_TEMPLATE
    src = src.replace("__BATCH_MIN__", str(_BATCH_MIN)).replace("__USE_BATCH__", str(bool(batch_call))).replace("__BATCH_CALL__", batch_call or "0.0")
    src = src.replace("__BDRAW__", _indent(draws.lines + draws.const_lines, 24))
    src = src.replace("__SCRATCH__", scratch).replace("__CONSTS__", _indent(draws.const_lines, 8))
    src = src.replace("__DRAW__", _indent(draws.lines, 24)).replace("__PBLK__", str(max(draws.P, 1)))
    src = src.replace("__SAMPLE__", sample).replace("__LIMIT__", repr(float(OVERFLOW))).replace("__DX__", str(d))
    return src


_NET_SAMPLE = '''
@_nb.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def net_sample(th, xn, g, xo, H, SL, dl, dn):
    """Loss and gradient of one sample of the network (xn: drawn row, mapped into xo)."""
    MAP
    for q in range(DIN):
        H[q] = xo[q]
    for l in range(NL):
        rows = DIMS[l + 1]
        cols = DIMS[l]
        w0 = WOFF[l]
        h0 = HOFF[l]
        o0 = HOFF[l + 1]
        for r in range(rows):
            s = th[BOFF[l] + r] if BOFF[l] >= 0 else 0.0
            base = w0 + r * cols
            for c in range(cols):
                s += th[base + c] * H[h0 + c]
            if l < NL - 1 and HAS_ACT:
                a, sl = act(s)
                H[o0 + r] = a
                SL[o0 + r] = sl
            else:
                H[o0 + r] = s
    out = DIMS[NL]
    fo = HOFF[NL]
    val = 0.0
    for o in range(out):
        e = H[fo + o] - xo[DIN + o]
        val += e * e
        dl[o] = 2.0 * e
    for l in range(NL - 1, -1, -1):
        rows = DIMS[l + 1]
        cols = DIMS[l]
        w0 = WOFF[l]
        h0 = HOFF[l]
        for r in range(rows):
            dr = dl[r]
            base = w0 + r * cols
            for c in range(cols):
                g[base + c] += dr * H[h0 + c]
            if BOFF[l] >= 0:
                g[BOFF[l] + r] += dr
        if l > 0:
            for c in range(cols):
                dn[c] = 0.0
            for r in range(rows):
                dr = dl[r]
                base = w0 + r * cols
                for c in range(cols):
                    dn[c] += th[base + c] * dr
            for c in range(cols):
                dl[c] = dn[c] * SL[h0 + c] if HAS_ACT else dn[c]
    return val
'''


def _net_batch_source(mg: MatrixGradient, dmap: DataMapGradient | None) -> str:
    """``net_batch(th, XN, gs) -> Σ loss``: the batch's summed loss, its summed gradient in
    ``gs``, with one matmul per layer and direction (straight-line code, one block per layer)."""
    L = len(mg.dims) - 1
    d0 = mg.dims[0]
    lines = ["@_nb.njit(cache=True, error_model='numpy')", "def net_batch(th, XN, gs):", "    B = XN.shape[0]"]
    if dmap is None:
        lines.append("    XO = XN")
    else:
        lines += [f"    XO = _np.empty((B, {mg.d}))", "    for b in range(B):", "        map_row(XN[b], XO[b])"]
    lines.append(f"    H0 = _np.ascontiguousarray(XO[:, :{d0}])")
    for l, (w, (rows, cols), bsl) in enumerate(mg.layers, start=1):
        lines.append(f"    W{l} = th[{w.start}:{w.stop}].reshape(({rows}, {cols}))")
        lines.append(f"    Z{l} = _np.dot(H{l - 1}, W{l}.T)")
        if bsl is not None:
            lines.append(f"    Z{l} += th[{bsl.start}:{bsl.stop}]")
        if l < L and mg._act is not None:
            lines += [f"    H{l} = _np.empty_like(Z{l})", f"    S{l} = _np.empty_like(Z{l})",
                      f"    for b in range(B):", f"        for r in range({rows}):",
                      f"            H{l}[b, r], S{l}[b, r] = act(Z{l}[b, r])"]
        else:
            lines.append(f"    H{l} = Z{l}")
    lines += [f"    E = H{L} - XO[:, {d0}:]", "    val = _np.sum(E * E)", "    D = 2.0 * E"]
    for l in range(L, 0, -1):
        w, (rows, cols), bsl = mg.layers[l - 1]
        lines.append(f"    gs[{w.start}:{w.stop}] = _np.dot(D.T, H{l - 1}).ravel()")
        if bsl is not None:
            lines.append(f"    gs[{bsl.start}:{bsl.stop}] = D.sum(axis=0)")
        if l > 1:
            lines.append(f"    D = _np.dot(D, W{l})" + (f" * S{l - 1}" if mg._act is not None else ""))
    lines.append("    return val")
    return "\n".join(lines) + "\n"


def _tuple_literal(values: Any) -> str:
    return "(" + ", ".join(str(int(v)) for v in values) + ",)"


def _net_source(mg: MatrixGradient, dmap: DataMapGradient | None, d_new: int) -> str:
    """The per-sample network function and its constants (layer offsets, data map)."""
    dims = mg.dims
    woff = [w.start for w, _, _ in mg.layers]
    boff = [-1 if b is None else b.start for _, _, b in mg.layers]
    hoff = np.concatenate([[0], np.cumsum(dims)]).tolist()
    consts = [
        f"DIMS = {_tuple_literal(dims)}", f"WOFF = {_tuple_literal(woff)}", f"BOFF = {_tuple_literal(boff)}",
        f"HOFF = {_tuple_literal(hoff)}", f"NL = {len(dims) - 1}", f"DIN = {dims[0]}",
        f"HAS_ACT = {mg._act is not None}",
    ]
    act_src = ""
    if mg._act is not None:
        act = getattr(mg, "activation", None)
        if act is None:
            raise NotFusable("this network's fast_grad does not keep its SymPy activation")
        act_src = scalar_activation_source(act, "act")
    else:
        act_src = "@_nb.njit(cache=True)\ndef act(z):\n    return z, 1.0\n"
    if dmap is None:
        body = [f"for q in range({mg.d}):", "    xo[q] = xn[q]"]
    else:
        M = dmap._matrix
        off = dmap._offset if dmap._offset is not None else np.zeros(M.shape[0])
        body = []
        for c in range(M.shape[0]):
            terms = [f"{float_literal(M[c, t], 'data map')} * xn[{t}]" for t in np.nonzero(M[c])[0]]
            if off[c] != 0.0:
                terms.append(float_literal(off[c], "data map"))
            body.append(f"xo[{c}] = {' + '.join(terms) if terms else '0.0'}")
    map_src = "@_nb.njit(cache=True)\ndef map_row(xn, xo):\n    " + _indent(body, 4) + "\n"
    src = _NET_SAMPLE.replace("MAP", "map_row(xn, xo)")
    return "\n".join(consts) + "\n\n" + act_src + "\n" + map_src + "\n" + src + "\n" + _net_batch_source(mg, dmap)


class FusedKernel:
    """A compiled fused simulation kernel for one loss, data model and data mode."""

    def __init__(self, loss: Loss, values: Any, mode: str, N: int | None, rows: np.ndarray | None,
                 batched: bool = False) -> None:
        self.n = loss.n
        self.d = len(loss.x) + len(loss.c)
        self.draws = _columns(loss, values, mode, N, rows)
        self.rows = np.zeros((1, 1)) if self.draws.dataset is None else np.ascontiguousarray(self.draws.dataset)
        fg = loss.fast_grad
        inner = fg.inner if isinstance(fg, DataMapGradient) else fg
        network = isinstance(inner, MatrixGradient) and (not isinstance(fg, DataMapGradient) or fg._matrix is not None)
        # small networks one sample at a time: the straight-line code of the DAG is faster
        # than the per-layer loops (1.6x on ReLU 2-16-1); large ones or large batches: layers
        if network and (batched or self.n > _NETWORK_MIN_N):
            self.shape = "network"
            part = _net_source(inner, fg if isinstance(fg, DataMapGradient) else None, self.d)
            width = max(inner.dims)
            scratch = (
                f"xo = _np.zeros({inner.d})\n        H = _np.zeros({sum(inner.dims)})\n"
                f"        SL = _np.zeros({sum(inner.dims)})\n        dl = _np.zeros({width})\n"
                f"        dn = _np.zeros({width})\n        for q in range(n):\n            g[q] = 0.0"
            )
            sample = "_net_step(th, x, g, xo, H, SL, dl, dn)"
            helper = (
                "@_nb.njit(cache=True)\ndef _net_step(th, x, g, xo, H, SL, dl, dn):\n"
                "    for q in range(g.shape[0]):\n        g[q] = 0.0\n    return net_sample(th, x, g, xo, H, SL, dl, dn)\n"
            )
            # the matmul path only where batches are large enough to use it (it costs compile time)
            body = _run_source(self.draws, self.d, sample, scratch, "net_batch(th, XN, gs)" if batched else "")
            self.source = self.draws.prelude + "\n" + part + "\n\n" + helper + "\n" + body
        else:
            self.shape = "scalar"
            graph = Graph((*loss.theta, *loss.x, *loss.c))
            root = graph.add(loss.sample_expr)
            if len(graph.nodes) > MAX_FUSED_NODES:
                raise NotFusable(
                    f"the loss's expression graph has {len(graph.nodes)} nodes, over MAX_FUSED_NODES = "
                    f"{MAX_FUSED_NODES} for one compiled kernel"
                )
            try:
                part = scalar_gradient_source(graph, root, self.n, "sample_grad")
            except UnsupportedExpressionError as exc:
                raise NotFusable(str(exc)) from None
            self.source = self.draws.prelude + "\n" + part + "\n" + _run_source(self.draws, self.d, "sample_grad(th, x, g)")
        self.module = load_generated(self.source)
        t0 = time.perf_counter()  # compile now (or load numba's cache), so that errors surface here
        self.run(np.zeros((1, self.n)), np.zeros(1, dtype=np.int64), (0, 0), 0, 1, 0.0, np.zeros(0), 0.0, 0.0, 1,
                 {}, 0, False)
        self.compile_seconds = time.perf_counter() - t0

    def run(self, T0: np.ndarray, rids: np.ndarray, key: tuple[int, int], steps: int, every: int, lr: float,
            etas: np.ndarray, wd: float, mu: float, B: int, recs: dict[str, np.ndarray], n_rec: int,
            batch_rec: bool, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run one chunk of replicas: (final θ (R, n), divergence step (R,), -1 when none)."""
        R = T0.shape[0]
        out = np.empty_like(T0)
        div = np.full(R, -1, dtype=np.int64)
        empty2, empty3, empty4 = np.zeros((0, 0)), np.zeros((0, 0, 0)), np.zeros((0, 0, 0, 0))
        T0 = np.ascontiguousarray(T0, dtype=float)
        data_rows = self.rows if rows is None else np.ascontiguousarray(rows, dtype=float)
        rids = np.ascontiguousarray(rids, dtype=np.int64)
        rec = [recs.get("theta", empty3), recs.get("norm2", empty2), recs.get("loss", empty2),
               recs.get("grad_norm2", empty2), recs.get("x", empty4)]

        def part(a: int, b: int) -> None:
            # records are (n_rec, R, ...): a slice over replicas is not contiguous, so each
            # part writes its own and they are copied back
            sub = [np.ascontiguousarray(r[:, a:b]) if r.size else r for r in rec]
            o, dv = out[a:b], div[a:b]
            self.module.run(T0[a:b], rids[a:b], key[0], key[1], int(steps), int(max(every, 1)), float(lr), etas,
                            float(wd), float(mu), int(B), data_rows, o, dv, *sub, int(n_rec), bool(batch_rec))
            for r, sr in zip(rec, sub):
                if r.size:
                    r[:, a:b] = sr

        threads = min(_threads(), R)
        if threads <= 1:
            part(0, R)
        else:  # the kernel releases the GIL: one contiguous share of the replicas per thread
            cuts = np.linspace(0, R, threads + 1).astype(int)
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda ab: part(*ab), zip(cuts[:-1], cuts[1:])))
        return out, div


def _threads() -> int:
    """Threads for the replicas: ``NOETHER_SYM_THREADS`` if set, else the usable cores."""
    env = os.environ.get("NOETHER_SYM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def fused_kernel(loss: Loss, values: Any, mode: str, N: int | None, rows: np.ndarray | None,
                 batch: int = 1) -> FusedKernel:
    """The :class:`FusedKernel` of a loss and data plan (built once per process, cached on the loss)."""
    vkey = tuple(sorted((str(k), str(v)) for k, v in (values or {}).items()))
    batched = batch >= _BATCH_MIN
    key = ("fused_kernel", vkey, mode, N, batched)
    k = loss._cache.get(key)
    if k is None:
        k = loss._cache[key] = FusedKernel(loss, values, mode, N, rows, batched)
    return k


def schedule_etas(lr: float, factors: np.ndarray | None, budget: int) -> np.ndarray:
    """The per-step learning rates of a schedule (empty array: constant ``lr``), bounded."""
    if factors is None:
        return np.zeros(0)
    if 8 * factors.size > budget:
        raise ResourceLimitError(
            f"the schedule's per-step rates would take {8 * factors.size / 2**20:.3g} MiB, over the budget; "
            "use fewer steps per run"
        )
    return np.ascontiguousarray(lr * factors, dtype=float)



# ------------------------------------------------------------------------------------------
# choosing the backend, running a simulation
# ------------------------------------------------------------------------------------------


#: ``backend="auto"`` compiles a fused kernel for runs of at least this many steps
AUTO_MIN_STEPS = 10_000


class BackendFallbackWarning(UserWarning):
    """``backend="auto"`` runs on NumPy because numba is missing or cannot express the loss."""


def select_kernel(loss: Loss, o: Any, mode: str, N: int | None, rows: np.ndarray | None,
                  sampler_given: bool, values: Any, batch: int = 1) -> tuple[FusedKernel | None, str]:
    """The fused kernel for this run, or (None, why not).

    ``backend="numba"`` raises instead of falling back; ``"auto"`` falls back to NumPy,
    with a :class:`BackendFallbackWarning` when numba is missing or cannot express the loss
    (once per process and reason), and with the reason in the result's settings always.
    """
    if o.backend == "numpy":
        return None, "backend='numpy'"
    ok, why = numba_status()
    reason, warn = None, False
    if not ok:
        reason, warn = why, True
    elif sampler_given:
        reason = "a custom sampler= is drawn by NumPy (the compiled kernels draw the loss's own data model)"
    elif mode == "epoch":
        reason = "epochs without replacement (replace=False) run on NumPy"
    elif mode == "exact":
        reason = "optimizer='gd' on random-symbol data uses the exact mean gradient E[g] (NumPy)"
    elif o.backend == "auto" and o.steps < AUTO_MIN_STEPS:
        # compiling a kernel costs seconds (once per loss and machine: it is cached on disk),
        # so a short run stays on NumPy. The rule looks at the step count only, so the choice
        # -- and with it the numbers -- never depends on the replica count or the chunking.
        reason = (f"a short run ({o.steps} < {AUTO_MIN_STEPS} steps) stays on NumPy: a first compile costs "
                  "seconds per loss (the threshold is a choice, not a measured crossover)")
    kernel = None
    if reason is None:
        try:
            kernel = fused_kernel(loss, values, mode, N, rows, batch)
        except NotFusable as exc:
            reason, warn = f"the compiled backend cannot express this run: {exc}", True
        except NoetherSymError:
            raise
        except Exception as exc:
            reason, warn = f"numba could not compile the kernel ({type(exc).__name__}: {str(exc)[:300]})", True
    if reason is None:
        return kernel, ""
    if o.backend == "numba":
        if not ok:
            raise MissingDependencyError(f"backend='numba' needs numba: {reason}. Install it (pip install "
                                         "'numba>=0.59') or use backend='numpy' (or 'auto', which falls back)")
        raise InvalidArgumentError(f"backend='numba' cannot run this simulation: {reason}. Use backend='numpy' "
                                   "(or 'auto', which falls back to NumPy and says so)")
    if warn and (reason, loss.name) not in _WARNED:
        _WARNED.add((reason, loss.name))
        warnings.warn(f"simulate(backend='auto') runs on NumPy: {reason}", BackendFallbackWarning, stacklevel=4)
    return None, reason


_WARNED: set[tuple[str, str]] = set()


def run_fused(kernel: FusedKernel, o: Any, T0: np.ndarray, seed: int, n_rec: int, every: int,
              obs: dict[str, np.ndarray], gens: Any, theta_out: np.ndarray, div_step: np.ndarray, B: int,
              budget: int, bar: Any, sharpness: Any = None, full_X: np.ndarray | None = None) -> None:
    """Run all replicas through ``kernel`` in chunks, filling ``theta_out``, ``div_step`` and ``obs``.

    ``sharpness(theta (R, n), X (R, B, d) or None, replica ids) -> (R,)`` evaluates the Hessian
    trace after the run, on θ and the batch of each record (the kernel keeps both)."""
    R, n = T0.shape
    names = list(o.record)
    key = philox_key(seed)
    etas = schedule_etas(o.lr, _schedule_factors(o.schedule, 0, o.steps, o.steps), budget)
    want_theta = any(nm in ("theta", "charges", "orbit", "sharpness") for nm in names)
    want_x = "sharpness" in names and kernel.d > 0 and full_X is None
    batch_rec = any(nm in ("loss", "grad_norm2", "sharpness") for nm in names)
    lam0 = gens.orbit(T0) if "orbit" in names else None
    chunk = o.chunk_size
    if chunk is None:
        per = 8 * max(n_rec, 1) * ((n if want_theta else 1) * 4 + (B * kernel.d if want_x else 0))
        chunk = max(1, min(R, (256 << 20) // per))
    for c0 in range(0, R, chunk):
        c1 = min(R, c0 + chunk)
        Rc = c1 - c0
        recs: dict[str, np.ndarray] = {}
        if want_theta and n_rec:
            recs["theta"] = np.full((n_rec, Rc, n), np.nan)
        if want_x and n_rec:
            recs["x"] = np.zeros((n_rec, Rc, B, kernel.d))
        for nm in ("norm2", "loss", "grad_norm2"):
            if nm in names and n_rec:
                recs[nm] = np.full((n_rec, Rc), np.nan)
        out, div = kernel.run(T0[c0:c1], np.arange(c0, c1), key, o.steps, every, o.lr, etas, o.weight_decay,
                              o.momentum, B, recs, n_rec, batch_rec, None if full_X is None else full_X[0])
        theta_out[c0:c1] = out
        div_step[c0:c1] = div
        for nm in names:
            if nm in ("norm2", "loss", "grad_norm2", "theta"):
                obs[nm][:, c0:c1] = recs[nm] if nm != "theta" else recs["theta"]
                continue
            th_all = recs["theta"]
            for j in range(n_rec):
                th = th_all[j]
                live = np.isfinite(th).all(axis=1)
                if not live.any():
                    continue
                ids = c0 + np.nonzero(live)[0]
                if nm == "sharpness":
                    X = recs["x"][j][live] if want_x else full_X
                    val = sharpness(th[live], X, ids)
                elif nm == "charges":
                    val = gens.charges(th[live])
                else:
                    val = gens.orbit(th[live]) - lam0[c0:c1][live]
                obs[nm][j, ids] = val
        if bar is not None:
            bar.update(Rc * o.steps)
