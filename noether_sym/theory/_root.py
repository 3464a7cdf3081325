"""Theory: the root λ* of a balance function, with a certificate (THEORY (E14)-(E18)).

:func:`_solve` finds the unique root of (η/S)G(λ) − 2γC(λ) (γ = 0: of G): in closed form or
as an isolated real algebraic number when the spectrum is rational (a polynomial in
z = e^{-2λ/q}), else by bracketing, brentq and an mpmath polish; every root comes with a
bracket on which the sign change is checked in interval arithmetic (``mpmath.iv``), or a
CertificationError. :func:`_limit` is the end point of an orbit when λ* = ±∞;
:func:`_root_float` is the uncertified float root used for the ends of an uncertainty
interval (noise levels known only to a standard error).
"""


from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import sympy as sp
from scipy.optimize import brentq

from .._errors import CertificationError
from ._spectrum import Spectrum

__all__ = []



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


def _root_float(a_list: list[float], s_list: list[float], c_list: list[float], gamma: float,
                coef: float) -> float:
    """The root of F(λ) = G(λ) (γ = 0) or coef·G(λ) − 2γC(λ) in floats (no certificate):
    used for the ends of an uncertainty interval. ±inf when F keeps one sign (no root)."""

    def F(lam: float) -> float:
        with np.errstate(over="ignore"):
            G = sum(a * math.exp(min(700.0, -2 * lam * a)) * s for a, s in zip(a_list, s_list) if a != 0 and s != 0)
            if not gamma:
                return G
            C = sum(a * math.exp(min(700.0, 2 * lam * a)) * c for a, c in zip(a_list, c_list) if a != 0 and c != 0)
        return coef * G - 2 * gamma * C

    try:
        lo, hi = _bracket(F)
    except CertificationError:
        return math.inf if F(0.0) > 0 else -math.inf
    return float(brentq(F, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps))
