"""Theory: where along a symmetry the gradient noise balances (THEORY §5, (E13)–(E18)).

For a generator A and a point θ, move along the orbit θ_λ = e^{λA}θ. By the transport law
(E6) the drift G(λ) = Tr[A Σ(θ_λ)] has the spectral form (E14)

    G(λ) = Σ_i a_i e^{-2λ a_i} s_i,   s_i = Tr[P_i Σ(θ)] ≥ 0,

with A = Σ_i a_i P_i. G decreases, so it has at most one root λ* (the noise equilibrium
θ* = e^{λ*A}θ), found here

* in closed form (E17) when A has two nonzero eigenvalues a > 0 > -b;
* as the unique positive root of a polynomial when the spectrum is rational: with
  a_i = p_i/q and z = e^{-2λ/q}, z^m G is a polynomial in z (exact up to degree 4, else an
  isolated real algebraic number, SymPy ``CRootOf``, to any number of digits);
* otherwise by bracketing (doubling: G is monotone), brentq, and an mpmath polish.

Every λ* comes with a certificate: a bracket [lo, hi] on which G changes sign, checked with
interval arithmetic (``mpmath.iv``) from the exact s_i. With weight decay γ the balance
(E12) is (η/S) G(λ) = 2γ C(λ), C(λ) = Σ a_i e^{2λ a_i} ‖P_iθ‖² increasing (E15): again a
unique root, which restores an equilibrium in the divergent class (E18).

Estimated noise levels. When Σ is estimated (Monte Carlo, or the deterministic cone
cubature of piecewise-linear units with its error estimate), the s_i carry standard errors
and the answer carries them on: a side of A counts as reached only when its noise is more
than ``DECISION_Z`` standard errors above zero; otherwise the class is ``"undetermined"``
(with the Monte Carlo sample size that would decide it), never a guess. A balanced result
has ``lam_se``, ``theta_se``, ``charge_se`` (first order, from the covariance of the s_i
estimates: they share their samples, so their errors are correlated and partly cancel in
λ*) and ``lam_interval`` / ``charge_interval`` (the roots with every s_i moved by
``DECISION_Z`` standard errors the way that lowers / raises λ*; G is monotone in each s_i).
"""


from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .._errors import InvalidArgumentError, InvalidGeneratorError, NoetherSymError
from .._printing import NotebookDisplay, _escape, _latex, _num, _rhs
from ..compile._compiled import compiled
from ..compile._confirm import confirm_generator
from ..data._moments import _MC_CHUNK
from ..data._sample import make_sampler
from ..loss._generators import as_generator
from ..loss._loss import Loss, as_loss
from ._gradient_flow import GradientFlowLimit, gradient_flow_limit
from ._noise import _check_hparams, _exact_theta, _move, _noise_matrix
from ._root import _limit, _root_float, _solve
from ._spectrum import LAMBDA, Spectrum, drift_terms, spectrum

__all__ = ['Equilibrium', 'noise_equilibrium']

#: standard errors (or error estimates) a side's noise must clear before it counts as
#: present; also the width of the reported λ*, charge intervals
DECISION_Z = 4.0



