"""Compile: scalar numba source from the expression DAG, counter-based random numbers, a disk cache.

The NumPy code of :mod:`noether_sym.compile._codegen` evaluates a loss on whole arrays;
the fused simulation kernels (:mod:`noether_sym.simulate._fused`) instead run one sample
at a time inside a compiled loop over replicas, steps and samples. This module writes
that per-sample code from the same :class:`~noether_sym.compile._graph.Graph` (forward
values and the reverse-mode gradient, one assignment per node) with scalar emitters --
``a if c else b`` where the NumPy code has ``np.where`` -- and turns generated module
source into compiled functions, cached on disk.

Design
------
One writer, two back ends. :class:`_ScalarWriter` subclasses the NumPy ``_Writer`` and
overrides only the emitters whose NumPy form is an array operation (selections, masks,
real parts); sums, products, powers and the elementary functions keep their text, so the
two back ends differentiate by the same rules. A user function without a NumPy name (a
SciPy special function) has no numba form: :class:`UnsupportedExpressionError`.

Random numbers. ``PHILOX_SOURCE`` is Philox4x32-10 (Salmon et al., SC'11; the Random123
reference): a bijection of a 128-bit counter under a 64-bit key, so the numbers of
replica r at draw c are a pure function of (key, r, c) -- no state to carry, split or
hand between threads. Two uniforms come from one block (53 bits each), and two normals:
each from 64 bits by the ziggurat method (Marsaglia and Tsang, with NumPy's 256-layer
layout); the rare rejection (about 1.2% of draws) takes further blocks from a side stream
of that block (the counter's top byte numbers them), so the main stream's addressing
never shifts.

Cache. Generated module source is written to ``<cache dir>/<sha256 of source and numba
version>.py`` and imported from there, so numba's ``cache=True`` stores the machine code
beside it: a second process (or run) with the same loss loads it instead of compiling.
The directory is ``$NOETHER_SYM_CACHE`` if set, else ``~/.cache/noether_sym/numba`` (a
temporary directory when that is not writable).
"""


from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import sympy as sp

from .._errors import MissingDependencyError, UnsupportedExpressionError
from ._codegen import _float_literal, _Writer
from ._graph import Graph, Node

__all__ = ['PHILOX_SOURCE', 'load_generated', 'numba_status', 'require_numba', 'scalar_gradient_source']


