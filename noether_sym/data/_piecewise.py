"""Data: deterministic moments of piecewise-linear losses on Gaussian data (cone cubature).

For ReLU, leaky-ReLU and absolute-value units (``Max``, ``Min``, ``Abs``, ``Heaviside``,
``sign``, ``Piecewise`` whose switching arguments are affine in the data) on independent
Gaussian random symbols, E[ℓ], ∇L = E[g], M = E[g gᵀ], Σ = M − ∇L∇Lᵀ and the population
Hessian H = ∂E[g]/∂θ at a point θ, without Monte Carlo: the same numbers for every seed.

Design
------
Write the data as x = μ + σ∘ξ, ξ ~ N(0, I_D). Every switching argument is affine,
a_k = u_kᵀξ + e_k, so the activation pattern depends on ξ only through its projection on
the span of the u_k (rank r ≤ min(K, D)). Rotate ξ = Qη + Q⊥ζ: η (r coordinates) carries
the pattern, ζ (D − r coordinates, the rest of the input and the label noise) does not.

* ζ: on every region of constant pattern the per-sample loss is a polynomial of known
  degree p in the data (checked symbolically), so ζ is integrated *exactly* by a Gaussian
  cubature of degree ≥ 2p (tensor Gauss-Hermite, or for degree 5 the symmetric rule with
  2m² + 1 points on ±√3 e_i, ±√3 (e_i ± e_j)).
* η: nested one-dimensional composite Gauss-Legendre rules on [−T, T] (T = 10; the
  Gaussian mass outside is < 1e-22) whose panels are split at every point where the
  integrand is not analytic: for coordinate j with the outer ones fixed, the heights of the
  vertices of the hyperplane arrangement {a_k = 0} in the remaining r − j coordinates
  (intersections of r − j hyperplanes). Between those the integrand is analytic, so the
  rule converges geometrically. A fixed orthogonal rotation of η keeps hyperplanes off the
  axes. One input dimension (r = 1) is then exact to rounding; the error estimate is the
  difference to a coarser rule (12 vs 8 points per panel), conservative by construction.
* The Hessian is the central difference of the (deterministic, smooth) E[g] with one
  Richardson step; it includes the kink (delta) terms that E[∇²ℓ] would miss.

Everything is deterministic: no random numbers anywhere. The node count is estimated
before any work and checked against a budget; a loss outside this class (non-affine
switching arguments, nested units, non-polynomial pieces, non-Gaussian data) raises
:class:`_NotPiecewise` internally and :func:`~noether_sym.moments` falls back to Monte
Carlo, labelled as such.
"""


from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from scipy.special import roots_hermitenorm, roots_legendre
from sympy.stats.crv_types import NormalDistribution

from .._errors import InvalidArgumentError, UnsupportedExpressionError
from ..compile._compiled import compiled
from ..loss._loss import Loss, as_loss
from ._model import _float_point
from ._polynomial import _data_kind
from ._sample import _numeric_args, _value_map

__all__ = ['ConeDerivatives', 'ConeMoments', 'cone_derivatives', 'cone_hessian', 'cone_moments']

#: method label of the deterministic route (also used by ``moments``)
METHOD_CONES = "gaussian cones (deterministic cubature)"

#: half-width of the η box: P(|N(0,1)| > 10) < 1.6e-23
_T = 10.0
#: panel width of the base grid (panels are further split at breakpoints)
_PANEL = 2.0
#: Gauss-Legendre points per panel: the fine rule (reported) and the coarse one (error estimate)
_N_FINE, _N_COARSE = 12, 8
#: the same from rank 3 on (the node count is a product over the r levels)
_N_FINE_HIGH, _N_COARSE_HIGH = 8, 6


def _orders(r: int) -> tuple[int, int]:
    return (_N_FINE, _N_COARSE) if r <= 2 else (_N_FINE_HIGH, _N_COARSE_HIGH)
#: largest number of (η node, ζ node) pairs one evaluation may use
BUDGET = 20_000_000
#: sample points per call of the compiled gradient
_CHUNK = 32_768
#: rows per block of the E[g gᵀ] product
_GEMM_ROWS = 512