@dataclass
class Equilibrium(NotebookDisplay):
    """The noise equilibrium along one generator (result of :func:`noise_equilibrium`).

    Attributes
    ----------
    kind
        ``"balanced"`` (A indefinite, noise on both signs: unique attractive λ*),
        ``"divergent"`` (A semidefinite: the charge moves monotonically; λ* = ±∞ unless
        weight decay balances it), ``"degenerate"`` (A indefinite but noise on one sign
        only, or no noise along A at all) or, with estimated moments (Monte Carlo, or a
        cubature with an error estimate), ``"undetermined"``: the noise on a side of A is
        within ``DECISION_Z`` standard errors of zero, so the estimate cannot tell a balance
        from a degenerate (or divergent) generator; ``method`` says which side and
        ``needed_samples`` how many Monte Carlo samples would decide it. The class is decided
        only when the interval of the noise levels decides it.
    lam
        λ* as a float (±inf when the flow runs away, nan when every point is stationary).
    theta
        θ* = e^{λ*A}θ, NumPy array in ``loss.params`` order (for λ* = ±∞ the limit
        point: components on growing eigenvalues are ±inf, on shrinking ones 0).
    lam_mp
        λ* to ``digits`` significant digits (mpmath ``mpf``), or None.
    lam_exact
        A SymPy closed form of λ* when one was found, else None.
    bracket
        Certificate (lo, hi): the balance function is > 0 at lo and < 0 at hi, checked
        with interval arithmetic; None when λ* is infinite.
    method
        How λ* was found.
    charge
        C(θ*) = θ*ᵀAθ*.
    eigenvalues, noise, norms
        a_i, s_i = Tr[P_iΣ(θ)] and ‖P_iθ‖² per eigenvalue (exact when possible).
    rate
        Drift of the charge at θ (E12) without weight decay, in units of η/S: G(0).
    exact
        Whether the s_i are exact (symbolic moments) or numeric estimates.
    start
        The projection of the start on the minimum manifold, Φ(θ₀)
        (:class:`~noether_sym.theory._gradient_flow.GradientFlowLimit`: the point, the
        distance |θ₀ − Φ(θ₀)|, ‖∇L(Φ(θ₀))‖, the flow time); θ* is on the orbit of
        ``start.theta``. None when the projection was switched off.
    noise_se
        Standard errors of the s_i (Monte Carlo moments; error estimates of the
        deterministic cubature), else None.
    lam_se, theta_se, charge_se
        With estimated s_i: the standard errors of λ*, θ* and C(θ*) propagated from
        ``noise_se`` (first order: dλ*/ds_i = −a_i e^{−2λ*a_i}/F'(λ*), dθ*/dλ = Aθ*,
        dC/dλ = C'(λ*)); None when the s_i are exact.
    lam_interval, charge_interval
        With estimated s_i: [λ*_lo, λ*_hi] and the matching charges, the roots of the
        balance with every s_i moved by ``DECISION_Z`` standard errors in the direction that
        lowers / raises λ* (G is monotone in each s_i, so these bound λ* over that box; an
        end is ±inf when a side's noise can be zero). None when exact.
    needed_samples
        ``"undetermined"`` from Monte Carlo moments: the sample size at which the unresolved
        side's noise would be ``DECISION_Z`` standard errors from zero (at its present
        estimate), else None.
    """

    kind: str
    lam: float
    theta: np.ndarray
    lam_mp: Any
    lam_exact: Any
    bracket: tuple[Any, Any] | None
    method: str
    charge: float
    eigenvalues: list[Any]
    noise: list[Any]
    norms: list[Any]
    rate: float
    exact: bool
    batch_size: int = 1
    weight_decay: float = 0.0
    lr: float | None = None
    discrete: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    start: GradientFlowLimit | None = None
    noise_se: list[float] | None = None
    lam_se: float | None = None
    theta_se: np.ndarray | None = None
    charge_se: float | None = None
    lam_interval: tuple[float, float] | None = None
    charge_interval: tuple[float, float] | None = None
    needed_samples: int | None = None

    @property
    def projection(self) -> GradientFlowLimit | None:
        """Alias of ``start``: Φ(θ₀), the point the prediction is made from."""
        return self.start

    def relaxation_steps(self, lr: float, batch_size: int | None = None) -> float:
        """SGD steps for the charge to relax toward θ* by a factor e, at learning rate η = ``lr``
        and batch size S (default: the one given to :func:`noise_equilibrium`).

        Along the orbit dC/dk = η²/S·G(λ) − 2ηγC (E12) per step and C increases with λ (E15),
        so near λ* the deviation decays as e^{−k/τ} with τ = C'(λ*) / (η·|(η/S)G'(λ*) − 2γC'(λ*)|)
        ((E14): G' = −2Σa_i²e^{−2λa_i}s_i). ``inf`` when λ* is not finite or G' vanishes (no
        restoring drift: the charge stays where it is), ``nan`` for a degenerate generator
        without noise and for an undetermined one.
        """
        eta = float(lr)
        if not eta > 0:
            raise InvalidArgumentError(f"lr must be > 0; got {lr!r}")
        S = float(self.batch_size if batch_size is None else batch_size)
        if self.discrete:
            S = 1.0  # the discrete drift M_S already holds the minibatch factor (E11)
        if self.kind == "undetermined":
            return math.nan  # no λ* at this accuracy, so no time scale either
        if not math.isfinite(self.lam):
            return math.inf
        a = [float(v) for v in self.eigenvalues]
        s = [float(v) for v in self.noise]
        c = [float(v) for v in self.norms]
        lam = self.lam
        dC = 2 * sum(ai * ai * math.exp(2 * lam * ai) * ci for ai, ci in zip(a, c))
        dG = -2 * sum(ai * ai * math.exp(-2 * lam * ai) * si for ai, si in zip(a, s))
        rate = abs((eta / S) * dG - 2 * float(self.weight_decay) * dC)
        if dC <= 0:
            return math.nan
        return math.inf if rate == 0 else dC / (eta * rate)

    def G(self, lam: float) -> float:
        """G(λ) = Σ a_i e^{-2λa_i} s_i (E14) at a float λ."""
        return float(sum(float(a) * math.exp(-2 * lam * float(a)) * float(s) for a, s in zip(self.eigenvalues, self.noise)))

    def _latex_(self, names: Mapping[Any, str] | None) -> str:
        return equilibrium_latex(self, names)

    def latex(self) -> str:
        """The balance equation and λ* as LaTeX."""
        lam = LAMBDA
        G = sp.Add(*[sp.sympify(a) * sp.exp(-2 * lam * sp.sympify(a)) * sp.Symbol(f"s_{{{k}}}") for k, a in enumerate(self.eigenvalues) if a != 0])
        lines = [r"G(\lambda) = " + sp.latex(G)]
        if self.lam_exact is not None:
            lines.append(r"\lambda^* = " + sp.latex(self.lam_exact))
        lines.append(r"\lambda^* \approx " + (mpmath.nstr(self.lam_mp, 15) if self.lam_mp is not None else str(self.lam)))
        return " \\\\\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "lam": self.lam,
            "lam_digits": None if self.lam_mp is None else mpmath.nstr(self.lam_mp, 30),
            "lam_exact": None if self.lam_exact is None else str(self.lam_exact),
            "theta": [float(t) for t in self.theta],
            # enough digits to show both ends apart (the bracket is ~10^-digits wide)
            "bracket": None if self.bracket is None else [_bracket_str(b) for b in self.bracket],
            "method": self.method,
            "charge": self.charge,
            "eigenvalues": [str(a) for a in self.eigenvalues],
            "noise": [str(s) for s in self.noise],
            "rate": self.rate,
            "exact": self.exact,
            "start": None if self.start is None else self.start.to_dict(),
            "lam_se": self.lam_se,
            "lam_interval": None if self.lam_interval is None else [float(v) for v in self.lam_interval],
            "charge_se": self.charge_se,
            "charge_interval": None if self.charge_interval is None else [float(v) for v in self.charge_interval],
            "needed_samples": self.needed_samples,
        }


