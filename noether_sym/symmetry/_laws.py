"""Symmetries: every conservation law of gradient flow -- the rank of the Lie algebra of the gradient fields.

Marcotte, Gribonval and Peyré (NeurIPS 2023) count the independent conservation laws of
gradient flow for a loss family as n - dim Lie(V)(θ) at a generic θ, where V is the span of
the per-sample gradient fields θ ↦ ∇ℓ(θ, x) over all samples x, and Lie(V) the Lie algebra
of vector fields they generate under [X, Y] = DY·X - DX·Y. Quadratic charges θᵀAθ are
among these laws; a count above ``Symmetries.n_independent_charges`` means laws that are
not quadratic (ℓ = (x(θ₁ + θ₂²) - y)² conserves θ₂e^{-2θ₁} and has no generator).

Method
------
* Samples. S random data points x_s (as the finder draws them: data are free variables),
  S grown until the fields ∇ℓ(·, x_s), stacked at several points θ, stop gaining rank, so
  random combinations Y_c = Σ_s c_s ∇ℓ(·, x_s) are generic members of V as a space of
  functions.
* Brackets. The left-normed brackets [Y_{c₁}, [Y_{c₂}, ... Y_{c_k}]] span the level-k part
  of Lie(V); with random coefficient vectors c, M ≥ n of them span its value at θ. Each is
  evaluated exactly to rounding by nested forward-mode dual numbers run through the
  loss's generated gradient code (one perturbation tag per nesting level, so the
  derivatives never mix); cost about 3^k gradient evaluations per batch.
* Rank. Unit-normalised values at θ are stacked level by level; the numerical rank is cut
  at the largest singular-value gap (≥ 1e3, below 1e-5 relative). The first level that
  adds no rank closes the computation: if Δ_{k+1} = Δ_k at generic θ (constant rank), then
  every bracket with V stays in Δ_k, so Δ_k is Lie(V)(θ). A budget of ``MAX_DEPTH`` levels
  bounds the work; reaching it is reported in the certificate (the count is then an upper
  bound on the number of laws).
* Confirmation. The rank is computed at ``points`` random θ; the generic rank is the
  largest, and the certificate says whether all points agreed.
"""


from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import CertificationError, UnsupportedExpressionError
from .._validate import Integer, Seed, validate
from ..compile._compiled import CompiledLoss, compiled
from ..loss._loss import Loss, as_loss
from ._numeric import _gap_rank, _sample_rows, _svd

__all__ = ['ConservationLaws', 'conservation_laws']

#: deepest bracket level evaluated (3^depth gradient evaluations per batch)
MAX_DEPTH = 6
#: relative singular value below which a direction may count as dependent (cut at the gap)
RANK_TOL = 1e-5
#: largest number of data samples per field
MAX_SAMPLES = 400
#: memory the bracket evaluation may hold at once (the batch is split to stay below it)
MEMORY_BUDGET = 1 << 30


@dataclass
class ConservationLaws:
    """The number of independent conservation laws of gradient flow (see :func:`conservation_laws`).

    Attributes
    ----------
    n_laws
        n - dim Lie(V)(θ) at generic θ.
    lie_rank
        dim Lie(V)(θ), the largest over the points tried.
    ranks
        The rank at each random point θ.
    depth
        Bracket level at which the rank stopped growing (1: V alone).
    certificate
        Samples, tolerances, smallest singular-value gap, whether the points agreed and
        whether the depth budget was reached.
    seconds
        Wall time.
    """

    n_laws: int
    lie_rank: int
    ranks: list[int]
    depth: int
    certificate: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


_OPTIONS = {"seed": Seed(), "points": Integer(1, 20)}


