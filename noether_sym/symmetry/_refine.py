"""Symmetries: exact refinement of numeric candidates -- no bound on the denominators.

A numeric candidate whose entries do not round to confirmable rationals is refined from the
same compiled graph (:func:`~noether_sym.compile._precise.precise_value_grad`):

exact
    For rational losses (kinks allowed) the equations ⟨A, sym(g θᵀ)⟩ = 0 of (E4) are
    evaluated exactly at random rational points, on the support of the candidates (all
    unknowns when the support misses), and their null space is computed over QQ. No
    rounding is involved, so denominators of any size come out exactly.
mp
    Otherwise (exp, log, tanh...) the same equations are evaluated with mpmath at
    ``DIGITS`` decimal digits (doubling up to ``MAX_DIGITS``, the precision budget); with
    the pivots of the numeric reduced row echelon form the free entries solve a
    least-squares system, and each entry is reconstructed by continued fractions with a
    denominator bound of about 10^(digits/2 - 5). A candidate still unconfirmed at the
    budget is reported with the number of digits that would be needed next.

Whatever comes out is confirmed exactly afterwards, as every candidate is.
"""


from __future__ import annotations

from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from sympy import QQ
from sympy.polys.matrices import DomainMatrix

from .._errors import UnsupportedExpressionError
from ..compile._compiled import CompiledLoss
from ..compile._precise import precise_value_grad
from ..loss._loss import Loss
from ._canonical import _frac, _numeric_rref

__all__ = []

#: first and largest number of decimal digits of the high-precision refinement
DIGITS = 40
MAX_DIGITS = 160
#: largest number of unknowns the exact refinement takes on (a QQ null space of that width)
MAX_EXACT_UNKNOWNS = 1500


def refine(
    loss: Loss, cl: CompiledLoss, rows: np.ndarray, pairs: list[tuple[int, int]], sigma: int,
    rng: np.random.Generator,
) -> tuple[list[dict[int, Fraction]], dict[str, Any]]:
    """Exact rational vectors (over the flattened pairs) spanning the candidates' space.

    ``rows`` (k, len(pairs)) are numeric candidates. Returns (vectors, info); info says the
    arithmetic used and, on failure, why and what precision would be needed."""
    rows = np.atleast_2d(np.asarray(rows, dtype=float))
    big = np.max(np.abs(rows)) if rows.size else 0.0
    support = np.nonzero(np.max(np.abs(rows), axis=0) > 1e-9 * big)[0] if big > 0 else np.arange(0)
    if support.size == 0:
        return [], {"refinement": "none", "reason": "the candidates are zero"}
    k = rows.shape[0]
    try:
        for cols in (support, np.arange(len(pairs))):
            if len(cols) > MAX_EXACT_UNKNOWNS:
                break
            vecs = _exact_null(loss, cl, cols, pairs, sigma, rng)
            if len(vecs) >= k or len(cols) == len(pairs):
                return vecs, {"refinement": "exact", "refined_unknowns": int(len(cols))}
        return [], {"refinement": "exact", "reason": (
            f"the exact null space on the support has fewer than {k} dimensions and the full system "
            f"({len(pairs)} unknowns) is beyond the exact refinement's budget of {MAX_EXACT_UNKNOWNS}")}
    except UnsupportedExpressionError:
        pass
    return _mp_refine(loss, cl, rows, support, pairs, sigma, rng)


def _points(loss: Loss, cl: CompiledLoss, rng: np.random.Generator, m: int, mode: str, dps: int) -> tuple:
    """m random rational points away from poles and kinks: (θ, g) object arrays."""
    th_out, g_out = [], []
    have = 0
    for _ in range(10):
        k = 2 * (m - have) + 8
        th = _rationals(rng, (k, cl.n))
        x = _rationals(rng, (k, cl.d)) if cl.d else None
        try:
            _, g, kinks = precise_value_grad(cl, th, x, mode=mode, dps=dps)
            ok = np.ones(k, dtype=bool)
        except ZeroDivisionError:
            ok = np.zeros(k, dtype=bool)
            g = np.empty((k, cl.n), dtype=object)
            kinks = np.empty((k, 0), dtype=object)
            for r in range(k):  # find the poles one point at a time
                try:
                    _, g[r:r + 1], kr = precise_value_grad(cl, th[r:r + 1], None if x is None else x[r:r + 1],
                                                           mode=mode, dps=dps)
                    ok[r] = True
                    kinks = kr if kinks.shape[1] == 0 and kr.shape[1] else kinks
                except ZeroDivisionError:
                    pass
            if not ok.any():
                continue
            _, g2, kinks = precise_value_grad(cl, th[ok], None if x is None else x[ok], mode=mode, dps=dps)
            th, g = th[ok], g2
            ok = np.ones(len(th), dtype=bool)
        if kinks.shape[1]:
            ok &= np.all(kinks != 0, axis=1)
        if mode == "mp":
            ok &= np.array([all(mpmath.isfinite(v) for v in row) for row in g])
        th_out.append(th[ok])
        g_out.append(g[ok])
        have += int(ok.sum())
        if have >= m:
            break
    if have < m:
        raise UnsupportedExpressionError(f"found only {have} of {m} rational points where the loss is defined")
    return np.concatenate(th_out)[:m], np.concatenate(g_out)[:m]