def _bracket_str(b: Any) -> str:
    return mpmath.nstr(b, 40) if isinstance(b, mpmath.mpf) else str(b)


def noise_equilibrium(
    loss: Loss,
    A: Any,
    theta: Any,
    *,
    batch_size: int = 1,
    weight_decay: float = 0.0,
    lr: float | None = None,
    digits: int = 30,
    discrete: bool = False,
    check_symmetry: bool = True,
    values: Any = None,
    n_samples: int | None = None,
    seed: int = 0,
    project: bool = True,
    flow_tol: float = 1e-9,
) -> Equilibrium:
    """The noise equilibrium of SGD along the symmetry generated by ``A`` (THEORY §5).

    Parameters
    ----------
    loss
        The loss, with a data model (random symbols or a dataset).
    A
        A symmetric generator (n x n, e.g. one of ``find_symmetries(loss).generators``).
    theta
        Starting point θ (mapping symbol -> number, or a sequence in params order).
    batch_size
        S; enters only with weight decay or ``discrete`` (without them λ* does not depend
        on η or S).
    weight_decay
        γ ≥ 0; with γ > 0 the balance is (η/S) G(λ) = 2γ C(λ) and ``lr`` is required.
        This moves along the orbit of θ only; weight decay also pulls θ off the minimum
        manifold, which the orbit picture ignores: for a balanced generator the prediction
        carries an O(γ) error (THEORY §7.1 at γ = 0.003, η = 0.01: SGD settles 2.2% below the
        prediction, the same at η = 0.005; notebooks/03_anisotropic_weight_decay). For scale
        invariance (A = I, (E18)) the orbit is the whole story.
    lr
        η.
    digits
        Significant digits of ``lam_mp``.
    discrete
        Use the discrete-time drift M_S = ∇L∇Lᵀ + Σ/S (E11) instead of Σ (E12).
    check_symmetry
        Confirm exactly that A generates a symmetry of the loss (else InvalidGeneratorError).
    values
        Numbers for symbolic distribution parameters.
    n_samples, seed
        Monte Carlo sample size and seed when the moments are not exact.
    project
        Predict from Φ(θ), the limit of gradient flow on the population loss from θ
        (:func:`~noether_sym.theory._gradient_flow.gradient_flow_limit`; THEORY §5): SGD
        falls to the minimum manifold long before the charges move, and the flow conserves
        every charge (E9). A θ already on the manifold (‖∇L(θ)‖ ≤ ``flow_tol``) is used as
        it is. Weight decay is not part of the flow (it acts on the slow time scale of the
        charges, where the balance (E18) accounts for it). ``project=False``: the orbit of
        θ itself (a statement about that orbit, not about SGD from θ).
    flow_tol
        Gradient-norm tolerance of the projection.

    Returns
    -------
    Equilibrium

    Raises
    ------
    GradientFlowError
        Gradient flow from θ does not settle (no reachable minimum).
    InvalidArgumentError
        θ has non-finite entries.

    Examples
    --------
    THEORY §7.1: f(x) = u(wᵀx), Σ_x = diag(1, 4, 1/4), β = (1, -1/2, 2), σ² = 1/2.

    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w0, w1, w2 = sp.symbols("u w0 w1 w2")
    >>> x = [Normal("x0", 0, 1), Normal("x1", 0, 2), Normal("x2", 0, sp.Rational(1, 2))]
    >>> eps = Normal("eps", 0, sp.sqrt(sp.Rational(1, 2)))
    >>> y = x[0] - x[1] / 2 + 2 * x[2] + eps
    >>> loss = ns.Loss((u * (w0 * x[0] + w1 * x[1] + w2 * x[2]) - y) ** 2, [u, w0, w1, w2])
    >>> A = sp.diag(1, -1, -1, -1)
    >>> eq = ns.noise_equilibrium(loss, A, {u: 2, w0: sp.Rational(1, 2), w1: -sp.Rational(1, 4), w2: 1})
    >>> eq.kind, round(eq.lam, 4), round(float(eq.theta[0]) ** 2, 4)
    ('balanced', -0.8331, 0.7559)
    >>> eq.lam_exact
    -log(28)/4
    """
    loss = as_loss(loss)
    hp = _check_hparams(batch_size, weight_decay, lr, digits)
    Am = _generator(loss, A, check_symmetry)
    th = loss.theta_vector(theta)
    start = None
    if project:
        start = gradient_flow_limit(loss, th, tol=flow_tol, values=values, n_samples=n_samples, seed=seed)
        if start.moved:
            theta, th = start.theta, start.theta.copy()
    theta_exact = _exact_theta(loss, theta, th)
    spec = spectrum(Am)
    Sigma, exact, info = _noise_matrix(loss, theta_exact, hp["batch_size"], discrete, n_samples, seed, values)
    s_list, c_list = drift_terms(spec, Sigma, theta_exact if exact else th)
    exact = exact and spec.rational
    s_se = _noise_se(spec, info) if not exact else None
    s_cov = _noise_covariance(loss, spec, th, info, n_samples, seed, values) if s_se is not None else None
    s_se = s_se if s_cov is None else [float(v) for v in np.sqrt(np.maximum(np.diag(s_cov), 0.0))]
    kind, reach_pos, reach_neg = _classify(spec, s_list, exact, s_se, s_cov)
    gamma, eta = hp["weight_decay"], hp["lr"]
    coef = sp.Integer(0) if gamma == 0 else sp.Rational(eta) / hp["batch_size"]  # (η/S)G - 2γC = 0
    a_f, s_f, c_f = spec.floats, [float(v) for v in s_list], [float(v) for v in c_list]
    rate = float(sum(a * s for a, s in zip(a_f, s_f)))
    has_root = kind == "balanced" or (gamma > 0 and (reach_pos or reach_neg) and any(c > 0 for a, c in zip(a_f, c_f) if a != 0))
    if has_root:
        # exact values of the binary floats, so the polynomial route and the certificate agree
        lam_mp, lam_exact, bracket, method = _solve(spec, s_list, c_list, gamma, coef, hp["digits"], exact)
        lam = float(lam_mp)
        theta_star = _move(spec, th, lam)
    elif kind == "undetermined":
        lam_mp = lam_exact = bracket = None
        (lam, theta_star), (method, needed) = (math.nan, th.copy()), _undetermined_reason(spec, s_list, s_se, info, s_cov)
    else:
        lam_mp = lam_exact = bracket = None
        lam, theta_star, method = _no_root(spec, th, kind, reach_pos or reach_neg, rate)
    unc = _uncertainty(spec, th, a_f, s_f, c_f, s_se, gamma, float(coef), lam, kind, s_cov) if s_se is not None else {}
    if kind == "undetermined":
        unc["needed_samples"] = needed
    return Equilibrium(
        kind=kind,
        lam=lam,
        theta=theta_star,
        lam_mp=lam_mp,
        lam_exact=lam_exact,
        bracket=bracket,
        method=method,
        charge=_charge(a_f, c_f, lam, c_list),
        eigenvalues=list(spec.eigenvalues),
        noise=list(s_list),
        norms=list(c_list),
        rate=rate,
        exact=exact,
        batch_size=hp["batch_size"],
        weight_decay=gamma,
        lr=eta,
        discrete=discrete,
        details=dict(info),
        start=start,
        noise_se=s_se,
        **unc,
    )


