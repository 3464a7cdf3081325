"""Equilibrium: where along a symmetry the gradient noise balances (THEORY §5, (E13)–(E18)).

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
from dataclasses import dataclass, field
from typing import Any, Callable

import mpmath
import numpy as np
import sympy as sp
from scipy.optimize import brentq

from ._errors import CertificationError, InvalidArgumentError, InvalidGeneratorError
from ._loss import Loss, as_loss

__all__ = [
    "Spectrum",
    "Equilibrium",
    "spectrum",
    "noise_equilibrium",
    "drift_terms",
    "ETA",
    "BATCH",
    "GAMMA",
    "LAMBDA",
]

#: symbols of the hyper-parameters in derived formulas
ETA = sp.Symbol("eta", positive=True)
BATCH = sp.Symbol("S", positive=True)
GAMMA = sp.Symbol("gamma", nonnegative=True)
LAMBDA = sp.Symbol("lambda", real=True)


# ------------------------------------------------------------------------------------------
# Spectrum of a generator
# ------------------------------------------------------------------------------------------


@dataclass
class Spectrum:
    """A = Σ_i a_i P_i: distinct eigenvalues and orthogonal projectors (n x n).

    ``eigenvalues`` are exact SymPy numbers when ``exact`` (rational or algebraic from the
    connected blocks of A), and ``projectors`` exact rational matrices when every
    eigenvalue is rational (else float arrays).
    """

    eigenvalues: list[Any]
    projectors: list[Any]
    exact: bool
    rational: bool

    @property
    def floats(self) -> list[float]:
        return [float(a) for a in self.eigenvalues]

    def is_semidefinite(self) -> bool:
        fl = [a for a in self.floats if a != 0]
        return all(a > 0 for a in fl) or all(a < 0 for a in fl)


def _as_sym_matrix(A: Any, n: int) -> sp.Matrix:
    from ._loss import matrix_from_user

    M = matrix_from_user(A)
    if M.shape != (n, n):
        raise InvalidGeneratorError(f"the generator must be {n}x{n} (one row per parameter); got {M.shape[0]}x{M.shape[1]}")
    M = M.applyfunc(lambda v: sp.Rational(v) if isinstance(v, sp.Float) else v)
    if any(not v.is_number or v.is_real is False for v in M):
        raise InvalidGeneratorError("the generator must have real numeric entries")
    if M != M.T:
        raise InvalidGeneratorError(
            "the generator must be symmetric (A = Aᵀ); exponential symmetries in THEORY (E3) use "
            "symmetric A — antisymmetric members are rotations and carry no charge"
        )
    if M.is_zero_matrix:
        raise InvalidGeneratorError("the generator is the zero matrix")
    return M


_SPECTRUM_CACHE: dict[Any, Spectrum] = {}


def spectrum(A: sp.Matrix) -> Spectrum:
    """Exact eigen-decomposition of a symmetric A, block by block (connected components)."""
    key = (A.shape, tuple(sorted((k, str(v)) for k, v in A.todok().items() if v != 0)))
    if key not in _SPECTRUM_CACHE:
        if len(_SPECTRUM_CACHE) > 256:
            _SPECTRUM_CACHE.clear()
        _SPECTRUM_CACHE[key] = _spectrum(A)
    return _SPECTRUM_CACHE[key]


def _spectrum(A: sp.Matrix) -> Spectrum:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    n = A.shape[0]
    D = {k: v for k, v in A.todok().items() if v != 0}
    rows = [i for i, _ in D] + list(range(n))
    cols = [j for _, j in D] + list(range(n))
    ncomp, labels = connected_components(csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)
    groups: dict[Any, list[tuple[np.ndarray, list]]] = {}
    exact = True
    for c in range(ncomp):
        idx = [int(i) for i in np.nonzero(labels == c)[0]]
        sub = A.extract(idx, idx)
        if len(idx) <= 6 or sub.is_diagonal():
            for val, _, vecs in sub.eigenvects():
                basis = sp.Matrix.hstack(*vecs) if vecs else sp.zeros(len(idx), 0)
                groups.setdefault(sp.nsimplify(val) if val.is_Float else val, []).append((np.array(idx), basis))
        else:
            exact = False
            w, V = np.linalg.eigh(np.array(sub.tolist(), dtype=float))
            order = np.argsort(w)
            w, V = w[order], V[:, order]
            k = 0
            while k < len(w):
                j = k
                while j + 1 < len(w) and abs(w[j + 1] - w[k]) < 1e-9 * max(1.0, abs(w[k])):
                    j += 1
                groups.setdefault(float(np.mean(w[k : j + 1])), []).append((np.array(idx), V[:, k : j + 1]))
                k = j + 1
    # merge numerically equal eigenvalues across blocks
    merged: dict[Any, list] = {}
    for val, parts in groups.items():
        key = None
        for k2 in merged:
            if abs(float(k2) - float(val)) < 1e-12 * max(1.0, abs(float(val))) and (
                not isinstance(k2, sp.Basic) or not isinstance(val, sp.Basic) or sp.simplify(k2 - val) == 0
            ):
                key = k2
                break
        merged.setdefault(val if key is None else key, []).extend(parts)
    eigs = sorted(merged, key=lambda v: float(v))
    rational = exact and all(isinstance(v, sp.Basic) and v.is_Rational for v in eigs)
    projs = []
    for val in eigs:
        if rational:
            P = sp.zeros(n, n)
            for idx, basis in merged[val]:
                B = sp.Matrix(basis)
                Pb = B * (B.T * B).inv() * B.T
                for a, ia in enumerate(idx):
                    for b, ib in enumerate(idx):
                        if Pb[a, b] != 0:
                            P[int(ia), int(ib)] = Pb[a, b]
            projs.append(P)
        else:
            P = np.zeros((n, n))
            for idx, basis in merged[val]:
                B = np.array(sp.Matrix(basis).evalf().tolist(), dtype=float) if isinstance(basis, sp.MatrixBase) else basis
                Q, _ = np.linalg.qr(B)
                P[np.ix_(idx, idx)] += Q @ Q.T
            projs.append(P)
    return Spectrum(eigenvalues=eigs, projectors=projs, exact=exact, rational=rational)


# ------------------------------------------------------------------------------------------
# The drift along the orbit
# ------------------------------------------------------------------------------------------


def drift_terms(spec: Spectrum, Sigma: Any, theta: np.ndarray | sp.Matrix) -> tuple[list, list]:
    """(s_i = Tr[P_i Σ], c_i = ‖P_iθ‖²) per eigenvalue; exact when the inputs are."""
    s, c = [], []
    exact = spec.rational and isinstance(Sigma, sp.MatrixBase) and isinstance(theta, sp.MatrixBase)
    for P in spec.projectors:
        if exact:
            s.append(sp.Add(*[P[i, j] * Sigma[j, i] for (i, j) in P.todok()]))
            Pt = P * theta
            c.append(sp.expand((Pt.T * Pt)[0, 0]))
        else:
            Pn = np.array(P.tolist(), dtype=float) if isinstance(P, sp.MatrixBase) else P
            Sn = np.array(Sigma.tolist(), dtype=float) if isinstance(Sigma, sp.MatrixBase) else np.asarray(Sigma, float)
            tn = np.array(theta.tolist(), dtype=float).ravel() if isinstance(theta, sp.MatrixBase) else np.asarray(theta, float)
            s.append(float(np.trace(Pn @ Sn)))
            v = Pn @ tn
            c.append(float(v @ v))
    return s, c


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


def _check_hparams(batch_size: Any, weight_decay: Any, lr: Any) -> None:
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive integer; got {batch_size!r}")
    for name, v in (("weight_decay", weight_decay), ("lr", lr)):
        if v is None:
            continue
        try:
            fv = float(v)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{name} must be a number; got {v!r}") from None
        if not math.isfinite(fv) or fv < 0:
            raise InvalidArgumentError(f"{name} must be finite and non-negative; got {v!r}")
    if lr is not None and float(lr) == 0:
        raise InvalidArgumentError("lr must be positive")


def _noise_matrix(loss: Loss, theta_vec: sp.Matrix, batch_size: int, discrete: bool, n_samples: int | None, seed: int, values: Any) -> tuple[Any, bool, dict]:
    """Σ(θ) (or the discrete M_S = ∇L∇Lᵀ + Σ/S), exact when the moments are."""
    from ._data import minibatch_factor, moments

    key = ("noise_matrix", tuple(theta_vec), batch_size, discrete, n_samples, seed,
           None if not values else tuple(sorted((str(k), str(v)) for k, v in values.items())))
    if key in loss._cache:
        return loss._cache[key]
    out = _noise_matrix_uncached(loss, theta_vec, batch_size, discrete, n_samples, seed, values)
    loss._cache[key] = out
    return out


def _noise_matrix_uncached(loss: Loss, theta_vec: sp.Matrix, batch_size: int, discrete: bool, n_samples: int | None, seed: int, values: Any) -> tuple[Any, bool, dict]:
    from ._data import minibatch_factor, moments

    info: dict[str, Any] = {}
    try:
        mom = moments(loss, values=values)
        exact = mom.exact and isinstance(mom.covariance, sp.MatrixBase) and mom.theta is None
    except Exception as exc:  # noqa: BLE001 - fall back to numeric moments below
        if type(exc).__name__ in ("InvalidDataError",):
            raise
        mom, exact = None, False
    if mom is not None and exact:
        mom_at = mom.at(list(theta_vec), values=values)
        Sigma, g = mom_at.covariance, mom_at.mean_grad
        free = set().union(*[e.free_symbols for e in Sigma]) if Sigma.shape[0] else set()
        if free:
            raise InvalidArgumentError(
                f"the noise covariance depends on symbol(s) {', '.join(sorted(map(str, free)))}; "
                "give them numbers with values={symbol: number}"
            )
        info["moments"] = mom.method
    else:
        mom = moments(loss, theta=np.array([float(v) for v in theta_vec]), n_samples=n_samples, seed=seed, values=values)
        Sigma = np.asarray(mom.covariance, dtype=float)
        g = np.asarray(mom.mean_grad, dtype=float)
        exact = False
        info["moments"] = mom.method
        info["standard_error"] = mom.standard_error
    if discrete:
        N = loss.n_samples
        factor = minibatch_factor(batch_size, N, replace=N is None) if N is not None else sp.Rational(1, batch_size)
        if isinstance(Sigma, sp.MatrixBase):
            Sigma = g * g.T + Sigma * factor
        else:
            Sigma = np.outer(g, g) + Sigma * float(factor)
        info["discrete_factor"] = str(factor)
    return Sigma, exact, info


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
    _check_hparams(batch_size, weight_decay, lr)
    if float(weight_decay) > 0 and lr is None:
        raise InvalidArgumentError("with weight decay the balance (η/S)G = 2γC involves η: pass lr=...")
    if not isinstance(digits, (int, np.integer)) or not 5 <= digits <= 1000:
        raise InvalidArgumentError(f"digits must be an integer in [5, 1000]; got {digits!r}")
    n = loss.n
    Am = _as_sym_matrix(A, n)
    if check_symmetry:
        from ._symmetry import confirm_generator

        ok, why = confirm_generator(loss, Am)
        if not ok:
            raise InvalidGeneratorError(f"A is not a symmetry generator of this loss: {why}")
    th = loss.theta_vector(theta)
    theta_exact = _exact_theta(loss, theta, th)
    spec = spectrum(Am)
    Sigma, exact, info = _noise_matrix(loss, theta_exact, batch_size, discrete, n_samples, seed, values)
    s_list, c_list = drift_terms(spec, Sigma, theta_exact if exact else th)
    exact = exact and spec.rational
    a_f = spec.floats
    s_f = [float(v) for v in s_list]
    c_f = [float(v) for v in c_list]
    scale = max([abs(v) for v in s_f] + [1e-300])
    reach_pos = any(a > 0 and s > 1e-14 * scale for a, s in zip(a_f, s_f))
    reach_neg = any(a < 0 and s > 1e-14 * scale for a, s in zip(a_f, s_f))
    if exact:
        reach_pos = any(a > 0 and s > 0 for a, s in zip(spec.eigenvalues, s_list))
        reach_neg = any(a < 0 and s > 0 for a, s in zip(spec.eigenvalues, s_list))
    if reach_pos and reach_neg:
        kind = "balanced"
    elif spec.is_semidefinite() and (reach_pos or reach_neg):
        kind = "divergent"
    else:
        kind = "degenerate"
    gamma = float(weight_decay)
    eta = None if lr is None else float(lr)
    # exact values of the binary floats, so the polynomial route and the certificate agree
    coef = sp.Integer(0) if gamma == 0 else sp.Rational(eta) / int(batch_size)  # (η/S)G - 2γC = 0
    rate = float(sum(a * s for a, s in zip(a_f, s_f)))
    details = dict(info)
    lam_exact = None
    bracket = None
    lam_mp = None
    method = ""
    has_root = kind == "balanced" or (gamma > 0 and (reach_pos or reach_neg) and any(c > 0 for a, c in zip(a_f, c_f) if a != 0))
    if has_root:
        lam_mp, lam_exact, bracket, method = _solve(spec, s_list, c_list, gamma, coef, digits, exact)
        lam = float(lam_mp)
        theta_star = _move(spec, th, lam)
    else:
        if kind == "degenerate" and not (reach_pos or reach_neg):
            lam = math.nan
            theta_star = th.copy()
            method = "no noise along A: every point of the orbit is stationary"
        else:
            lam = math.inf if rate > 0 else -math.inf
            theta_star = _limit(spec, th, lam)
            method = "G has one sign on the whole orbit: the charge drifts forever"
    charge = float(sum(a * math.exp(2 * lam * a) * c for a, c in zip(a_f, c_f))) if math.isfinite(lam) else (
        math.inf if lam > 0 and any(a > 0 and c > 0 for a, c in zip(a_f, c_f)) else (
            -math.inf if any(a < 0 and c > 0 for a, c in zip(a_f, c_f)) and lam < 0 else math.nan))
    return Equilibrium(
        kind=kind,
        lam=lam,
        theta=theta_star,
        lam_mp=lam_mp,
        lam_exact=lam_exact,
        bracket=bracket,
        method=method,
        charge=charge,
        eigenvalues=list(spec.eigenvalues),
        noise=list(s_list),
        norms=list(c_list),
        rate=rate,
        exact=exact,
        batch_size=int(batch_size),
        weight_decay=gamma,
        lr=eta,
        discrete=discrete,
        details=details,
    )


def _eval_exact(loss: Loss, key: str, M: sp.Matrix, theta: sp.Matrix, values: Any) -> sp.Matrix:
    """Evaluate a matrix of polynomials in θ exactly at a rational θ (cached sparse Polys)."""
    from sympy import QQ

    ck = ("poly_eval", key, None if not values else tuple(sorted((str(k), str(v)) for k, v in values.items())))
    polys = loss._cache.get(ck)
    if polys is None:
        gens = list(loss.params)
        polys = {}
        for (i, j), e in M.todok().items():
            e = sp.sympify(e)
            if e == 0:
                continue
            try:
                polys[(i, j)] = sp.Poly(e, *gens, domain=QQ)
            except (sp.PolynomialError, sp.polys.polyerrors.CoercionFailed):
                polys[(i, j)] = e  # not a rational polynomial: substitute symbolically
        loss._cache[ck] = polys
    vals = [sp.Rational(v) for v in theta]
    out = sp.zeros(*M.shape)
    rep = dict(zip(loss.params, vals))
    for (i, j), p in polys.items():
        out[i, j] = p.eval(tuple(vals)) if isinstance(p, sp.Poly) else p.xreplace(rep)
    return out


def _exact_theta(loss: Loss, theta: Any, th: np.ndarray) -> sp.Matrix:
    """θ as exact rationals: user's integers / rationals kept, floats converted exactly."""
    from collections.abc import Mapping

    if isinstance(theta, Mapping):
        raw = [None] * loss.n
        for k, v in theta.items():
            raw[loss.index(k)] = v
    elif isinstance(theta, np.ndarray):
        raw = [float(v) for v in theta]
    else:
        raw = list(theta)

    def conv(v: Any, f: float) -> sp.Expr:
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return sp.Integer(int(v))
        if isinstance(v, sp.Basic) and v.is_Rational:
            return v
        return sp.Rational(f)  # exact value of the binary float

    return sp.Matrix([conv(v, f) for v, f in zip(raw, th)])