def _rationals(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    # moderate values (|v| ≤ 3): transcendental pieces (tanh, exp) stay well conditioned
    num = rng.integers(-24, 25, size=shape)
    den = rng.integers(8, 17, size=shape)
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = Fraction(int(num[idx]) or 1, int(den[idx]))
    return out


def _equations(th: np.ndarray, g: np.ndarray, cols: np.ndarray, pairs: list, sigma: int) -> list[list]:
    eqs = []
    for r in range(th.shape[0]):
        row = []
        for c in cols:
            i, j = pairs[c]
            if sigma == 1:
                row.append(g[r, i] * th[r, j] + (g[r, j] * th[r, i] if i != j else 0))
            else:
                row.append(g[r, i] * th[r, j] - g[r, j] * th[r, i])
        eqs.append(row)
    return eqs


def _exact_null(loss: Loss, cl: CompiledLoss, cols: np.ndarray, pairs: list, sigma: int,
                rng: np.random.Generator) -> list[dict[int, Fraction]]:
    m = len(cols) + 12
    th, g = _points(loss, cl, rng, m, "exact", 0)
    sdm = {}
    for r, row in enumerate(_equations(th, g, cols, pairs, sigma)):
        rr = {c: QQ(v.numerator, v.denominator) for c, v in enumerate(row) if v}
        if rr:
            sdm[len(sdm)] = rr
    M = DomainMatrix(sdm, (max(len(sdm), 1), len(cols)), QQ)
    null = M.nullspace()
    if null.shape[0] == 0:
        return []
    basis, _ = null.rref()
    return [{int(cols[c]): _frac(v) for c, v in r.items()} for r in basis.to_sdm().values()]


def _mp_refine(loss: Loss, cl: CompiledLoss, rows: np.ndarray, support: np.ndarray, pairs: list, sigma: int,
               rng: np.random.Generator) -> tuple[list[dict[int, Fraction]], dict[str, Any]]:
    """High-precision least squares on the free entries, then continued fractions."""
    rref, _ = _numeric_rref(rows[:, support], tol=1e-6)
    piv = _pivot_positions(rref)
    free = [c for c in range(len(support)) if c not in piv]
    dps = DIGITS
    last = ""
    while dps <= MAX_DIGITS:
        try:
            th, g = _points(loss, cl, rng, len(support) + 12, "mp", dps)
        except UnsupportedExpressionError as exc:
            return [], {"refinement": "mp", "reason": str(exc)}
        with mpmath.workdps(dps):
            E = mpmath.matrix(_equations(th, g, support, pairs, sigma))
            out = []
            ok = True
            for r, p in enumerate(piv):
                A = mpmath.matrix([[E[i, c] for c in free] for i in range(E.rows)]) if free else None
                b = mpmath.matrix([-E[i, p] for i in range(E.rows)])
                vals = mpmath.qr_solve(A, b)[0] if free else []
                q = {int(support[p]): Fraction(1)}
                bound = 10 ** max(dps // 2 - 5, 2)
                for c, v in zip(free, vals):
                    fr = Fraction(mpmath.nstr(v, dps, strip_zeros=False)).limit_denominator(bound)
                    if abs(mpmath.mpf(fr.numerator) / fr.denominator - v) > mpmath.mpf(10) ** (-(dps - 10)):
                        ok = False
                        break
                    if fr:
                        q[int(support[c])] = fr
                if not ok:
                    break
                out.append(q)
        if ok:
            return out, {"refinement": "mp", "digits": dps}
        last = f"entries not resolved as rationals at {dps} digits"
        dps *= 2
    return [], {"refinement": "mp", "reason": f"{last}; would need at least {dps} digits (budget {MAX_DIGITS})",
                "digits_needed": dps}


def _pivot_positions(rref: np.ndarray) -> list[int]:
    out = []
    for row in rref:
        nz = np.nonzero(np.abs(row) > 1e-6)[0]
        if nz.size:
            out.append(int(nz[0]))
    return out
