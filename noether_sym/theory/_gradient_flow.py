"""Theory: Φ(θ₀), the limit of gradient flow on the population loss (THEORY §5, (E9)).

The noise equilibrium (E16) is a statement about a point of the minimum manifold. From a
start θ₀ off it, SGD first falls to the manifold (O(1/η) steps) while every charge moves
only O(η); the orbit that matters is that of Φ(θ₀), the end point of gradient flow
dθ/dt = −∇L(θ) from θ₀, which conserves every charge exactly (E9).
:func:`gradient_flow_limit` integrates that flow with a stiff solver (SciPy's LSODA, with
the population Hessian as Jacobian) until ‖∇L‖ ≤ ``tol`` and returns a
:class:`GradientFlowLimit` (Φ(θ₀), the distance |θ₀ − Φ(θ₀)|, ‖∇L(Φ(θ₀))‖, the flow time).

Design
------
∇L is exact where the data model allows: the exact polynomial moments (Gaussian and other
``sympy.stats`` data, finite datasets), compiled to one vectorized NumPy function of θ; the
Hessian is its central difference over a batch of 2n points in one call. Otherwise (kinks,
non-polynomial terms) the flow runs on the empirical loss of one fixed Monte Carlo sample
(``n_samples`` draws, default 4,000, ``seed``), with an explicit Runge-Kutta pair (kinks
defeat a stiff solver's Newton steps) and stops at ‖∇L‖ ≤ the estimate's standard error, or
on the numeric mean over a dataset; ``moments`` says which. (The deterministic cone moments
of piecewise-linear units cost 20-150 ms per gradient: too slow for the hundreds of
evaluations of a flow, so they serve the noise Σ at Φ(θ₀), not the flow.) With a Monte Carlo gradient a start
whose estimated ‖∇L‖ is within 4 standard errors (plus ``tol``) of zero is taken as on the
manifold: the estimate cannot tell it is off. A start already on the manifold is returned
unchanged, so predictions from points on it do not move.

Weight decay is not part of the flow: SGD falls to the minimum manifold of L at the rate of
the curvature, while the decay −γθ acts on the slow time scale of the charges, where the
balance (η/S)G = 2γC (E18) already accounts for it. Flowing L + γ/2‖θ‖² instead would
shrink every charge as e^{−2γt} (E9) and, for a scale-invariant block, run to θ = 0.

A flow that diverges (‖θ‖ beyond ``1e6·(1 + ‖θ₀‖)``), does not settle within ``max_time``
or exceeds its budget of gradient evaluations raises :class:`~noether_sym.GradientFlowError`
naming the reason: there is no minimum to predict from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp

from .._errors import GradientFlowError, InvalidArgumentError, NoetherSymError, UnsupportedExpressionError
from .._validate import Integer, Optional, Real, validate
from ..compile._compiled import compiled
from ..data._moments import moments
from ..data._sample import make_sampler
from ..loss._loss import Loss, as_loss, replace_symbols

__all__ = ["GradientFlowLimit", "gradient_flow_limit"]

_OPTIONS = {
    "tol": Real(0.0, None, low_open=True),
    "max_time": Real(0.0, None, low_open=True),
    "max_evaluations": Integer(10),
    "n_samples": Optional(Integer(100)),
    "seed": Integer(0),
}

#: Monte Carlo draws per block when the gradient is averaged over a fixed sample
_MC_BLOCK = 20_000

#: default size of the fixed Monte Carlo sample the flow runs on (non-polynomial losses):
#: every flow step evaluates the gradient on all of it, so it is smaller than the moments'
#: 100,000; the flow stops at ‖∇L‖ ≤ its standard error
FLOW_SAMPLES = 4_000


@dataclass
class GradientFlowLimit:
    """Where gradient flow on the population loss lands (result of :func:`gradient_flow_limit`).

    Attributes
    ----------
    start
        θ₀, in ``loss.params`` order.
    theta
        Φ(θ₀): a point of the minimum manifold with ‖∇L‖ ≤ ``tol`` (θ₀ itself when it is
        already on it).
    distance
        |θ₀ − Φ(θ₀)| (Euclidean).
    grad_norm
        ‖∇L(Φ(θ₀))‖ (and ``start_grad_norm`` = ‖∇L(θ₀)‖).
    time
        The flow time t at which the tolerance was reached (0 when θ₀ is on the manifold).
    tol
        The gradient-norm tolerance used (with a Monte Carlo gradient: at least the standard
        error of its estimate at θ₀, below which the flow is not resolved).
    moments
        How ∇L was computed: ``"exact"`` (polynomial moments) or a Monte Carlo / dataset
        description.
    standard_error
        Monte Carlo: the standard error of ‖∇L(θ₀)‖'s estimate (else 0).
    evaluations
        Number of gradient evaluations the solver used.
    """

    start: np.ndarray
    theta: np.ndarray
    distance: float
    grad_norm: float
    start_grad_norm: float
    time: float
    tol: float
    moments: str
    standard_error: float = 0.0
    evaluations: int = 0

    @property
    def moved(self) -> bool:
        """Whether θ₀ was off the manifold (Φ(θ₀) ≠ θ₀)."""
        return bool(self.time > 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": [float(v) for v in self.start],
            "theta": [float(v) for v in self.theta],
            "distance": self.distance,
            "grad_norm": self.grad_norm,
            "start_grad_norm": self.start_grad_norm,
            "time": self.time,
            "tol": self.tol,
            "moments": self.moments,
            "standard_error": self.standard_error,
        }

    def describe(self) -> str:
        """One line: on the manifold, or how far the flow moved the start."""
        if not self.moved:
            return f"start on the minimum manifold (‖∇L‖ = {self.start_grad_norm:.3g} ≤ tolerance; {self.moments})"
        return (f"start off the minimum manifold (‖∇L(θ₀)‖ = {self.start_grad_norm:.3g}): predicted from Φ(θ₀), "
                f"gradient flow for t = {self.time:.4g}, |θ₀ − Φ(θ₀)| = {self.distance:.4g}, "
                f"‖∇L(Φ(θ₀))‖ = {self.grad_norm:.2g} ({self.moments})")


def gradient_flow_limit(
    loss: Loss,
    theta: Any,
    *,
    tol: float = 1e-9,
    values: Any = None,
    max_time: float = 1e6,
    max_evaluations: int = 200_000,
    n_samples: int | None = None,
    seed: int = 0,
) -> GradientFlowLimit:
    """Φ(θ₀): integrate gradient flow dθ/dt = −∇L(θ) from θ₀ until ‖∇L‖ ≤ ``tol``.

    Parameters
    ----------
    loss
        The Loss with a data model (random symbols or a dataset).
    theta
        θ₀ (mapping symbol -> number, or a sequence in params order); finite.
    tol
        Gradient-norm tolerance (absolute). A start with ‖∇L(θ₀)‖ ≤ ``tol`` is returned
        unchanged.
    values
        Numbers for symbolic distribution parameters.
    max_time, max_evaluations
        Budgets: flow time and gradient evaluations before :class:`GradientFlowError`.
    n_samples, seed
        Monte Carlo sample (non-polynomial losses on random data): size (default 4,000)
        and seed.

    Returns
    -------
    GradientFlowLimit

    Raises
    ------
    InvalidArgumentError
        θ₀ has non-finite entries or the wrong shape.
    GradientFlowError
        The flow diverges or does not settle within the budgets.

    Examples
    --------
    ℓ = (uwx − x − ε)² from (u, w) = (2, 1): the flow keeps u² − w² = 3 and lands on uw = 1.

    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, sp.Rational(1, 2))
    >>> loss = ns.Loss((u * w * x - x - e) ** 2, [u, w])
    >>> phi = ns.gradient_flow_limit(loss, {u: 2, w: 1})
    >>> [round(float(v), 6) for v in phi.theta], round(float(phi.theta[0] ** 2 - phi.theta[1] ** 2), 6)
    ([1.817354, 0.550251], 3.0)
    """
    loss = as_loss(loss)
    opts = validate(_OPTIONS, tol=tol, max_time=max_time, max_evaluations=max_evaluations, n_samples=n_samples,
                    seed=seed)
    th0 = loss.theta_vector(theta)
    ck = ("gradient_flow_limit", th0.tobytes(), tuple(sorted(opts.items())),
          None if not values else tuple(sorted((str(k), str(v)) for k, v in dict(values).items())))
    hit = loss._cache.get(ck)
    if hit is not None:  # one flow per start: every generator of a derivation shares it
        return hit
    out = _flow(loss, th0, opts, values)
    loss._cache[ck] = out
    return out


def _flow(loss: Loss, th0: np.ndarray, opts: dict[str, Any], values: Any) -> GradientFlowLimit:
    grad, how, se_fn = population_gradient(loss, values=values, n_samples=opts["n_samples"], seed=opts["seed"])
    with np.errstate(over="ignore", invalid="ignore"):
        g0 = grad(th0[None, :])[0]
    if not np.all(np.isfinite(g0)) and how.startswith("exact"):
        # floating point overflows at extreme θ (e.g. 1e200), where no float flow can run:
        # decide exactly, in rationals, relative to ‖θ₀‖ (the start's own rounding scale)
        g0 = np.array([float(v) for v in moments(loss, values=values).at(list(th0)).mean_grad], dtype=float)
        if np.all(np.isfinite(g0)) and float(np.linalg.norm(g0)) <= opts["tol"] * max(1.0, float(np.linalg.norm(th0))):
            n0 = float(np.linalg.norm(g0))
            return GradientFlowLimit(th0.copy(), th0.copy(), 0.0, n0, n0, 0.0, opts["tol"], how, 0.0, 1)
    if not np.all(np.isfinite(g0)):
        raise InvalidArgumentError(
            f"the population gradient is not finite at θ₀ = {th0.tolist()} (overflow): rescale the start"
        )
    n0 = float(np.linalg.norm(g0))
    se0 = se_fn(th0) if se_fn is not None else 0.0
    if n0 <= opts["tol"] + 4 * se0:
        return GradientFlowLimit(th0.copy(), th0.copy(), 0.0, n0, n0, 0.0, opts["tol"], how, se0, 1)
    # a Monte Carlo gradient is not resolved below its standard error: stop there
    tol_used = max(opts["tol"], se0)
    # (an empirical loss with kinks is only piecewise smooth: a looser solver tolerance there)
    rtol = 1e-11 if how.startswith("exact") else 1e-10 if se_fn is None else 1e-7
    theta_end, t_end, n_end, evals = _integrate(grad, th0, tol_used, opts["max_time"], opts["max_evaluations"], rtol)
    return GradientFlowLimit(th0.copy(), theta_end, float(np.linalg.norm(theta_end - th0)), n_end, n0, t_end,
                             tol_used, how, se0, evals)


def _integrate(grad: Callable[[np.ndarray], np.ndarray], th0: np.ndarray, tol: float, max_time: float,
               max_evals: int, rtol: float = 1e-11,
               hessian: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, float, float, int]:
    """LSODA on dθ/dt = −∇L in chunks of doubling length, until ‖∇L‖ ≤ tol. ``grad`` maps a
    batch (k, n) to (k, n); ``hessian`` (one point -> n x n) is the solver's Jacobian when the
    caller has it exactly, otherwise central differences of ``grad``."""
    bound = 1e6 * (1.0 + float(np.linalg.norm(th0)))
    count = [0]

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        count[0] += 1
        if count[0] > max_evals:
            raise _Budget()
        return -grad(y[None, :])[0]

    def jac(t: float, y: np.ndarray) -> np.ndarray:
        if hessian is not None:
            return -hessian(y)
        count[0] += 2 * len(y)
        return -_hessian(grad, y)

    def settled(t: float, y: np.ndarray) -> float:
        # stop at tol/2: the end point re-evaluated (or restarted from) is safely within tol
        return float(np.linalg.norm(grad(y[None, :])[0])) - 0.5 * tol

    def escaped(t: float, y: np.ndarray) -> float:
        return bound - float(np.linalg.norm(y))

    settled.terminal = escaped.terminal = True  # type: ignore[attr-defined]
    settled.direction = escaped.direction = -1  # type: ignore[attr-defined]
    # kinks (an empirical loss of ReLU units) defeat the stiff solver's Newton iterations:
    # an explicit Runge-Kutta pair with a looser tolerance there
    method = "LSODA" if rtol < 1e-9 else "RK45"
    y, t, span = th0.copy(), 0.0, 1.0
    atol = 1e-2 * rtol * (1.0 + float(np.max(np.abs(th0))))
    while t < max_time:
        t1 = min(t + span, max_time)
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                sol = solve_ivp(rhs, (t, t1), y, method=method, rtol=rtol, atol=atol, **({"jac": jac} if method != "RK45" else {}),
                                events=(settled, escaped))
        except _Budget:
            raise GradientFlowError(
                f"gradient flow from θ₀ did not reach ‖∇L‖ ≤ {tol:g} within {max_evals} gradient evaluations "
                f"(flow time {t:.3g}): the minimum is not reached (flat or very slow directions); raise "
                "max_evaluations or tol"
            ) from None
        if sol.status == -1 or not np.all(np.isfinite(sol.y[:, -1])):
            raise GradientFlowError(
                f"gradient flow from θ₀ diverges (the solver failed at t = {sol.t[-1]:.3g}: {sol.message}): "
                "the population loss has no reachable minimum from this start"
            )
        y, t = sol.y[:, -1].copy(), float(sol.t[-1])
        if sol.t_events[1].size:
            raise GradientFlowError(
                f"gradient flow from θ₀ diverges: ‖θ‖ passed {bound:.3g} at t = {t:.3g}; the population loss "
                "has no reachable minimum from this start (is it bounded below?)"
            )
        gn = float(np.linalg.norm(grad(y[None, :])[0]))
        if sol.t_events[0].size or gn <= tol:
            return y, t, gn, count[0]
        span *= 2
    gn = float(np.linalg.norm(grad(y[None, :])[0]))
    raise GradientFlowError(
        f"gradient flow from θ₀ does not settle: ‖∇L‖ = {gn:.3g} > {tol:g} after flow time {max_time:g} "
        f"(‖θ‖ = {float(np.linalg.norm(y)):.3g}); the minimum is not reached (a flat, non-minimum direction or "
        "very slow convergence); raise max_time or tol"
    )


class _Budget(Exception):
    """Internal: the gradient-evaluation budget is spent (turned into GradientFlowError)."""


def _hessian(grad: Callable[[np.ndarray], np.ndarray], y: np.ndarray) -> np.ndarray:
    """Population Hessian by central differences of ∇L: one batched call on 2n points."""
    n = len(y)
    h = 1e-6 * (1.0 + np.abs(y))
    pts = np.concatenate([y + np.diag(h), y - np.diag(h)])
    g = grad(pts)
    H = (g[:n] - g[n:]) / (2 * h)[:, None]
    return 0.5 * (H + H.T)


def population_gradient(loss: Loss, *, values: Any = None, n_samples: int | None = None,
                        seed: int = 0) -> tuple[Callable[[np.ndarray], np.ndarray], str, Callable | None]:
    """(∇L as a batched function (B, n) -> (B, n), how it is computed, and for Monte Carlo a
    function θ -> standard error of ‖∇L(θ)‖'s estimate, else None).

    Exact polynomial moments when the data model has them (cached on the loss); otherwise
    the mean over one fixed sample of the data (or over the whole dataset).
    """
    key = ("population_gradient", n_samples, seed,
           None if not values else tuple(sorted((str(k), str(v)) for k, v in dict(values).items())))
    hit = loss._cache.get(key)
    if hit is None:
        hit = loss._cache[key] = _build_gradient(loss, values, n_samples, seed)
    return hit


def _build_gradient(loss: Loss, values: Any, n_samples: int | None,
                    seed: int) -> tuple[Callable[[np.ndarray], np.ndarray], str, Callable | None]:
    try:
        mom = moments(loss, method="exact", values=values)
    except UnsupportedExpressionError:
        mom = None
    if mom is not None:
        mean = mom.mean_grad
        rep = {p: loss.theta[i] for i, p in enumerate(loss.params)}
        exprs = [replace_symbols(sp.sympify(e), rep) for e in mean]
        extra = set().union(*[e.free_symbols for e in exprs]) - set(loss.theta) if exprs else set()
        if extra:
            raise InvalidArgumentError(
                f"the population gradient depends on symbol(s) {', '.join(sorted(map(str, extra)))} besides θ; "
                "give them numbers with values={symbol: number}"
            )
        f = sp.lambdify(list(loss.theta), exprs, modules="numpy", cse=True)

        def exact_grad(T: np.ndarray) -> np.ndarray:
            T = np.asarray(T, dtype=float)
            cols = f(*T.T)
            return np.stack([np.broadcast_to(np.asarray(c, dtype=float), T.shape[:1]) for c in cols], axis=-1)

        return exact_grad, "exact (polynomial moments)", None
    return _sample_gradient(loss, values, n_samples, seed)


def _sample_gradient(loss: Loss, values: Any, n_samples: int | None,
                     seed: int) -> tuple[Callable[[np.ndarray], np.ndarray], str, Callable | None]:
    """∇L as the mean over one fixed sample (random data) or over the dataset."""
    try:
        sampler = make_sampler(loss, values=values)
    except NoetherSymError as exc:
        raise UnsupportedExpressionError(
            f"no population gradient for this loss: its data model gives neither exact moments nor samples ({exc})"
        ) from exc
    cl = compiled(loss)
    if sampler.dataset_size is not None:
        X = sampler.take(np.arange(sampler.dataset_size))
        how = f"numeric mean over the dataset ({sampler.dataset_size} rows)"
    else:
        N = FLOW_SAMPLES if n_samples is None else int(n_samples)
        X = sampler.draw(np.random.default_rng(seed), (N,))
        how = f"Monte Carlo: flow on the empirical loss of one fixed sample of {N} draws (seed {seed})"
    N = X.shape[0] if X is not None else 1

    def per_sample(th: np.ndarray) -> np.ndarray:
        return cl.grad(th[None, :], X) if X is not None else cl.grad(th[None, :])

    def grad(T: np.ndarray) -> np.ndarray:
        T = np.asarray(T, dtype=float)
        out = np.empty_like(T)
        for b in range(T.shape[0]):
            acc = np.zeros(T.shape[1])
            for a in range(0, N, _MC_BLOCK):
                g = cl.grad(T[b][None, :], X[a:a + _MC_BLOCK]) if X is not None else cl.grad(T[b][None, :])
                acc += np.sum(g.reshape(-1, T.shape[1]), axis=0)
            out[b] = acc / N
        return out

    def se(th: np.ndarray) -> float:
        if sampler.dataset_size is not None or X is None:
            return 0.0
        g = per_sample(th).reshape(-1, len(th))
        return float(math.sqrt(np.sum(np.var(g, axis=0, ddof=1)) / N))

    return grad, how, se