def _move(spec: Spectrum, th: np.ndarray, lam: float) -> np.ndarray:
    out = np.zeros_like(th)
    for a, P in zip(spec.floats, spec.projectors):
        Pn = np.array(P.tolist(), dtype=float) if isinstance(P, sp.MatrixBase) else P
        out += math.exp(lam * a) * (Pn @ th)
    return out


def _limit(spec: Spectrum, th: np.ndarray, lam: float) -> np.ndarray:
    out = np.zeros_like(th)
    for a, P in zip(spec.floats, spec.projectors):
        Pn = np.array(P.tolist(), dtype=float) if isinstance(P, sp.MatrixBase) else P
        v = Pn @ th
        if a == 0:
            out += v
        elif (a > 0) == (lam > 0):
            with np.errstate(invalid="ignore"):
                out += np.where(v != 0, np.sign(v) * np.inf, 0.0)
    return out


# ------------------------------------------------------------------------------------------
# Root finding with certificates
# ------------------------------------------------------------------------------------------


def _balance_mp(a_list: list, s_list: list, c_list: list, gamma: float, coef: float, mp_ctx: Any) -> Callable:
    """λ -> F(λ) = G(λ) (γ = 0) or coef·G(λ) - 2γ C(λ), in the given mpmath context."""

    def conv(v: Any) -> Any:
        if isinstance(v, sp.Basic):
            if v.is_Rational:
                return mp_ctx.mpf(int(v.p)) / mp_ctx.mpf(int(v.q))
            return mp_ctx.mpf(str(sp.N(v, 60)))
        return mp_ctx.mpf(float(v)) if not isinstance(v, (mpmath.mpf,)) else v

    A = [conv(a) for a in a_list]
    Sv = [conv(s) for s in s_list]
    Cv = [conv(c) for c in c_list]
    g = conv(sp.Rational(gamma)) if gamma else None
    k = conv(sp.Rational(coef)) if gamma else None

    def F(lam: Any) -> Any:
        G = mp_ctx.mpf(0)
        for a, s in zip(A, Sv):
            if s != 0 and a != 0:
                G += a * mp_ctx.exp(-2 * lam * a) * s
        if g is None:
            return G
        C = mp_ctx.mpf(0)
        for a, c in zip(A, Cv):
            if c != 0 and a != 0:
                C += a * mp_ctx.exp(2 * lam * a) * c
        return k * G - 2 * g * C

    return F