def _generator(loss: Loss, A: Any, check_symmetry: bool) -> sp.Matrix:
    """A as an exact symmetric matrix, confirmed as a symmetry of the loss when asked."""
    Am = as_generator(A, loss.n, symmetry="symmetric", rational=False, nonzero=True)
    if check_symmetry:
        ok, why = confirm_generator(loss, Am)
        if not ok:
            raise InvalidGeneratorError(f"A is not a symmetry generator of this loss: {why}")
    return Am


def _noise_se(spec: Spectrum, info: Mapping[str, Any]) -> list[float] | None:
    """Standard errors of s_i = Tr[P_iΣ] from those of Σ's entries (Monte Carlo moments;
    entries treated as independent), or None when the moments carry none."""
    se = (info.get("standard_error") or {}).get("covariance")
    if se is None:
        return None
    se = np.asarray(se, dtype=float)
    factor = float(sp.Rational(info["discrete_factor"])) if "discrete_factor" in info else 1.0
    out = []
    for P in spec.projectors:
        Pn = np.array(P.tolist(), dtype=float) if isinstance(P, sp.MatrixBase) else np.asarray(P, dtype=float)
        out.append(factor * float(np.sqrt(np.sum((Pn * se) ** 2))))
    return out


def _sides(spec: Spectrum, s_list: list[Any], s_se: list[float],
           s_cov: np.ndarray | None = None) -> dict[int, tuple[float, float]]:
    """(noise, its standard error) summed over the positive (+1) and negative (−1) eigenspaces
    (with the covariance of the s_i when known, else treating them as independent)."""
    out = {}
    for sign in (1, -1):
        idx = [i for i, a in enumerate(spec.floats) if a * sign > 0]
        s = sum(float(s_list[i]) for i in idx)
        if s_cov is not None:
            e = math.sqrt(max(0.0, float(s_cov[np.ix_(idx, idx)].sum()))) if idx else 0.0
        else:
            e = math.sqrt(sum(float(s_se[i]) ** 2 for i in idx))
        out[sign] = (s, e)
    return out


