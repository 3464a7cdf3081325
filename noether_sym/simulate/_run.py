"""Simulate: SGD, heavy-ball momentum and GD on a Loss, many replicas at once, reproducibly.

:func:`simulate` runs (E1) of THEORY §1,

    θ_{k+1} = (1 − η_k γ) θ_k − η_k ĝ_k,   ĝ_k = (1/S) Σ_{x ∈ B_k} g(θ_k, x),

for ``replicas`` independent copies, with the gradient compiled from the symbolic loss
(:mod:`noether_sym.compile`) or the loss's matrix-form ``fast_grad``, evaluated on a whole
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
(``compile._matrix_grads``), used instead with θ as rows ``(R, n)``.

Memory. A data block holds at most ``_BLOCK_VALUES`` numbers per replica; replicas run in
chunks (``chunk_size``, by default sized to keep the blocks of a chunk near
``_CHUNK_BYTES``); observables are kept at stride ``every`` only, and θ itself only when
``record`` asks for ``"theta"``.

Options. :func:`simulate` keeps its keyword signature and groups the settings into one
:class:`~noether_sym.simulate._options.SimulationOptions` (validated once); callers that run
the simulator several times (``compare``) build that object and call :func:`run_simulation`.
"""


from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
import sympy.stats  # noqa: F401 - sp.stats.E, sp.stats.variance

from .._errors import InvalidArgumentError, ResourceLimitError
from ..compile._matrix_grads import MatrixGradient
from ..data._sample import _value_map, make_sampler
from ..loss._loss import Loss, as_loss
from ._fused import FusedKernel, run_fused, select_kernel
from ._kernels import _CompiledKernel, _FastKernel, _MeanGradKernel
from ._observables import _Generators, generator_arrays
from ._options import SimulationOptions
from ._result import OVERFLOW, SimulationResult
from ._schedule import Schedule, _schedule_factors

__all__ = ['block_steps', 'run_simulation', 'simulate']


_BATCH_OBSERVABLES = ("loss", "sharpness", "grad_norm2")  # need the batch of the step
_BLOCK_VALUES = 1 << 16  # data numbers per replica and block (512 KiB)
_BLOCK_MAX_STEPS = 1024
#: memory budget of one run's records and replica state (bytes); checked before allocating
MAX_SIMULATION_BYTES = 2 * 2**30
_CHUNK_BYTES = 256 << 20  # data-block bytes per chunk of replicas (default chunk_size)
_EXACT_TRACE_MAX_N = 16  # sharpness: exact trace (n probes e_i) up to this n, else Hutchinson
_HUTCHINSON_PROBES = 8


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
# Validation
# ------------------------------------------------------------------------------------------


def _theta0(loss: Loss, theta0: Any, replicas: int) -> np.ndarray:
    if isinstance(theta0, (Mapping, sp.MatrixBase)):
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


# ------------------------------------------------------------------------------------------
# simulate
# ------------------------------------------------------------------------------------------


def simulate(
    loss: Loss, theta0: Any, *, lr: float, batch_size: int | None = None, steps: int, replicas: int,
    weight_decay: float = 0.0, momentum: float = 0.0, schedule: Schedule | None = None,
    optimizer: str = "sgd", record: Sequence[str] | None = None, every: int | None = None,
    seed: int | None = 0, replace: bool = True, chunk_size: int | None = None, progress: bool = False,
    generators: Any = None, sampler: Any = None, values: Mapping | None = None, backend: str | None = None,
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
        Batch size S ≥ 1 (≤ N without replacement); required by SGD, not needed (and ignored)
        by GD.
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
        ``noether_sym.data._sample.Sampler``); for example a custom data model for a catalog
        family whose data symbols carry no distribution.
    values
        Numbers for symbolic distribution parameters (passed to the sampler and to the
        exact moments).
    backend
        ``"numba"`` (fused compiled kernels, :mod:`noether_sym.simulate._fused`), ``"numpy"``
        (the reference step loop) or ``"auto"`` (default, or ``$NOETHER_SYM_BACKEND``: numba if
        importable, it implements the run and steps ≥ 10,000 (shorter runs: NumPy), else NumPy; ``settings["backend"]`` and
        ``["backend_note"]`` say which ran and why). Same seed, same law, different numbers.

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
    MissingDependencyError
        ``backend="numba"`` without numba installed.

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
    loss = as_loss(loss)
    if batch_size is None:
        if optimizer == "sgd":
            raise InvalidArgumentError("optimizer='sgd' needs batch_size= (the number of samples per step, ≥ 1)")
        batch_size = 1  # GD uses the full expectation: no batch
    options = SimulationOptions(
        lr=lr, batch_size=batch_size, steps=steps, replicas=replicas, weight_decay=weight_decay,
        momentum=momentum, schedule=schedule, optimizer=optimizer, record=record, every=every, seed=seed,
        replace=replace, chunk_size=chunk_size, progress=progress, backend=backend,
    )
    return run_simulation(loss, theta0, options, generators=generators, sampler=sampler, values=values)


