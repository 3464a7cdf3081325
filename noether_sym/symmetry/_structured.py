"""Symmetries: the ``structured`` route for large models -- null spaces of stacked gradients and Hessian actions.

See the ``structured`` paragraph of :mod:`noether_sym.symmetry._finder`: a few base points
pin a generator down through its action on the gradient span, so the unknowns drop from
n(n+1)/2 to about K·r; memory is bounded by ``STRUCTURED_MAX_BYTES``.
"""


from __future__ import annotations

import numpy as np

from .._errors import (
    UnsupportedExpressionError,
)
from ..compile._compiled import CompiledLoss
from ..loss._loss import Loss
from ._numeric import (
    NULL_TOL,
    _FallBack,
    _gap_rank,
    _null_from_svd,
    _pairs,
    _sample_rows,
    _svd,
    _svd_right,
)

__all__ = []



def _structured_null(loss: Loss, geo: dict, sigma: int, tol: float) -> tuple[list, dict]:
    sections, Js, info = _structured_system(loss, geo, sigma)
    if sections is None:
        return [], info
    s, V, colscale = _null_space_sections(sections)
    m_u = Js.shape[0]
    k, sv = _null_from_svd(s, m_u, tol)
    info.pop("_bases", None)
    info.update(sv)
    vecs = []
    if k:
        # one matrix product for all null vectors (Js is read once)
        n = Js.shape[1]
        C = (V[:, m_u - k :] * colscale[:, None]).T
        Jall = (C @ Js.reshape(m_u, -1)).reshape(k, n, n)
        vecs = [(J + sigma * J.T) / 2 for J in Jall]
    return vecs, info


