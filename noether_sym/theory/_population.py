"""Theory: the population loss L(θ) = E ℓ(θ, x) and its derivatives at a point, for the Noether flow.

The slow flow (E22) needs, at a point θ of the minimum manifold, the mean gradient ∇L, the
Hessian H = ∇²L, the noise covariance Σ and the contraction ∇_θ Tr(∇²L(θ) Λ) with Λ held
fixed (THEORY §10). :func:`population` builds a :class:`Population` that returns all four.

Two sources, picked automatically:

``polynomial``
    When E ℓ is a polynomial in θ (every loss polynomial in θ and the data, for example the
    linear networks), L is expanded exactly once (:func:`noether_sym.expectation`) and kept
    as a sparse list of monomials, each a product of at most K variables. Gradient, Hessian
    and the third-derivative contraction are exact sums over the monomials' factor positions
    (one ``bincount`` per ordered pair or triple of positions): no symbolic differentiation,
    no n³ tensor, cost O(T K³) for T monomials.
``nodes``
    Otherwise every expectation is a weighted sum over data nodes of the compiled per-sample
    loss: Hessian-vector products by the complex step (exact to rounding) and the directional
    third derivative D³L[v, v, ·] = d/ds H(θ + s v) v by an 8-point Chebyshev stencil (exact
    for per-sample losses of degree ≤ 9 in θ, 12+ digits for smooth ones at the step used).

``cones``
    Piecewise-linear units (ReLU, leaky ReLU, Abs) on Gaussian data, when the loss is not
    polynomial in the data: every quantity from the deterministic cone cubature of
    ``data/_piecewise.py`` -- ∇L and Σ directly, H and ∇_θ Tr(HΛ) as central differences of
    that ∇L (:class:`~noether_sym.data._piecewise.ConeDerivatives`). These include the kink
    (delta) terms of ∇²L that a per-sample Hessian misses (units with biases), and they are
    the same for every seed; ``exact`` stays False (a cubature with an error estimate, which
    :meth:`Population.sigma_standard_error` returns).

Otherwise Σ comes from data nodes: Σ = Σ_k w_k g_k g_kᵀ − ∇L∇Lᵀ with g_k = ∇ℓ(θ, x_k). The
nodes are exact where the data allow it -- a tensor Gauss rule per random symbol with
deg + 1 points (Normal: Gauss-Hermite, Uniform: Gauss-Legendre, Bernoulli/Rademacher: their
support), exact for E[g gᵀ] whenever ℓ is polynomial in the data; every row of a finite
dataset -- and otherwise a seeded Monte Carlo sample, symmetrised by reflecting every
symmetric random symbol about its centre (all 2^D sign patterns), with standard errors.

Design
------
The exact moments of :func:`noether_sym.compiled_moments` cost minutes at n = 48 (their
polynomials in θ have 10⁵ terms); a Gauss rule with 3 points per data symbol gives the same
Σ at a point, to rounding, from 3^D compiled gradient evaluations.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from math import comb
from typing import Any

import numpy as np
import sympy as sp
from sympy.stats.crv_types import NormalDistribution, UniformDistribution
from sympy.stats.frv_types import BernoulliDistribution, RademacherDistribution

from .._errors import InvalidArgumentError, UnsupportedExpressionError
from ..compile._compiled import compiled
from ..data._model import _exact_values
from ..data._moments import _setup, expectation
from ..data._piecewise import (
    METHOD_CONES,
    ConeDerivatives,
    _cone_moments_or_none,
    cone_derivatives,
)
from ..data._polynomial import _data_kind, _NotPolynomial
from ..data._sample import make_sampler
from ..loss._loss import Loss

__all__ = ["Population", "population"]

#: largest tensor Gauss rule (nodes) before falling back to Monte Carlo
MAX_GRID = 200_000
#: Monte Carlo base samples (before symmetrisation) when the loss is not polynomial in the data
MC_SAMPLES = 2**16
#: largest number of reflections (2^D) of a Monte Carlo sample
MAX_REFLECTIONS = 64
#: largest number of monomials of an exact population loss
MAX_TERMS = 200_000
#: largest index table (bytes) a sparse polynomial keeps between calls
_KEEP_INDEX_BYTES = 32 * 2**20
#: Chebyshev stencil for d/ds at s = 0 (8 points: exact for polynomials of degree ≤ 7)
_STENCIL_POINTS = 8


@dataclass
class DataNodes:
    """Data rows ``x`` (N, d) with weights ``w`` (N,) whose weighted sums are the expectations."""

    x: np.ndarray
    w: np.ndarray
    method: str
    exact: bool
    n_base: int = 0  # Monte Carlo: independent base samples (for standard errors)


def _law(X: Any, vals: Mapping) -> tuple[Any, list[float] | None]:
    """A random symbol's distribution and its parameters as floats (None: symbolic ones left).

    The arguments are sympy.stats distribution parameters, already SymPy objects, never user text."""
    dist = X.pspace.distribution
    try:
        return dist, [float(sp.sympify(v).xreplace(vals)) for v in dist.args]
    except TypeError:
        return dist, None


def _gauss_rule(X: Any, q: int, vals: Mapping) -> tuple[np.ndarray, np.ndarray] | None:
    """Nodes and weights of a q-point rule exact for E[X^k], k ≤ 2q − 1 (None: no rule)."""
    dist, a = _law(X, vals)
    if a is None:
        return None
    if isinstance(dist, NormalDistribution):
        z, w = np.polynomial.hermite_e.hermegauss(q)
        return a[0] + a[1] * z, w / np.sqrt(2 * np.pi)
    if isinstance(dist, UniformDistribution):
        z, w = np.polynomial.legendre.leggauss(q)
        return (a[0] + a[1]) / 2 + (a[1] - a[0]) / 2 * z, w / 2
    if isinstance(dist, BernoulliDistribution):
        return np.array([a[1], a[2]]), np.array([a[0], 1 - a[0]])
    if isinstance(dist, RademacherDistribution):
        return np.array([1.0, -1.0]), np.array([0.5, 0.5])
    return None


def _centre(X: Any, vals: Mapping) -> float | None:
    """Centre of symmetry of a random symbol's distribution (None: not symmetric / unknown)."""
    dist, a = _law(X, vals)
    if a is None:
        return None
    if isinstance(dist, NormalDistribution):
        return a[0]
    if isinstance(dist, UniformDistribution):
        return (a[0] + a[1]) / 2
    if isinstance(dist, RademacherDistribution):
        return 0.0
    return None