#: Philox4x32-10 and the uniform/normal pairs drawn from one block (numba source text, the
#: head of every generated kernel module; also exec'd as plain Python by the tests)
PHILOX_SOURCE = '''
_M0 = _np.uint64(0xD2511F53)
_M1 = _np.uint64(0xCD9E8D57)
_W0 = _np.uint64(0x9E3779B9)
_W1 = _np.uint64(0xBB67AE85)
_L32 = _np.uint64(0xFFFFFFFF)
_S32 = _np.uint64(32)
_S11 = _np.uint64(11)
_TWO53 = 1.0 / 9007199254740992.0
_TWOPI = 6.283185307179586


@_nb.njit(cache=True, inline="always")
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of the counter (c0, c1, c2, c3) under the key (k0, k1), 32-bit words in uint64."""
    c0 = _np.uint64(c0)
    c1 = _np.uint64(c1)
    c2 = _np.uint64(c2)
    c3 = _np.uint64(c3)
    k0 = _np.uint64(k0)
    k1 = _np.uint64(k1)
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        n0 = ((p1 >> _S32) ^ c1 ^ k0) & _L32
        n1 = p1 & _L32
        n2 = ((p0 >> _S32) ^ c3 ^ k1) & _L32
        n3 = p0 & _L32
        c0, c1, c2, c3 = n0, n1, n2, n3
        k0 = (k0 + _W0) & _L32
        k1 = (k1 + _W1) & _L32
    return c0, c1, c2, c3


@_nb.njit(cache=True, inline="always")
def uniform_pair(ctr, rid, k0, k1):
    """Two uniforms of block ``ctr`` of replica ``rid``: u1 in (0, 1], u2 in [0, 1)."""
    ctr = _np.uint64(ctr)
    rid = _np.uint64(rid)
    w0, w1, w2, w3 = philox4x32(ctr & _L32, ctr >> _S32, rid & _L32, rid >> _S32, k0, k1)
    a = ((w1 << _S32) | w0) >> _S11
    b = ((w3 << _S32) | w2) >> _S11
    return (float(a) + 1.0) * _TWO53, float(b) * _TWO53


def _ziggurat_tables():
    """Marsaglia-Tsang ziggurat tables for the standard normal (256 layers, 52-bit ints), the
    layer volume v made consistent with r = 3.65415288536100879635 (v = r f(r) + ∫_r^∞ f)."""
    import math
    m = 2.0 ** 52
    dn = 3.6541528853610088
    tn = dn
    vn = dn * math.exp(-0.5 * dn * dn) + math.sqrt(math.pi / 2.0) * math.erfc(dn / math.sqrt(2.0))
    ki = _np.zeros(256, dtype=_np.uint64)
    wi = _np.zeros(256)
    fi = _np.zeros(256)
    q = vn / math.exp(-0.5 * dn * dn)
    ki[0] = int(dn / q * m)
    wi[0] = q / m
    wi[255] = dn / m
    fi[0] = 1.0
    fi[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(vn / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = int(dn / tn * m)
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m
    return ki, wi, fi


_KI, _WI, _FI = _ziggurat_tables()
_ZR = 3.6541528853610088
_ZINV_R = 1.0 / _ZR
_MASK52 = _np.uint64(0x000FFFFFFFFFFFFF)
_U8 = _np.uint64(0xFF)
_ONE = _np.uint64(1)
_S8 = _np.uint64(8)
_S9 = _np.uint64(9)


@_nb.njit(cache=True)
def _side_block(ctr, rid, k0, k1, slot, a):
    """Block ``a`` of the side stream of normal ``slot`` of block ``ctr`` (rejections only):
    the counter's top byte holds ``a`` (mod 128) and bit 23 the slot."""
    hi = (rid >> _S32) | _np.uint64(((a & 0x7F) << 24) | (slot << 23))
    return philox4x32(ctr & _L32, ctr >> _S32, rid & _L32, hi, k0, k1)


@_nb.njit(cache=True)
def _ziggurat(r, ctr, rid, k0, k1, slot):
    """A standard normal from the 64 random bits ``r`` (ziggurat, as NumPy's); a rejection
    (under 1.5% of draws) takes further blocks from the side stream of (ctr, rid, slot)."""
    ctr = _np.uint64(ctr)
    rid = _np.uint64(rid)
    a = 0
    while True:
        idx = r & _U8
        sign = (r >> _S8) & _ONE
        rabs = (r >> _S9) & _MASK52
        x = float(rabs) * _WI[idx]
        if sign == _ONE:
            x = -x
        if rabs < _KI[idx]:
            return x
        if idx == 0:  # the base strip's tail beyond r: Marsaglia's tail method
            while True:
                a += 1
                w0, w1, w2, w3 = _side_block(ctr, rid, k0, k1, slot, a)
                xx = -_ZINV_R * _np.log1p(-float(((w1 << _S32) | w0) >> _S11) * _TWO53)
                yy = -_np.log1p(-float(((w3 << _S32) | w2) >> _S11) * _TWO53)
                if yy + yy > xx * xx:
                    return -(_ZR + xx) if sign == _ONE else _ZR + xx
        a += 1
        w0, w1, w2, w3 = _side_block(ctr, rid, k0, k1, slot, a)
        u = float(((w1 << _S32) | w0) >> _S11) * _TWO53
        if (_FI[idx - 1] - _FI[idx]) * u + _FI[idx] < _np.exp(-0.5 * x * x):
            return x
        r = (w3 << _S32) | w2  # rejected in the wedge: a fresh candidate


@_nb.njit(cache=True, inline="always")
def _normal(r, ctr, rid, k0, k1, slot):
    """The ziggurat's fast path (about 98.8% of draws) inline, the rest in ``_ziggurat``."""
    idx = r & _U8
    rabs = (r >> _S9) & _MASK52
    if rabs < _KI[idx]:
        x = float(rabs) * _WI[idx]
        return -x if (r >> _S8) & _ONE == _ONE else x
    return _ziggurat(r, ctr, rid, k0, k1, slot)


@_nb.njit(cache=True, inline="always")
def normal_pair(ctr, rid, k0, k1):
    """Two independent standard normals from block ``ctr`` of replica ``rid`` (ziggurat, 64 bits each)."""
    c = _np.uint64(ctr)
    rr = _np.uint64(rid)
    w0, w1, w2, w3 = philox4x32(c & _L32, c >> _S32, rr & _L32, rr >> _S32, k0, k1)
    return (_normal((w1 << _S32) | w0, ctr, rid, k0, k1, 0),
            _normal((w3 << _S32) | w2, ctr, rid, k0, k1, 1))
'''