def _certify(F_iv: Callable, lo: Any, hi: Any) -> bool:
    """F(lo) > 0 > F(hi), decided with interval arithmetic (thin intervals)."""
    flo = F_iv(mpmath.iv.mpf([lo, lo]))
    fhi = F_iv(mpmath.iv.mpf([hi, hi]))
    return bool(flo.a > 0 and fhi.b < 0)


def _solve(spec: Spectrum, s_list: list, c_list: list, gamma: float, coef: Any, digits: int, exact: bool) -> tuple:
    eigs = spec.eigenvalues
    a_f = spec.floats
    lam_exact = None
    method = ""
    prec_digits = digits + 15
    with mpmath.workdps(prec_digits):
        F = _balance_mp(eigs, s_list, c_list, gamma, coef, mpmath.mp)
        # --- closed forms and the polynomial route (exact inputs only) -------------------
        if exact:
            nz = [(a, s, c) for a, s, c in zip(eigs, s_list, c_list) if a != 0]
            if gamma == 0:
                pos = [(a, s) for a, s, _ in nz if a > 0 and s != 0]
                neg = [(a, s) for a, s, _ in nz if a < 0 and s != 0]
                if len(pos) == 1 and len(neg) == 1:
                    (a, sp_), (mb, sm) = pos[0], neg[0]
                    b = -mb
                    lam_exact = sp.log(a * sp_ / (b * sm)) / (2 * (a + b))  # (E17)
                    method = "closed form (E17)"
            if lam_exact is None and _height(nz) <= 60:
                # (with huge rationals, e.g. exact binary floats, root isolation is slow and
                # the closed form unreadable: the certified numeric route below is used)
                lam_exact, method = _polynomial_root(nz, gamma, coef)
        # --- numeric bracket + brentq + polish -------------------------------------------
        if lam_exact is not None:
            lam_mp = mpmath.mpf(sp.N(lam_exact, prec_digits))
        else:
            lo, hi = _bracket(lambda v: float(F(mpmath.mpf(v))))
            lam0 = brentq(lambda v: float(F(mpmath.mpf(v))), lo, hi, xtol=1e-15)
            try:
                lam_mp = mpmath.findroot(F, mpmath.mpf(lam0), tol=mpmath.mpf(10) ** (-prec_digits + 5))
            except (ValueError, ZeroDivisionError):
                lam_mp = mpmath.findroot(F, (mpmath.mpf(lo), mpmath.mpf(hi)), solver="anderson")
            method = method or "bracket by doubling + brentq + mpmath polish"
        # --- certificate: a bracket of width ~10^-digits around λ* -------------------------
        width = mpmath.mpf(10) ** (-digits) * max(mpmath.mpf(1), abs(lam_mp))
        lo_c, hi_c = lam_mp - width, lam_mp + width
        saved = mpmath.iv.dps
        mpmath.iv.dps = prec_digits
        try:
            F_iv = _balance_mp(eigs, s_list, c_list, gamma, coef, mpmath.iv)
            ok = _certify(F_iv, lo_c, hi_c)
        finally:
            mpmath.iv.dps = saved
        if not ok:
            raise CertificationError(
                "could not certify λ*: the balance function does not change sign on the bracket "
                f"[{mpmath.nstr(lo_c, 10)}, {mpmath.nstr(hi_c, 10)}]; the noise terms may be too "
                "small to resolve (try more digits or exact moments)"
            )
        lam_mp = +lam_mp
    with mpmath.workdps(digits):
        lam_mp = +lam_mp
    return lam_mp, lam_exact, (lo_c, hi_c), method