def conservation_laws(loss: Loss, *, seed: int = 0, points: int = 3) -> ConservationLaws:
    """Count the independent conservation laws of gradient flow of ``loss`` (module docstring).

    Parameters
    ----------
    loss
        The loss; data symbols are free variables (the laws hold for every dataset).
    seed
        Seed of the random points, samples and coefficients.
    points
        Number of random points θ at which the rank is computed.

    Returns
    -------
    ConservationLaws

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> a, b, x, y = sp.symbols("a b x y")
    >>> ns.conservation_laws(ns.Loss((x * (a + b**2) - y) ** 2, params=[a, b], data=[x, y])).n_laws
    1
    """
    loss = as_loss(loss)
    opts = validate(_OPTIONS, seed=seed, points=points)
    t0 = time.perf_counter()
    cl = compiled(loss)
    rng = np.random.default_rng(np.random.SeedSequence([opts["seed"], 16]))
    n = loss.n
    xs = _samples(loss, cl, rng)
    ranks, depths, gaps, capped = [], [], [], False
    for _ in range(opts["points"]):
        theta = rng.standard_normal(n)
        try:
            _, x_ok, _ = _sample_rows(loss, cl, rng, theta, 1)  # θ must be a good point too
        except Exception:  # noqa: BLE001 - any trouble at this θ: draw another
            continue
        del x_ok
        good = _good_samples(cl, theta, xs)
        r, d, gap, hit = _lie_rank(cl, theta, xs[good], rng)
        ranks.append(r)
        depths.append(d)
        gaps.append(gap)
        capped = capped or hit
    if not ranks:
        raise UnsupportedExpressionError("no random point θ where the gradient fields are defined; check the loss's domain")
    if len(set(ranks)) > 1:
        # the Lie algebra's dimension is the same at every generic point: disagreeing ranks
        # mean the numerical rank cut is not reliable here, so no count is given (a count
        # from the largest rank was measured to be wrong on deep ReLU networks)
        raise CertificationError(
            f"the conservation-law count is not certified: the Lie-algebra rank differs between random "
            f"points ({', '.join(map(str, ranks))}), so the numerical rank cut is unreliable for this loss; "
            "the count of quadratic laws is n_independent_charges"
        )
    rank = ranks[0]
    cert = {
        "samples": int(len(xs)),
        "rank_tolerance": RANK_TOL,
        "smallest_gap": min((g for g in gaps if g is not None), default=None),
        "points_agree": len(set(ranks)) == 1,
        "depth_budget_reached": capped,
        "method": "n - rank of left-normed brackets of random gradient fields (nested dual numbers)",
    }
    return ConservationLaws(n_laws=n - rank, lie_rank=rank, ranks=ranks, depth=max(depths), certificate=cert,
                            seconds=time.perf_counter() - t0)


def _samples(loss: Loss, cl: CompiledLoss, rng: np.random.Generator) -> np.ndarray:
    """Data samples whose gradient fields span V as functions (rank saturated at 3 points)."""
    n = loss.n
    if cl.d == 0:
        return np.zeros((1, 0))
    thetas = rng.standard_normal((3, n))
    S = 2 * n + 8
    while True:
        x = rng.standard_normal((S, cl.d))
        with np.errstate(all="ignore"):
            g = cl.grad(thetas[:, None, :], x[None, :, :])  # (3, S, n)
        G = np.transpose(g, (0, 2, 1)).reshape(3 * n, S)
        G = G[:, np.all(np.isfinite(G), axis=0)]
        s = _svd(G, compute_uv=False)
        r, _ = _gap_rank(s, RANK_TOL)
        if r < G.shape[1] - 4 or S >= MAX_SAMPLES:
            return x[: min(len(x), r + 8)]  # r + 8 random samples span the same functions
        S = min(2 * S, MAX_SAMPLES)