def numba_status() -> tuple[bool, str]:
    """(True, version) when numba imports, else (False, the reason)."""
    try:
        import numba
    except Exception as exc:
        return False, f"numba is not importable ({type(exc).__name__}: {exc})"
    return True, str(numba.__version__)


def require_numba(what: str) -> None:
    """Raise :class:`MissingDependencyError` naming ``what`` when numba is unavailable."""
    ok, why = numba_status()
    if not ok:
        raise MissingDependencyError(
            f"{what} needs numba: {why}. Install it (pip install 'numba>=0.59') or choose backend='numpy'"
        )


# ------------------------------------------------------------------------------------------
# scalar code from the DAG
# ------------------------------------------------------------------------------------------


class _ScalarWriter(_Writer):
    """The NumPy writer with scalar selections: per-sample code for a numba kernel.

    Inputs are read from two arrays, ``th[i]`` for the first ``n_theta`` graph inputs and
    ``x[j]`` for the rest."""

    def __init__(self, graph: Graph, n_theta: int) -> None:
        super().__init__(graph, broadcast=False)
        self.n_theta = n_theta
        self.uses_shape = False

    def _emit_in(self, i: int, nd: Node, a: list[str]) -> str:
        k = nd.data
        return f"th[{k}]" if k < self.n_theta else f"x[{k - self.n_theta}]"

    def _emit_fn(self, i: int, nd: Node, a: list[str]) -> str:
        fname = self.graph.numeric_fn(nd.data, nd.expr)
        if fname.startswith("_fn_"):
            raise UnsupportedExpressionError(
                f"the function {nd.data} has no compiled (numba) form: simulate this loss with backend='numpy'"
            )
        return f"{fname}({', '.join(a)})"

    def _emit_max(self, i: int, nd: Node, a: list[str]) -> str:
        return f"({a[0]} if v{nd.data} >= 0 else {a[1]})"

    def _emit_min(self, i: int, nd: Node, a: list[str]) -> str:
        return f"({a[0]} if v{nd.data} <= 0 else {a[1]})"

    def _emit_abs(self, i: int, nd: Node, a: list[str]) -> str:
        return f"({a[0]} if {a[0]} >= 0 else -{a[0]})"

    def _emit_sign(self, i: int, nd: Node, a: list[str]) -> str:
        return f"_np.sign({a[0]})"

    def _emit_heaviside(self, i: int, nd: Node, a: list[str]) -> str:
        return f"(1.0 if {a[0]} > 0 else (0.0 if {a[0]} < 0 else {nd.data!r}))"

    def _emit_gt0(self, i: int, nd: Node, a: list[str]) -> str:
        return f"{a[0]} > 0"

    def _emit_lt0(self, i: int, nd: Node, a: list[str]) -> str:
        return f"{a[0]} < 0"

    def _emit_eq0(self, i: int, nd: Node, a: list[str]) -> str:
        return f"{a[0]} == 0"

    def _emit_ne0(self, i: int, nd: Node, a: list[str]) -> str:
        return f"{a[0]} != 0"

    def _emit_and(self, i: int, nd: Node, a: list[str]) -> str:
        return " and ".join(f"({x})" for x in a)

    def _emit_or(self, i: int, nd: Node, a: list[str]) -> str:
        return " or ".join(f"({x})" for x in a)

    def _emit_not(self, i: int, nd: Node, a: list[str]) -> str:
        return f"not ({a[0]})"

    def _emit_pw(self, i: int, nd: Node, a: list[str]) -> str:
        vals, conds = a[0::2], a[1::2]
        sel = "-1"
        for k in reversed(range(len(conds))):
            sel = f"({k} if ({conds[k]}) else {sel})"
        self.lines.append(f"    _s{i} = {sel}")  # the branch taken, kept for the adjoint
        rhs = "_np.nan"
        for k in reversed(range(len(vals))):
            rhs = f"({vals[k]} if _s{i} == {k} else {rhs})"
        return rhs

    def _adjoint_max(self, i: int, nd: Node, ai: str, cmp: str = ">=") -> None:
        x, y = nd.args
        self.acc(x, f"({ai} if v{nd.data} {cmp} 0 else 0.0)")
        self.acc(y, f"(0.0 if v{nd.data} {cmp} 0 else {ai})")

    def _adjoint_min(self, i: int, nd: Node, ai: str) -> None:
        self._adjoint_max(i, nd, ai, cmp="<=")

    def _adjoint_abs(self, i: int, nd: Node, ai: str) -> None:
        z = nd.args[0]
        self.acc(z, f"({ai} if v{z} >= 0 else -{ai})")

    def _adjoint_pw(self, i: int, nd: Node, ai: str) -> None:
        for k, val in enumerate(nd.args[0::2]):
            self.acc(val, f"({ai} if _s{i} == {k} else 0.0)")