def _noise_covariance(loss: Loss, spec: Spectrum, th: np.ndarray, info: Mapping[str, Any], n_samples: int | None,
                      seed: int, values: Any) -> np.ndarray | None:
    """Covariance of the Monte Carlo estimates of the s_i = Tr[P_iΣ] (None for other moments).

    The s_i share their samples (every sample that reaches one eigenspace usually reaches the
    others), so their errors are correlated and largely cancel in λ* (E17); treating them as
    independent overstates the error of λ* several-fold. This redraws the sample of
    :func:`~noether_sym.moments` (same seed, same chunks) and takes the covariance of the
    per-sample terms t_ik = (g_k − ḡ)ᵀP_i(g_k − ḡ).
    """
    if "monte carlo" not in str(info.get("moments", "")).lower() or not info.get("n_samples"):
        return None
    try:
        sampler = make_sampler(loss, values=values)
    except NoetherSymError:
        return None
    if sampler.dataset_size is not None:
        return None
    N = int(info["n_samples"])
    rng = np.random.default_rng(seed)
    cl = compiled(loss)
    Ps = [np.array(P.tolist(), dtype=float) if isinstance(P, sp.MatrixBase) else np.asarray(P, dtype=float)
          for P in spec.projectors]
    G = []
    done = 0
    while done < N:  # the chunks of data/_moments.py's Monte Carlo route
        m = min(_MC_CHUNK, N - done)
        G.append(cl.grad(th, sampler.draw(rng, (m,))))
        done += m
    g = np.concatenate(G)
    c = g - g.mean(axis=0)
    t = np.stack([np.einsum("kj,jl,kl->k", c, P, c) for P in Ps], axis=1)  # (N, m)
    factor = float(sp.Rational(info["discrete_factor"])) if "discrete_factor" in info else 1.0
    return factor**2 * np.atleast_2d(np.cov(t, rowvar=False)) / N


