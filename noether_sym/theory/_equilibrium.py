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
"""


from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .._errors import InvalidGeneratorError
from .._printing import _escape, _latex, _num, _rhs
from ..compile._confirm import confirm_generator
from ..loss._generators import as_generator
from ..loss._loss import Loss, as_loss
from ._noise import _check_hparams, _exact_theta, _move, _noise_matrix
from ._root import _limit, _solve
from ._spectrum import LAMBDA, Spectrum, drift_terms, spectrum

__all__ = ['Equilibrium', 'noise_equilibrium']



@dataclass
class Equilibrium:
    """The noise equilibrium along one generator (result of :func:`noise_equilibrium`).

    Attributes
    ----------
    kind
        ``"balanced"`` (A indefinite, noise on both signs: unique attractive λ*),
        ``"divergent"`` (A semidefinite: the charge moves monotonically; λ* = ±∞ unless
        weight decay balances it) or ``"degenerate"`` (A indefinite but noise on one sign
        only, or no noise along A at all).
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

    Returns
    -------
    Equilibrium

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
    theta_exact = _exact_theta(loss, theta, th)
    spec = spectrum(Am)
    Sigma, exact, info = _noise_matrix(loss, theta_exact, hp["batch_size"], discrete, n_samples, seed, values)
    s_list, c_list = drift_terms(spec, Sigma, theta_exact if exact else th)
    exact = exact and spec.rational
    kind, reach_pos, reach_neg = _classify(spec, s_list, exact)
    gamma, eta = hp["weight_decay"], hp["lr"]
    a_f, s_f, c_f = spec.floats, [float(v) for v in s_list], [float(v) for v in c_list]
    rate = float(sum(a * s for a, s in zip(a_f, s_f)))
    has_root = kind == "balanced" or (gamma > 0 and (reach_pos or reach_neg) and any(c > 0 for a, c in zip(a_f, c_f) if a != 0))
    if has_root:
        # exact values of the binary floats, so the polynomial route and the certificate agree
        coef = sp.Integer(0) if gamma == 0 else sp.Rational(eta) / hp["batch_size"]  # (η/S)G - 2γC = 0
        lam_mp, lam_exact, bracket, method = _solve(spec, s_list, c_list, gamma, coef, hp["digits"], exact)
        lam = float(lam_mp)
        theta_star = _move(spec, th, lam)
    else:
        lam_mp = lam_exact = bracket = None
        lam, theta_star, method = _no_root(spec, th, kind, reach_pos or reach_neg, rate)
    return Equilibrium(
        kind=kind,
        lam=lam,
        theta=theta_star,
        lam_mp=lam_mp,
        lam_exact=lam_exact,
        bracket=bracket,
        method=method,
        charge=_charge(a_f, c_f, lam),
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
    )


def _generator(loss: Loss, A: Any, check_symmetry: bool) -> sp.Matrix:
    """A as an exact symmetric matrix, confirmed as a symmetry of the loss when asked."""
    Am = as_generator(A, loss.n, symmetry="symmetric", rational=False, nonzero=True)
    if check_symmetry:
        ok, why = confirm_generator(loss, Am)
        if not ok:
            raise InvalidGeneratorError(f"A is not a symmetry generator of this loss: {why}")
    return Am


def _classify(spec: Spectrum, s_list: list[Any], exact: bool) -> tuple[str, bool, bool]:
    """The class of A at θ and whether noise reaches its positive / negative eigenspaces
    (exactly when the s_i are exact, else above 1e-14 of the largest)."""
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


def _charge(a_f: list[float], c_f: list[float], lam: float) -> float:
    """C(θ*) = Σ a_i e^{2λ*a_i} ‖P_iθ‖², or its limit (±inf, nan) for an infinite λ*."""
    if math.isfinite(lam):
        return float(sum(a * math.exp(2 * lam * a) * c for a, c in zip(a_f, c_f)))
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
        rows.append(f"\\lambda^* &\\in \\big[{lo},\\ {hi}\\big] && \\text{{certified bracket}}")
    out = [r"\begin{align*}", " \\\\\n".join(rows), r"\end{align*}"]
    out.append(f"Class: {eq.kind}; method: {_escape(eq.method)}.")
    return "\n".join(out)
