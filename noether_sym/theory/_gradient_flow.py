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
Hessian is its central difference over a batch of 2n points in one call. For
piecewise-linear units (ReLU, leaky ReLU, Abs) on Gaussian data, ∇L is the deterministic
cone cubature (``data/_piecewise.py``, ~1e-13 in one input dimension, 2-3 ms a point) and
the solver's Jacobian is the Hessian from its differences
(:class:`~noether_sym.data._piecewise.ConeDerivatives`): the flow runs LSODA to the same
gradient-norm tolerance as the polynomial route, the same for every seed, when one ∇L costs
at most ``FLOW_CONE_NODES`` cubature points (one input dimension: a few hundred). Inputs of
dimension ≥ 2 with several units need 10⁴-10⁵ points per gradient, too many for the 10³-10⁴
gradients of a flow: the flow runs on the fixed Monte Carlo sample below (gradient flow on
any sample average conserves every charge exactly, each per-sample gradient being orthogonal
to Aθ), and its end point, which has the right charges but is on the manifold only within the
sample's accuracy, is polished with the exact cone ∇L and Hessian: Gauss-Newton steps on
∇L = 0 with every charge θᵀAθ of the loss's symmetric generators held at θ₀'s, to
``max(tol, POLISH_GRAD_RTOL·(1 + ‖θ₀‖))``. Its worst-case cost in cubature points is checked
against ``FLOW_POLISH_NODES`` before any work (:class:`~noether_sym.ResourceLimitError`).
The polished point is Φ(θ₀) only where the charges pin it: a flat direction of the Hessian
at fixed charges that no symmetry or rotation explains would leave the landing point to the
Monte Carlo flow (off by the sample's accuracy), and is refused (GradientFlowError).
Otherwise
(non-polynomial terms such as tanh or softmax) the flow runs on the empirical loss of one
fixed Monte Carlo sample (``n_samples`` draws, default 4,000, ``seed``), with an explicit
Runge-Kutta pair (kinks defeat a stiff solver's Newton steps) and stops at ‖∇L‖ ≤ the
estimate's standard error, or on the numeric mean over a dataset; ``moments`` says which.
With a Monte Carlo gradient a start whose estimated ‖∇L‖ is within 4 standard errors (plus
``tol``) of zero is taken as on the manifold: the estimate cannot tell it is off. A start the
estimate shows to be off the manifold is refused (:class:`~noether_sym.GradientFlowError`,
"not on a minimum within the Monte Carlo accuracy") unless the flow's end point has ‖∇L‖ plus
4 standard errors ≤ ``tol``: a prediction balanced at a point off the manifold would be a
confident wrong answer.
A unit that dies along the flow (its activation probability → 0) makes the approach
slow, ‖∇L‖ ~ 1/t: the time budget ``max_time`` bounds it, and the equilibria report the
resulting slow charges through their relaxation times.
A start already on the manifold is returned
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp

from .._errors import (
    GradientFlowError,
    InvalidArgumentError,
    NoetherSymError,
    ResourceLimitError,
    UnsupportedExpressionError,
)
from .._validate import Integer, Optional, Real, validate
from ..compile._compiled import compiled
from ..data._moments import moments
from ..data._piecewise import ConeDerivatives, cone_derivatives
from ..data._sample import make_sampler
from ..loss._loss import Loss, as_loss, replace_symbols
from ..symmetry._finder import find_symmetries

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

#: the stop event looks at ∇L of the solver's latest evaluation while it is at least this
#: many times the tolerance (only closer to the threshold is the end point evaluated)
_SETTLED_MARGIN = 20.0

#: most elements (n · n · rows) of the complex-step Hessian of a sample mean that the stiff
#: solver's Jacobian is computed from in one call; above it, differences of the gradient
_HVP_ELEMENTS = 4_000_000

#: default size of the fixed Monte Carlo sample the flow runs on (non-polynomial losses):
#: every flow step evaluates the gradient on all of it, so it is smaller than the moments'
#: 100,000; the flow stops at ‖∇L‖ ≤ its standard error
FLOW_SAMPLES = 4_000

#: largest number of cubature points per ∇L for which the flow runs on the cone cubature
#: (one input dimension needs a few hundred; a flow takes 10³-10⁴ gradients)
FLOW_CONE_NODES = 5_000

#: ``moments`` label of the deterministic route for piecewise-linear units on Gaussian data
METHOD_FLOW_CONES = "deterministic (gaussian cone cubature of ∇L)"


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
        Monte Carlo sample (losses on random data that are neither polynomial nor
        piecewise-linear on Gaussian data): size (default 4,000)
        and seed.

    Returns
    -------
    GradientFlowLimit

    Raises
    ------
    InvalidArgumentError
        θ₀ has non-finite entries or the wrong shape.
    GradientFlowError
        The flow diverges or does not settle within the budgets, or (Monte Carlo gradient) its
        end point is not on a minimum within the sample's accuracy.
    ResourceLimitError
        Polishing a Monte Carlo flow's end point with the exact cone gradient would exceed
        ``FLOW_POLISH_NODES`` cubature points.

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
    if _deterministic_route(loss, values, th0):  # the seed and sample size play no part
        opts_key = tuple(sorted((k, v) for k, v in opts.items() if k not in ("seed", "n_samples")))
    else:
        opts_key = tuple(sorted(opts.items()))
    ck = ("gradient_flow_limit", th0.tobytes(), opts_key,
          None if not values else tuple(sorted((str(k), str(v)) for k, v in dict(values).items())))
    hit = loss._cache.get(ck)
    if hit is not None:  # one flow per start: every generator of a derivation shares it
        return hit
    out = _flow(loss, th0, opts, values)
    loss._cache[ck] = out
    return out


def _deterministic_route(loss: Loss, values: Any, th0: np.ndarray) -> bool:
    """Whether ∇L is deterministic (exact polynomial moments, a dataset, or cones within budget)."""
    if loss.dataset is not None:
        return True
    try:
        moments(loss, method="exact", values=values)
        return True
    except UnsupportedExpressionError:
        cones = _cone_route(loss, values)
        return cones is not None and cones.n_nodes(th0) <= FLOW_CONE_NODES
    except NoetherSymError:
        return False


def _flow(loss: Loss, th0: np.ndarray, opts: dict[str, Any], values: Any) -> GradientFlowLimit:
    grad, how, se_fn = population_gradient(loss, values=values, n_samples=opts["n_samples"], seed=opts["seed"])
    polish = None
    if how == METHOD_FLOW_CONES and _cone_route(loss, values).n_nodes(th0) > FLOW_CONE_NODES:
        # a flow takes thousands of gradients: beyond this cost per gradient (inputs of
        # dimension ≥ 2 with several units) the flow runs on a fixed Monte Carlo sample (it
        # conserves every charge exactly, any sample average does) and its end point is then
        # polished onto the manifold with the exact cone gradient (few, budgeted evaluations)
        polish = _cone_route(loss, values)
        _polish_budget(polish, th0)
        grad, how, se_fn = _sample_gradient(loss, values, opts["n_samples"], opts["seed"])
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
    if polish is not None:  # on the manifold or not: decided by the exact gradient
        n0 = float(np.linalg.norm(polish.grad(th0[None, :])[0]))
        # to the tolerance this route certifies its own end points at (below): Φ(Φ(θ₀)) = Φ(θ₀)
        on_tol = max(opts["tol"], POLISH_GRAD_RTOL * (1.0 + float(np.linalg.norm(th0))))
        if n0 <= on_tol:
            return GradientFlowLimit(th0.copy(), th0.copy(), 0.0, n0, n0, 0.0, on_tol, METHOD_FLOW_CONES, 0.0, 1)
    elif n0 <= opts["tol"] + 4 * se0:
        return GradientFlowLimit(th0.copy(), th0.copy(), 0.0, n0, n0, 0.0, opts["tol"], how, se0, 1)
    # a Monte Carlo gradient is not resolved below its standard error: stop there
    tol_used = max(opts["tol"], se0)
    # (an empirical loss with kinks is only piecewise smooth: a looser solver tolerance there)
    deterministic = how.startswith("exact") or how == METHOD_FLOW_CONES
    # a smooth empirical loss (dataset, Monte Carlo sample) is as stiff as the population one:
    # the stiff solver; only kinks need the explicit pair
    rtol = 1e-11 if deterministic else 1e-7 if _has_kinks(loss) else 1e-10
    if polish is not None:
        # the Newton polish below lands on the manifold with every charge held at θ₀'s, so the
        # flow only has to bring it into Newton's basin: a loose tolerance, far fewer steps
        # across the sample's kinks (where the charges pin the point, as the polish checks,
        # the polished Φ(θ₀) is the same to ~1e-12 for rtol 1e-3 ... 1e-7)
        rtol = _POLISH_FLOW_RTOL
    hess = population_hessian(loss, values=values) if how == METHOD_FLOW_CONES else None
    jac_cost = 0
    if hess is None and getattr(grad, "hessian", None) is not None:
        # the sample mean's Hessian in one complex-step call, counted as the 2n gradients of
        # the differences it replaces (the budget, and so every verdict, stays the same)
        hess, jac_cost = grad.hessian, 2 * th0.size
    theta_end, t_end, n_end, evals = _integrate(grad, th0, tol_used, opts["max_time"], opts["max_evaluations"], rtol,
                                                hessian=hess, kinks=not deterministic and _has_kinks(loss),
                                                jac_cost=jac_cost)
    if polish is not None:
        tol_used = max(opts["tol"], POLISH_GRAD_RTOL * (1.0 + float(np.linalg.norm(th0))))
        theta_end, n_end, extra = _polish(loss, polish, th0, theta_end, tol_used)
        evals += extra
        how = (f"{METHOD_FLOW_CONES}: flow on one fixed Monte Carlo sample ({how.split('sample of ')[-1]}), "
               f"then {extra} exact gradients of charge-conserving Newton steps onto the manifold")
        se0 = 0.0
    elif how.startswith("Monte Carlo"):
        _refuse_unresolved(loss, se_fn, theta_end, n_end, opts, how)
    return GradientFlowLimit(th0.copy(), theta_end, float(np.linalg.norm(theta_end - th0)), n_end, n0, t_end,
                             tol_used, how, se0, evals)


def _integrate(grad: Callable[[np.ndarray], np.ndarray], th0: np.ndarray, tol: float, max_time: float,
               max_evals: int, rtol: float = 1e-11,
               hessian: Callable[[np.ndarray], np.ndarray] | None = None,
               kinks: bool = False, jac_cost: int = 0) -> tuple[np.ndarray, float, float, int]:
    """LSODA on dθ/dt = −∇L in chunks of doubling length, until ‖∇L‖ ≤ tol. ``grad`` maps a
    batch (k, n) to (k, n); ``hessian`` (one point -> n x n) is the solver's Jacobian when the
    caller has it exactly, otherwise central differences of ``grad``. ``kinks``: ∇L may jump
    (an empirical loss of ReLU-type units), so a flow time that stops advancing is a slide
    along a kink (a smooth flow whose steps shrink is heading for a blow-up instead).
    ``jac_cost``: gradient evaluations one call of ``hessian`` is counted as."""
    bound = 1e6 * (1.0 + float(np.linalg.norm(th0)))
    count = [0]

    mark = [0.0]  # flow time at the last stall check
    now = [0.0]  # flow time of the latest evaluation
    last: list[Any] = [None, None]  # the last point the right-hand side saw, and ∇L there

    def grad_at(y: np.ndarray) -> np.ndarray:
        # the event functions look at the step's end point, where an explicit pair (FSAL)
        # has just evaluated the right-hand side: reuse that gradient
        if last[0] is not None and np.array_equal(last[0], y):
            return last[1]
        g = grad(y[None, :])[0]
        last[0], last[1] = y.copy(), g
        return g

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        count[0] += 1
        now[0] = t
        if count[0] > max_evals:
            raise _Budget()
        if kinks and count[0] % _STALL_EVALS == 0:  # the step size collapsed: a kink the flow slides along
            # (under _STALL_RATE·t per _STALL_EVALS evaluations: doubling the flow time would
            # take more than 10⁶ of them)
            if t - mark[0] <= _STALL_RATE * max(1.0, abs(t)):
                raise _Stalled(t)
            mark[0] = t
        return -grad_at(y)

    def jac(t: float, y: np.ndarray) -> np.ndarray:
        count[0] += jac_cost
        if hessian is not None:
            return -hessian(y)
        count[0] += 2 * len(y)
        return -_hessian(grad, y)

    def settled(t: float, y: np.ndarray) -> float:
        # stop at tol/2: the end point re-evaluated (or restarted from) is safely within tol.
        # The solver evaluated ∇L last at (or next to: its corrector's last iterate) the step's
        # end point; while that gradient is far above the threshold its sign decides, and
        # only near the threshold is ∇L at the end point itself evaluated
        if last[0] is not None and not np.array_equal(last[0], y):
            near = float(np.linalg.norm(last[1]))
            if near >= _SETTLED_MARGIN * tol:
                return near - 0.5 * tol
        return float(np.linalg.norm(grad_at(y))) - 0.5 * tol

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
        except _Stalled as st:
            raise GradientFlowError(
                f"gradient flow from θ₀ stalls at flow time {st.args[0]:.4g}: {_STALL_EVALS} gradient evaluations "
                f"advanced it by less than {_STALL_RATE:g} of max(1, t); the flow slides along a kink of a non-smooth loss (a ReLU-type unit switching "
                "on the data), where ∇L is discontinuous and ‖∇L‖ cannot reach the tolerance; no minimum with a "
                "gradient-norm certificate is reachable from this start"
            ) from None
        except _Budget:
            raise GradientFlowError(
                f"gradient flow from θ₀ did not reach ‖∇L‖ ≤ {tol:g} within {max_evals} gradient evaluations "
                f"(flow time {now[0]:.3g}): the minimum is not reached (flat or very slow directions); raise "
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


#: most cubature points the polish of a Monte Carlo flow's end point may use, counted for
#: its worst case (every Newton step with a Hessian and all its halvings): a 2-3-1 leaky-ReLU
#: net on R² (9 parameters, 37,000 points per gradient) is bounded by 6.4·10⁷, ~30 s idle;
#: the two-unit ReLU net on R² of the zoo uses 101 gradients, ~1 s
FLOW_POLISH_NODES = 100_000_000

#: most Newton steps of the polish: quadratic convergence from the Monte Carlo end point
#: where the minimum is non-degenerate, linear (a few per decade) where the flow's limit has
#: an extra flat normal direction
_POLISH_STEPS = 40

#: relative accuracy of the charges θᵀAθ the polish holds
_CHARGE_RTOL = 1e-8

#: the polish's gradient-norm tolerance is at least this times 1 + ‖θ₀‖: where the limit has
#: a degenerate normal direction Newton converges only linearly, and a tighter tolerance
#: costs ~36 exact gradients per halving of ‖∇L‖ while moving θ* far below any SGD error bar
POLISH_GRAD_RTOL = 1e-8

#: relative tolerance of the Monte Carlo flow that the polish follows (it fixes the end point)
_POLISH_FLOW_RTOL = 1e-5

#: most halvings of one Newton step
_POLISH_HALVINGS = 6


def _polish_cost(cones: ConeDerivatives, th: np.ndarray) -> int:
    """Worst-case cubature points of :func:`_polish`: every step one Hessian (4n gradients),
    one gradient and its halvings."""
    return cones.n_nodes(th) * _POLISH_STEPS * (4 * th.size + 1 + _POLISH_HALVINGS)


def _polish_budget(cones: ConeDerivatives, th0: np.ndarray) -> None:
    """ResourceLimitError when polishing onto the manifold would exceed FLOW_POLISH_NODES."""
    cost = _polish_cost(cones, th0)
    if cost > FLOW_POLISH_NODES:
        raise ResourceLimitError(
            f"Φ(θ₀) needs the exact (cone cubature) gradient to land on the minimum manifold: up to {cost:,} cubature "
            f"points ({cones.n_nodes(th0):,} per gradient, {th0.size} parameters), over the budget "
            f"noether_sym.theory._gradient_flow.FLOW_POLISH_NODES = {FLOW_POLISH_NODES:,}; raise it, or start on the "
            "minimum manifold (a Monte Carlo flow alone is not on it within its accuracy)"
        )


def _charge_matrices(loss: Loss) -> list[np.ndarray]:
    """The symmetric generators A of the loss's linear symmetries: gradient flow conserves
    every θᵀAθ (E9), and the polish holds them (none when the finder cannot say)."""
    try:
        gens = find_symmetries(loss).generators
    except NoetherSymError:
        return []
    mats = [np.array(A.tolist(), dtype=float) for A in gens]
    return [A for A in mats if np.allclose(A, A.T)]


def _polish(loss: Loss, cones: ConeDerivatives, th0: np.ndarray, theta: np.ndarray,
            tol: float) -> tuple[np.ndarray, float, int]:
    """From the Monte Carlo flow's end point to the point of the minimum manifold with the
    charges of θ₀: Gauss-Newton steps on F(θ) = (∇L(θ), θᵀA_jθ − θ₀ᵀA_jθ₀) = 0 with the exact
    cone ∇L and Hessian (least squares, so flat directions no charge fixes take no step;
    halved until ‖F‖ decreases). Returns (θ, ‖∇L(θ)‖, gradient evaluations);
    GradientFlowError when it does not converge to ``tol`` or lands on a saddle."""
    As = _charge_matrices(loss)
    C = np.array([th0 @ A @ th0 for A in As])
    scale = 1.0 + float(np.sum(th0**2))
    start = cones.evaluations

    def residual(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return cones.grad(th[None, :])[0], np.array([th @ A @ th for A in As]) - C

    th = theta.copy()
    g, r = residual(th)
    n, k = th.size, len(As)
    H = None
    history = [float(np.linalg.norm(np.concatenate([g, r])))]
    for step_no in range(_POLISH_STEPS):
        if np.linalg.norm(g) <= tol and np.linalg.norm(r) <= 1e-2 * _CHARGE_RTOL * scale:
            break
        if _polish_hopeless(history, tol, _POLISH_STEPS - step_no):
            break  # refused below, with the residual reached
        # the Newton direction needs H to a few digits: forward differences from the gradient
        # at hand (a quarter of the gradients of the Richardson H the saddle check below uses)
        H = cones.hessian(th, grad0=g)
        J = np.array([2 * (A @ th) for A in As]).reshape(k, n)
        F = np.concatenate([g, r])
        step = np.linalg.lstsq(np.vstack([H, J]), -F, rcond=1e-13)[0]
        m0, t = float(np.linalg.norm(F)), 1.0
        for _h in range(_POLISH_HALVINGS + 1):
            g1, r1 = residual(th + t * step)
            if float(np.linalg.norm(np.concatenate([g1, r1]))) < m0:
                break
            t /= 2
        else:
            break
        th, g, r = th + t * step, g1, r1
        history.append(float(np.linalg.norm(np.concatenate([g, r]))))
    gn = float(np.linalg.norm(g))
    if gn > tol or np.linalg.norm(r) > _CHARGE_RTOL * scale:
        raise GradientFlowError(
            f"Φ(θ₀) is not on a minimum within the accuracy asked: Newton steps with the exact gradient from the Monte "
            f"Carlo flow's end point reach ‖∇L‖ = {gn:.3g} > tol = {tol:g} (charge residual "
            f"{float(np.linalg.norm(r)):.2g}); raise tol or start nearer the minimum manifold"
        )
    if H is not None:
        # a minimum, not a saddle: H is positive semidefinite off the charges' normals
        H = cones.hessian(th)
        J = np.array([2 * (A @ th) for A in As]).reshape(k, n)
        Q = np.linalg.svd(J)[2][np.linalg.matrix_rank(J):] if k else np.eye(n)
        Q = _off_rotations(loss, Q, th)
        lam = np.linalg.eigvalsh(Q @ H @ Q.T) if Q.size else np.zeros(0)
        scale_h = max(1.0, float(np.abs(H).max()))
        low = float(lam.min()) if lam.size else 0.0
        if low < -1e-6 * scale_h:
            raise GradientFlowError(
                f"Newton steps from the Monte Carlo flow's end point land on a saddle of L (Hessian eigenvalue "
                f"{low:.3g} at fixed charges), not on the minimum gradient flow reaches; start nearer the minimum manifold"
            )
        flat = int(np.sum(lam <= 1e-6 * scale_h))
        if flat:
            # the charges do not pin the point: along these minimum-manifold directions the
            # landing point is the Monte Carlo flow's (an error of the sample's size), not Φ(θ₀)
            raise GradientFlowError(
                f"Φ(θ₀) is not determined by the charges: at fixed charges the minimum manifold has {flat} flat "
                "direction(s) no symmetry explains, along which only the flow itself decides where it lands, and the "
                "flow could only run on a Monte Carlo sample (its end point is off by the sample's accuracy there); "
                "start on the minimum manifold"
            )
    return th, gn, cones.evaluations - start


def _off_rotations(loss: Loss, Q: np.ndarray, th: np.ndarray) -> np.ndarray:
    """Rows of ``Q`` (orthonormal) with the directions Jθ of the loss's rotations removed:
    moving along a rotation is a symmetry, not an undetermined direction of Φ(θ₀)."""
    try:
        rots = [np.array(J.tolist(), dtype=float) for J in find_symmetries(loss).rotations]
    except NoetherSymError:
        rots = []
    if not rots or not Q.size:
        return Q
    B = Q @ np.stack([J @ th for J in rots], axis=1)  # rotation directions in Q's coordinates
    U, sv, _ = np.linalg.svd(B, full_matrices=True)
    r = int(np.sum(sv > 1e-9 * max(1e-300, float(sv.max(initial=0.0)))))
    return U[:, r:].T @ Q


def _polish_hopeless(history: list[float], tol: float, steps_left: int) -> bool:
    """Whether Newton's residual norms ``history`` cannot reach ``tol`` in ``steps_left`` more
    steps even at the best rate of its last three: Newton only speeds up near a
    non-degenerate solution, so a residual that shrinks by less than that rate per step
    while still far from ``tol`` is a limit Newton does not resolve (the polish would spend
    its whole budget of Hessians and refuse anyway)."""
    if len(history) < 4 or history[-1] <= tol:
        return False
    rates = [b / a for a, b in zip(history[-4:-1], history[-3:]) if a > 0]
    best = min(rates) if rates else 1.0
    if best <= 0.0:
        return False
    if best >= 1.0:
        return True
    return math.log(tol / history[-1]) / math.log(best) > steps_left


def _refuse_unresolved(loss: Loss, se_fn: Callable | None, theta: np.ndarray, n_end: float, opts: dict[str, Any],
                       how: str) -> None:
    """GradientFlowError when a Monte Carlo flow's end point is not on a minimum within the
    sample's accuracy: the estimate ‖∇L‖ plus 4 standard errors must be ≤ ``tol``."""
    se = se_fn(theta) if se_fn is not None else 0.0
    if n_end + 4 * se <= opts["tol"]:
        return
    # 4 standard errors below tol: the standard error falls as 1/√N
    need = float((opts["n_samples"] or FLOW_SAMPLES) * (4 * se / opts["tol"]) ** 2)
    raise GradientFlowError(
        f"Φ(θ₀) is not on a minimum within the Monte Carlo accuracy: the start is off the minimum manifold and gradient "
        f"flow could only run on a sample ({how}); it stops at ‖∇L‖ = {n_end:.2g} with standard error {se:.2g}, not "
        f"below tol = {opts['tol']:g}, so a prediction from there is not certain (it would balance a point off the "
        f"manifold). Start on the minimum manifold, or give tol ≥ {n_end + 4 * se:.2g} (accepting that distance), or "
        f"n_samples ≈ {need:.3g} to resolve tol (beyond a practical sample for a small tol)"
    )


class _Budget(Exception):
    """Internal: the gradient-evaluation budget is spent (turned into GradientFlowError)."""


class _Stalled(Exception):
    """Internal: the flow time stopped advancing (turned into GradientFlowError)."""


#: gradient evaluations between two checks that the flow time advances, and the least
#: advance (relative to max(1, t)) per check: at 5·10⁻⁴ per 500, doubling the flow time would
#: take more than 10⁶ evaluations, beyond any budget; a short window recognises a flow that
#: slides along a kink after a few hundred evaluations instead of after thousands
_STALL_EVALS = 500
_STALL_RATE = 5e-4

#: nodes at which a loss is not smooth (the explicit Runge-Kutta pair is used there)
_KINKS = (sp.Max, sp.Min, sp.Abs, sp.Heaviside, sp.Piecewise, sp.sign)


def _has_kinks(loss: Loss) -> bool:
    """Whether the per-sample loss has a non-smooth node (ReLU, Abs, ...)."""
    return bool(loss.expr.has(*_KINKS))


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
    if mom is None:
        cones = _cone_route(loss, values)
        if cones is not None:
            return cones.grad, METHOD_FLOW_CONES, None
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
            if T.shape[0] == 1:
                # one point (the solver's right-hand side): Python floats, not arrays of one
                # element, whose per-operation cost is ~10x the arithmetic
                try:
                    return np.array([f(*T[0].tolist())], dtype=float)
                except (OverflowError, ZeroDivisionError):
                    pass  # float ** overflows raise in Python: the array route gives inf/nan
            cols = f(*T.T)
            return np.stack([np.broadcast_to(np.asarray(c, dtype=float), T.shape[:1]) for c in cols], axis=-1)

        return exact_grad, "exact (polynomial moments)", None
    return _sample_gradient(loss, values, n_samples, seed)


def population_hessian(loss: Loss, *, values: Any = None) -> Callable[[np.ndarray], np.ndarray] | None:
    """The population Hessian θ -> H(θ) when ∇L comes from the deterministic cone cubature
    (differences of that ∇L, :class:`~noether_sym.data._piecewise.ConeDerivatives`), else None
    (the flow then differences its own gradient)."""
    cones = _cone_route(loss, values)
    return None if cones is None else cones.hessian


def _cone_route(loss: Loss, values: Any) -> ConeDerivatives | None:
    """Deterministic ∇L of piecewise-linear units on Gaussian data (cached), or None."""
    key = ("flow_cone_route", None if not values else tuple(sorted((str(k), str(v)) for k, v in dict(values).items())))
    if key not in loss._cache:
        try:
            loss._cache[key] = cone_derivatives(loss, values=values)
        except (UnsupportedExpressionError, InvalidArgumentError):
            loss._cache[key] = None
    return loss._cache[key]


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
        # every point of the batch against every row in one generated call (blocks of
        # _MC_BLOCK elements): a flow takes thousands of these, so the per-call cost counts
        return cl.grad_mean(np.asarray(T, dtype=float).reshape(-1, loss.n), X, block=_MC_BLOCK)

    if X is not None and loss.n * loss.n * N <= _HVP_ELEMENTS:
        eye = np.eye(loss.n)[:, None, :]

        def hessian(y: np.ndarray) -> np.ndarray:
            # Hessian-vector products with every unit vector, every row, one call: (n, N, n)
            hv = cl.hvp(np.broadcast_to(y, (loss.n, 1, loss.n)), eye, X[None, :, :])
            H = hv.mean(axis=1)
            return (H + H.T) / 2

        grad.hessian = hessian  # type: ignore[attr-defined]

    def se(th: np.ndarray) -> float:
        if sampler.dataset_size is not None or X is None:
            return 0.0
        g = per_sample(th).reshape(-1, len(th))
        return float(math.sqrt(np.sum(np.var(g, axis=0, ddof=1)) / N))

    return grad, how, se