def run_simulation(loss: Loss, theta0: Any, options: SimulationOptions, *, generators: Any = None,
                   sampler: Any = None, values: Mapping | None = None) -> SimulationResult:
    """:func:`simulate` with its settings given as one :class:`SimulationOptions`."""
    t_start = time.perf_counter()
    loss = as_loss(loss)
    o = options
    seed = o.seed if o.seed is not None else int(np.random.SeedSequence().entropy)
    _check_memory(8 * 4 * o.replicas * loss.n)  # the replicas' state, before any of it exists
    T0 = _theta0(loss, theta0, o.replicas)
    gens = _generators(loss, generators, o.record)
    data = _DataPlan.build(loss, o, sampler, values)
    fused, backend_note = select_kernel(loss, o, data.mode, data.N, data.full_X[0] if data.mode == "full" else (
        None if data.N is None else np.asarray(data.sampler.take(np.arange(data.N)), dtype=float)),
        sampler is not None, values, data.B)
    if fused is not None:
        kernel: Any = fused
    elif data.mode == "exact":
        kernel = _MeanGradKernel(loss, values)
    elif loss.fast_grad is not None:
        kernel = _FastKernel(loss)
    else:
        kernel = _CompiledKernel(loss)

    every = o.record_every
    times = np.arange(0, o.steps + 1, every) if o.record else np.zeros(0, dtype=int)
    obs = _allocate(o.record, len(times), o.replicas, loss.n, gens)
    theta_out = T0.copy()
    div_step = np.full(o.replicas, -1, dtype=np.int64)
    bar = _progress_bar(o.replicas * o.steps) if o.progress else None
    if fused is not None:
        try:
            sharp = _fused_sharpness(loss, seed, o.replicas) if "sharpness" in o.record else None
            run_fused(fused, o, T0, seed, len(times), every, obs, gens, theta_out, div_step, data.B,
                      MAX_SIMULATION_BYTES, bar, sharp, data.full_X)
        finally:
            if bar is not None:
                bar.close()
        return _result(loss, o, T0, theta_out, div_step, times, obs, seed, t_start, every, data.mode, kernel,
                       backend_note, data.note)
    seqs = np.random.SeedSequence(seed).spawn(o.replicas)
    run = _Run(
        kernel=kernel, cols=kernel.layout == "cols", mode=data.mode, sampler=data.sampler, full_X=data.full_X,
        K=data.K, B=data.B, N=data.N, d=data.d, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum,
        schedule=o.schedule, steps=o.steps, every=every, names=list(o.record), gens=gens, obs=obs,
        theta_out=theta_out, div_step=div_step, bar=bar,
    )
    chunk_size = o.chunk_size if o.chunk_size is not None else data.chunk_size(loss.n, o.replicas)
    try:
        for c0 in range(0, o.replicas, chunk_size):
            c1 = min(o.replicas, c0 + chunk_size)
            run.chunk(c0, T0[c0:c1], seqs[c0:c1])
    finally:
        if bar is not None:
            bar.close()
    return _result(loss, o, T0, theta_out, div_step, times, obs, seed, t_start, every, data.mode, kernel,
                   backend_note, data.note)


