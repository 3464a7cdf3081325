"""Check: theorem identities -- exact span comparison of generator bases, check_planted and check_identities.

Assertion helpers: a finding (a missed or extra direction, a failed identity, a matrix
that is not an exact generator) is an AssertionError with the details.
"""


from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp
from scipy.linalg import expm
from sympy import QQ
from sympy.polys.matrices import DomainMatrix

from .._errors import InvalidArgumentError, InvalidGeneratorError
from ..compile._compiled import compiled
from ..compile._confirm import confirm_generator
from ..loss._generators import as_generators
from ..loss._loss import Loss
from ..symmetry._charges import confirm_conservation
from ..symmetry._finder import find_symmetries
from ._planted import PlantedLoss, _upper

__all__ = ['span_ranks', 'check_planted', 'check_identities']


def _rank(mats: Sequence[sp.Matrix], n: int) -> int:
    rows = {r: _upper(A) for r, A in enumerate(mats)}
    rows = {r: v for r, v in rows.items() if v}
    if not rows:
        return 0
    sdm = {i: v for i, v in enumerate(rows.values())}
    return DomainMatrix(sdm, (len(sdm), n * (n + 1) // 2), QQ).rank()


def _exact_generators(mats: Sequence[Any], n: int, what: str, sigma: int = 1) -> list[sp.MatrixBase]:
    """Exact rational generators (symmetric for ``sigma=1``, antisymmetric for -1); a matrix
    that is not one fails the check as an AssertionError, like every other finding here."""
    try:
        return as_generators(
            list(mats), n, what=what, empty_ok=True, allow_floats=False,
            symmetry="symmetric" if sigma == 1 else "antisymmetric",
        )
    except (InvalidGeneratorError, InvalidArgumentError) as exc:
        raise AssertionError(str(exc)) from None


def span_ranks(found: Sequence[Any], planted: Sequence[Any], n: int) -> tuple[int, int, int]:
    """(rank(found), rank(planted), rank(found ∪ planted)) over QQ of n×n matrices that are
    all symmetric or all antisymmetric. The spans are equal iff the three numbers are equal.

    Examples
    --------
    >>> import sympy as sp, noether_sym.testing as nst
    >>> nst.span_ranks([sp.diag(2, -2)], [sp.diag(-1, 1)], 2)
    (1, 1, 1)
    >>> nst.span_ranks([sp.diag(1, 0)], [sp.diag(1, -1)], 2)
    (1, 1, 2)
    """
    f = [sp.Matrix(A) for A in found]
    p = [sp.Matrix(A) for A in planted]
    return _rank(f, n), _rank(p, n), _rank(f + p, n)


def _compare(
    planted: PlantedLoss, found_raw: Sequence[Any], expected: Sequence[sp.Matrix], sigma: int
) -> list[str]:
    """Problems (empty if none) of a found basis against a planted one."""

    n = planted.loss.n
    what = "generator" if sigma == 1 else "rotation"
    found = _exact_generators(found_raw, n, f"the found {what}s", sigma)
    rf, rp, rj = span_ranks(found, expected, n)
    problems = []
    if rf < len(found):
        problems.append(f"the finder returned {len(found)} {what}s of rank {rf} (not a basis)")
    if rj > rf:
        problems.append(
            f"the finder missed {rj - rf} planted {what} direction(s) (found span rank {rf}, planted {rp})"
        )
    if rj > rp:
        extra = []
        for i, A in enumerate(found):
            if _rank([*expected, A], n) > rp:
                ok, why = confirm_generator(planted.loss, A)
                verdict = (
                    "CONFIRMS exactly: the construction planted too little" if ok else f"not a symmetry ({why})"
                )
                extra.append(f"found {what} {i} {A.tolist()}: {verdict}")
        problems.append(
            f"the finder returned {rj - rp} {what} direction(s) outside the planted space: " + "; ".join(extra)
        )
    return problems


def check_planted(
    planted: PlantedLoss, finder: Callable[[Loss], Any] | None = None, *, rotations: bool = False
) -> Any:
    """Assert that ``finder`` recovers exactly the planted symmetric generators.

    The finder's generators must be exact rational symmetric n×n matrices, linearly
    independent, and span the same space over QQ as ``planted.generators``:
    rank(found) = rank(planted) = rank(found ∪ planted) — no fewer, no more.

    Parameters
    ----------
    planted
        A :class:`PlantedLoss`.
    finder
        A function Loss -> result with a ``generators`` list (and ``rotations`` when
        ``rotations=True``); default :func:`noether_sym.find_symmetries`.
    rotations
        Also compare the finder's ``rotations`` with ``planted.rotations`` the same way.

    Returns
    -------
    The finder's result (for further checks).

    Raises
    ------
    AssertionError
        With the loss, the ranks and which directions are missing or extra (extra
        directions are also tried with :func:`~noether_sym.confirm_generator`: an extra that
        confirms would mean the construction planted too little).

    Examples
    --------
    >>> import noether_sym.testing as nst
    >>> planted = nst.planted_loss(1, max_params=6)
    >>> nst.check_planted(planted, rotations=True).n_generators == len(planted.generators)
    True
    >>> nst.check_planted(planted, finder=lambda loss: [])
    Traceback (most recent call last):
    ...
    AssertionError: planted loss [...] ...
      the finder missed 1 planted generator direction(s) (found span rank 0, planted 1)
    """

    if not isinstance(planted, PlantedLoss):
        raise InvalidArgumentError(
            f"check_planted takes a PlantedLoss (from planted_losses or planted_loss); got {type(planted).__name__}"
        )
    finder = find_symmetries if finder is None else finder
    if not callable(finder):
        raise InvalidArgumentError(f"finder must be a callable Loss -> Symmetries; got {finder!r}")
    result = finder(planted.loss)
    problems = _compare(planted, list(getattr(result, "generators", result)), planted.generators, 1)
    if rotations:
        if not hasattr(result, "rotations"):
            raise InvalidArgumentError("rotations=True needs a finder result with a 'rotations' attribute")
        problems += _compare(planted, list(result.rotations), planted.rotations, -1)
    if problems:
        n = planted.loss.n
        head = f"planted loss [{planted.description}] with n={n}: {sp.sstr(planted.loss.expr)[:300]}"
        raise AssertionError(head + "\n  " + "\n  ".join(problems))
    return result


def check_identities(
    loss: Loss,
    gens: Sequence[Any],
    *,
    seed: int = 0,
    samples: int = 3,
    rtol: float = 1e-9,
    theta: Any = None,
    lam: float | None = None,
) -> int:
    """Assert the theorem identities of THEORY §2-§3 for given generators of a loss.

    For each generator A (exact rational, symmetric):

    * (E4) g(θ,x)ᵀAθ ≡ 0, exactly (:func:`~noether_sym.confirm_generator`);
    * (E9) gradient flow conserves the charge θᵀAθ, exactly
      (:func:`~noether_sym.confirm_conservation`);
    * (E5) gradient transport g(e^{λA}θ, x) = e^{-λA} g(θ, x), numerically with
      ``scipy.linalg.expm``, to ``rtol`` relative, at ``samples`` random (θ, x, λ) (the first
      θ and λ may be given; x is standard normal, seeded by ``seed``). (E5) is an identity
      between gradients, so it is checked where they exist: a point with a kink argument
      within 1e-6 of zero or a non-finite gradient is replaced by a fresh random one.

    Returns
    -------
    int
        The numeric generic rank of [A_1θ … A_kθ] (max over the sample points, SVD with a
        1e-9 relative cut): the number of independent charges (§3), at most k.

    Examples
    --------
    >>> import sympy as sp, noether_sym as ns, noether_sym.testing as nst
    >>> u, w, x, y = sp.symbols("u w x y")
    >>> loss = ns.Loss((u * w * x - y) ** 2, [u, w], data=[x, y])
    >>> nst.check_identities(loss, [sp.diag(1, -1)])
    1
    >>> nst.check_identities(loss, [sp.diag(1, 1)])
    Traceback (most recent call last):
    ...
    AssertionError: (E4) fails for generator 0 ...
    """


    n = loss.n
    mats = _exact_generators(gens, n, "gens")
    for i, A in enumerate(mats):
        ok, why = confirm_generator(loss, A)
        assert ok, f"(E4) fails for generator {i} {A.tolist()} of {loss!r}: {why}"
        ok, why = confirm_conservation(loss, A)
        assert ok, f"(E9) fails for generator {i} {A.tolist()} of {loss!r}: {why}"
    if not mats:
        return 0
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 5]))
    cl = compiled(loss)
    consts = np.array(list(loss.constant_values().values()), dtype=float) if loss.c else np.zeros(0)
    rank = 0
    for s in range(samples):
        th = rng.standard_normal(n) if (theta is None or s > 0) else loss.theta_vector(theta)
        lm = float(rng.uniform(-0.5, 0.5)) if (lam is None or s > 0) else float(lam)
        for _ in range(100):
            x = np.concatenate([rng.standard_normal(len(loss.x)), consts])
            _, g0, kinks = cl.value_grad(th, x)
            if np.all(np.isfinite(g0)) and np.all(np.abs(kinks) > 1e-6):
                break
            th = rng.standard_normal(n)
        else:  # pragma: no cover - kinks and poles have measure zero
            raise AssertionError(f"no differentiable sample point found for {loss!r}")
        for i, A in enumerate(mats):
            An = np.array(A.tolist(), dtype=float)
            E, Einv = expm(lm * An), expm(-lm * An)
            lhs = cl.grad(E @ th, x)
            rhs = Einv @ g0
            err = float(np.linalg.norm(lhs - rhs))
            scale = float(np.linalg.norm(lhs) + np.linalg.norm(Einv, 2) * np.linalg.norm(g0))
            assert np.isfinite(err) and err <= rtol * scale + 1e-300, (
                f"(E5) gradient transport fails for generator {i} {A.tolist()} of {loss!r} at λ={lm}: "
                f"|g(e^(λA)θ) - e^(-λA)g(θ)| = {err:.3e}, relative {err / max(scale, 1e-300):.3e} > {rtol}"
            )
        V = np.stack([np.array(A.tolist(), dtype=float) @ th for A in mats], axis=1)
        sv = np.linalg.svd(V, compute_uv=False)
        rank = max(rank, int(np.sum(sv > 1e-9 * max(sv[0], 1e-300))))
    return rank