def _good_samples(cl: CompiledLoss, theta: np.ndarray, xs: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        _, g, kinks = cl.value_grad(np.broadcast_to(theta, (len(xs), cl.n)), xs)
    ok = np.all(np.isfinite(g), axis=1)
    if kinks.shape[-1]:
        ok &= np.all(np.abs(kinks) > 1e-6, axis=1)
    return ok


def _lie_rank(cl: CompiledLoss, theta: np.ndarray, xs: np.ndarray, rng: np.random.Generator
              ) -> tuple[int, int, float | None, bool]:
    """(rank, depth, gap, depth budget reached) at one point θ."""
    n = cl.n
    f = _dual_program(cl)
    S = len(xs)
    with np.errstate(all="ignore"):
        g = cl.grad(np.broadcast_to(theta, (S, n)), xs)
    vecs = [v / np.linalg.norm(v) for v in g if np.linalg.norm(v) > 0]
    if not vecs:
        return 0, 1, None, False
    rank, gap = _rank(vecs)
    for depth in range(2, MAX_DEPTH + 1):
        if rank == n:
            return rank, depth - 1, gap, False
        M = n - rank + 4  # a level adds at most n - rank directions at θ
        V = _level(f, cl, theta, xs, M, depth, rng)
        norms = np.linalg.norm(V, axis=1)
        vecs += [v / nv for v, nv in zip(V, norms) if nv > 0 and np.isfinite(nv)]
        new, gap2 = _rank(vecs)
        if new == rank:
            return rank, depth - 1, gap, False
        rank, gap = new, gap2
    return rank, MAX_DEPTH, gap, rank < n


def _level(f: Any, cl: CompiledLoss, theta: np.ndarray, xs: np.ndarray, M: int, depth: int,
           rng: np.random.Generator) -> np.ndarray:
    """M random left-normed brackets of length ``depth`` at θ, (M, n), in batches that fit
    the memory budget (every node of the gradient code holds 2^depth arrays of batch x S)."""
    n, S = cl.n, len(xs)
    per_row = len(cl.graph.nodes) * S * 8 * 2 ** depth * 2
    if per_row > MEMORY_BUDGET:
        raise UnsupportedExpressionError(
            f"counting conservation laws at bracket depth {depth} needs about {per_row / 2**30:.1f} GiB per "
            f"bracket ({len(cl.graph.nodes)} code nodes x {S} samples), beyond the budget of "
            f"{MEMORY_BUDGET / 2**30:.0f} GiB"
        )
    chunk = max(1, int(MEMORY_BUDGET // per_row))
    out = []
    for start in range(0, M, chunk):
        m = min(chunk, M - start)
        coeffs = [rng.standard_normal((m, S)) for _ in range(depth)]
        vals = _bracket(f, xs, coeffs, [np.broadcast_to(theta[i], (m,)) for i in range(n)])
        out.append(np.stack([np.broadcast_to(np.asarray(_primal(v), dtype=float), (m,)) for v in vals], axis=1))
    return np.concatenate(out)


def _rank(vecs: list[np.ndarray]) -> tuple[int, float | None]:
    s = _svd(np.array(vecs), compute_uv=False)
    return _gap_rank(s, RANK_TOL)


# ------------------------------------------------------------------------------------------
# Fields and brackets
# ------------------------------------------------------------------------------------------


def _field(f: Any, xs: np.ndarray, c: np.ndarray, theta: list) -> list:
    """Y_c(θ) = Σ_s c_s ∇ℓ(θ, x_s) for a batch: θ entries (M,), c (M, S) -> n entries (M,)."""
    ins = [_index(t, (slice(None), None)) for t in theta] + [xs[None, :, j] for j in range(xs.shape[1])]
    grads = f(*ins)[1]
    return [_sum1(gi * c) for gi in grads]


def _bracket(f: Any, xs: np.ndarray, coeffs: list[np.ndarray], theta: list) -> list:
    """[Y_{c₁}, [Y_{c₂}, ... Y_{c_k}]](θ) by nested dual numbers."""
    if len(coeffs) == 1:
        return _field(f, xs, coeffs[0], theta)
    c, rest = coeffs[0], coeffs[1:]
    y = _field(f, xs, c, theta)
    tag = _new_tag()
    z_dual = _bracket(f, xs, rest, [Dual(t, v, tag) for t, v in zip(theta, y)])
    z = [_part(v, tag, 0) for v in z_dual]
    dz_y = [_part(v, tag, 1) for v in z_dual]
    tag2 = _new_tag()
    y_dual = _field(f, xs, c, [Dual(t, v, tag2) for t, v in zip(theta, z)])
    dy_z = [_part(v, tag2, 1) for v in y_dual]
    return [a - b for a, b in zip(dz_y, dy_z)]


_TAGS = [0]


def _new_tag() -> int:
    _TAGS[0] += 1
    return _TAGS[0]


class Dual:
    """a + b·ε with ε² = 0 for one perturbation ``tag``; a and b may be Duals of older tags."""

    __slots__ = ("a", "b", "tag")
    __array_priority__ = 100

    def __init__(self, a: Any, b: Any, tag: int) -> None:
        self.a, self.b, self.tag = a, b, tag

    def _split(self, o: Any) -> tuple[Any, Any]:
        if isinstance(o, Dual) and o.tag == self.tag:
            return o.a, o.b
        return o, 0.0

    def _lead(self, o: Any) -> bool:
        return not (isinstance(o, Dual) and o.tag > self.tag)

    def __add__(self, o: Any) -> Any:
        if not self._lead(o):
            return o.__radd__(self)
        oa, ob = self._split(o)
        return Dual(self.a + oa, self.b + ob, self.tag)

    __radd__ = __add__

    def __neg__(self) -> Dual:
        return Dual(-self.a, -self.b, self.tag)

    def __sub__(self, o: Any) -> Any:
        return self + (-o)

    def __rsub__(self, o: Any) -> Any:
        return (-self) + o

    def __mul__(self, o: Any) -> Any:
        if not self._lead(o):
            return o.__rmul__(self)
        oa, ob = self._split(o)
        return Dual(self.a * oa, self.a * ob + self.b * oa, self.tag)

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Any:
        if not self._lead(o):
            return o.__rtruediv__(self)
        oa, ob = self._split(o)
        q = self.a / oa
        return Dual(q, (self.b - q * ob) / oa, self.tag)

    def __rtruediv__(self, o: Any) -> Any:
        q = o / self.a
        return Dual(q, -q * self.b / self.a, self.tag)

    def __pow__(self, k: Any) -> Dual:
        if isinstance(k, Dual):
            raise UnsupportedExpressionError("a power with a parameter-dependent exponent")
        return Dual(self.a ** k, k * self.a ** (k - 1) * self.b, self.tag)

    def __getitem__(self, idx: Any) -> Dual:
        return Dual(_index(self.a, idx), _index(self.b, idx), self.tag)


def _index(v: Any, idx: Any) -> Any:
    if isinstance(v, Dual):
        return v[idx]
    return v[idx] if np.ndim(v) else v


def _primal(v: Any) -> Any:
    while isinstance(v, Dual):
        v = v.a
    return v


def _part(v: Any, tag: int, k: int) -> Any:
    """Primal (k = 0) or ε-part (k = 1) of v for one tag (v constant in ε: 0)."""
    if isinstance(v, Dual) and v.tag == tag:
        return v.b if k else v.a
    if isinstance(v, Dual) and v.tag > tag:
        return Dual(_part(v.a, tag, k), _part(v.b, tag, k), v.tag)
    return 0.0 if k else v


def _sum1(v: Any) -> Any:
    if isinstance(v, Dual):
        return Dual(_sum1(v.a), _sum1(v.b), v.tag)
    return np.sum(v, axis=1) if np.ndim(v) == 2 else v


def _unary(name: str, d: Any) -> Any:
    def fn(z: Any) -> Any:
        if isinstance(z, Dual):
            return Dual(fn(z.a), d(z.a, fn) * z.b, z.tag)
        return getattr(np, name)(z)
    return fn


_DERIVATIVES = {
    "exp": lambda a, f: f(a),
    "log": lambda a, f: 1.0 / a,
    "sqrt": lambda a, f: 0.5 / f(a),
    "sin": lambda a, f: _FNS["cos"](a),
    "cos": lambda a, f: -_FNS["sin"](a),
    "tanh": lambda a, f: 1.0 - f(a) * f(a),
    "sinh": lambda a, f: _FNS["cosh"](a),
    "cosh": lambda a, f: _FNS["sinh"](a),
    "arctan": lambda a, f: 1.0 / (1.0 + a * a),
}
_FNS: dict[str, Any] = {name: _unary(name, d) for name, d in _DERIVATIVES.items()}


def _where(cond: Any, x: Any, y: Any) -> Any:
    tags = [v.tag for v in (x, y) if isinstance(v, Dual)]
    if not tags:
        return np.where(cond, x, y)
    t = max(tags)
    return Dual(_where(cond, _part(x, t, 0), _part(y, t, 0)), _where(cond, _part(x, t, 1), _part(y, t, 1)), t)


def _broadcast(v: Any, shape: tuple) -> Any:
    if isinstance(v, Dual):
        return Dual(_broadcast(v.a, shape), _broadcast(v.b, shape), v.tag)
    return np.broadcast_to(v, shape)


class _DualNumpy:
    """The ``_np`` of the generated gradient code, for dual numbers."""

    broadcast_shapes = staticmethod(np.broadcast_shapes)
    zeros = staticmethod(np.zeros)
    asarray = staticmethod(np.asarray)
    sign = staticmethod(np.sign)

    @staticmethod
    def shape(v: Any) -> tuple:
        return np.shape(_primal(v))

    broadcast_to = staticmethod(_broadcast)

    def __getattr__(self, name: str) -> Any:
        if name in _FNS:
            return _FNS[name]
        raise UnsupportedExpressionError(
            f"counting conservation laws needs derivatives of {name}, which the dual-number code does not have"
        )


def _dual_program(cl: CompiledLoss) -> Any:
    cache = cl.__dict__.setdefault("_dual", {})
    if "f" not in cache:
        source = cl._value_grad.source
        if "_fn_" in source:
            raise UnsupportedExpressionError(
                "counting conservation laws needs derivatives of a user function the compiler passes as "
                "NumPy code; write it with SymPy's elementary functions"
            )
        ns: dict[str, Any] = {"_np": _DualNumpy(), "_where": _where, "_real": lambda v: np.real(_primal(v))}
        exec(compile(source, "<noether_sym:dual>", "exec"), ns)  # noqa: S102 - compile_graph's own source, never user text
        cache["f"] = ns["value_grad"]
    return cache["f"]