def _null_space_sections(sections: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Singular values (descending) and right singular vectors (columns) of the tall matrix
    M = [T_1ᵀ; T_2ᵀ; ...] with its columns scaled to unit norm; also the column scaling.

    The Gram matrix MᵀM = Σ T Tᵀ (BLAS-3 products; M is never formed) and its eigenvectors
    are much cheaper than a Householder QR of M. Squaring loses accuracy only for singular
    values below ~1e-7 relative, so the small ones are re-measured directly as ‖M v‖; if a
    kept value is that small, the accurate QR + SVD route is used instead.
    """
    G = sum(T @ T.T for T in sections)
    colscale = 1.0 / np.sqrt(np.maximum(np.diag(G), 1e-300))
    G = G * colscale[:, None] * colscale[None, :]
    w, V = np.linalg.eigh(G)
    w, V = w[::-1], V[:, ::-1]
    smax = float(np.sqrt(max(w[0], 0.0)))
    s = np.sqrt(np.maximum(w, 0.0))
    small = np.nonzero(s < 1e-4 * smax)[0]
    if small.size:
        W = V[:, small] * colscale[:, None]
        s[small] = np.sqrt(sum(np.sum((T.T @ W) ** 2, axis=0) for T in sections))
    order = np.argsort(s)[::-1]
    rank, _ = _gap_rank(s[order], NULL_TOL)
    if rank and s[order][rank - 1] < 1e-6 * smax:  # below what the Gram matrix resolves
        M = np.concatenate([T.T for T in sections], axis=0) * colscale
        s, Vt = _svd_right(M)
        return s, Vt.T, colscale
    order = np.argsort(s)[::-1]
    return s[order], V[:, order], colscale


def _structured_geometry(loss: Loss, cl: CompiledLoss, rng: np.random.Generator) -> dict:
    """Base points with their null spaces, spans and Hessian-vector products.

    Shared by the symmetric and the antisymmetric solve (only a sign differs)."""
    n = loss.n
    nu_dense = len(_pairs(n, 1))
    bases = []
    C_blocks = []
    ranks: list[int] = []
    h = 1e-30
    for k in range(64):
        # best of a few random points (largest gradient span: fewest dead units)
        best = None
        for _try in range(4 if k == 0 else 2):
            theta0 = rng.standard_normal(n)
            p = n + 16
            try:
                _, X, G = _sample_rows(loss, cl, rng, theta0, p)
            except _FallBack:
                continue
            scale = 1.0 / np.linalg.norm(G, axis=1)
            Gs = G * scale[:, None]
            U, s, Vt = _svd(Gs, full_matrices=True)
            rho, _ = _gap_rank(s, 1e-5)
            if k == 0 and _try == 0 and 0 < rho < n:
                # hopeless sizes are refused after one base point, not four (a better point
                # has a few more live units, not a different order of magnitude)
                _check_structured_memory(n, rho, p, slack=8.0)
            if best is None or rho > best[0]:
                best = (rho, theta0, X, G, scale, Gs, U, s, Vt)
        if best is None:
            raise _FallBack("no base point with enough differentiable samples")
        rho, theta0, X, G, scale, Gs, U, s, Vt = best
        if p > rho + 16:  # keep just enough samples for the consistency conditions
            keep = rho + 16
            X, G, scale = X[:keep], G[:keep], scale[:keep]
            Gs = G * scale[:, None]
            U, s, Vt = _svd(Gs, full_matrices=True)
            rho, _ = _gap_rank(s, 1e-5)
        r = n - rho
        if k == 0:
            est = (int(np.ceil(n / max(rho, 1))) + 1) * r
            if est > nu_dense // 2 or rho == 0:
                raise _FallBack(f"gradients span only {rho} of {n} directions")
            # fail fast with the reason instead of running for a long time or out of memory
            _check_structured_memory(n, rho, p)
        B = Vt[rho:].T
        C = Vt[:rho].T
        Ur, Sr, Up = U[:, :rho], s[:rho], U[:, rho:]
        if r:
            with np.errstate(all="ignore"):
                th_c = theta0[None, None, :] + 1j * h * B.T[:, None, :]  # (r, 1, n)
                gc = cl.value_grad(th_c, X[None, :, :])[1].imag / h  # (r, p, n)
            if not np.all(np.isfinite(gc)):
                raise _FallBack("non-finite Hessian-vector product")
            Kmat = np.transpose(gc * scale[None, :, None], (0, 2, 1))  # (r, n, p): cols H_s b_j
            L = -(Kmat @ (Ur / Sr))  # (r, n, rho), for sigma = +1 (L scales with sigma)
            Kperp = Kmat @ Up  # (r, n, p - rho)
        else:
            L = np.zeros((0, n, rho))
            Kperp = np.zeros((0, n, 0))
        bases.append({"theta": theta0, "B": B, "C": C, "L": L, "Kperp": Kperp, "r": r, "rho": rho})
        C_blocks.append(C)
        Call = np.concatenate(C_blocks, axis=1)
        sc = _svd(Call, compute_uv=False)
        rank_c, _ = _gap_rank(sc, 1e-5)
        ranks.append(rank_c)
        if len(bases) >= 2 and Call.shape[1] >= n + min(n, 8) and rank_c == n:
            break
        if len(ranks) >= 4 and ranks[-1] == ranks[-3]:  # directions common to every null space
            break
    Call = np.concatenate(C_blocks, axis=1)
    Uc, sc, Vct = _svd(Call, full_matrices=True)
    rank_c, _ = _gap_rank(sc, 1e-5)
    Cpinv = (Vct[:rank_c].T / sc[:rank_c]) @ Uc[:, :rank_c].T  # (sum rho, n)
    Ncal = Vct[rank_c:].T  # (sum rho, sum rho - rank_c): the overlaps of the base spans
    q2 = Ncal.shape[1]
    t2 = min(q2, max(32, 8 + 2 * (sum(b["r"] for b in bases) // max(n, 1))))
    if t2 < q2:
        # consistency on a random t2-dimensional part of the overlap: the full overlap can be
        # hundreds of dimensions and would dominate the cost (exactness is restored by the
        # exact confirmation of every candidate)
        omega, _ = np.linalg.qr(rng.standard_normal((q2, t2)))
        Ncal = Ncal @ omega
    Z = Uc[:, rank_c:]  # directions in every null space (n, z)
    m_u = sum(b["r"] for b in bases) + n * Z.shape[1]
    if m_u > nu_dense:
        raise _FallBack(f"structured unknowns {m_u} exceed dense unknowns {nu_dense}")
    return {"bases": bases, "Cpinv": Cpinv, "Ncal": Ncal, "Z": Z}


#: memory the structured route may use (its unknowns are n x n matrices: the cost grows as
#: (unknowns) x n², about n⁴ for networks); larger problems raise UnsupportedExpressionError
STRUCTURED_MAX_BYTES = 6 * 2**30


def _structured_bytes(n: int, m_u: int, r: int, p: int) -> int:
    """Peak memory estimate of the structured route: the unknowns' n x n matrices plus the
    symmetry section (upper triangle) and the complex Hessian-vector products of one base."""
    return int(8 * m_u * n * n * 1.5 + 16 * r * p * n)


def _check_structured_memory(n: int, rho: int, p: int, slack: float = 1.0) -> None:
    """Raise UnsupportedExpressionError when the structured route cannot fit in memory."""
    r = n - rho
    est = (int(np.ceil(n / max(rho, 1))) + 1) * r
    need = _structured_bytes(n, est, r, p)
    if need > slack * STRUCTURED_MAX_BYTES:
        raise UnsupportedExpressionError(
            f"the structured route would need about {need / 2**30:.0f} GiB for this loss "
            f"(n = {n} parameters, {r}-dimensional gradient null space at a base point, about "
            f"{est} unknowns, each an n x n matrix); the limit is "
            f"{STRUCTURED_MAX_BYTES / 2**30:.0f} GiB (noether_sym.symmetry._structured.STRUCTURED_MAX_BYTES)"
        )


def _structured_system(loss: Loss, geo: dict, sigma: int) -> tuple[list | None, np.ndarray, dict]:
    """Assemble the constraint sections over the unknowns c (module docstring)."""
    n = loss.n
    nu_dense = len(_pairs(n, sigma))
    bases, Cpinv, Ncal, Z = geo["bases"], geo["Cpinv"], geo["Ncal"], geo["Z"]
    zdim = Z.shape[1]
    ru = [b["r"] for b in bases]
    m_u = sum(ru) + n * zdim
    offsets = np.cumsum([0] + [b["rho"] for b in bases])
    uoff = np.cumsum([0] + ru)
    # J for each unknown direction: J_u = L_u C⁺ (block of its base point), or e_a z_zᵀ
    Js = np.zeros((m_u, n, n))
    for kb, b in enumerate(bases):
        if b["r"]:
            Js[uoff[kb] : uoff[kb + 1]] = sigma * (b["L"] @ Cpinv[offsets[kb] : offsets[kb + 1], :])
    for a in range(n):
        for zz in range(zdim):
            Js[uoff[-1] + a * zdim + zz, a, :] = Z[:, zz]
    if m_u == 0:
        return None, Js, {"route": "structured", "n_unknowns": 0, "base_points": len(bases)}
    # Constraint sections, stored transposed: T (m_u x rows), so M = [T_1ᵀ; T_2ᵀ; ...].
    # They are not rescaled one by one: a section that vanishes identically (for example
    # the consistency conditions of some models) must stay at rounding level.
    sections: list[np.ndarray] = []
    # (1) per-base consistency: K(c) U_perp = 0
    for kb, b in enumerate(bases):
        q = b["Kperp"].shape[2]
        if q and b["r"]:
            T = np.zeros((m_u, n * q))
            T[uoff[kb] : uoff[kb + 1]] = b["Kperp"].reshape(b["r"], -1)
            sections.append(T)
    # (2) global consistency on the overlaps of the base spans: L(c) Ncal = 0
    if Ncal.shape[1]:
        T = np.zeros((m_u, n * Ncal.shape[1]))
        for kb, b in enumerate(bases):
            if b["r"]:
                T[uoff[kb] : uoff[kb + 1]] = (b["L"] @ Ncal[offsets[kb] : offsets[kb + 1], :]).reshape(b["r"], -1)
        sections.append(T)
    # (3) J = σJᵀ on the pairs a < b (and the diagonal for σ = −1); the off-diagonal rows
    # carry a factor √2, so the Gram matrix equals that of all n² entries (half the memory)
    ia, ib = np.triu_indices(n, 0 if sigma == -1 else 1)
    flatJ = Js.reshape(m_u, -1)
    w = np.where(ia == ib, 1.0, np.sqrt(2.0))
    sections.append((flatJ[:, ia * n + ib] - sigma * flatJ[:, ib * n + ia]) * w)
    # (4) J θ_l = B_l c_l
    for lb, b in enumerate(bases):
        T = Js @ b["theta"]  # (m_u, n)
        T[uoff[lb] : uoff[lb + 1]] -= b["B"].T
        sections.append(T)
    info = {
        "_bases": bases,
        "route": "structured",
        "n_unknowns": int(m_u),
        "n_unknowns_dense": int(nu_dense),
        "n_equations": int(sum(T.shape[1] for T in sections)),
        "base_points": len(bases),
        "null_dims_at_base_points": ru,
        "common_null_directions": int(zdim),
    }
    return sections, Js, info
