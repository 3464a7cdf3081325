"""Simulate: SGD, heavy-ball momentum and GD on a Loss, many replicas at once, reproducibly.

:func:`simulate` runs (E1) of THEORY §1,

    θ_{k+1} = (1 − η_k γ) θ_k − η_k ĝ_k,   ĝ_k = (1/S) Σ_{x ∈ B_k} g(θ_k, x),

for ``replicas`` independent copies, with the gradient compiled from the symbolic loss
(``_compile``) or the loss's matrix-form ``fast_grad``, evaluated on a whole
(replicas × batch) block in one call per step.

Design
------
Reproducibility. ``np.random.SeedSequence(seed).spawn(replicas)`` gives replica r its own
stream (its spawn key is ``(r,)``, whatever the number of replicas). Replica r draws its
data in blocks of K steps from its stream alone, K a function of the batch size and the
data width only (:func:`block_steps`), so its data, and every number computed from them
(elementwise arithmetic, and per-replica ``matmul``), do not depend on ``chunk_size`` nor
on the other replicas: results are bit-identical whatever the chunking, and the first m
replicas of a run are those of any run with the same seed and more replicas. The Python
loop over replicas happens once per block of K steps, never per step.

Divergence. After every step one sum ``Σ θ_i²`` tests all replicas at once; only
when it is not finite or exceeds ``OVERFLOW²`` are the replicas inspected one by one. A
replica whose θ has a non-finite entry or an entry above ``OVERFLOW`` in absolute value
is frozen at its last good iterate, flagged with the step at which it went bad, and
dropped from the working arrays; the others go on unaffected. Floating-point warnings
are silenced inside the loop (``np.errstate``): divergence is reported in the result.

Speed. Per step: one call of the gradient on the (replicas × batch) block, the update
into a spare buffer, the divergence test. The compiled gradient (:class:`StepGradient`)
takes θ as contiguous columns ``(n, R)``, returns bare (unbroadcast) outputs, and has the
data-only parts of the loss (such as the target ``βᵀx + ε``) evaluated once per block of
draws instead of every step. Families with matrix structure supply ``loss.fast_grad``
(``families._matrix_grads``), used instead with θ as rows ``(R, n)``.

Memory. A data block holds at most ``_BLOCK_VALUES`` numbers per replica; replicas run in
chunks (``chunk_size``, by default sized to keep the blocks of a chunk near
``_CHUNK_BYTES``); observables are kept at stride ``every`` only, and θ itself only when
``record`` asks for ``"theta"``.
"""

from __future__ import annotations

import inspect
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ._compile import compiled
from ._errors import InvalidArgumentError, InvalidGeneratorError, NoetherSymError
from ._graph import CompiledFunction, Graph, compile_graph
from ._loss import Loss, as_loss

__all__ = [
    "simulate",
    "SimulationResult",
    "Schedule",
    "Warmup",
    "StepDecay",
    "Cosine",
    "OBSERVABLES",
    "OVERFLOW",
    "block_steps",
]

#: a replica is diverged when an entry of θ is non-finite or exceeds this in absolute value
OVERFLOW = 1e150

#: observables that ``record`` may name (see :func:`simulate`)
OBSERVABLES = ("loss", "theta", "charges", "norm2", "orbit", "sharpness", "grad_norm2")

_BATCH_OBSERVABLES = ("loss", "sharpness", "grad_norm2")  # need the batch of the step
_BLOCK_VALUES = 1 << 16  # data numbers per replica and block (512 KiB)
_BLOCK_MAX_STEPS = 1024
_CHUNK_BYTES = 256 << 20  # data-block bytes per chunk of replicas (default chunk_size)
_EXACT_TRACE_MAX_N = 16  # sharpness: exact trace (n probes e_i) up to this n, else Hutchinson
_HUTCHINSON_PROBES = 8
_DERIVE_SLAB = 1 << 15  # values per call when evaluating data-only terms over a block


# ------------------------------------------------------------------------------------------
# Learning-rate schedules
# ------------------------------------------------------------------------------------------