def _data_degrees(loss: Loss) -> tuple[tuple[int, ...], int] | None:
    """(degree of ℓ in each data symbol, total degree in the data); None when not polynomial."""
    try:
        _, b, _ = _setup(loss)
        deg = b.scan(loss.sample_expr)
        b.freeze()
        parts = b.split(b.convert(loss.sample_expr))
    except _NotPolynomial:
        return None
    if deg is None:
        return None
    return tuple(int(d) for d in deg), max((sum(a) for a in parts), default=0)


def _exact_rule(loss: Loss, degs: tuple[tuple[int, ...], int], vals: Mapping) -> tuple | None:
    """The smaller of a tensor Gauss rule and a Smolyak sparse grid, both exact for E[g gᵀ]."""
    per_var, total = degs
    D = len(loss.random_symbols)
    level = total + 1  # Smolyak with Gauss rules is exact for total degree 2·level − 1 ≥ 2·total
    rules: dict[tuple[int, int], Any] = {}

    def rule(j: int, q: int) -> Any:
        if (j, q) not in rules:
            rules[j, q] = _gauss_rule(loss.random_symbols[j], q, vals)
        return rules[j, q]

    if any(rule(j, max(per_var[j], level) + 1) is None for j in range(D)):
        return None
    tensor_size = int(np.prod([per_var[j] + 1 for j in range(D)]))
    combos = _compositions(D, level)
    smolyak_size = sum(int(np.prod(k)) for k, _ in combos)
    if min(tensor_size, smolyak_size) > MAX_GRID:
        return None
    if tensor_size <= smolyak_size:
        x, w = _tensor([rule(j, per_var[j] + 1) for j in range(D)])
        return x, w, f"Gauss quadrature ({tensor_size} nodes, exact)"
    xs, ws = [], []
    for k, coef in combos:
        x, w = _tensor([rule(j, k[j]) for j in range(D)])
        xs.append(x)
        ws.append(coef * w)
    return np.concatenate(xs), np.concatenate(ws), f"Smolyak sparse Gauss grid ({smolyak_size} nodes, exact)"