def _height(nz: list) -> int:
    """Largest number of decimal digits of a numerator or denominator among the inputs."""
    h = 0
    for tup in nz:
        for v in tup:
            if isinstance(v, sp.Basic) and v.is_Rational:
                h = max(h, len(str(abs(int(v.p)))), len(str(int(v.q))))
    return h


def _bracket(F: Callable[[float], float]) -> tuple[float, float]:
    """[lo, hi] with F(lo) > 0 > F(hi) for a decreasing F (doubling from [-1, 1])."""
    lo, hi = -1.0, 1.0
    for _ in range(2000):
        flo, fhi = F(lo), F(hi)
        if flo > 0 and fhi < 0:
            return lo, hi
        if flo <= 0:
            hi = lo
            lo = 2 * lo
        if fhi >= 0:
            lo = hi if flo > 0 else lo
            hi = 2 * hi
        if abs(lo) > 1e300 or abs(hi) > 1e300:
            break
    raise CertificationError("could not bracket λ*: the balance function has no sign change")


def _polynomial_root(nz: list, gamma: float, coef: float) -> tuple[Any, str]:
    """Rational spectrum: z = e^{-2λ/q} turns the balance into a polynomial equation."""
    a_vals = [a for a, _, _ in nz]
    if not all(a.is_Rational for a in a_vals):
        return None, ""
    q = math.lcm(*[int(a.q) for a in a_vals]) if a_vals else 1
    z = sp.Symbol("z", positive=True)
    terms = {}
    gam = sp.Rational(gamma) if gamma else 0
    k = sp.Rational(coef) if gamma else 1
    for a, s, c in nz:
        p = int(a * q)
        if s != 0:
            terms[p] = terms.get(p, 0) + k * a * s  # a s e^{-2λa} = a s z^{p}
        if gamma and c != 0:
            terms[-p] = terms.get(-p, 0) - 2 * gam * a * c  # a c e^{2λa} = a c z^{-p}
    if not terms:
        return None, ""
    mn = min(terms)
    poly = sp.Poly(sp.Add(*[v * z ** (p - mn) for p, v in terms.items()]), z)
    if poly.degree() < 1 or not poly.domain.is_QQ and not poly.domain.is_ZZ:
        return None, ""  # irrational coefficients (e.g. a numeric noise estimate): bracket instead
    deg = poly.degree()
    real = [r for r in poly.real_roots() if r.is_positive]
    if len(real) != 1:
        return None, ""
    root = real[0]
    if deg <= 4 and poly.degree() > 0:
        rts = [r for r in sp.roots(poly, z, filter=None) if r.is_real and r.is_positive]
        if len(rts) == 1:
            root = rts[0]
    lam = -q * sp.log(root) / 2  # z = e^{-2λ/q}
    return lam, f"positive root of a degree-{deg} polynomial (rational spectrum, z = e^(-2λ/{q}))"


