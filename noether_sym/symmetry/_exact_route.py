"""Symmetries: the ``exact`` route -- the linear system of (E4) solved over QQ for rational-function losses."""


from __future__ import annotations

from typing import Any

from sympy import QQ
from sympy.polys.matrices import DomainMatrix

from ..compile._exact import ExactModel
from ..loss._loss import Loss
from ._canonical import _frac, _pairs, _unflatten

__all__ = []



# ------------------------------------------------------------------------------------------
# Exact route
# ------------------------------------------------------------------------------------------


def _exact_candidates(loss: Loss, em: ExactModel, sigma: int) -> tuple[list, dict]:
    n = loss.n
    f = em.rational_value()
    P, Q = f.n, f.d
    pairs = _pairs(n, sigma)
    col = {p: c for c, p in enumerate(pairs)}
    nums = []
    for i in range(n):
        v = em.var_of_input[i]
        dP = P.derivative(v)
        nums.append(dP if Q is None else dP * Q - P * Q.derivative(v))
    rows: dict[tuple, dict[int, Any]] = {}
    for i in range(n):
        terms = list(nums[i].terms())
        if not terms:
            continue
        for j in range(n):
            if sigma == 1:
                c, sgn = col[(min(i, j), max(i, j))], 1
            else:
                if i == j:
                    continue
                c, sgn = (col[(i, j)], 1) if i < j else (col[(j, i)], -1)
            vj = em.var_of_input[j]
            for mono, coeff in terms:
                m = list(mono)
                m[vj] += 1
                key = tuple(m)
                r = rows.setdefault(key, {})
                r[c] = r.get(c, 0) + sgn * coeff
    sdm = {}
    for r in rows.values():
        rr = {c: QQ(int(v.p), int(v.q)) for c, v in r.items() if v != 0}
        if rr:
            sdm[len(sdm)] = rr
    nu = len(pairs)
    info = {"route": "exact", "n_unknowns": nu, "n_equations": len(sdm), "numeric": False}
    if nu == 0:
        return [], info
    M = DomainMatrix(sdm, (max(len(sdm), 1), nu), QQ)
    null = M.nullspace()
    if null.shape[0] == 0:
        return [], info
    basis, _ = null.rref()
    cands = []
    for r in basis.to_sdm().values():
        q = {c: _frac(x) for c, x in r.items()}
        cands.append(("exact", _unflatten(q, pairs, sigma)))
    return cands, info