def _tensor(rules: list) -> tuple[np.ndarray, np.ndarray]:
    grids = np.meshgrid(*[r[0] for r in rules], indexing="ij")
    wgrid = np.meshgrid(*[r[1] for r in rules], indexing="ij")
    x = np.stack([g.ravel() for g in grids], axis=-1)
    w = np.prod(np.stack([g.ravel() for g in wgrid], axis=-1), axis=-1)
    return x, w


def _compositions(D: int, level: int) -> list[tuple[tuple[int, ...], float]]:
    """Smolyak combination technique: (k, coefficient) with k_i ≥ 1, q − D + 1 ≤ |k| ≤ q,
    q = D + level − 1, coefficient (−1)^{q−|k|} C(D−1, q−|k|)."""
    q = D + level - 1
    out = []

    def rec(prefix: tuple[int, ...], left: int) -> None:
        if len(prefix) == D:
            s_ = sum(prefix)
            if q - D + 1 <= s_ <= q:
                out.append((prefix, float((-1) ** (q - s_) * comb(D - 1, q - s_))))
            return
        for v in range(1, left - (D - len(prefix) - 1) + 1):
            rec(prefix + (v,), left - v)

    rec((), q)
    return out


def data_nodes(loss: Loss, *, values: Mapping | None = None, n_samples: int | None = None, seed: int = 0) -> DataNodes:
    """Exact quadrature, dataset rows, or a symmetrised Monte Carlo sample of the data."""
    kind = _data_kind(loss)  # raises InvalidDataError without a data model
    sampler = make_sampler(loss, values=values)
    if sampler.dataset_size is not None:
        N = sampler.dataset_size
        return DataNodes(sampler.take(np.arange(N)), np.full(N, 1.0 / N), "dataset rows (exact mean)", True)
    if kind == "none" or not loss.random_symbols:
        const = sampler.draw(np.random.default_rng(0), (1,))
        return DataNodes(const, np.ones(1), "no data (deterministic)", True)
    vals = {k: v for k, v in _exact_values(loss, values).items()}
    vals.update({c: sp.Float(v) for c, v in loss.constant_values().items()})
    degs = _data_degrees(loss)
    const = sampler.draw(np.random.default_rng(0), (1,))[0, len(loss.x):]
    if degs is not None:
        exact = _exact_rule(loss, degs, vals)
        if exact is not None:
            x, w, what = exact
            x = np.concatenate([x, np.broadcast_to(const, (x.shape[0], len(const)))], axis=-1)
            return DataNodes(x, w, what, True)
    # Monte Carlo: reflect each symmetric random symbol about its centre (kills odd moments)
    N = MC_SAMPLES if n_samples is None else int(n_samples)
    base = sampler.draw(np.random.default_rng(seed), (N,))
    centres = [_centre(X, vals) for X in loss.random_symbols]
    sym_cols = [j for j, c in enumerate(centres) if c is not None]
    while 2 ** len(sym_cols) > MAX_REFLECTIONS:
        sym_cols.pop()
    blocks = []
    for signs in itertools.product((1.0, -1.0), repeat=len(sym_cols)):
        b = base.copy()
        for j, s in zip(sym_cols, signs):
            if s < 0:
                b[:, j] = 2 * centres[j] - b[:, j]
        blocks.append(b)
    x = np.concatenate(blocks, axis=0)
    reason = "not polynomial in the data" if degs is None else "no exact rule within budget"
    return DataNodes(x, np.full(x.shape[0], 1.0 / x.shape[0]),
                     f"Monte Carlo ({N} samples x {len(blocks)} reflections; {reason})", False, N)