class _NotPiecewise(Exception):
    """The loss is not piecewise polynomial in Gaussian data with affine switching arguments."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ConeMoments:
    """Deterministic moments of a piecewise-linear loss on Gaussian data at a point θ.

    Attributes
    ----------
    theta
        The point, ``(n,)``.
    mean_loss
        E[ℓ](θ).
    mean_grad
        ∇L = E[g], ``(n,)``.
    second_moment
        M = E[g gᵀ], ``(n, n)``.
    covariance
        Σ = M − ∇L∇Lᵀ, ``(n, n)``.
    error
        Error estimates (absolute) of ``mean_loss``, ``mean_grad``, ``second_moment`` and
        ``covariance``: the difference between the reported rule and a coarser one.
    rank
        r, the dimension of the span of the switching directions (the cubature dimension).
    n_nodes
        Number of data points the reported rule evaluates (η nodes × ζ nodes).
    seconds
        Wall time.
    method
        ``"gaussian cones (deterministic cubature)"``.
    """

    theta: np.ndarray
    mean_loss: float
    mean_grad: np.ndarray
    second_moment: np.ndarray
    covariance: np.ndarray
    error: dict[str, Any]
    rank: int
    n_nodes: int
    seconds: float
    method: str = METHOD_CONES


# ------------------------------------------------------------------------------------------
# Analysis of the loss (symbolic, once per loss)
# ------------------------------------------------------------------------------------------


def _switching_arguments(e: sp.Basic) -> list[sp.Expr]:
    """Arguments whose sign switches a piece: Max/Min differences, Abs/sign/Heaviside
    arguments, Piecewise conditions (lhs − rhs)."""
    out: list[sp.Expr] = []

    def cond_args(c: Any) -> None:
        if isinstance(c, sp.core.relational.Relational):
            out.append(c.lhs - c.rhs)
        elif isinstance(c, (sp.And, sp.Or, sp.Not)):
            for a in c.args:
                cond_args(a)

    for node in sp.preorder_traversal(e):
        if isinstance(node, (sp.Max, sp.Min)):
            out += [a - b for a, b in itertools.combinations(node.args, 2)]
        elif isinstance(node, (sp.Abs, sp.sign, sp.Heaviside)):
            out.append(node.args[0])
        elif isinstance(node, sp.Piecewise):
            for _, c in node.args:
                cond_args(c)
    return out


def _surrogate(e: sp.Basic) -> sp.Basic:
    """The expression with every piece replaced by a polynomial of the same degree."""
    return (
        e.replace(lambda z: isinstance(z, (sp.Max, sp.Min)), lambda z: sp.Add(*z.args))
        .replace(lambda z: isinstance(z, sp.Abs), lambda z: z.args[0])
        .replace(lambda z: isinstance(z, (sp.sign, sp.Heaviside)), lambda z: sp.Integer(1))
        .replace(lambda z: isinstance(z, sp.Piecewise), lambda z: sp.Add(*[a for a, _ in z.args]))
    )


class _Model:
    """The symbolic analysis of a piecewise-linear loss (cached on the Loss)."""

    def __init__(self, loss: Loss) -> None:
        if loss.dataset is not None or _data_kind(loss) != "gaussian":
            raise _NotPiecewise("the data are not independent Gaussian random symbols")
        xs = list(loss.x)
        expr = loss.sample_expr
        kinks = _switching_arguments(expr)
        if not kinks:
            raise _NotPiecewise("no Max/Min/Abs/sign/Heaviside/Piecewise piece")
        uniq: list[sp.Expr] = []
        for k in kinks:
            if k not in uniq and -k not in uniq:
                uniq.append(k)
        self.coef: list[list[sp.Expr]] = []
        self.offset: list[sp.Expr] = []
        for k in uniq:
            try:
                P = sp.Poly(k, *xs)
            except sp.PolynomialError:
                raise _NotPiecewise(f"the switching argument {k} is not polynomial in the data") from None
            if P.total_degree() > 1:
                raise _NotPiecewise(f"the switching argument {k} is not affine in the data")
            self.coef.append([P.coeff_monomial(x) for x in xs])
            self.offset.append(k.xreplace({x: 0 for x in xs}))
        try:
            self.degree = max(1, sp.Poly(_surrogate(expr), *xs).total_degree())
        except sp.PolynomialError:
            raise _NotPiecewise("between its kinks the loss is not polynomial in the data") from None
        args = (*loss.theta, *loss.c)
        self.kink_fn = sp.lambdify(args, [self.coef, self.offset], modules="numpy")
        self.K = len(uniq)


def _model(loss: Loss) -> _Model:
    key = "piecewise_model"
    m = loss._cache.get(key)
    if m is None:
        try:
            m = _Model(loss)
        except _NotPiecewise as exc:
            m = exc
        loss._cache[key] = m
    if isinstance(m, _NotPiecewise):
        raise m
    return m


# ------------------------------------------------------------------------------------------
# Rules
# ------------------------------------------------------------------------------------------


def _zeta_rule(m: int, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (N, m) and weights (N,) integrating every polynomial of total degree ≤ ``degree``
    exactly against N(0, I_m)."""
    if m == 0:
        return np.zeros((1, 0)), np.ones(1)
    q = degree // 2 + 1
    tensor = q ** m
    if degree <= 5 and m >= 3 and 2 * m * m + 1 < tensor:
        # symmetric degree-5 rule: 0, ±√3 e_i, ±√3 (e_i ± e_j) (weights from the moment equations)
        a = math.sqrt(3.0)
        pts = [np.zeros(m)]
        wts = [(m * m - 7 * m + 18) / 18.0]
        for i in range(m):
            for s in (1, -1):
                p = np.zeros(m)
                p[i] = s * a
                pts.append(p)
                wts.append((4 - m) / 18.0)
        for i, j in itertools.combinations(range(m), 2):
            for si in (1, -1):
                for sj in (1, -1):
                    p = np.zeros(m)
                    p[i], p[j] = si * a, sj * a
                    pts.append(p)
                    wts.append(1 / 36.0)
        return np.array(pts), np.array(wts)
    if tensor > 100_000:
        raise _NotPiecewise(
            f"an exact degree-{degree} Gaussian rule in {m} complementary dimensions needs {tensor} points"
        )
    t, w = roots_hermitenorm(q)
    w = w / math.sqrt(2 * math.pi)
    grids = np.meshgrid(*([t] * m), indexing="ij")
    wg = np.meshgrid(*([w] * m), indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1), np.prod([g.ravel() for g in wg], axis=0)