def scalar_gradient_source(graph: Graph, root: int, n_theta: int, name: str) -> str:
    """numba source of ``name(th, x, g) -> value``: the value of node ``root`` at the inputs
    ``th`` (the first ``n_theta`` graph inputs) and ``x`` (the others), its gradient with
    respect to ``th`` written into ``g``.

    Raises
    ------
    UnsupportedExpressionError
        An operation without a numba form (a function known to SciPy only).
    """
    w = _ScalarWriter(graph, n_theta)
    wrt = list(range(n_theta))
    _value_and_adjoints(w, root, wrt)
    for k in wrt:
        w.lines.append(f"    g[{k}] = {f'a{k}' if k in w.adj_init else '0.0'}")
    w.lines.append(f"    return v{root}")
    head = f'@_nb.njit(cache=True, error_model="numpy", inline="always")\ndef {name}(th, x, g):'
    return "\n".join([head, *w.lines]) + "\n"


def _value_and_adjoints(w: Any, root: int, wrt: list[int]) -> None:
    """Write the forward lines of ``root`` and the reverse sweep of its adjoints onto ``w``."""
    needed, rev_order = w.plan([root], root, wrt, False)
    for i in sorted(needed):
        w.forward(i)
    w.assign(root, "1.0")
    for i in rev_order:
        if i in w.adj_init:
            w.adjoint(i)


def scalar_activation_source(act: Any, name: str) -> str:
    """numba source of ``name(z) -> (σ(z), σ'(z))`` for a SymPy activation ``z -> expression``."""
    z = sp.Symbol("z", real=True)
    graph = Graph((z,))
    root = graph.add(act(z))
    w = _ScalarWriter(graph, 1)
    _value_and_adjoints(w, root, [0])
    slope = "a0" if 0 in w.adj_init else "0.0"
    lines = [ln.replace("th[0]", "z") for ln in w.lines]
    head = f'@_nb.njit(cache=True, error_model="numpy")\ndef {name}(z):'
    return "\n".join([head, *lines, f"    return v{root}, {slope}"]) + "\n"


def float_literal(value: Any, what: str) -> str:
    """A finite float as source text (see ``_codegen._float_literal``)."""
    return _float_literal(value, what)


# ------------------------------------------------------------------------------------------
# generated modules, cached on disk
# ------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where generated kernel modules (and numba's machine code beside them) are kept."""
    env = os.environ.get("NOETHER_SYM_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "noether_sym" / "numba"
    try:
        base.mkdir(parents=True, exist_ok=True)
        probe = base / ".write_probe"
        probe.write_text("")
        probe.unlink()
        return base
    except OSError:
        fallback = Path(tempfile.gettempdir()) / "noether_sym_numba"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


_LOADED: dict[str, ModuleType] = {}
_HEAD = "import numpy as _np\nimport numba as _nb\n"


def _import_source(source: str, stem: str) -> ModuleType:
    """Write ``source`` to ``<cache dir>/<stem>_<hash>.py`` once and import it under that name."""
    import numba

    digest = hashlib.sha256((numba.__version__ + "\0" + source).encode()).hexdigest()[:24]
    name = f"{stem}_{digest}"
    mod = _LOADED.get(name)
    if mod is not None:
        return mod
    path = cache_dir() / f"{name}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # atomic: a concurrent process sees the old file or the new one
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    _LOADED[name] = mod
    return mod


def load_generated(body: str, parts: Sequence[str] = ()) -> ModuleType:
    """Import generated kernel source (``parts`` then ``body``), written once to the cache
    directory under the hash of its text and numba's version.

    The random-number functions of ``PHILOX_SOURCE`` live in a module of their own (compiled
    and cached once for all kernels); the kernel module imports them by that module's
    name, which carries the hash of their source, so a change to them renames every kernel
    module too and numba's cache never serves stale code."""
    rng = _import_source(_HEAD + PHILOX_SOURCE, "noether_sym_philox")
    head = _HEAD + f"from {rng.__name__} import philox4x32, uniform_pair, normal_pair\n"
    return _import_source("\n\n".join([head, *parts, body]), "noether_sym_kernel")