def _chebyshev_derivative_weights(h: float) -> tuple[np.ndarray, np.ndarray]:
    """Points s_k and weights c_k with Σ c_k f(s_k) = f'(0) for polynomials of degree < 8."""
    m = _STENCIL_POINTS
    s = h * np.cos((2 * np.arange(m) + 1) * np.pi / (2 * m))
    V = np.vander(s, m, increasing=True).T  # V[p, k] = s_k^p
    rhs = np.zeros(m)
    rhs[1] = 1.0
    return s, np.linalg.solve(V, rhs)


@dataclass
class Population:
    """∇L, H, Σ and ∇_θ Tr(H(θ)Λ) of a loss at points θ (see the module docstring)."""

    loss: Loss
    nodes: DataNodes
    method: str  # "polynomial" | "nodes" | "cones"
    _terms: Any = field(default=None, repr=False)
    _cones: ConeDerivatives | None = field(default=None, repr=False)
    values: Mapping | None = field(default=None, repr=False)

    @property
    def exact(self) -> bool:
        return self.nodes.exact

    # ---- data side -------------------------------------------------------------------
    def _node_grads(self, theta: np.ndarray) -> np.ndarray:
        g = compiled(self.loss).grad(theta, self.nodes.x)
        if not np.all(np.isfinite(g)):
            raise InvalidArgumentError(f"the per-sample gradient is not finite at θ = {np.round(theta, 6).tolist()}")
        return g

    def _cone_moments(self, theta: np.ndarray) -> Any:
        key = ("population_cone_moments", np.asarray(theta, dtype=float).tobytes())
        hit = self.loss._cache.get(key)
        if hit is None:
            hit = _cone_moments_or_none(self.loss, np.asarray(theta, dtype=float), self.values)
            if hit is None:  # over the cubature budget at this point
                raise UnsupportedExpressionError(
                    "the deterministic cone cubature exceeds its budget at this point; use a smaller model"
                )
            self.loss._cache[key] = hit
        return hit

    def sigma(self, theta: np.ndarray) -> np.ndarray:
        """Σ(θ) = E[g gᵀ] − ∇L∇Lᵀ (per sample, batch size 1)."""
        if self._cones is not None:
            key = ("population_cone_sigma", np.asarray(theta, dtype=float).tobytes())
            if key not in self.loss._cache:
                self.loss._cache[key] = self._cones.sigma(theta)
            return self.loss._cache[key].copy()
        g = self._node_grads(theta)
        w = self.nodes.w
        mean = w @ g
        S = (g * w[:, None]).T @ g - np.outer(mean, mean)
        return (S + S.T) / 2

    def sigma_standard_error(self, theta: np.ndarray) -> np.ndarray | None:
        """Plug-in standard error of the Monte Carlo Σ (None when Σ is exact; the error
        estimate of the cubature on the ``cones`` route)."""
        if self._cones is not None:
            return np.asarray(self._cone_moments(theta).error["covariance"], dtype=float)
        if self.nodes.exact:
            return None
        g = self._node_grads(theta)
        c = g - g.mean(axis=0)
        N = self.nodes.n_base
        prods = c[:, :, None] * c[:, None, :]
        R = prods.shape[0] // N  # average the reflections of one base sample first
        per_base = prods.reshape(R, N, *prods.shape[1:]).mean(axis=0)
        return per_base.std(axis=0, ddof=1) / np.sqrt(N)

    # ---- loss side -------------------------------------------------------------------
    def grad(self, theta: np.ndarray) -> np.ndarray:
        if self._terms is not None:
            return self._terms.grad(theta)
        if self._cones is not None:
            return self._cones.grad(np.asarray(theta, dtype=float)[None, :])[0]
        return self.nodes.w @ self._node_grads(theta)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        if self._terms is not None:
            H = self._terms.hessian(theta)
        elif self._cones is not None:
            H = self._cones.hessian(theta)
        else:
            n = self.loss.n
            cl = compiled(self.loss)
            th = np.broadcast_to(theta, (n, 1, n))
            hv = cl.hvp(th, np.eye(n)[:, None, :], self.nodes.x[None, :, :])  # (n, N, n)
            H = np.einsum("k,jki->ji", self.nodes.w, hv)
        return (H + H.T) / 2

    def third(self, theta: np.ndarray, Lam: np.ndarray) -> np.ndarray:
        """∇_θ Tr(∇²L(θ) Λ) with Λ symmetric and held fixed."""
        if self._terms is not None:
            return self._terms.third(theta, Lam)
        if self._cones is not None:
            return self._cones.third(theta, Lam)
        mu, vecs = np.linalg.eigh((Lam + Lam.T) / 2)
        keep = np.abs(mu) > 1e-14 * max(1e-300, np.abs(mu).max(initial=0.0))
        scale = max(1.0, float(np.linalg.norm(theta)))
        s, c = _chebyshev_derivative_weights(0.05 * scale)
        cl = compiled(self.loss)
        out = np.zeros(self.loss.n)
        for m, v in zip(mu[keep], vecs.T[keep]):
            pts = theta[None, :] + s[:, None] * v[None, :]  # (m, n)
            hv = cl.hvp(pts[:, None, :], np.broadcast_to(v, pts.shape)[:, None, :], self.nodes.x[None, :, :])
            hv = np.einsum("k,jki->ji", self.nodes.w, hv)  # (stencil, n)
            out += m * (c @ hv)
        return out