# ------------------------------------------------------------------------------------------
# Sharpness along the orbit (E19)
# ------------------------------------------------------------------------------------------


@dataclass
class Sharpness:
    """Hessian trace along the orbit, T(λ) = Σ_i e^{-2λa_i} h_i, h_i = Tr[P_i H(θ)] (E19).

    ``argmin`` is the flattest point of the orbit; ``change`` = T(λ*) − T(0) is the
    predicted sharpness change when SGD moves to the noise equilibrium λ*; ``verdict`` is
    "flatten" (change < 0), "sharpen" (> 0) or "unchanged".
    """

    eigenvalues: list[Any]
    h: list[Any]
    argmin: float
    lam_star: float
    T0: float
    T_star: float
    change: float
    verdict: str
    exact: bool
    method: str

    def T(self, lam: float) -> float:
        return float(sum(math.exp(-2 * lam * float(a)) * float(h) for a, h in zip(self.eigenvalues, self.h)))

    def latex(self, symbol_names: Any = None) -> str:
        """T(λ), its minimizer and the predicted change as LaTeX (see :func:`noether_sym.to_latex`)."""
        from ._latex import to_latex

        return to_latex(self, symbol_names=symbol_names)


def population_hessian(loss: Loss, theta: Any, *, values: Any = None, n_samples: int | None = None, seed: int = 0) -> tuple[Any, bool]:
    """H(θ) = E[∇²ℓ(θ, x)]: exact (polynomial data model) or Monte Carlo; (matrix, exact)."""
    from ._data import expectation

    th = loss.theta_vector(theta)
    te = _exact_theta(loss, theta, th)
    try:
        Hs = loss._cache.get("population_hessian_symbolic")
        if Hs is None:
            L = sp.expand(expectation(loss, loss.expr))
            n = loss.n
            Hs = sp.zeros(n, n)
            grads = [sp.diff(L, p) for p in loss.params]
            for i in range(n):
                for j in range(i, n):
                    Hs[i, j] = Hs[j, i] = sp.diff(grads[i], loss.params[j])
            loss._cache["population_hessian_symbolic"] = Hs
        if values:
            from ._sample import _value_map

            Hs = Hs.xreplace(_value_map(loss, values))
        H = _eval_exact(loss, "hessian", Hs, te, values)
        if any(not v.is_number for v in H):
            raise InvalidArgumentError("the Hessian depends on symbols besides θ; pass values=")
        return H, True
    except InvalidArgumentError:
        raise
    except Exception:  # noqa: BLE001 - non-polynomial in the data: Monte Carlo below
        pass
    from ._compile import compiled
    from ._sample import make_sampler

    cl = compiled(loss)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    m = n_samples or 20_000
    X = make_sampler(loss).draw(rng, (m,))
    n = loss.n
    H = np.zeros((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1.0
        H[:, i] = cl.hvp(np.broadcast_to(th, (m, n)), np.broadcast_to(e, (m, n)), X).mean(axis=0)
    return (H + H.T) / 2, False


def sharpness_along_orbit(
    loss: Loss,
    A: Any,
    theta: Any,
    *,
    lam_star: float | None = None,
    values: Any = None,
    n_samples: int | None = None,
    seed: int = 0,
) -> Sharpness:
    """Sharpness T(λ) = Tr H(e^{λA}θ) along the orbit, its minimiser, and the predicted
    change T(λ*) − T(0) when SGD moves to the noise equilibrium (E19).

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> u, w = sp.symbols("u w")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    >>> loss = ns.Loss((u * w * x - x - e) ** 2, [u, w])  # label noise independent of x
    >>> sh = ns.sharpness_along_orbit(loss, sp.diag(1, -1), [2, 0.5])
    >>> sh.verdict, round(sh.argmin - sh.lam_star, 12)   # Σ ∝ H at a minimum: λ* = argmin T
    ('flatten', 0.0)
    """
    loss = as_loss(loss)
    Am = _as_sym_matrix(A, loss.n)
    spec = spectrum(Am)
    H, exact = population_hessian(loss, theta, values=values, n_samples=n_samples, seed=seed)
    th = loss.theta_vector(theta)
    h_list, _ = drift_terms(spec, H, _exact_theta(loss, theta, th) if exact else th)
    exact = exact and spec.rational
    a_f = spec.floats
    h_f = [float(v) for v in h_list]
    # argmin T: root of -T'/2 = Σ a_i e^{-2λa_i} h_i (same structure as G)
    pos = any(a > 0 and h > 0 for a, h in zip(a_f, h_f))
    neg = any(a < 0 and h > 0 for a, h in zip(a_f, h_f))
    if pos and neg:
        lam_min = float(_solve(spec, h_list, [0] * len(h_list), 0.0, sp.Integer(0), 20, exact)[0])
    else:
        lam_min = math.inf if pos else (-math.inf if neg else 0.0)
    if lam_star is None:
        lam_star = noise_equilibrium(loss, Am, theta, check_symmetry=False, values=values).lam
    T = lambda lam: float(sum(math.exp(-2 * lam * a) * h for a, h in zip(a_f, h_f)))  # noqa: E731
    T0 = T(0.0)
    Ts = T(lam_star) if math.isfinite(lam_star) else (math.inf if any(
        (a > 0) != (lam_star > 0) and h > 0 for a, h in zip(a_f, h_f) if a != 0) else 0.0)
    change = Ts - T0
    tol = 1e-12 * max(1.0, abs(T0))
    verdict = "flatten" if change < -tol else ("sharpen" if change > tol else "unchanged")
    return Sharpness(
        eigenvalues=list(spec.eigenvalues),
        h=list(h_list),
        argmin=lam_min,
        lam_star=float(lam_star),
        T0=T0,
        T_star=Ts,
        change=change,
        verdict=verdict,
        exact=exact,
        method="exact population Hessian" if exact else "Monte Carlo population Hessian",
    )


# ------------------------------------------------------------------------------------------
# Several generators
# ------------------------------------------------------------------------------------------


@dataclass
class JointEquilibrium:
    """Joint noise equilibrium of commuting generators: Tr[A_jΣ(θ*)] = 0 for every j.

    With joint eigenspaces P_i (eigenvalue vector a_i ∈ R^k) the conditions are the
    stationarity of the convex Φ(λ) = ½ Σ_i s_i e^{-2 a_i·λ} (∂Φ/∂λ_j = -G_j), solved by
    Newton's method; ``gradient_norm`` and ``min_hessian_eigenvalue`` certify the minimum.
    """

    lams: np.ndarray
    theta: np.ndarray
    residuals: np.ndarray
    gradient_norm: float
    min_hessian_eigenvalue: float
    iterations: int
    kind: str

    def latex(self, symbol_names: Any = None) -> str:
        """λ*_j and the residual certificate as LaTeX (see :func:`noether_sym.to_latex`)."""
        from ._latex import to_latex

        return to_latex(self, symbol_names=symbol_names)


def joint_equilibrium(
    loss: Loss, generators: list[Any], theta: Any, *, values: Any = None, tol: float = 1e-13, max_iter: int = 200
) -> JointEquilibrium:
    """Joint noise equilibrium for pairwise commuting generators (e.g. per-neuron rescaling).

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns
    >>> from sympy.stats import Normal
    >>> a, b, c = sp.symbols("a b c")
    >>> x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    >>> loss = ns.Loss((a * b * c * x - 2 * x - e) ** 2, [a, b, c])
    >>> gens = ns.find_symmetries(loss).generators
    >>> je = ns.joint_equilibrium(loss, gens, [1, 1, 2])
    >>> bool(abs(je.residuals).max() < 1e-12)
    True
    """
    loss = as_loss(loss)
    n = loss.n
    mats = [_as_sym_matrix(A, n) for A in generators]
    if not mats:
        raise InvalidArgumentError("give at least one generator")
    for i in range(len(mats)):
        for j in range(i + 1, len(mats)):
            if mats[i] * mats[j] != mats[j] * mats[i]:
                raise InvalidGeneratorError(
                    f"generators {i} and {j} do not commute; the joint equilibrium of non-commuting "
                    "generators is a matrix equation (see two_layer_equilibrium for GL(d))"
                )
    rng = np.random.default_rng(7)
    B = sp.zeros(n, n)
    for M in mats:
        B += sp.Rational(int(rng.integers(1, 10**6)), 10**6) * M
    spec = spectrum(B)
    th = loss.theta_vector(theta)
    Sigma, exact, _ = _noise_matrix(loss, _exact_theta(loss, theta, th), 1, False, None, 0, values)
    Sn = np.array(Sigma.tolist(), dtype=float) if isinstance(Sigma, sp.MatrixBase) else np.asarray(Sigma)
    Ps = [np.array(P.tolist(), dtype=float) if isinstance(P, sp.MatrixBase) else P for P in spec.projectors]
    An = [np.array(M.tolist(), dtype=float) for M in mats]
    avec = np.array([[np.trace(Aj @ P) / max(np.trace(P), 1e-300) for Aj in An] for P in Ps])  # (m, k)
    s = np.array([np.trace(P @ Sn) for P in Ps])
    k = len(mats)
    lam = np.zeros(k)

    def phi(l: np.ndarray) -> float:
        return 0.5 * float(np.sum(s * np.exp(-2 * avec @ l)))

    it = 0
    for it in range(1, max_iter + 1):
        w = s * np.exp(-2 * avec @ lam)
        grad = -(avec.T @ w)  # = -G
        Hm = 2 * (avec.T * w) @ avec
        if np.linalg.norm(grad) < tol * max(1.0, float(np.sum(np.abs(w)))):
            break
        try:
            step = -np.linalg.solve(Hm + 1e-300 * np.eye(k), grad)
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(Hm, grad, rcond=None)[0]
        t, f0 = 1.0, phi(lam)
        while phi(lam + t * step) > f0 + 0.25 * t * float(grad @ step) and t > 1e-12:
            t /= 2
        lam = lam + t * step
        if np.max(np.abs(lam)) > 200:
            break
    w = s * np.exp(-2 * avec @ lam)
    grad = -(avec.T @ w)
    Hm = 2 * (avec.T * w) @ avec
    mineig = float(np.linalg.eigvalsh(Hm).min()) if k else 0.0
    gnorm = float(np.linalg.norm(grad))
    converged = gnorm < 1e-10 * max(1.0, float(np.sum(np.abs(w)))) and mineig > 0
    theta_star = sum(np.exp(float(avec[i] @ lam)) * (Ps[i] @ th) for i in range(len(Ps)))
    # residuals Tr[A_j Σ(θ*)] by the transport law (E6): Σ(θ*) = e^{-Λ} Σ e^{-Λ}
    E = sum(np.exp(-float(avec[i] @ lam)) * Ps[i] for i in range(len(Ps)))
    S_star = E @ Sn @ E
    res = np.array([np.trace(Aj @ S_star) for Aj in An])
    return JointEquilibrium(
        lams=lam,
        theta=np.asarray(theta_star),
        residuals=res / max(1.0, float(np.abs(s).max())),
        gradient_norm=gnorm,
        min_hessian_eigenvalue=mineig,
        iterations=it,
        kind="balanced" if converged else "divergent or degenerate",
    )


# ------------------------------------------------------------------------------------------
# Two-layer linear network: the full GL(d) equilibrium (E20)-(E21)
# ------------------------------------------------------------------------------------------


@dataclass
class TwoLayerEquilibrium:
    """θ* = (U P⁻¹, P W) on the GL(d) orbit of (U, W), P² = X = M_W⁻¹ # (c M_U) (E21)."""

    U: np.ndarray
    W: np.ndarray
    P: np.ndarray
    X: np.ndarray
    residual: float  # ‖X M_W X − c M_U‖ / ‖c M_U‖ (on the ranges)
    balance_residual: float  # (E20) at θ*: ‖TrΣ_x U*ᵀΣ_εU* − TrΣ_ε W*Σ_xW*ᵀ‖ / scale
    Q_eigenvalues: np.ndarray  # eigenvalues of W*W*ᵀ − U*ᵀU* (rotation invariants)

    def latex(self, symbol_names: Any = None) -> str:
        """X, P, the rotation invariants and the residuals as LaTeX (see :func:`noether_sym.to_latex`)."""
        from ._latex import to_latex

        return to_latex(self, symbol_names=symbol_names)


def _spd_sqrt(M: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh((M + M.T) / 2)
    return (V * np.sqrt(np.maximum(w, 0))) @ V.T


def geometric_mean(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A # B = A^{1/2}(A^{-1/2} B A^{-1/2})^{1/2} A^{1/2} for SPD A, B."""
    Ah = _spd_sqrt(A)
    w, V = np.linalg.eigh(Ah)
    Aih = (V / w) @ V.T
    return Ah @ _spd_sqrt(Aih @ B @ Aih) @ Ah


def two_layer_equilibrium(U: Any, W: Any, Sigma_x: Any, Sigma_eps: Any, *, rtol: float = 1e-10) -> TwoLayerEquilibrium:
    """Closed form of the noise equilibrium of f(x) = U W x over the whole GL(d) orbit (E21).

    ``U`` is m x d, ``W`` is d x n; ``Sigma_x`` (n x n) and ``Sigma_eps`` (m x m) are the input
    and label-noise covariances of the teacher y = Vx + ε. With M_W = WΣ_xWᵀ, M_U = UᵀΣ_εU
    and c = TrΣ_x / TrΣ_ε, X is the unique SPD solution of X M_W X = c M_U. When M_W or M_U
    is singular (d > min(n, m)) the equation is solved on their common range and X is the
    identity on its complement.

    Examples
    --------
    >>> import numpy as np, noether_sym as ns
    >>> rng = np.random.default_rng(0)
    >>> U, W = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    >>> eq = ns.two_layer_equilibrium(U, W, np.diag([1.0, 3.0]), np.diag([0.5, 2.0]))
    >>> bool(eq.residual < 1e-10 and eq.balance_residual < 1e-10)
    True
    """
    U = np.asarray(U, float)
    W = np.asarray(W, float)
    Sx = np.asarray(Sigma_x, float)
    Se = np.asarray(Sigma_eps, float)
    m, d = U.shape
    d2, nin = W.shape
    if d2 != d or Sx.shape != (nin, nin) or Se.shape != (m, m):
        raise InvalidArgumentError(
            f"shapes do not fit: U {U.shape}, W {W.shape}, Sigma_x {Sx.shape}, Sigma_eps {Se.shape}"
        )
    c = np.trace(Sx) / np.trace(Se)
    MW = W @ Sx @ W.T
    MU = U.T @ Se @ U
    scale = max(np.abs(MW).max(), np.abs(c * MU).max(), 1e-300)
    wW = np.linalg.eigvalsh(MW)
    wU = np.linalg.eigvalsh(MU)
    full = wW.min() > rtol * max(wW.max(), 1e-300) and wU.min() > rtol * max(wU.max(), 1e-300)
    if full:
        X = geometric_mean(np.linalg.inv(MW), c * MU)
    else:
        # singular M_W or M_U (d > min(n, m)): the balance X M_W X = c M_U then has a family
        # of SPD solutions; take the limit ε -> 0 of the regularized geometric mean
        # (M_W + εI)^-1 # c(M_U + εI), which solves it on the whole space (its residual
        # is reported below, on the whole space, not on a subspace)
        best = None
        for eps in (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10):
            I = np.eye(d) * eps * scale
            Xe = geometric_mean(np.linalg.inv(MW + I), c * (MU + I))
            Xe = (Xe + Xe.T) / 2
            res = np.linalg.norm(Xe @ MW @ Xe - c * MU)
            if not np.isfinite(res):
                break
            if best is None or res < best[0]:
                best = (res, Xe)
            elif res > 10 * best[0]:
                break  # conditioning takes over below this ε
        X = best[1]
    X = (X + X.T) / 2
    P = _spd_sqrt(X)
    Pinv = np.linalg.inv(P)
    Us, Ws = U @ Pinv, P @ W
    lhs = X @ MW @ X
    residual = float(np.linalg.norm(lhs - c * MU) / max(np.linalg.norm(c * MU), 1e-300))
    bal = np.trace(Sx) * Us.T @ Se @ Us - np.trace(Se) * Ws @ Sx @ Ws.T
    bscale = max(np.linalg.norm(np.trace(Sx) * Us.T @ Se @ Us), 1e-300)
    return TwoLayerEquilibrium(
        U=Us,
        W=Ws,
        P=P,
        X=X,
        residual=residual,
        balance_residual=float(np.linalg.norm(bal) / bscale),
        Q_eigenvalues=np.linalg.eigvalsh(Ws @ Ws.T - Us.T @ Us),
    )