def _undetermined_reason(spec: Spectrum, s_list: list[Any], s_se: list[float], info: Mapping[str, Any],
                         s_cov: np.ndarray | None = None) -> tuple[str, int | None]:
    """Why the class is undetermined, and the Monte Carlo sample size that would decide it."""
    mc = "monte carlo" in str(info.get("moments", "")).lower()
    N = info.get("n_samples")
    parts, needed = [], None
    for sign, (s, e) in _sides(spec, s_list, s_se, s_cov).items():
        if not (e > 0 and s <= DECISION_Z * e):
            continue
        name = "positive" if sign > 0 else "negative"
        what = "standard errors" if mc else "error estimates"
        parts.append(f"the noise on the {name} eigenspace of A, s = {s:.3g}, is within {DECISION_Z:g} {what} "
                     f"({DECISION_Z * e:.3g}) of zero")
        if mc and N:
            # e ∝ 1/√N: at the present estimate, s = 1.25·Z·e needs N·(1.25·Z·e/s)² samples
            k = 100 * int(N) if s <= 0 else max(4 * int(N), math.ceil(N * (1.25 * DECISION_Z * e / s) ** 2))
            needed = max(needed or 0, k)
    if mc and needed:
        fix = f"about {needed:,} Monte Carlo samples (n_samples=) would decide it (now {int(N):,})"
    elif mc:
        fix = "more Monte Carlo samples (n_samples=) would decide it"
    else:
        fix = "a finer cubature or exact moments would decide it"
    return ("undetermined at this accuracy: " + "; ".join(parts) + ", so the estimate cannot tell a balance from a "
            f"degenerate generator; {fix}"), needed