class Schedule:
    """A learning-rate schedule: η_k = lr · factor(k), k = 0, 1, ... (the step index).

    Subclasses implement :meth:`factors` (vectorized) and :meth:`check` (does the schedule
    fit ``steps``?).
    """

    def factors(self, k: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, steps: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _positive_int(v: Any, what: str, *, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise InvalidArgumentError(f"{what} must be an integer >= {minimum}; got {v!r}")
    return int(v)


def _real(v: Any, what: str, *, low: float | None = None, high: float | None = None,
          low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(v, bool):
        raise InvalidArgumentError(f"{what} must be a real number; got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{what} must be a real number; got {v!r}") from None
    if not math.isfinite(f):
        raise InvalidArgumentError(f"{what} must be finite; got {v!r}")
    if low is not None and (f < low or (low_open and f == low)):
        raise InvalidArgumentError(f"{what} must be {'>' if low_open else '>='} {low}; got {v!r}")
    if high is not None and (f > high or (high_open and f == high)):
        raise InvalidArgumentError(f"{what} must be {'<' if high_open else '<='} {high}; got {v!r}")
    return f


@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warmup: η_k = lr · (start + (1 − start) · min(1, (k + 1) / steps)).

    The first step already moves (η_0 = lr · (start + (1 − start)/steps)) and step
    ``steps − 1`` reaches lr, which is then kept. ``steps`` must not exceed the run's.

    Examples
    --------
    >>> import numpy as np, noether_sym as ns
    >>> ns.Warmup(steps=4).factors(np.arange(6)).tolist()
    [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    """

    steps: int
    start: float = 0.0

    def __post_init__(self) -> None:
        _positive_int(self.steps, "Warmup(steps=...)")
        _real(self.start, "Warmup(start=...)", low=0.0, high=1.0)

    def factors(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        return self.start + (1.0 - self.start) * np.minimum(1.0, (k + 1.0) / self.steps)

    def check(self, steps: int) -> None:
        if self.steps > steps:
            raise InvalidArgumentError(
                f"schedule Warmup(steps={self.steps}) does not fit the run: steps={steps} is shorter "
                "than the warmup; shorten the warmup or run longer"
            )


@dataclass(frozen=True)
class StepDecay(Schedule):
    """Step decay: η_k = lr · factor^m, m = number of milestones ≤ k.

    Give ``milestones`` (strictly increasing steps in (0, steps)) or ``every`` (a decay
    every that many steps), not both.

    Examples
    --------
    >>> import numpy as np, noether_sym as ns
    >>> ns.StepDecay(milestones=(2, 4), factor=0.5).factors(np.arange(6)).tolist()
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    >>> ns.StepDecay(every=3, factor=0.1).factors(np.arange(7)).round(6).tolist()
    [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01]
    """

    milestones: tuple[int, ...] = ()
    factor: float = 0.1
    every: int | None = None

    def __post_init__(self) -> None:
        _real(self.factor, "StepDecay(factor=...)", low=0.0, low_open=True)
        ms = tuple(self.milestones) if self.milestones is not None else ()
        if self.every is not None:
            if ms:
                raise InvalidArgumentError("StepDecay: give milestones=... or every=..., not both")
            _positive_int(self.every, "StepDecay(every=...)")
        elif not ms:
            raise InvalidArgumentError("StepDecay needs milestones=(k1, k2, ...) or every=N")
        for m in ms:
            _positive_int(m, "StepDecay milestone")
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise InvalidArgumentError(f"StepDecay milestones must be strictly increasing; got {ms}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in ms))

    def factors(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k)
        if self.every is not None:
            m = k // self.every
        else:
            m = np.searchsorted(np.asarray(self.milestones), k, side="right")
        return np.power(float(self.factor), m.astype(float))

    def check(self, steps: int) -> None:
        if self.every is not None:
            if self.every >= steps:
                raise InvalidArgumentError(
                    f"schedule StepDecay(every={self.every}) does not fit the run: it never decays "
                    f"within steps={steps}"
                )
        elif self.milestones[-1] >= steps:
            raise InvalidArgumentError(
                f"schedule StepDecay milestone {self.milestones[-1]} does not fit the run: milestones "
                f"must lie in (0, steps={steps})"
            )


@dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine decay with optional linear warmup.

    η_k = lr · (k + 1)/warmup for k < warmup, then
    η_k = lr · (final + (1 − final) · ½(1 + cos(π (k − warmup)/(T − warmup)))), and lr · final
    from k = T on. ``steps`` = T defaults to the run's step count; it must not exceed it.

    Examples
    --------
    >>> import numpy as np, noether_sym as ns
    >>> ns.Cosine(steps=4).factors(np.arange(5)).round(4).tolist()
    [1.0, 0.8536, 0.5, 0.1464, 0.0]
    """

    steps: int | None = None
    final: float = 0.0
    warmup: int = 0

    def __post_init__(self) -> None:
        if self.steps is not None:
            _positive_int(self.steps, "Cosine(steps=...)")
        _real(self.final, "Cosine(final=...)", low=0.0, high=1.0)
        _positive_int(self.warmup, "Cosine(warmup=...)", minimum=0)
        if self.steps is not None and self.warmup >= self.steps:
            raise InvalidArgumentError(
                f"Cosine: warmup={self.warmup} must be shorter than the schedule (steps={self.steps})"
            )

    def _with_total(self, steps: int) -> int:
        return self.steps if self.steps is not None else steps

    def factors(self, k: np.ndarray, total: int | None = None) -> np.ndarray:
        T = self.steps if self.steps is not None else total
        if T is None:
            raise InvalidArgumentError("Cosine() without steps=... needs the run's step count")
        k = np.asarray(k, dtype=float)
        w = self.warmup
        frac = np.clip((k - w) / (T - w), 0.0, 1.0)
        out = self.final + (1.0 - self.final) * 0.5 * (1.0 + np.cos(np.pi * frac))
        if w:
            out = np.where(k < w, (k + 1.0) / w, out)
        return out

    def check(self, steps: int) -> None:
        T = self._with_total(steps)
        if T > steps:
            raise InvalidArgumentError(
                f"schedule Cosine(steps={T}) does not fit the run: steps={steps} ends before the decay; "
                "use Cosine() to decay over the whole run"
            )
        if self.warmup >= T:
            raise InvalidArgumentError(
                f"schedule Cosine(warmup={self.warmup}) does not fit the run of {steps} steps"
            )


def _schedule_factors(schedule: Schedule | None, k0: int, k1: int, steps: int) -> np.ndarray | None:
    if schedule is None:
        return None
    k = np.arange(k0, k1)
    if isinstance(schedule, Cosine):
        return schedule.factors(k, total=steps)
    return np.asarray(schedule.factors(k), dtype=float)


# ------------------------------------------------------------------------------------------
# Result
# ------------------------------------------------------------------------------------------


@dataclass
class SimulationResult:
    """What :func:`simulate` returns.

    Attributes
    ----------
    theta
        Final parameters, ``(replicas, n)``; a diverged replica keeps its last finite iterate.
    diverged
        ``(replicas,)`` bool: replicas stopped because θ became non-finite or overflowed.
    divergence_step
        ``(replicas,)`` int: the first step t at which θ_t was bad (1 ≤ t ≤ steps), −1 if never.
    times
        ``(n_records,)`` steps at which observables were recorded (0, every, 2·every, ...).
    observables
        ``{name: array}``, each ``(n_records, replicas)`` or ``(n_records, replicas, k)``
        (``"theta"``: k = n; ``"charges"``, ``"orbit"``: one column per generator). Entries
        of a replica after its divergence are NaN.
    theta0
        Starting parameters, ``(replicas, n)``.
    seed
        The seed (an int: the SeedSequence entropy; re-running with it reproduces the run).
    seconds
        Wall time.
    settings
        The arguments of the run (lr, batch_size, steps, ...) as plain values.
    params
        Parameter names, in θ order.
    """

    theta: np.ndarray
    diverged: np.ndarray
    divergence_step: np.ndarray
    times: np.ndarray
    observables: dict[str, np.ndarray]
    theta0: np.ndarray
    seed: int
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    params: tuple[str, ...] = ()

    @property
    def n_diverged(self) -> int:
        """Number of diverged replicas."""
        return int(np.count_nonzero(self.diverged))

    @property
    def replicas(self) -> int:
        return int(self.theta.shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        """A recorded observable by name (``res["charges"]``)."""
        try:
            return self.observables[name]
        except KeyError:
            raise KeyError(
                f"{name!r} was not recorded; recorded: {sorted(self.observables)} (pass record=[...])"
            ) from None

    def mean(self, name: str) -> np.ndarray:
        """Mean over the replicas that have not diverged (NaN-aware), per record."""
        a = self[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            cnt = np.sum(np.isfinite(a), axis=1)
            s = np.nansum(a, axis=1)
            return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)

    def sem(self, name: str) -> np.ndarray:
        """Standard error of :meth:`mean` over replicas (NaN-aware), per record."""
        a = self[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            cnt = np.sum(np.isfinite(a), axis=1)
            m = self.mean(name)
            dev = np.where(np.isfinite(a), a - np.expand_dims(m, 1), 0.0)
            var = np.sum(dev * dev, axis=1) / np.maximum(cnt - 1, 1)
            return np.where(cnt > 1, np.sqrt(var / np.maximum(cnt, 1)), np.nan)

    def summary(self) -> str:
        """A few lines: the run, divergences, the last recorded value of each observable."""
        s = self.settings
        lines = [
            f"simulate {s.get('loss', 'loss')}: {s.get('optimizer', 'sgd')}, {self.replicas} replicas x "
            f"{s.get('steps')} steps, lr={s.get('lr')}, batch={s.get('batch_size')}, "
            f"weight_decay={s.get('weight_decay')}, momentum={s.get('momentum')}, seed={self.seed}, "
            f"{self.seconds:.2f} s"
        ]
        if self.n_diverged:
            steps = self.divergence_step[self.diverged]
            lines.append(
                f"  diverged: {self.n_diverged} of {self.replicas} replicas (first at step {int(steps.min())}, "
                f"median {int(np.median(steps))}, last {int(steps.max())})"
            )
        else:
            lines.append("  diverged: none")
        if len(self.times):
            lines.append(f"  records: {len(self.times)} (every {s.get('every')} steps, last at step {int(self.times[-1])})")
        for name in self.observables:
            if name == "theta":
                continue
            m, e = self.mean(name)[-1], self.sem(name)[-1]
            vals = ", ".join(f"{a:.6g} ± {b:.2g}" for a, b in zip(np.atleast_1d(m)[:6], np.atleast_1d(e)[:6]))
            more = " ..." if np.size(m) > 6 else ""
            lines.append(f"  {name} (last record, mean ± s.e. over replicas): {vals}{more}")
        return "\n".join(lines)

    def to_dict(self, *, trajectories: bool = True) -> dict[str, Any]:
        """Plain JSON-ready dict: settings, divergences, final θ statistics and, when
        ``trajectories``, the per-record mean and standard error of each observable."""
        def clean(a: Any) -> Any:
            arr = np.asarray(a, dtype=float)
            return [None if not math.isfinite(v) else float(v) for v in arr.ravel()] if arr.ndim == 1 else [
                clean(r) for r in arr
            ]

        out: dict[str, Any] = {
            "settings": dict(self.settings),
            "params": list(self.params),
            "replicas": self.replicas,
            "seed": self.seed,
            "seconds": self.seconds,
            "n_diverged": self.n_diverged,
            "divergence_steps": [int(v) for v in self.divergence_step[self.diverged]],
        }
        alive = ~self.diverged
        if alive.any():
            out["theta_mean"] = clean(self.theta[alive].mean(axis=0))
        if trajectories:
            out["times"] = [int(t) for t in self.times]
            out["observables"] = {
                name: {"mean": clean(self.mean(name)), "sem": clean(self.sem(name))}
                for name in self.observables
                if name != "theta"
            }
        return out

    def __repr__(self) -> str:
        return (
            f"SimulationResult(replicas={self.replicas}, n={self.theta.shape[1]}, "
            f"records={len(self.times)}, observables={sorted(self.observables)}, n_diverged={self.n_diverged})"
        )


# ------------------------------------------------------------------------------------------
# Gradient kernels
# ------------------------------------------------------------------------------------------


def _unbroadcast_source(source: str) -> str | None:
    """The generated gradient code without its output broadcasting.

    ``compile_graph`` broadcasts every output to the common input shape
    (``np.broadcast_shapes`` and one ``np.broadcast_to`` per output): on this machine about
    as much time as the arithmetic itself for a (1000,)-replica block. The step assigns the
    gradients into a preallocated array, which broadcasts anyway, so the kernel uses the
    same code with bare outputs. Returns None if the code does not have the expected form.
    """
    lines = source.split("\n")
    ret = [i for i, ln in enumerate(lines) if ln.startswith("    return (")]
    if len(ret) != 1:
        return None
    i = ret[0]
    new = re.sub(r"_np\.broadcast_to\((a\d+), _shape\)", r"\1", lines[i])
    new = new.replace("_np.zeros(_shape)", "0.0")
    lines[i] = new
    body = "\n".join(ln for j, ln in enumerate(lines) if j != i)
    if len(re.findall(r"\b_shape\b", body)) == 1:  # only its definition is left: drop it
        lines = [ln for ln in lines if not ln.startswith("    _shape = ")]
    return "\n".join(lines)


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
    (each broadcastable to the input shape; see :func:`_unbroadcast_source`).
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
        f = compile_graph(graph, [], grad_of=root, wrt=list(range(self.n)), name="step_gradient")
        src = _unbroadcast_source(f.source)
        if src is not None:
            try:
                fast = CompiledFunction(src, dict(f._f.__globals__), "step_gradient")
            except SyntaxError:  # pragma: no cover - the code generator changed shape
                fast = None
            if fast is not None and _same_outputs(fast, f, self.n + len(data) + self.m):
                f = fast
        self.f = f
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


def _same_outputs(a: CompiledFunction, b: CompiledFunction, n_inputs: int) -> bool:
    rng = np.random.default_rng(0)
    cols = [rng.uniform(0.5, 1.5, size=(3, 2)) for _ in range(n_inputs)]
    with np.errstate(all="ignore"):
        ga, gb = a(*cols)[1], b(*cols)[1]
    return all(np.array_equal(np.broadcast_to(x, y.shape), y, equal_nan=True) for x, y in zip(ga, gb))


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
        from ._data import moments  # noqa: PLC0415 - the data stage is only needed here

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
            entries = [sp.sympify(e) for e in mom.mean_grad]
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


# ------------------------------------------------------------------------------------------
# Data streams
# ------------------------------------------------------------------------------------------


def block_steps(batch_size: int, d: int) -> int:
    """K, the number of steps of data a replica draws at once (a function of the batch size
    and the data width only, so that each replica's stream is used the same way whatever the
    chunking)."""
    return int(max(1, min(_BLOCK_MAX_STEPS, _BLOCK_VALUES // max(1, batch_size * d))))


class _EpochState:
    """One replica's pass over a finite dataset without replacement: a permutation per epoch,
    consecutive batches of it; the N mod S points left at the end of an epoch are skipped."""

    __slots__ = ("perm", "pos")

    def __init__(self) -> None:
        self.perm: np.ndarray | None = None
        self.pos = 0  # next batch within the epoch

    def take(self, rng: np.random.Generator, K: int, B: int, N: int) -> np.ndarray:
        per_epoch = N // B
        out = np.empty((K, B), dtype=np.intp)
        k = 0
        while k < K:
            if self.perm is None or self.pos == per_epoch:
                need = K - k
                epochs = -(-need // per_epoch)
                perms = rng.permuted(np.tile(np.arange(N), (epochs, 1)), axis=1)[:, : per_epoch * B]
                stream = perms.reshape(epochs * per_epoch, B)
                take = min(need, stream.shape[0])
                out[k : k + take] = stream[:take]
                k += take
                used_in_last = take - (epochs - 1) * per_epoch
                self.perm = perms[-1]
                self.pos = used_in_last
            else:
                take = min(per_epoch - self.pos, K - k)
                out[k : k + take] = self.perm[self.pos * B : (self.pos + take) * B].reshape(take, B)
                self.pos += take
                k += take
        return out


# ------------------------------------------------------------------------------------------
# Observables
# ------------------------------------------------------------------------------------------


class _Generators:
    """Generator matrices as float arrays, their charges θᵀAθ (E8) as one sparse product, and
    the orbit coordinate of each (built lazily)."""

    def __init__(self, mats: list[Any]) -> None:
        from scipy.sparse import csr_matrix, issparse

        # dense arrays, or scipy sparse matrices for large n (a dense float copy of 820
        # generators of the 2400-parameter network would need 37 GB)
        self.mats = mats
        self.k = len(mats)
        rows, cols, vals, which = [], [], [], []
        for g, A in enumerate(mats):
            if issparse(A):
                C = A.tocoo()
                keep = C.data != 0
                i, j, v = C.row[keep], C.col[keep], C.data[keep]
            else:
                i, j = np.nonzero(A)
                v = A[i, j]
            rows.append(i)
            cols.append(j)
            vals.append(v)
            which.append(np.full(len(i), g))
        self.I = np.concatenate(rows) if rows else np.zeros(0, int)
        self.J = np.concatenate(cols) if cols else np.zeros(0, int)
        v = np.concatenate(vals) if vals else np.zeros(0)
        w = np.concatenate(which) if which else np.zeros(0, int)
        self.S = csr_matrix((v, (np.arange(len(v)), w)), shape=(len(v), self.k))
        self._orbit: list[tuple[np.ndarray, np.ndarray | None, float]] | None = None

    def charges(self, theta: np.ndarray) -> np.ndarray:
        """(R, n) -> (R, k)."""
        return np.asarray(self.S.T @ (theta[:, self.I] * theta[:, self.J]).T).T

    def _orbit_parts(self) -> list[tuple[np.ndarray, np.ndarray | None, float]]:
        if self._orbit is None:
            parts = []
            for A in self.mats:
                a, V = np.linalg.eigh(A.toarray() if hasattr(A, "toarray") else A)
                tol = 1e-9 * max(1.0, float(np.abs(a).max()))
                hi, lo = float(a.max()), float(a.min())
                if hi > tol and lo < -tol:
                    parts.append((V[:, np.abs(a - hi) <= tol], V[:, np.abs(a - lo) <= tol], 2.0 * (hi - lo)))
                else:
                    top = hi if abs(hi) >= abs(lo) else lo
                    parts.append((V[:, np.abs(a - top) <= tol], None, 2.0 * top))
            self._orbit = parts
        return self._orbit

    def orbit(self, theta: np.ndarray) -> np.ndarray:
        """Orbit coordinate λ(θ) per generator, with λ(e^{μA}θ) = λ(θ) + μ: (R, n) -> (R, k).

        With P₊, P₋ the eigenspaces of the largest and smallest eigenvalues a₊ > 0 > a₋ of A,
        λ = (log‖P₊θ‖² − log‖P₋θ‖²) / (2(a₊ − a₋)) (for the rescaling A = diag(I, −I):
        ¼ log(‖u‖²/‖w‖²), as in (E17)); for a semidefinite A, λ = log‖P θ‖² / (2a) with the
        eigenvalue a of largest modulus (for A = I: ½ log‖θ‖²).
        """
        out = np.empty((theta.shape[0], self.k))
        for g, (Pp, Pm, scale) in enumerate(self._orbit_parts()):
            lp = np.log(np.sum((theta @ Pp) ** 2, axis=1))
            if Pm is not None:
                lp = lp - np.log(np.sum((theta @ Pm) ** 2, axis=1))
            out[:, g] = lp / scale
        return out


def _as_generators(generators: Any, n: int) -> _Generators:
    if hasattr(generators, "generators") and not isinstance(generators, (list, tuple, np.ndarray)):
        generators = generators.generators  # a Symmetries
    if isinstance(generators, (sp.MatrixBase, np.ndarray)) and np.ndim(np.asarray(generators, dtype=object)) == 2:
        generators = [generators]
    if not isinstance(generators, (list, tuple)) or not generators:
        raise InvalidGeneratorError(
            "generators must be a non-empty list of symmetric n x n matrices (sympy or numpy), or the "
            f"result of ns.find_symmetries; got {generators!r}"
        )
    mats = []
    for k, A in enumerate(generators):
        if isinstance(A, sp.MatrixBase) and n > 64:
            mats.append(_sparse_generator(A, n, k))
            continue
        try:
            M = np.array(A.tolist() if isinstance(A, sp.MatrixBase) else A, dtype=float)
        except (TypeError, ValueError):
            raise InvalidGeneratorError(f"generators[{k}] must be a numeric matrix") from None
        if M.shape != (n, n):
            raise InvalidGeneratorError(f"generators[{k}] must be {n} x {n} (one row per parameter); got {M.shape}")
        if not np.all(np.isfinite(M)):
            raise InvalidGeneratorError(f"generators[{k}] has non-finite entries")
        if not np.allclose(M, M.T, rtol=0, atol=1e-12 * max(1.0, float(np.abs(M).max()))):
            raise InvalidGeneratorError(f"generators[{k}] must be symmetric (exponential symmetries, E3)")
        mats.append(M)
    return _Generators(mats)


def _sparse_generator(A: sp.MatrixBase, n: int, k: int) -> Any:
    """A SymPy generator as a scipy sparse float matrix (no dense n x n copy), validated."""
    from scipy.sparse import coo_matrix

    if A.shape != (n, n):
        raise InvalidGeneratorError(f"generators[{k}] must be {n} x {n} (one row per parameter); got {A.shape}")
    try:
        items = [(i, j, float(v)) for (i, j), v in A.todok().items() if v != 0]
    except (TypeError, ValueError):
        raise InvalidGeneratorError(f"generators[{k}] must be a numeric matrix") from None
    r = np.array([t[0] for t in items], dtype=np.int64)
    c = np.array([t[1] for t in items], dtype=np.int64)
    v = np.array([t[2] for t in items], dtype=float)
    if not np.all(np.isfinite(v)):
        raise InvalidGeneratorError(f"generators[{k}] has non-finite entries")
    M = coo_matrix((v, (r, c)), shape=(n, n)).tocsr()
    big = float(np.abs(v).max()) if len(v) else 0.0
    asym = abs(M - M.T)
    if asym.nnz and float(asym.max()) > 1e-12 * max(1.0, big):
        raise InvalidGeneratorError(f"generators[{k}] must be symmetric (exponential symmetries, E3)")
    return M


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------


def _theta0(loss: Loss, theta0: Any, replicas: int) -> np.ndarray:
    if isinstance(theta0, Mapping) or isinstance(theta0, sp.MatrixBase):
        th = loss.theta_vector(theta0, what="theta0")
        arr = np.broadcast_to(th, (replicas, loss.n)).copy()
    else:
        try:
            raw = np.asarray(theta0, dtype=float)
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"theta0 must be a mapping symbol -> value, a sequence in params order or an array "
                f"(replicas, n); got {type(theta0).__name__}"
            ) from None
        if raw.ndim == 2:
            if raw.shape != (replicas, loss.n):
                raise InvalidArgumentError(
                    f"theta0 as an array of per-replica starts must have shape (replicas, n) = "
                    f"({replicas}, {loss.n}); got {raw.shape}"
                )
            if not np.all(np.isfinite(raw)):
                bad = np.nonzero(~np.isfinite(raw).all(axis=1))[0]
                raise InvalidArgumentError(f"theta0 has non-finite entries (replica(s) {bad[:5].tolist()})")
            arr = raw.copy()
        else:
            th = loss.theta_vector(theta0, what="theta0")
            arr = np.broadcast_to(th, (replicas, loss.n)).copy()
    if np.abs(arr).max() > OVERFLOW:
        raise InvalidArgumentError(f"theta0 has entries above {OVERFLOW:g} in absolute value")
    return arr


def _record_names(record: Any) -> list[str]:
    if record is None:
        return []
    if isinstance(record, str):
        record = [record]
    try:
        names = list(record)
    except TypeError:
        raise InvalidArgumentError(f"record must be a list of observable names; got {record!r}") from None
    for nm in names:
        if nm not in OBSERVABLES:
            raise InvalidArgumentError(f"record: unknown observable {nm!r}; choose among {list(OBSERVABLES)}")
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"record lists an observable twice: {names}")
    return names


# ------------------------------------------------------------------------------------------
# simulate
# ------------------------------------------------------------------------------------------


def simulate(
    loss: Loss,
    theta0: Any,
    *,
    lr: float,
    batch_size: int,
    steps: int,
    replicas: int,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    schedule: Schedule | None = None,
    optimizer: str = "sgd",
    record: Sequence[str] | None = None,
    every: int | None = None,
    seed: int | None = 0,
    replace: bool = True,
    chunk_size: int | None = None,
    progress: bool = False,
    generators: Any = None,
    sampler: Any = None,
    values: Mapping | None = None,
) -> SimulationResult:
    """Run SGD (or GD) on ``loss`` for ``replicas`` independent replicas (THEORY (E1)).

    Each step, for every replica, draws a batch of ``batch_size`` samples, evaluates the
    per-sample gradient on the whole (replicas × batch) block in one call and applies

    * plain SGD (``momentum=0``): θ_{k+1} = (1 − η_k γ) θ_k − η_k ĝ_k  (E1);
    * heavy-ball momentum μ: v_{k+1} = μ v_k + ĝ_k + γ θ_k, θ_{k+1} = θ_k − η_k v_{k+1},
      v_0 = 0 (PyTorch's ``SGD(momentum=μ, weight_decay=γ)``; μ = 0 gives (E1));

    with η_k = lr · schedule factor(k), γ = ``weight_decay`` and ĝ_k the batch mean.

    Parameters
    ----------
    loss
        The Loss. Its data model gives the samples: random symbols (drawn i.i.d.) or a
        finite dataset (with or without replacement, see ``replace``).
    theta0
        Start: a mapping symbol -> value, a sequence in ``loss.params`` order, or an array
        ``(replicas, n)`` of per-replica starts.
    lr
        Learning rate η ≥ 0.
    batch_size
        Batch size S ≥ 1 (≤ N without replacement). Ignored by GD.
    steps
        Number of updates (≥ 0).
    replicas
        Number of independent replicas (≥ 1).
    weight_decay
        γ ≥ 0 (coupled L2, as in (E1)).
    momentum
        Heavy-ball μ in [0, 1).
    schedule
        None (constant), :class:`Warmup`, :class:`StepDecay` or :class:`Cosine`; it must fit
        ``steps``.
    optimizer
        ``"sgd"`` or ``"gd"``: full-expectation gradient descent -- the full-batch mean on a
        dataset, the exact E[g] (``_data.moments``) on random-symbol data.
    record
        Observables to keep at stride ``every`` (see Notes), from :data:`OBSERVABLES`.
    every
        Record stride (default: steps // 100, at least 1). Records at steps 0, every, ...,
        up to ``steps``.
    seed
        Integer seed (None: fresh entropy, reported in the result).
    replace
        Finite datasets: sample with replacement (default) or, with ``False``, in epochs: each
        replica reshuffles the dataset every epoch and takes consecutive batches (the
        ``N mod S`` points left over at the end of an epoch are skipped).
    chunk_size
        Replicas processed together (memory); the results do not depend on it.
    progress
        Show a tqdm progress bar (if tqdm is installed).
    generators
        Symmetry generators (list of symmetric n × n sympy/numpy matrices, or the result of
        ``ns.find_symmetries``) for the ``"charges"`` and ``"orbit"`` observables.
    sampler
        A sampler to use instead of ``make_sampler(loss)``: any object with
        ``draw(rng, shape) -> (*shape, d)``, ``dataset_size`` and ``take(indices)`` (see
        ``noether_sym._sample.Sampler``); for example a custom data model for a catalog
        family whose data symbols carry no distribution.
    values
        Numbers for symbolic distribution parameters (passed to the sampler and to the
        exact moments).

    Returns
    -------
    SimulationResult

    Raises
    ------
    InvalidArgumentError
        Bad θ0 (shape, non-finite), replicas < 1, negative steps or lr, bad batch size,
        a schedule that does not fit ``steps``, unknown observables or options.
    InvalidGeneratorError
        Generators of the wrong shape or not symmetric.
    InvalidDataError
        A loss without a data model (plain data symbols and no ``sampler``).

    Notes
    -----
    Observables, recorded at θ_t for t in ``times`` (the batch ones on the batch of step t):

    ``"loss"``
        Mean loss over the batch of step t (GD on a dataset: the full-batch loss).
    ``"grad_norm2"``
        ‖ĝ_t‖², the squared norm of the batch gradient of step t (without weight decay):
        with (E10), ‖θ_{t+1}‖² = (1 − η_tγ)² ‖θ_t‖² + η_t² ‖ĝ_t‖² for a scale-invariant loss.
    ``"theta"``
        θ_t, ``(n_records, replicas, n)``: only when asked (memory).
    ``"norm2"``
        ‖θ_t‖².
    ``"charges"``
        C_i = θ_tᵀ A_i θ_t (E8) for each generator, ``(n_records, replicas, k)``.
    ``"orbit"``
        The orbit coordinate of each generator relative to the start,
        λ(θ_t) − λ(θ_0), where λ(e^{μA}θ) = λ(θ) + μ (eigenspaces of the extreme
        eigenvalues a₊ > 0 > a₋: λ = (log‖P₊θ‖² − log‖P₋θ‖²)/(2(a₊ − a₋)); semidefinite A:
        log‖Pθ‖²/(2a)). Along a pure orbit motion it is the λ of (E14)-(E17): compare with the
        predicted λ*.
    ``"sharpness"``
        Tr H of the batch-mean loss at θ_t on the batch of step t (an unbiased estimate of
        Tr ∇²L, §6): exact for n ≤ 16 (n complex-step Hessian-vector products), else
        Hutchinson's estimator with 8 Rademacher probes per replica, drawn from a second
        stream of the replica (its data stream is untouched).

    The final record at t = ``steps`` of a batch observable uses the batch that a further
    step would use.

    Examples
    --------
    Scale invariance (A = I, THEORY §7.5): SGD only ever grows ‖θ‖² (E10).

    >>> import numpy as np, sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> a, b = sp.symbols("a b")
    >>> x, y = Normal("x", 0, 1), Normal("y", 0, 1)
    >>> loss = ns.Loss((a / sp.sqrt(a**2 + b**2) * x - y) ** 2, [a, b])
    >>> res = ns.simulate(loss, {a: 1, b: 1}, lr=0.1, batch_size=4, steps=200, replicas=8,
    ...                   record=["norm2"], every=50, seed=1)
    >>> res.theta.shape, res.n_diverged, res["norm2"].shape
    ((8, 2), 0, (5, 8))
    >>> bool(np.all(np.diff(res["norm2"], axis=0) > 0))
    True
    """
    t_start = time.perf_counter()
    loss = as_loss(loss)

    # ---- arguments --------------------------------------------------------------------
    replicas = _positive_int(replicas, "replicas")
    steps = _positive_int(steps, "steps", minimum=0)
    batch_size = _positive_int(batch_size, "batch_size")
    lr = _real(lr, "lr", low=0.0)
    weight_decay = _real(weight_decay, "weight_decay", low=0.0)
    momentum = _real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
    if optimizer not in ("sgd", "gd"):
        raise InvalidArgumentError(f"optimizer must be 'sgd' or 'gd'; got {optimizer!r}")
    if schedule is not None:
        if not isinstance(schedule, Schedule):
            raise InvalidArgumentError(
                f"schedule must be None, ns.Warmup(...), ns.StepDecay(...) or ns.Cosine(...); got {schedule!r}"
            )
        schedule.check(steps)
    names = _record_names(record)
    if every is None:
        every = max(1, steps // 100)
    every = _positive_int(every, "every")
    if not isinstance(replace, (bool, np.bool_)):
        raise InvalidArgumentError(f"replace must be True or False; got {replace!r}")
    if chunk_size is not None:
        chunk_size = _positive_int(chunk_size, "chunk_size")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgumentError(f"seed must be a non-negative integer or None; got {seed!r}")
    seed = int(seed)
    T0 = _theta0(loss, theta0, replicas)
    gens = None
    if "charges" in names or "orbit" in names:
        if generators is None:
            raise InvalidArgumentError(
                "record 'charges'/'orbit' needs generators=[A_1, ...] (e.g. ns.find_symmetries(loss).generators)"
            )
    if generators is not None:
        gens = _as_generators(generators, loss.n)

    # ---- data model -------------------------------------------------------------------
    d = len(loss.x) + len(loss.c)
    if sampler is None and d:
        from ._sample import make_sampler  # noqa: PLC0415

        sampler = make_sampler(loss, values=values)
    elif sampler is not None:
        for attr in ("draw", "take"):
            if not callable(getattr(sampler, attr, None)):
                raise InvalidArgumentError(f"sampler must have a {attr}() method (see noether_sym._sample.Sampler)")
        sd = getattr(sampler, "d", d)
        if sd != d:
            raise InvalidArgumentError(f"sampler draws rows of width {sd}; this loss needs d = {d}")
    N = None if sampler is None else getattr(sampler, "dataset_size", None)
    if not replace and N is None and optimizer == "sgd":
        raise InvalidArgumentError("replace=False (epochs without replacement) needs a finite dataset")
    if N is not None and not replace and batch_size > N and optimizer == "sgd":
        raise InvalidArgumentError(
            f"batch_size={batch_size} exceeds the dataset size N={N}: without replacement a batch "
            "holds at most N distinct points"
        )
    if not d:
        mode = "none"
    elif optimizer == "gd":
        mode = "full" if N is not None else "exact"
    else:
        mode = "sample" if (replace or N is None) else "epoch"
    if mode == "exact" and any(nm in ("loss", "sharpness") for nm in names):
        raise InvalidArgumentError(
            "record 'loss'/'sharpness' with optimizer='gd' on random-symbol data: the GD step uses the "
            "exact E[g] and draws no samples to evaluate them on; record them with SGD or a dataset"
        )

    # ---- kernel -----------------------------------------------------------------------
    if mode == "exact":
        kernel: Any = _MeanGradKernel(loss, values)
    elif loss.fast_grad is not None:
        kernel = _FastKernel(loss)
    else:
        kernel = _CompiledKernel(loss)
    cols = kernel.layout == "cols"
    B = N if mode == "full" else batch_size
    K = block_steps(B, d)
    full_X = None
    if mode == "full":
        full_X = np.array(sampler.take(np.arange(N)), dtype=float)[None]  # (1, N, d)
    if chunk_size is None:
        per_replica = K * B * max(d, 1) * 8 if mode in ("sample", "epoch") else 8 * loss.n * max(B, 1)
        chunk_size = max(1, min(replicas, _CHUNK_BYTES // max(per_replica, 1)))

    # ---- outputs ----------------------------------------------------------------------
    times = np.arange(0, steps + 1, every) if names else np.zeros(0, dtype=int)
    n_rec = len(times)
    obs: dict[str, np.ndarray] = {}
    for nm in names:
        tail: tuple[int, ...] = ()
        if nm == "theta":
            tail = (loss.n,)
        elif nm in ("charges", "orbit"):
            tail = (gens.k,)  # type: ignore[union-attr]
        obs[nm] = np.full((n_rec, replicas) + tail, np.nan)
    theta_out = T0.copy()
    div_step = np.full(replicas, -1, dtype=np.int64)
    seqs = np.random.SeedSequence(seed).spawn(replicas)

    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm  # noqa: PLC0415

            bar = tqdm(total=replicas * steps, unit="replica-step", unit_scale=True, desc="simulate")
        except ImportError:
            bar = None

    run = _Run(
        kernel=kernel, cols=cols, mode=mode, sampler=sampler, full_X=full_X, K=K, B=B, N=N, d=d,
        lr=lr, weight_decay=weight_decay, momentum=momentum, schedule=schedule, steps=steps,
        every=every, names=names, gens=gens, obs=obs, theta_out=theta_out, div_step=div_step, bar=bar,
    )
    try:
        for c0 in range(0, replicas, chunk_size):
            c1 = min(replicas, c0 + chunk_size)
            run.chunk(c0, T0[c0:c1], seqs[c0:c1])
    finally:
        if bar is not None:
            bar.close()

    settings = {
        "loss": loss.name,
        "lr": lr,
        "batch_size": batch_size,
        "steps": steps,
        "replicas": replicas,
        "weight_decay": weight_decay,
        "momentum": momentum,
        "schedule": None if schedule is None else repr(schedule),
        "optimizer": optimizer,
        "record": names,
        "every": every,
        "replace": bool(replace),
        "data": mode,
        "gradient": {"_CompiledKernel": "compiled", "_FastKernel": "fast", "_MeanGradKernel": "exact mean"}[
            type(kernel).__name__
        ],
    }
    return SimulationResult(
        theta=theta_out,
        diverged=div_step >= 0,
        divergence_step=div_step,
        times=times,
        observables=obs,
        theta0=T0,
        seed=seed,
        seconds=time.perf_counter() - t_start,
        settings=settings,
        params=tuple(str(p) for p in loss.params),
    )


class _Run:
    """The step loop for one chunk of replicas (state held in plain arrays)."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)
        self.batch_obs = any(nm in _BATCH_OBSERVABLES for nm in self.names)

    # ---- data -------------------------------------------------------------------------
    def _block(self, rngs: list[np.random.Generator], epochs: list[_EpochState] | None,
               blk: np.ndarray | None) -> np.ndarray:
        """The next K batches of every replica, step-major: ``(K, R, B, d)``, each replica's
        rows drawn from its own stream in one call. Reuses ``blk`` when it has the shape (a
        fresh block of tens of megabytes costs a page fault per 4 KiB on first touch)."""
        K, B, d = self.K, self.B, self.d
        if blk is None or blk.shape != (K, len(rngs), B, d) or not blk.flags.c_contiguous:
            blk = np.empty((K, len(rngs), B, d))
        # copy each replica's (K, B·d) rows as K opaque items of B·d·8 bytes: NumPy then
        # moves one row per iteration instead of looping over B·d numbers per step
        item = np.dtype((np.void, 8 * B * d))
        dst = blk.reshape(K, len(rngs), B * d).view(item)[..., 0]  # (K, R)
        for i, rng in enumerate(rngs):
            if epochs is None:
                rows = self.sampler.draw(rng, (K, B))
            else:
                rows = self.sampler.take(epochs[i].take(rng, K, B, self.N))
            dst[:, i] = np.ascontiguousarray(rows, dtype=float).reshape(K, B * d).view(item)[:, 0]
        return blk

    # ---- observables ------------------------------------------------------------------
    def _record(self, j: int, act: np.ndarray, T: np.ndarray, X: Any, G: np.ndarray | None,
                lam0: np.ndarray | None, aux: list[np.random.Generator]) -> None:
        k = self.kernel
        th = k.rows(T)
        for nm in self.names:
            if nm == "theta":
                val = th
            elif nm == "norm2":
                val = np.einsum("ri,ri->r", th, th)
            elif nm == "charges":
                val = self.gens.charges(th)
            elif nm == "orbit":
                val = self.gens.orbit(th) - lam0
            elif nm == "grad_norm2":
                g = G
                val = np.einsum("ir,ir->r", g, g) if self.cols else np.einsum("ri,ri->r", g, g)
            elif nm == "loss":
                val = k.loss_value(T, X)
            else:  # sharpness
                val = self._trace_hessian(th, X, aux)
            self.obs[nm][j, act] = val

    def _trace_hessian(self, th: np.ndarray, X: Any, aux: list[np.random.Generator]) -> np.ndarray:
        R, n = th.shape
        out = np.zeros(R)
        if n <= _EXACT_TRACE_MAX_N:
            for i in range(n):
                V = np.zeros((1, R, n))
                V[0, :, i] = 1.0
                out += self.kernel.hvp(th, V, X)[0, :, i]
            return out
        P = _HUTCHINSON_PROBES
        V = np.empty((P, R, n))
        for r, rng in enumerate(aux):
            V[:, r, :] = 2.0 * rng.integers(0, 2, size=(P, n)) - 1.0
        for p in range(P):
            out += np.einsum("ri,ri->r", self.kernel.hvp(th, V[p : p + 1], X)[0], V[p])
        return out / P

    # ---- the loop ---------------------------------------------------------------------
    def chunk(self, c0: int, T0: np.ndarray, seqs: list[np.random.SeedSequence]) -> None:
        cols, mode, K = self.cols, self.mode, self.K
        steps, every = self.steps, self.every
        lr, wd, mu = self.lr, self.weight_decay, self.momentum
        T = np.ascontiguousarray(T0.T) if cols else T0.copy()
        V = np.zeros_like(T) if mu else None
        act = np.arange(c0, c0 + T0.shape[0])  # global replica ids of the working columns
        rngs = [np.random.Generator(np.random.PCG64(s)) for s in seqs] if mode in ("sample", "epoch") else []
        epochs = [_EpochState() for _ in seqs] if mode == "epoch" else None
        need_aux = "sharpness" in self.names and self.kernel.n > _EXACT_TRACE_MAX_N
        aux = [np.random.Generator(np.random.PCG64(s.spawn(1)[0])) for s in seqs] if need_aux else []
        lam0 = self.gens.orbit(T0) if "orbit" in self.names else None
        axis = 0 if cols else 1
        limit2 = OVERFLOW * OVERFLOW
        blk = None
        blk_start = -K
        fac = None
        fac_start = -K
        X = self.full_X
        Zall = None if X is None else self.kernel.derive(X, None)  # data-only parts of the loss
        Z = Zall
        T_new = None
        j = 0  # next record
        n_chunk = T0.shape[0]
        reported = 0  # replica-steps shown on the progress bar
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            for k in range(steps + 1):
                recording = bool(self.names) and k % every == 0
                if k == steps and not recording:
                    break
                if mode in ("sample", "epoch") and (k < steps or self.batch_obs):
                    if k >= blk_start + K:
                        blk_start = (k // K) * K
                        blk = self._block(rngs, epochs, blk)
                        Zall = self.kernel.derive(blk, Zall)
                    X = blk[k - blk_start]
                    Z = None if Zall is None else Zall[:, k - blk_start]
                if k == steps:
                    G = self.kernel.grad(T, X, Z) if "grad_norm2" in self.names else None
                    self._record(j, act, T, X, G, lam0, aux)
                    break
                if self.bar is not None and k and k % K == 0:
                    reported = self._progress(n_chunk * k, reported)
                G = self.kernel.grad(T, X, Z)
                if recording:
                    self._record(j, act, T, X, G, lam0, aux)
                    j += 1
                if self.schedule is not None:
                    if k >= fac_start + K:
                        fac_start = (k // K) * K
                        fac = _schedule_factors(self.schedule, fac_start, min(fac_start + K, steps), steps)
                    eta = lr * float(fac[k - fac_start])
                else:
                    eta = lr
                # θ_{k+1} into the spare buffer T_new (θ_k stays for a roll-back); G is scratch
                if T_new is None or T_new.shape != T.shape:
                    T_new = np.empty_like(T)
                if mu:
                    V *= mu
                    V += G
                    if wd:
                        np.multiply(T, wd, out=T_new)
                        V += T_new
                    np.multiply(V, eta, out=T_new)
                    np.subtract(T, T_new, out=T_new)
                elif wd:
                    np.multiply(G, eta, out=G)
                    np.multiply(T, 1.0 - eta * wd, out=T_new)
                    np.subtract(T_new, G, out=T_new)
                else:
                    np.multiply(G, eta, out=G)
                    np.subtract(T, G, out=T_new)
                # one pass over all replicas: Σθ² is non-finite or large iff some entry is;
                # einsum rather than BLAS dot, whose threads cost more than they save here
                q = np.einsum("ij,ij->", T_new, T_new)
                if not q <= limit2:
                    good = np.isfinite(T_new).all(axis=axis) & (np.abs(T_new) <= OVERFLOW).all(axis=axis)
                    bad = ~good
                    if bad.any():
                        ids = act[bad]
                        self.div_step[ids] = k + 1
                        self.theta_out[ids] = (T[:, bad].T if cols else T[bad])
                        act = act[good]
                        T_new = T_new[:, good] if cols else T_new[good]
                        if V is not None:
                            V = V[:, good] if cols else V[good]
                        if rngs:
                            rngs = [g for g, ok in zip(rngs, good) if ok]
                        if epochs is not None:
                            epochs = [e for e, ok in zip(epochs, good) if ok]
                        if aux:
                            aux = [g for g, ok in zip(aux, good) if ok]
                        if lam0 is not None:
                            lam0 = lam0[good]
                        if blk is not None:
                            blk = blk[:, good]
                            if Zall is not None:
                                Zall = Zall[:, :, good]
                        if not len(act):
                            T = T_new
                            break
                        T, T_new = T_new, None
                        continue
                T, T_new = T_new, T
        if self.bar is not None:
            self._progress(n_chunk * steps, reported)
        self.theta_out[act] = T.T if cols else T

    def _progress(self, done: int, reported: int) -> int:
        self.bar.update(done - reported)
        return done