def _result(loss: Loss, o: SimulationOptions, T0: np.ndarray, theta_out: np.ndarray, div_step: np.ndarray,
            times: np.ndarray, obs: dict[str, np.ndarray], seed: int, t_start: float, every: int, mode: str,
            kernel: Any, backend_note: str, gd_note: str = "") -> SimulationResult:
    settings = _settings(loss, o, every, mode, kernel)
    settings["backend"] = "numba" if isinstance(kernel, FusedKernel) else "numpy"
    settings["backend_note"] = backend_note
    settings["gd"] = gd_note
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


# ------------------------------------------------------------------------------------------
# the pieces of a run
# ------------------------------------------------------------------------------------------


def _generators(loss: Loss, generators: Any, names: Sequence[str]) -> _Generators | None:
    if ("charges" in names or "orbit" in names) and generators is None:
        raise InvalidArgumentError(
            "record 'charges'/'orbit' needs generators=[A_1, ...] (e.g. ns.find_symmetries(loss).generators)"
        )
    return None if generators is None else generator_arrays(generators, loss.n)


@dataclass(frozen=True)
class _DataPlan:
    """Where a run's data come from: the sampler, the data width d, the dataset size N (None:
    random symbols), the mode ("none": no data, "sample": i.i.d. draws, "epoch": epochs
    without replacement, "full": the whole dataset every step, "exact": E[g] itself), the
    batch B, the block K (:func:`block_steps`) and, in mode "full", the dataset (1, N, d)."""

    sampler: Any
    d: int
    N: int | None
    mode: str
    B: int
    K: int
    full_X: np.ndarray | None
    note: str = ""

    @classmethod
    def build(cls, loss: Loss, o: SimulationOptions, sampler: Any, values: Mapping | None) -> _DataPlan:
        d = len(loss.x) + len(loss.c)
        if sampler is None and d:
            sampler = make_sampler(loss, values=values)
        elif sampler is not None:
            for attr in ("draw", "take"):
                if not callable(getattr(sampler, attr, None)):
                    raise InvalidArgumentError(f"sampler must have a {attr}() method (see noether_sym.data._sample.Sampler)")
            sd = getattr(sampler, "d", d)
            if sd != d:
                raise InvalidArgumentError(f"sampler draws rows of width {sd}; this loss needs d = {d}")
        N = None if sampler is None else getattr(sampler, "dataset_size", None)
        mode = _data_mode(o, d, N)
        B = N if mode == "full" else o.batch_size
        full_X = np.array(sampler.take(np.arange(N)), dtype=float)[None] if mode == "full" else None
        note = ""
        if mode == "exact":
            points, note = _gd_points(loss, values, o.seed)
            if points is not None:
                mode, B, full_X = "full", points.shape[0], points[None]
        return cls(sampler, d, N, mode, B, block_steps(B, d), full_X, note)

    def chunk_size(self, n: int, replicas: int) -> int:
        """Replicas per chunk that keep the data blocks of a chunk near ``_CHUNK_BYTES``."""
        if self.mode in ("sample", "epoch"):
            per_replica = self.K * self.B * max(self.d, 1) * 8
        else:
            per_replica = 8 * n * max(self.B, 1)
        return max(1, min(replicas, _CHUNK_BYTES // max(per_replica, 1)))


#: GD on random-symbol data without an exact mean gradient: E[g] estimated on this many fixed draws
GD_DRAWS = 4096


def _gd_points(loss: Loss, values: Mapping | None, seed: int | None) -> tuple[np.ndarray | None, str]:
    """Data points whose mean gradient is GD's gradient, when the symbolic E[g] is not used.

    * A linear network (``fast_grad`` a :class:`MatrixGradient` without activation, possibly
      through an affine data map): the per-sample gradient is a polynomial of degree 2 in
      the independent random symbols, so its mean depends on their means and variances only,
      and the 2m points ``μ ± √m σ_j e_j`` (m symbols) have those: their mean gradient is
      E[g] exactly, at any size (the symbolic E[g] of the 30-40-30 net does not fit in memory).
    * A loss whose exact moments are refused (ReLU and other piecewise losses): E[g] is
      estimated on :data:`GD_DRAWS` fixed draws of the data model (seeded by ``seed``), the
      dataset gradient, with error O(1/√GD_DRAWS); the result's ``settings["gd"]`` says so.

    (None, "") when the exact symbolic E[g] applies (``_MeanGradKernel``)."""
    fg = loss.fast_grad
    inner = getattr(fg, "inner", fg)
    affine = fg is inner or getattr(fg, "_matrix", None) is not None
    if isinstance(inner, MatrixGradient) and inner._act is None and affine and loss.random_symbols:
        vals = _value_map(loss, values)
        mean = np.array([float(sp.stats.E(X).xreplace(vals)) for X in loss.random_symbols])
        std = np.sqrt([float(sp.stats.variance(X).xreplace(vals)) for X in loss.random_symbols])
        m = len(mean)
        pts = np.tile(mean, (2 * m, 1))
        pts[np.arange(m), np.arange(m)] += np.sqrt(m) * std
        pts[m + np.arange(m), np.arange(m)] -= np.sqrt(m) * std
        consts = [float(v) for v in loss.constant_values().values()] if loss.c else []
        pts = np.concatenate([pts, np.tile(consts, (2 * m, 1))], axis=1) if consts else pts
        return pts, f"exact E[g]: mean over {2 * m} moment-matched points (the gradient is quadratic in the data)"
    try:
        _MeanGradKernel(loss, values)
        return None, ""
    except InvalidArgumentError as exc:
        if "depends on symbol" in str(exc):
            raise
        why = str(exc)
    rng = np.random.default_rng(np.random.SeedSequence([0 if seed is None else seed, 0x6D]))
    pts = np.asarray(make_sampler(loss, values=values).draw(rng, (GD_DRAWS,)), dtype=float)
    return pts, (f"E[g] estimated on {GD_DRAWS} fixed draws of the data model (error O(1/sqrt({GD_DRAWS}))), "
                 f"because {why}")


def _data_mode(o: SimulationOptions, d: int, N: int | None) -> str:
    sgd = o.optimizer == "sgd"
    if not o.replace and N is None and sgd:
        raise InvalidArgumentError("replace=False (epochs without replacement) needs a finite dataset")
    if N is not None and not o.replace and o.batch_size > N and sgd:
        raise InvalidArgumentError(
            f"batch_size={o.batch_size} exceeds the dataset size N={N}: without replacement a batch "
            "holds at most N distinct points"
        )
    if not d:
        mode = "none"
    elif not sgd:
        mode = "full" if N is not None else "exact"
    else:
        mode = "sample" if (o.replace or N is None) else "epoch"
    if mode == "exact" and any(nm in ("loss", "sharpness") for nm in o.record):
        raise InvalidArgumentError(
            "record 'loss'/'sharpness' with optimizer='gd' on random-symbol data: the GD step uses the "
            "exact E[g] and draws no samples to evaluate them on; record them with SGD or a dataset"
        )
    return mode


def _allocate(names: Sequence[str], n_rec: int, replicas: int, n: int,
              gens: _Generators | None) -> dict[str, np.ndarray]:
    """NaN-filled record arrays (a diverged replica's records stay NaN after it stops).

    The total size (records plus the replicas' state) is checked against
    :data:`MAX_SIMULATION_BYTES` before anything is allocated."""
    shapes: dict[str, tuple[int, ...]] = {}
    for nm in names:
        tail: tuple[int, ...] = ()
        if nm == "theta":
            tail = (n,)
        elif nm in ("charges", "orbit"):
            tail = (gens.k,)  # type: ignore[union-attr]
        shapes[nm] = (n_rec, replicas) + tail
    _check_memory(8 * (sum(math.prod(s) for s in shapes.values()) + 4 * replicas * n))
    return {nm: np.full(shape, np.nan) for nm, shape in shapes.items()}


def _check_memory(total: int) -> None:
    """Refuse a run whose arrays would take more than :data:`MAX_SIMULATION_BYTES`."""
    if total > MAX_SIMULATION_BYTES:
        raise ResourceLimitError(
            f"this run would hold about {total / 2**30:.3g} GiB of records and replica state, over the budget "
            f"MAX_SIMULATION_BYTES = {MAX_SIMULATION_BYTES / 2**30:.3g} GiB: use fewer replicas, record less often "
            "(a larger every=), or raise noether_sym.simulate._run.MAX_SIMULATION_BYTES"
        )


def _progress_bar(total: int) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a core dependency; say so once if it was removed
        warnings.warn("progress=True but tqdm is not installed (pip install tqdm): no progress bar",
                      stacklevel=3)
        return None
    return tqdm(total=total, unit="replica-step", unit_scale=True, desc="simulate")


def _settings(loss: Loss, o: SimulationOptions, every: int, mode: str, kernel: Any) -> dict[str, Any]:
    kinds = {"_CompiledKernel": "compiled", "_FastKernel": "fast", "_MeanGradKernel": "exact mean"}
    if isinstance(kernel, FusedKernel):
        kinds["FusedKernel"] = "fast" if kernel.shape == "network" else "compiled"  # same gradient, fused
    return {
        "loss": loss.name,
        "lr": o.lr,
        "batch_size": o.batch_size,
        "steps": o.steps,
        "replicas": o.replicas,
        "weight_decay": o.weight_decay,
        "momentum": o.momentum,
        "schedule": None if o.schedule is None else repr(o.schedule),
        "optimizer": o.optimizer,
        "record": list(o.record),
        "every": every,
        "replace": o.replace,
        "data": mode,
        "gradient": kinds[type(kernel).__name__],
    }


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
        return trace_hessian(self.kernel, th, X, aux)

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
                if T_new is None or T_new.shape != T.shape:
                    T_new = np.empty_like(T)
                _update(T, G, V, T_new, eta, wd, mu)
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


def trace_hessian(kernel: Any, th: np.ndarray, X: Any, aux: list[np.random.Generator]) -> np.ndarray:
    """Tr H of the batch-mean loss at rows ``th`` (R, n) on the batch ``X``: exact (n probes
    e_i) for n ≤ 16, else Hutchinson's estimator with Rademacher probes from ``aux`` (one
    generator per replica)."""
    R, n = th.shape
    out = np.zeros(R)
    if n <= _EXACT_TRACE_MAX_N:
        for i in range(n):
            V = np.zeros((1, R, n))
            V[0, :, i] = 1.0
            out += kernel.hvp(th, V, X)[0, :, i]
        return out
    P = _HUTCHINSON_PROBES
    V = np.empty((P, R, n))
    for r, rng in enumerate(aux):
        V[:, r, :] = 2.0 * rng.integers(0, 2, size=(P, n)) - 1.0
    for p in range(P):
        out += np.einsum("ri,ri->r", kernel.hvp(th, V[p : p + 1], X)[0], V[p])
    return out / P


def _fused_sharpness(loss: Loss, seed: int, replicas: int) -> Any:
    """The ``sharpness`` callable of :func:`~noether_sym.simulate._fused.run_fused`: the NumPy
    kernel's Hessian-vector products, Hutchinson probes from each replica's second stream
    (as the NumPy backend draws them)."""
    kernel = _FastKernel(loss) if loss.fast_grad is not None else _CompiledKernel(loss)
    aux: dict[int, np.random.Generator] = {}
    seqs = np.random.SeedSequence(seed).spawn(replicas) if loss.n > _EXACT_TRACE_MAX_N else []

    def sharpness(th: np.ndarray, X: np.ndarray | None, ids: np.ndarray) -> np.ndarray:
        gens = []
        for r in ids.tolist() if seqs else []:
            if r not in aux:
                aux[r] = np.random.Generator(np.random.PCG64(seqs[r].spawn(1)[0]))
            gens.append(aux[r])
        return trace_hessian(kernel, th, X, gens)

    return sharpness


def _update(T: np.ndarray, G: np.ndarray, V: np.ndarray | None, T_new: np.ndarray, eta: float, wd: float,
            mu: float) -> None:
    """θ_{k+1} into the spare buffer ``T_new`` (θ_k stays in ``T`` for a roll-back): heavy ball
    (``V`` updated in place) or (E1); ``G`` is scratch."""
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