def _uncertainty(spec: Spectrum, th: np.ndarray, a_f: list[float], s_f: list[float], c_f: list[float],
                 s_se: list[float], gamma: float, coef: float, lam: float, kind: str,
                 s_cov: np.ndarray | None = None) -> dict[str, Any]:
    """λ*, θ*, C(θ*) standard errors (first order) and the DECISION_Z box interval of λ* and C."""
    out: dict[str, Any] = {}
    se = [float(v) for v in s_se]
    k = coef if gamma else 1.0
    # G increases with s_i for a_i > 0 and decreases for a_i < 0, so λ* moves the same way
    lo_s = [max(0.0, s - DECISION_Z * e) if a > 0 else s + DECISION_Z * e for a, s, e in zip(a_f, s_f, se)]
    hi_s = [s + DECISION_Z * e if a > 0 else max(0.0, s - DECISION_Z * e) for a, s, e in zip(a_f, s_f, se)]
    if kind in ("balanced", "undetermined") or (gamma > 0 and math.isfinite(lam)):
        lo = _root_float(a_f, lo_s, c_f, gamma, k)
        hi = _root_float(a_f, hi_s, c_f, gamma, k)
        out["lam_interval"] = (lo, hi)
        out["charge_interval"] = (_charge(a_f, c_f, lo), _charge(a_f, c_f, hi))
    if math.isfinite(lam):
        dG = -2 * sum(a * a * math.exp(-2 * lam * a) * s for a, s in zip(a_f, s_f))
        dC = 2 * sum(a * a * math.exp(2 * lam * a) * c for a, c in zip(a_f, c_f))
        dF = k * dG - 2 * gamma * dC
        if dF != 0:
            dlam = [k * a * math.exp(-2 * lam * a) / dF for a in a_f]
            if s_cov is not None:
                dv = np.array(dlam)
                lam_se = math.sqrt(max(0.0, float(dv @ s_cov @ dv)))
            else:
                lam_se = math.sqrt(sum((d * e) ** 2 for d, e in zip(dlam, se)))
            An = sum((a * (np.array(P.tolist(), dtype=float) if isinstance(P, sp.MatrixBase) else P)
                      for a, P in zip(a_f, spec.projectors)), np.zeros((th.size, th.size)))
            out["lam_se"] = lam_se
            out["theta_se"] = np.abs(An @ _move(spec, th, lam)) * lam_se
            out["charge_se"] = abs(dC) * lam_se
    return out


def _classify(spec: Spectrum, s_list: list[Any], exact: bool, s_se: list[float] | None = None,
              s_cov: np.ndarray | None = None) -> tuple[str, bool, bool]:
    """The class of A at θ and whether noise reaches its positive / negative eigenspaces
    (exactly when the s_i are exact, else above 1e-14 of the largest and, with Monte Carlo
    moments, above DECISION_Z standard errors on that side: a side whose noise the estimate
    cannot tell from zero makes the class "undetermined", neither balanced nor degenerate)."""
    if not exact and s_se is not None:
        side, unresolved = {}, False
        for sign, (s, e) in _sides(spec, s_list, s_se, s_cov).items():
            side[sign] = s > DECISION_Z * e and s > 0
            # a side is silent only when the estimate is exactly zero with zero error (every
            # sample's gradient has no component there); noise within Z errors of zero is unresolved
            unresolved |= not side[sign] and e > 0
        reach_pos, reach_neg = side[1], side[-1]
        if reach_pos and reach_neg:
            return "balanced", True, True
        if unresolved:
            return "undetermined", reach_pos, reach_neg
        if spec.is_semidefinite() and (reach_pos or reach_neg):
            return "divergent", reach_pos, reach_neg
        return "degenerate", reach_pos, reach_neg
    if exact:
        reach_pos = any(a > 0 and s > 0 for a, s in zip(spec.eigenvalues, s_list))
        reach_neg = any(a < 0 and s > 0 for a, s in zip(spec.eigenvalues, s_list))
    else:
        s_f = [float(v) for v in s_list]
        scale = max([abs(v) for v in s_f] + [1e-300])
        reach_pos = any(a > 0 and s > 1e-14 * scale for a, s in zip(spec.floats, s_f))
        reach_neg = any(a < 0 and s > 1e-14 * scale for a, s in zip(spec.floats, s_f))
    if reach_pos and reach_neg:
        kind = "balanced"
    elif spec.is_semidefinite() and (reach_pos or reach_neg):
        kind = "divergent"
    else:
        kind = "degenerate"
    return kind, reach_pos, reach_neg