def _rotation(r: int) -> np.ndarray:
    """A fixed orthogonal r x r matrix far from axis-aligned (deterministic, no RNG)."""
    if r <= 1:
        return np.eye(r)
    i, j = np.meshgrid(np.arange(r), np.arange(r), indexing="ij")
    B = np.sin(1.0 + 0.7 * i + 1.3 * j * j + 0.37 * i * j) + np.eye(r) * 0.1
    Q, _ = np.linalg.qr(B)
    return Q


def _breakpoint_rows(R: np.ndarray, j: int, r: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For coordinate j: (subset indices, first row of the inverse) of every nonsingular
    subset of r − j hyperplanes restricted to coordinates j..r−1."""
    m = r - j
    out = []
    for S in itertools.combinations(range(R.shape[0]), m):
        B = R[list(S), j:]
        if np.linalg.cond(B) > 1e12:
            continue
        out.append((np.array(S), np.linalg.inv(B)[0]))
    return out


def _level_sizes(R: np.ndarray, r: int, n_gl: int) -> int:
    n_panels = int(round(2 * _T / _PANEL))
    N = 1
    for j in range(r):
        N *= (n_panels + math.comb(R.shape[0], r - j)) * n_gl
    return N


def _eta_rule(R: np.ndarray, e: np.ndarray, n_gl: int) -> tuple[np.ndarray, np.ndarray]:
    """Nested composite Gauss-Legendre nodes (N, r) and weights (N,) for E over η ~ N(0, I_r)
    of a function that is analytic away from the hyperplanes R η + e = 0."""
    r = R.shape[1]
    x_gl, w_gl = roots_legendre(n_gl)
    grid = np.linspace(-_T, _T, int(round(2 * _T / _PANEL)) + 1)
    pts = np.zeros((1, 0))
    wts = np.ones(1)
    for j in range(r):
        N = pts.shape[0]
        bp = [grid[None, :].repeat(N, axis=0)]
        for S, row in _breakpoint_rows(R, j, r):
            rhs = e[S][:, None] + R[S, :j] @ pts.T  # (m, N)
            bp.append(np.clip(-(row @ rhs), -_T, _T)[:, None])
        edges = np.sort(np.concatenate(bp, axis=1), axis=1)
        a, b = edges[:, :-1], edges[:, 1:]
        half = (b - a) / 2
        t = ((a + b) / 2)[..., None] + half[..., None] * x_gl  # (N, P, n)
        w = half[..., None] * w_gl * np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
        keep = (half > 0).repeat(n_gl, axis=1).reshape(N, -1)
        t, w = t.reshape(N, -1), w.reshape(N, -1)
        owner = np.nonzero(keep)
        pts = np.concatenate([pts[owner[0]], t[owner][:, None]], axis=1)
        wts = wts[owner[0]] * w[owner]
    return pts, wts


# ------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------


class _Setup:
    """Everything that depends on θ but not on the rule: the rotation and the data map."""

    def __init__(self, loss: Loss, model: _Model, theta: np.ndarray, values: Mapping | None,
                 data: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        self.mu, self.sd, self.const = _data_params(loss, values) if data is None else data
        const = list(self.const)
        coef, off = model.kink_fn(*theta, *const)
        C = np.array([[float(c) for c in row] for row in coef], dtype=float).reshape(model.K, len(self.mu))
        d = np.array([float(o) for o in off], dtype=float)
        if not (np.all(np.isfinite(C)) and np.all(np.isfinite(d))):
            raise InvalidArgumentError(f"the switching arguments of the loss are not finite at θ = {theta}")
        U = C * self.sd[None, :]
        e = C @ self.mu + d
        D = len(self.mu)
        scale = max(1.0, float(np.abs(U).max(initial=0.0)))
        active = np.abs(U).max(axis=1, initial=0.0) > 1e-13 * scale
        U, e = U[active], e[active]
        if U.shape[0]:
            _, s, Vt = np.linalg.svd(U)
            r = int(np.sum(s > 1e-10 * s[0]))
        else:
            Vt, r = np.eye(D), 0
        V = Vt.T
        self.Q = V[:, :r] @ _rotation(r)
        self.Qp = V[:, r:]
        self.R = U @ self.Q
        self.e = e
        self.r = r
        self.D = D


def _data_params(loss: Loss, values: Mapping | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(means, standard deviations, constants) of the Gaussian data: independent of θ."""
    vals = _value_map(loss, values)
    params = [_numeric_args(X, vals) for X in loss.random_symbols]
    for X in loss.random_symbols:
        if not isinstance(X.pspace.distribution, NormalDistribution):
            raise _NotPiecewise("the data are not Gaussian")
    const = [float(v) for v in loss.constant_values().values()] if loss.c else []
    return (np.array([p[0] for p in params], dtype=float), np.array([p[1] for p in params], dtype=float),
            np.array(const, dtype=float))


def _evaluate(loss: Loss, st: _Setup, degree: int, theta: np.ndarray, n_gl: int, second: bool) -> tuple:
    """(E[ℓ], E[g], E[g gᵀ] or None, node count) with the rule of ``n_gl`` points per panel."""
    zeta, wz = _zeta_rule(st.D - st.r, 2 * degree if second else degree)
    n_eta = _level_sizes(st.R, st.r, n_gl)
    if n_eta * len(wz) > BUDGET:
        raise _NotPiecewise(
            f"the cone cubature needs ~{n_eta * len(wz):,} points (rank {st.r}, {st.R.shape[0]} switching "
            f"hyperplanes, {st.D - st.r} complementary dimensions), over the budget of {BUDGET:,}"
        )
    eta, we = _eta_rule(st.R, st.e, n_gl)
    cl = compiled(loss)
    n = loss.n
    base = eta @ st.Q.T  # (Ne, D)
    comp = zeta @ st.Qp.T  # (Nz, D)
    xi = (base[:, None, :] + comp[None, :, :]).reshape(-1, st.D)
    w = (we[:, None] * wz[None, :]).ravel()
    X = st.mu + st.sd * xi
    if len(st.const):
        X = np.concatenate([X, np.broadcast_to(st.const, (X.shape[0], len(st.const)))], axis=1)
    El, Eg = 0.0, np.zeros(n)
    Egg = np.zeros((n, n)) if second else None
    for a in range(0, X.shape[0], _CHUNK):
        xa, wa = X[a:a + _CHUNK], w[a:a + _CHUNK]
        val, g, _ = cl.value_grad(np.broadcast_to(theta, (xa.shape[0], n)), xa)
        val = np.broadcast_to(val, (xa.shape[0],))
        g = np.broadcast_to(g, (xa.shape[0], n))
        if not (np.all(np.isfinite(val)) and np.all(np.isfinite(g))):
            raise InvalidArgumentError(f"the per-sample loss or gradient is not finite at θ = {theta} for some data")
        El += float(wa @ val)
        Eg += wa @ g
        if second:
            gw = g * wa[:, None]
            # small blocks: one BLAS call on 10^4-10^5 rows spins threads on a loaded machine
            for c in range(0, xa.shape[0], _GEMM_ROWS):
                Egg += gw[c:c + _GEMM_ROWS].T @ g[c:c + _GEMM_ROWS]
    return El, Eg, Egg, X.shape[0]


def _point(loss: Loss, theta: Any) -> np.ndarray:
    th = _float_point(loss, theta)
    if not np.all(np.isfinite(th)):
        raise InvalidArgumentError(f"theta must be finite; got {th}")
    return th


def cone_moments(loss: Any, theta: Any, *, values: Mapping | None = None) -> ConeMoments:
    """E[ℓ], ∇L, M and Σ of a piecewise-linear loss on Gaussian data at θ, deterministically.

    The loss may contain ReLU / leaky-ReLU / absolute-value pieces (``Max``, ``Min``, ``Abs``,
    ``Heaviside``, ``sign``, ``Piecewise``) whose switching arguments are affine in the data;
    between its kinks it must be polynomial in the data. The data are independent
    ``sympy.stats`` Normals (any means and standard deviations; polynomials of them, such
    as y = relu(x) + ε, are fine).

    Parameters
    ----------
    loss
        The Loss.
    theta
        The point (mapping or sequence in ``loss.params`` order).
    values
        Numbers for symbolic distribution parameters.

    Returns
    -------
    ConeMoments
        With an error estimate per quantity (the difference to a coarser rule).

    Raises
    ------
    UnsupportedExpressionError
        The loss is not of this kind (the message says why), or the cubature would exceed
        its budget of points.
    InvalidArgumentError
        Non-finite θ, or a loss that is not finite at θ.

    Examples
    --------
    One ReLU unit, x ~ N(0, 1): E[relu(wx)²] = w²/2, so ∇L = w for w > 0.

    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> w = sp.Symbol("w")
    >>> x = Normal("x", 0, 1)
    >>> cm = ns.cone_moments(ns.Loss(sp.Max(0, w * x) ** 2, [w]), [1.5])
    >>> round(cm.mean_loss, 12), round(float(cm.mean_grad[0]), 12), cm.rank
    (1.125, 1.5, 1)
    """
    loss = as_loss(loss)
    t0 = time.perf_counter()
    th = _point(loss, theta)
    try:
        model = _model(loss)
        st = _Setup(loss, model, th, values)
        nf, nc = _orders(st.r)
        fine = _evaluate(loss, st, model.degree, th, nf, True)
        coarse = _evaluate(loss, st, model.degree, th, nc, True)
    except _NotPiecewise as exc:
        raise UnsupportedExpressionError(
            f"no deterministic Gaussian cone moments for this loss: {exc.reason}; use moments(loss, theta=...) "
            "for Monte Carlo moments"
        ) from None
    return _assemble(th, fine, coarse, st.r, time.perf_counter() - t0)


def _assemble(th: np.ndarray, fine: tuple, coarse: tuple, r: int, seconds: float) -> ConeMoments:
    El, Eg, Egg, N = fine
    cl_, cg, cgg, _ = coarse
    S = Egg - np.outer(Eg, Eg)
    cS = cgg - np.outer(cg, cg)
    eps = np.finfo(float).eps
    # the estimate never goes below a few roundings of the magnitude summed
    err = {
        "mean_loss": abs(El - cl_) + 64 * eps * abs(El),
        "mean_grad": np.abs(Eg - cg) + 64 * eps * np.abs(Eg),
        "second_moment": np.abs(Egg - cgg) + 64 * eps * np.abs(Egg),
        "covariance": np.abs(S - cS) + 64 * eps * (np.abs(Egg) + np.abs(np.outer(Eg, Eg))),
    }
    return ConeMoments(th, El, Eg, Egg, (S + S.T) / 2, err, r, N, seconds)


def _mean_grad(loss: Loss, model: _Model, th: np.ndarray, values: Mapping | None, n_gl: int) -> np.ndarray:
    st = _Setup(loss, model, th, values)
    return _evaluate(loss, st, model.degree, th, _orders(st.r)[0], False)[1]


def cone_hessian(loss: Any, theta: Any, *, values: Mapping | None = None, step: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """The population Hessian H = ∂E[g]/∂θ at θ and an error estimate, deterministically.

    Central differences of the deterministic ∇L with one Richardson step (steps h and h/2,
    h = ``step`` · max(1, |θ_j|)); the kink (delta) terms of ∇²L are included, unlike
    E[∇²ℓ]. Same loss class and errors as :func:`cone_moments`.

    Returns
    -------
    (H, error)
        Symmetric ``(n, n)`` Hessian and the absolute error estimate (Richardson
        difference plus the asymmetry).

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> w = sp.Symbol("w")
    >>> x = Normal("x", 0, 1)
    >>> H, err = ns.cone_hessian(ns.Loss(sp.Max(0, w * x) ** 2, [w]), [1.5])
    >>> round(float(H[0, 0]), 8)
    1.0
    """
    loss = as_loss(loss)
    th = _point(loss, theta)
    if not (isinstance(step, (int, float)) and 0 < step < 1):
        raise InvalidArgumentError(f"step must be a number in (0, 1); got {step!r}")
    try:
        model = _model(loss)
        n = loss.n
        cols = []
        errs = []
        for j in range(n):
            h = step * max(1.0, abs(th[j]))
            e = np.zeros(n)
            e[j] = 1.0
            d1 = (_mean_grad(loss, model, th + h * e, values, _N_FINE) - _mean_grad(loss, model, th - h * e, values, _N_FINE)) / (2 * h)
            d2 = (_mean_grad(loss, model, th + h / 2 * e, values, _N_FINE) - _mean_grad(loss, model, th - h / 2 * e, values, _N_FINE)) / h
            cols.append((4 * d2 - d1) / 3)
            errs.append(np.abs(d2 - d1) / 3)
    except _NotPiecewise as exc:
        raise UnsupportedExpressionError(
            f"no deterministic Gaussian cone Hessian for this loss: {exc.reason}"
        ) from None
    H = np.array(cols).T
    err = np.array(errs).T
    err = np.maximum(err, err.T) + np.abs(H - H.T) / 2
    return (H + H.T) / 2, err


# ------------------------------------------------------------------------------------------
# Batched ∇L and its derivatives (gradient flow, the Noether flow)
# ------------------------------------------------------------------------------------------


def _grad_nodes(loss: Loss, model: _Model, th: np.ndarray, values: Mapping | None,
                data: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Data rows and weights of the fine rule for E[g] at θ (ζ rule of degree p: E[g] only)."""
    st = _Setup(loss, model, th, values, data)
    zeta, wz = _zeta_rule(st.D - st.r, model.degree)
    n_eta = _level_sizes(st.R, st.r, _orders(st.r)[0])
    if n_eta * len(wz) > BUDGET:
        raise _NotPiecewise(f"the cone cubature needs ~{n_eta * len(wz):,} points, over the budget of {BUDGET:,}")
    eta, we = _eta_rule(st.R, st.e, _orders(st.r)[0])
    xi = ((eta @ st.Q.T)[:, None, :] + (zeta @ st.Qp.T)[None, :, :]).reshape(-1, st.D)
    X = st.mu + st.sd * xi
    if len(st.const):
        X = np.concatenate([X, np.broadcast_to(st.const, (X.shape[0], len(st.const)))], axis=1)
    return X, (we[:, None] * wz[None, :]).ravel()


@dataclass
class ConeDerivatives:
    """Deterministic ∇L, H and D³L contractions of a piecewise-linear loss on Gaussian data.

    Built by :func:`cone_derivatives`. ∇L is the cone cubature at each point of a batch (one
    compiled call for the whole batch); H and the contraction ∇_θ Tr(H(θ)Λ) are central
    differences of that ∇L with one Richardson step. L is analytic in θ while the switching
    hyperplanes stay in general position, so the differences converge at their nominal order:
    ∇L is accurate to ~1e-13 in one input dimension, H to ~1e-9, the contraction to ~1e-7
    (relative to the scale of θ).
    """

    loss: Loss
    values: Mapping | None = None
    #: relative steps of the Hessian and of the third-derivative differences
    hessian_step: float = 1e-3
    third_step: float = 2e-2

    def __post_init__(self) -> None:
        self._model = _model(self.loss)  # raises _NotPiecewise
        self._data = _data_params(self.loss, self.values)  # the data law does not move with θ
        self.evaluations = 0

    def grad(self, T: np.ndarray) -> np.ndarray:
        """∇L at a batch of points ``(B, n)`` -> ``(B, n)``."""
        T = np.atleast_2d(np.asarray(T, dtype=float))
        Xs, ws, owner = [], [], []
        for b, th in enumerate(T):
            if not np.all(np.isfinite(th)):
                raise InvalidArgumentError(f"theta must be finite; got {th}")
            X, w = _grad_nodes(self.loss, self._model, th, self.values, self._data)
            Xs.append(X)
            ws.append(w)
            owner.append(np.full(len(w), b))
        X, w, own = np.concatenate(Xs), np.concatenate(ws), np.concatenate(owner)
        # one generated gradient per block of rows, summed per point (bincount)
        out = compiled(self.loss).grad_sums(T, own, X, w, block=_CHUNK)
        if not np.all(np.isfinite(out)):
            raise InvalidArgumentError("the per-sample gradient is not finite at a point of the batch")
        self.evaluations += T.shape[0]
        return out

    def sigma(self, th: np.ndarray) -> np.ndarray:
        """Σ(θ) = E[g gᵀ] − ∇L∇Lᵀ from the fine rule alone (no coarse rule, no error estimate:
        :func:`cone_moments` has both)."""
        th = np.asarray(th, dtype=float)
        st = _Setup(self.loss, self._model, th, self.values, self._data)
        _, Eg, Egg, _ = _evaluate(self.loss, st, self._model.degree, th, _orders(st.r)[0], True)
        S = Egg - np.outer(Eg, Eg)
        return (S + S.T) / 2

    def n_nodes(self, th: np.ndarray) -> int:
        """Data points one ∇L evaluation at θ uses (the cost of a gradient)."""
        return int(_grad_nodes(self.loss, self._model, np.asarray(th, dtype=float), self.values, self._data)[1].size)

    def hessian(self, th: np.ndarray, *, grad0: np.ndarray | None = None) -> np.ndarray:
        """H = ∂∇L/∂θ (central differences h and h/2, one Richardson step; symmetrised).

        With ``grad0`` = ∇L(θ) already at hand: forward differences from it instead (n
        gradients instead of 4n, error O(h) ~ 1e-3 relative instead of ~1e-9) -- a Newton
        direction that good still shrinks the residual ~1000-fold per step."""
        th = np.asarray(th, dtype=float)
        n = th.size
        h = self.hessian_step * np.maximum(1.0, np.abs(th))
        E = np.diag(h)
        if grad0 is not None:
            H = (self.grad(th + E) - np.asarray(grad0, dtype=float)[None, :]) / h[:, None]
            return (H + H.T) / 2
        G = self.grad(np.concatenate([th + E, th - E, th + E / 2, th - E / 2]))
        d1 = (G[:n] - G[n:2 * n]) / (2 * h)[:, None]
        d2 = (G[2 * n:3 * n] - G[3 * n:]) / h[:, None]
        H = (4 * d2 - d1) / 3
        return (H + H.T) / 2

    def third(self, th: np.ndarray, Lam: np.ndarray) -> np.ndarray:
        """∇_θ Tr(H(θ)Λ) with Λ symmetric held fixed: Σ_m μ_m D³L[v_m, v_m, ·] over the
        eigenpairs of Λ, each a second difference of ∇L along v_m (steps h, h/2, Richardson)."""
        th = np.asarray(th, dtype=float)
        mu, vecs = np.linalg.eigh((Lam + Lam.T) / 2)
        keep = np.abs(mu) > 1e-14 * max(1e-300, float(np.abs(mu).max(initial=0.0)))
        if not np.any(keep):
            return np.zeros_like(th)
        V = vecs.T[keep]
        h = self.third_step * max(1.0, float(np.linalg.norm(th)))
        G = self.grad(np.concatenate([th[None, :], th + h * V, th - h * V, th + h / 2 * V, th - h / 2 * V]))
        k = V.shape[0]
        g0 = G[0]
        d1 = (G[1:1 + k] - 2 * g0 + G[1 + k:1 + 2 * k]) / h**2
        d2 = (G[1 + 2 * k:1 + 3 * k] - 2 * g0 + G[1 + 3 * k:]) / (h / 2) ** 2
        return mu[keep] @ ((4 * d2 - d1) / 3)


def cone_derivatives(loss: Any, *, values: Mapping | None = None) -> ConeDerivatives:
    """Deterministic batched ∇L, Hessian and third-derivative contraction of a piecewise-linear
    loss on Gaussian data (same loss class as :func:`cone_moments`).

    Raises
    ------
    UnsupportedExpressionError
        The loss is not of this kind (the message says why).

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> w = sp.Symbol("w")
    >>> d = ns.cone_derivatives(ns.Loss(sp.Max(0, w * Normal("x", 0, 1)) ** 2, [w]))
    >>> round(float(d.grad([[1.5]])[0, 0]), 12), round(float(d.hessian([1.5])[0, 0]), 8)
    (1.5, 1.0)
    """
    loss = as_loss(loss)
    try:
        return ConeDerivatives(loss, values)
    except _NotPiecewise as exc:
        raise UnsupportedExpressionError(f"no deterministic Gaussian cone derivatives for this loss: {exc.reason}") from None


def _cone_moments_or_none(loss: Loss, th: np.ndarray, values: Mapping | None) -> ConeMoments | None:
    """The deterministic moments when the loss is of this kind, else None (the caller falls
    back to Monte Carlo)."""
    try:
        model = _model(loss)
        st = _Setup(loss, model, th, values)
        t0 = time.perf_counter()
        nf, nc = _orders(st.r)
        fine = _evaluate(loss, st, model.degree, th, nf, True)
        coarse = _evaluate(loss, st, model.degree, th, nc, True)
    except _NotPiecewise:
        return None
    return _assemble(th, fine, coarse, st.r, time.perf_counter() - t0)