class _SparsePolynomial:
    """A real polynomial in θ as monomials c_t Π_a θ[idx_t,a] (padded with θ_n = 1).

    Derivatives sum over ordered tuples of distinct factor positions: the product of the
    other factors, for every tuple and monomial at once, then one ``bincount``.
    """

    def __init__(self, coeffs: np.ndarray, idx: np.ndarray, n: int) -> None:
        self.c, self.idx, self.n = coeffs, idx, n
        K = self.K = idx.shape[1]
        self._fixed: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._tuples = {}
        for r in (1, 2, 3):
            tup = np.array([t for t in itertools.product(range(K), repeat=r) if len(set(t)) == r],
                           dtype=np.int64).reshape(-1, r)
            mask = np.zeros((len(tup), K), dtype=bool)
            for j in range(r):
                mask[np.arange(len(tup)), tup[:, j]] = True
            self._tuples[r] = (tup, mask)

    def _parts(self, theta: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
        """(variable indices (P, T, r), c_t × product of the other factors (P, T)).

        The indices and each tuple's complementary positions do not depend on θ: built once."""
        fixed = self._fixed.get(r)
        if fixed is None:
            tup, mask = self._tuples[r]
            comp = np.array([np.nonzero(~m)[0] for m in mask], dtype=np.int64).reshape(len(tup), self.K - r)
            fixed = (np.ascontiguousarray(self.idx[:, tup].transpose(1, 0, 2)), comp)
            if fixed[0].nbytes <= _KEEP_INDEX_BYTES:  # kept only when small: big models rebuild them
                self._fixed[r] = fixed
        ix, comp = fixed
        F = np.append(np.asarray(theta, dtype=float), 1.0)[self.idx]  # (T, K)
        others = np.prod(F[:, comp], axis=2).T  # (P, T)
        return ix, others * self.c[None, :]

    def value(self, theta: np.ndarray) -> float:
        F = np.append(np.asarray(theta, dtype=float), 1.0)[self.idx]
        return float(self.c @ np.prod(F, axis=1))

    def grad(self, theta: np.ndarray) -> np.ndarray:
        if self.K < 1:
            return np.zeros(self.n)
        ix, w = self._parts(theta, 1)
        return np.bincount(ix[..., 0].ravel(), weights=w.ravel(), minlength=self.n + 1)[: self.n]

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        n1 = self.n + 1
        if self.K < 2:
            return np.zeros((self.n, self.n))
        ix, w = self._parts(theta, 2)
        flat = np.bincount((ix[..., 0] * n1 + ix[..., 1]).ravel(), weights=w.ravel(), minlength=n1 * n1)
        return flat.reshape(n1, n1)[: self.n, : self.n]

    def third(self, theta: np.ndarray, Lam: np.ndarray) -> np.ndarray:
        n1 = self.n + 1
        if self.K < 3:
            return np.zeros(self.n)
        Lp = np.zeros((n1, n1))
        Lp[: self.n, : self.n] = Lam
        ix, w = self._parts(theta, 3)
        wts = w * Lp[ix[..., 0], ix[..., 1]]
        return np.bincount(ix[..., 2].ravel(), weights=wts.ravel(), minlength=n1)[: self.n]


def _polynomial_population(loss: Loss, values: Mapping | None) -> _SparsePolynomial | None:
    """The exact population loss as a sparse polynomial in θ (None: not a polynomial in θ)."""
    try:
        L = expectation(loss, loss.expr)
    except UnsupportedExpressionError:
        return None
    rep = _exact_values(loss, values)
    rep.update({c: sp.Float(v) for c, v in loss.constant_values().items() if c not in rep})
    L = L.xreplace(rep) if rep else L
    extra = L.free_symbols - set(loss.params)
    if extra:
        raise InvalidArgumentError(
            f"the population loss depends on symbol(s) {', '.join(sorted(map(str, extra)))} besides θ; "
            f"give them numbers with values={{{min(map(str, extra))}: ...}}"
        )
    try:
        P = sp.Poly(L, *loss.params)
    except sp.PolynomialError:
        return None
    terms = P.terms()
    if len(terms) > MAX_TERMS:
        raise UnsupportedExpressionError(
            f"the population loss has {len(terms)} monomials (budget {MAX_TERMS}); use a smaller model"
        )
    n = loss.n
    K = max(1, max((sum(m) for m, _ in terms), default=1))
    idx = np.full((len(terms), K), n, dtype=np.int64)
    coeffs = np.empty(len(terms))
    for t, (mono, c) in enumerate(terms):
        flat = [i for i, e in enumerate(mono) for _ in range(e)]
        idx[t, : len(flat)] = flat
        try:
            coeffs[t] = float(c)
        except TypeError:
            return None
    return _SparsePolynomial(coeffs, idx, n)


#: the deterministic cone route is used when one gradient needs at most this many cubature points
POPULATION_CONE_NODES = 5_000


def _cone_route(loss: Loss, values: Mapping | None) -> ConeDerivatives | None:
    """The deterministic cone route when the loss has piecewise-linear units on Gaussian data."""
    try:
        return cone_derivatives(loss, values=values)
    except (UnsupportedExpressionError, InvalidArgumentError):
        return None


def population(loss: Loss, *, values: Mapping | None = None, n_samples: int | None = None, seed: int = 0) -> Population:
    """The :class:`Population` of a loss (cached on the Loss per options).

    Raises
    ------
    InvalidDataError
        The loss has no data model (plain data symbols without distribution or dataset).
    """
    key = ("noether_population", None if not values else tuple(sorted((str(k), str(v)) for k, v in values.items())),
           n_samples, seed)
    pop = loss._cache.get(key)
    if pop is not None:
        return pop
    cones = _cone_route(loss, values) if _data_degrees(loss) is None else None
    if cones is not None and n_samples is None and cones.n_nodes(np.linspace(0.5, 1.5, loss.n)) > POPULATION_CONE_NODES:
        # the flow evaluates the Hessian and third derivatives at every step: a cubature this
        # large (inputs of dimension ≥ 2) would take many minutes, so the flow uses data nodes
        # (Monte Carlo, its method says so) as for any other non-polynomial loss
        cones = None
    if cones is not None:
        nodes = DataNodes(np.zeros((0, len(loss.x) + len(loss.c))), np.zeros(0), METHOD_CONES, False)
        pop = Population(loss, nodes, "cones", None, cones, values)
        loss._cache[key] = pop
        return pop
    nodes = data_nodes(loss, values=values, n_samples=n_samples, seed=seed)
    terms = None
    if nodes.exact and nodes.method != "no data (deterministic)":
        terms = _polynomial_population(loss, values)
    pop = Population(loss, nodes, "polynomial" if terms is not None else "nodes", terms, None, values)
    loss._cache[key] = pop
    return pop