def _no_root(spec: Spectrum, th: np.ndarray, kind: str, noisy: bool, rate: float) -> tuple[float, np.ndarray, str]:
    """λ*, θ* and the method when the balance has no finite root."""
    if kind == "degenerate" and not noisy:
        return math.nan, th.copy(), "no noise along A: every point of the orbit is stationary"
    lam = math.inf if rate > 0 else -math.inf
    return lam, _limit(spec, th, lam), "G has one sign on the whole orbit: the charge drifts forever"


def _charge(a_f: list[float], c_f: list[float], lam: float, c_exact: list[Any] | None = None) -> float:
    """C(θ*) = Σ a_i e^{2λ*a_i} ‖P_iθ‖², or its limit (±inf, nan) for an infinite λ*.

    Summed in mpmath (unbounded exponent range): at θ = (1e200, 1e-200) the factors
    e^{2λ*a_i} and ‖P_iθ‖² overflow and underflow in floats while their product is of order 1.
    """
    if math.isfinite(lam):
        cs = c_exact if c_exact is not None else c_f
        total = mpmath.fsum(mpmath.mpf(a) * mpmath.exp(2 * mpmath.mpf(lam) * mpmath.mpf(a))
                            * mpmath.mpf(str(sp.N(c, 20)) if isinstance(c, sp.Basic) else c)
                            for a, c in zip(a_f, cs))
        return float(total)
    if lam > 0 and any(a > 0 and c > 0 for a, c in zip(a_f, c_f)):
        return math.inf
    if lam < 0 and any(a < 0 and c > 0 for a, c in zip(a_f, c_f)):
        return -math.inf
    return math.nan


def equilibrium_latex(eq: Any, names: Mapping[Any, str] | None = None) -> str:
    """The balance function G (E14) with its exact noise levels, λ* (closed form (E17) when
    found, digits always) and the class of the generator."""


    terms = [sp.sympify(a) * sp.exp(-2 * LAMBDA * sp.sympify(a)) * sp.sympify(s) for a, s in zip(eq.eigenvalues, eq.noise) if a != 0]
    G = sp.Add(*terms)
    rows = [f"G(\\lambda) &= {_rhs(G, names)} && \\text{{(E14)}}"]
    gamma = float(getattr(eq, "weight_decay", 0.0) or 0.0)
    if gamma > 0:
        # with weight decay the balance is (η/S) G(λ) = 2γ C(λ), C(λ) = Σ a e^{2λa} ‖P θ‖² (E15), (E18)
        C = sp.Add(*[sp.sympify(a) * sp.exp(2 * LAMBDA * sp.sympify(a)) * sp.sympify(c)
                     for a, c in zip(eq.eigenvalues, eq.norms) if a != 0])
        rows.append(f"C(\\lambda) &= {_rhs(C, names)} && \\text{{(E15)}}")
        rows.append(f"\\frac{{\\eta}}{{S}}\\,G(\\lambda^*) &= 2\\gamma\\, C(\\lambda^*), \\quad \\eta = {_num(eq.lr)},"
                    f"\\ S = {eq.batch_size},\\ \\gamma = {_num(gamma)} && \\text{{(E18)}}")
    if eq.lam_exact is not None:
        tag = "(E17)" if gamma == 0 and "E17" in (eq.method or "") else "exact"
        rows.append(f"\\lambda^* &= {_latex(eq.lam_exact, names)} && \\text{{{tag}}}")
    val = mpmath.nstr(eq.lam_mp, 20) if eq.lam_mp is not None else _num(eq.lam)
    rows.append(f"\\lambda^* &\\approx {val}")
    if eq.bracket is not None:
        # as many digits as λ* itself
        # the bracket is ~10^-digits wide: print enough digits to show its two ends apart
        lo, hi = (mpmath.nstr(b, 40) if isinstance(b, mpmath.mpf) else _num(b, 17) for b in eq.bracket)
        # the two ends on their own rows: side by side they are wider than the page
        rows.append(f"\\lambda^* &\\ge {lo} \\\\\n\\lambda^* &\\le {hi} && \\text{{certified bracket}}")
    out = [r"\begin{align*}", " \\\\\n".join(rows), r"\end{align*}"]
    out.append(f"Class: {eq.kind}; method: {_escape(eq.method)}.")
    return "\n".join(out)
