"""Testing: hypothesis strategies and checks to property-test losses against planted symmetries.

This module serves users who want to property-test their own losses (and the verify stage,
which reuses its checks). It offers

* strategies: :func:`points` (parameter points), :func:`data_models` (sympy.stats laws for
  data symbols), :func:`generators` (random rational members of a space of generators) and
  :func:`planted_losses` (losses whose symmetry space is known by construction);
* :func:`planted_loss`: the same construction driven by a seed instead of hypothesis, for
  fixed, reproducible sets of cases;
* checks that raise ``AssertionError`` with a message saying what is wrong:
  :func:`check_planted` (a finder recovers exactly the planted generators: no fewer, no
  more) and :func:`check_identities` (THEORY (E4), (E5), (E9) and the charge count of §3).

How a planted loss is built
---------------------------
A planted loss is a sum of independent blocks ``Σ_k (f_k(θ_k, x_k) - y_k)²``, each block on
its own parameters θ_k and its own data, with a symmetry space 𝒜_k derived on paper (the
derivations are in the docstring of :data:`BLOCK_KINDS`):

======== ===================================================== ==========================
kind     f_k                                                   generators (dim)
======== ===================================================== ==========================
product  x·Π t_i^(p_i)                                         diag(a), Σ p_i a_i = 0 (k-1)
bilinear (uᵀz)(wᵀz')                                           diag(I_u, -I_w) (1)
gl       Tr(U W X), U m×d, W d×k, X data                       U -> -UN, W -> NW, N ∈ Sym(d)
scale    (zᵀθ)²/‖θ‖² or (zᵀθ)(cᵀθ)/‖θ‖²                        I (1, semidefinite)
relu     Σ_j v_j σ(w_jᵀz + b_j), σ ReLU or leaky ReLU          one per neuron: +1 in, -1 out
monomial Σ_j v_j (w_jᵀz_j + b_j)^q (own input per neuron)      one per neuron: +1 in, -q out
generic  cᵀt + tᵀt                                             none (0)
======== ===================================================== ==========================

Because every block sees its own target y_k and no block output is invariant under a
translation of its parameters, a generator cannot couple two blocks: ∂/∂y_k of (E4) gives
∇f_kᵀ(Aθ)_k ≡ 0, and ∂/∂θ_l (l ≠ k) of that gives ∇f_kᵀA_kl ≡ 0, so A_kl = 0. Hence
𝒜(ℓ) = ⊕_k 𝒜_k exactly. Then the parameters are scrambled by an exact rational orthogonal
change of variables θ = Mφ (a product of Cayley rotations (I - S)(I + S)⁻¹ on random
subsets and a permutation); the generators become MᵀAM. The expected generators therefore
come from the construction, never from running a finder.
"""


from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import sympy as sp
from hypothesis import assume
from hypothesis import strategies as st
from sympy import QQ
from sympy.polys.matrices import DomainMatrix

from .._errors import InvalidArgumentError
from ..loss._loss import Loss

__all__ = ['PlantedBlock', 'PlantedLoss', 'planted_losses', 'planted_loss']


#: The kinds of invariant blocks a planted loss is built from, with the reason each
#: block's symmetry space is exactly the one planted (ℓ_k = (f_k - y_k)², so a generator
#: of the block is an A with ∇f_kᵀAθ ≡ 0).
BLOCK_KINDS: dict[str, str] = {
    "product": (
        "f = x Π t_i^p_i: ∇fᵀAθ = f Σ_i p_i (Aθ)_i / t_i; the Laurent monomials t_j/t_i (i ≠ j) "
        "are distinct, so A is diagonal with Σ p_i A_ii = 0: k - 1 generators"
    ),
    "bilinear": (
        "f = (uᵀz)(wᵀz'): the coefficient of z_i z'_j is w_j (Aθ)_{u_i} + u_i (Aθ)_{w_j} = 0, so "
        "(Aθ)_{u_i} = c u_i and (Aθ)_{w_j} = -c w_j with one c: A = c diag(I, -I)"
    ),
    "gl": (
        "f = Tr(UWX), X a data matrix: (E4) is δU W + U δW ≡ 0; its (1,1)-part gives δU = UN, "
        "δW = -NW (N symmetric for A symmetric), and the U-W coupling must vanish when "
        "max(m, k) ≥ 2 (m = k = 1 with d ≥ 2 is a dot product with extra symmetries and is "
        "never generated): d(d+1)/2 generators"
    ),
    "scale": (
        "f = (zᵀθ)(cᵀθ)/‖θ‖² (c = z or a rational vector), block size ≥ 2: (E4) for every z "
        "forces Aθ ∥ θ for every θ, so A = αI: one semidefinite generator"
    ),
    "relu": (
        "f = Σ_j v_j σ(w_jᵀz + b_j): on the open region where only neuron j is active (for "
        "leaky ReLU: subtract the region where none is) f reduces to v_j(w_jᵀz + b_j), which "
        "forces (Aθ)_{v_j} = -c_j v_j, (Aθ)_{w_j} = c_j w_j, (Aθ)_{b_j} = c_j b_j: one "
        "generator per neuron"
    ),
    "monomial": (
        "f = Σ_j v_j (w_jᵀz_j + b_j)^q with an own input z_j per neuron: the part of degree q "
        "in z_j comes from neuron j alone and forces (Aθ)_{v_j} = -q c_j v_j, (Aθ)_{w_j} = "
        "c_j w_j; degree q-1 then gives (Aθ)_{b_j} = c_j b_j: one generator per neuron"
    ),
    "generic": (
        "f = cᵀt + tᵀt, c ≠ 0: ∇fᵀAθ = cᵀAt + 2tᵀAt ≡ 0 forces A = 0: no generator (a block "
        "that absorbs parameters without adding symmetry)"
    ),
}

#: smallest number of parameters of each kind of block
_MIN_SIZE = {"product": 2, "bilinear": 2, "gl": 2, "scale": 2, "relu": 2, "monomial": 2, "generic": 1}

# small nonzero rationals, simplest first (hypothesis shrinks towards the front)
_RATIONALS = [sp.Rational(p, q) for p, q in [
    (1, 1), (-1, 1), (2, 1), (-2, 1), (1, 2), (-1, 2), (3, 1), (-3, 1), (1, 3), (-1, 3),
    (3, 2), (-3, 2), (2, 3), (-2, 3), (4, 1), (-4, 1),
]]
# entries of the skew matrix S of a Cayley rotation; 1 and -1 give 90° turns (permutations
# with signs), the others genuinely mix coordinates (3/5, 4/5, 5/13, 12/13, 8/17...)
# 13/7 and -31/4 give denominators in the hundreds to thousands per turn (1 + s² + ...), so
# that composed turns reach the 10^8 the finder must recover exactly
_SKEW = [sp.Rational(p, q) for p, q in [(1, 2), (-1, 2), (1, 3), (-1, 3), (2, 3), (-3, 2), (1, 4), (2, 1), (1, 1),
                                        (13, 7), (-31, 4)]]
_LEAKY = [sp.Rational(1, 10), sp.Rational(1, 5), sp.Rational(1, 2), sp.Rational(1, 3)]


# ------------------------------------------------------------------------------------------
# The objects
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlantedBlock:
    """One invariant block of a planted loss, in its natural (unrotated) coordinates.

    Attributes
    ----------
    kind
        A key of :data:`BLOCK_KINDS`.
    description
        Short text, e.g. ``"gl(m=2, d=2, k=1)"``.
    params
        The block's parameters θ_k (natural coordinates, before the change of variables).
    data
        The block's data symbols (its inputs and its target y_k).
    output
        f_k; the block contributes ``(f_k - y_k)²`` to the loss.
    generators
        A basis of the block's symmetry space 𝒜_k (rational, in ``params`` order).
    rotations
        A basis of the block's antisymmetric symmetries (rotations): so(d) for ``gl``, the
        rotations fixing c for ``generic`` blocks of size 3, none for the other kinds (the
        derivations of :data:`BLOCK_KINDS` hold verbatim for antisymmetric J).
    """

    kind: str
    description: str
    params: tuple[sp.Symbol, ...]
    data: tuple[sp.Symbol, ...]
    output: sp.Expr
    generators: tuple[sp.Matrix, ...]
    rotations: tuple[sp.Matrix, ...] = ()


@dataclass(frozen=True)
class PlantedLoss:
    """A loss with a known, exact space of symmetric generators.

    Attributes
    ----------
    loss
        The Loss, in the scrambled coordinates φ = ``loss.params`` (``t_0 ... t_{n-1}``).
    generators
        A basis of the planted space 𝒜(ℓ) (exact rational n×n matrices, rows and columns in
        ``loss.params`` order). By construction (module docstring) it spans exactly the
        symmetric generators of ``loss``: no fewer, no more.
    blocks
        The invariant blocks, in natural coordinates.
    rotations
        A basis of the planted antisymmetric symmetries (rotations), same coordinates.
    description
        One line: blocks, rotations, permutation.
    change_of_variables
        The rational orthogonal M with θ = Mφ, θ the blocks' parameters concatenated.
    """

    loss: Loss
    generators: tuple[sp.Matrix, ...]
    blocks: tuple[PlantedBlock, ...]
    description: str
    change_of_variables: sp.Matrix = field(repr=False)
    rotations: tuple[sp.Matrix, ...] = ()

    @property
    def canonical_generators(self) -> list[sp.Matrix]:
        """The planted space in the canonical form of :attr:`noether_sym.Symmetries.generators`:
        reduced row echelon form over the flattened upper triangle (row-major, i ≤ j)."""
        return _canonical(self.generators, self.loss.n)

    @property
    def canonical_rotations(self) -> list[sp.Matrix]:
        """The planted rotations in the canonical form of :attr:`noether_sym.Symmetries.rotations`
        (reduced row echelon form over the strict upper triangle)."""
        return _canonical(self.rotations, self.loss.n, sigma=-1)

    @property
    def denominator(self) -> int:
        """Largest denominator of an entry of the canonical generators and rotations (1 if
        none): how hard the case is for rational reconstruction."""
        mats = [*self.canonical_generators, *self.canonical_rotations]
        return max((int(sp.Rational(v).q) for A in mats for v in A), default=1)

    @property
    def natural_params(self) -> tuple[sp.Symbol, ...]:
        """θ: the blocks' parameters concatenated (θ = Mφ)."""
        return tuple(p for b in self.blocks for p in b.params)

    def with_data(self, model: Mapping[sp.Symbol, Any]) -> PlantedLoss:
        """The same planted loss with data symbols replaced (e.g. by sympy.stats random
        symbols from :func:`data_models`). The generators do not change: the symmetry holds
        per sample (E3), whatever the law of the data."""
        if not isinstance(model, Mapping):
            raise InvalidArgumentError(
                "with_data takes a mapping data symbol -> replacement (e.g. from data_models); "
                f"got {type(model).__name__}"
            )
        unknown = [str(k) for k in model if k not in self.loss.data_symbols]
        if unknown:
            raise InvalidArgumentError(
                f"with_data: {', '.join(unknown)} are not data symbols of this loss; its data symbols "
                f"are {', '.join(map(str, self.loss.data_symbols))}"
            )
        expr = self.loss.expr.xreplace(dict(model))
        plain = [s for s in self.loss.data_symbols if s not in model]
        loss = Loss(expr, list(self.loss.params), data=plain or None, name=self.loss.name,
                    description=self.loss.description)
        return replace(self, loss=loss)


# ------------------------------------------------------------------------------------------
# One construction, two sources of choices (hypothesis draws or a seeded random.Random)
# ------------------------------------------------------------------------------------------


class _Draws:
    """Choices made by hypothesis (so that failures shrink)."""

    def __init__(self, draw: Callable) -> None:
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def element(self, seq: Sequence) -> Any:
        return self.draw(st.sampled_from(list(seq)))

    def boolean(self) -> bool:
        return self.draw(st.booleans())

    def permutation(self, n: int) -> list[int]:
        return list(self.draw(st.permutations(range(n))))


class _Seeded:
    """Choices made by a seeded ``random.Random`` (reproducible fixed sets of cases)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def element(self, seq: Sequence) -> Any:
        return self.rng.choice(list(seq))

    def boolean(self) -> bool:
        return self.rng.random() < 0.5

    def permutation(self, n: int) -> list[int]:
        p = list(range(n))
        self.rng.shuffle(p)
        return p


def _gl_shapes(budget: int) -> list[tuple[int, int, int]]:
    return [(m, d, k) for d in (1, 2, 3) for m in (1, 2, 3) for k in (1, 2, 3)
            if m * d + d * k <= budget and not (m == 1 and k == 1 and d >= 2)]


def _options(kind: str, budget: int) -> list[tuple]:
    """Every shape of a block of this kind with at most ``budget`` parameters."""
    if kind == "product":
        return [(k,) for k in (2, 3) if k <= budget]
    if kind == "bilinear":
        return [(a, b) for a in (1, 2, 3) for b in (1, 2, 3) if a + b <= budget]
    if kind == "gl":
        return _gl_shapes(budget)
    if kind == "scale":
        return [(b,) for b in (2, 3, 4) if b <= budget]
    if kind == "relu":
        return [(h, p, bias) for h in (1, 2, 3) for p in (1, 2) for bias in (False, True)
                if h * (p + 1 + bias) <= budget]
    if kind == "monomial":
        return [(h, p, bias) for h in (1, 2) for p in (1, 2) for bias in (False, True)
                if h * (p + 1 + bias) <= budget]
    if kind == "generic":
        return [(s,) for s in (1, 2, 3) if s <= budget]
    raise AssertionError(kind)  # pragma: no cover - kinds are validated before


def _sym(name: str) -> sp.Symbol:
    # real symbols: the Loss keeps them as they are (no rebuild of the expression)
    return sp.Symbol(name, real=True)


def _pow(base: sp.Expr, e: int) -> sp.Expr:
    # unevaluated: evaluating a power of a sum queries assumptions (slow, and nothing to gain)
    return sp.Pow(base, e, evaluate=False)


def _substitute(expr: sp.Expr, sub: Mapping[sp.Symbol, sp.Expr]) -> sp.Expr:
    """``expr.xreplace(sub)`` that keeps powers and Max unevaluated (fast on large sums)."""
    if expr in sub:
        return sub[expr]
    if not expr.args:
        return expr
    args = [_substitute(a, sub) for a in expr.args]
    if isinstance(expr, sp.Pow):
        return sp.Pow(*args, evaluate=False)
    if isinstance(expr, (sp.Max, sp.Min)):
        return expr.func(*args, evaluate=False)
    return expr.func(*args)


def _diag(entries: Sequence[Any]) -> sp.Matrix:
    return sp.diag(*[sp.Integer(e) if isinstance(e, int) else e for e in entries])


def _block(ch: Any, kind: str, index: int, budget: int) -> PlantedBlock:
    """Build one block of the given kind with at most ``budget`` parameters (names carry
    the block index, so blocks never share a symbol)."""
    opt = ch.element(_options(kind, budget))
    P = f"b{index}"
    y = _sym(f"y{index}")

    def syms(name: str, count: int) -> list[sp.Symbol]:
        return [_sym(f"{P}{name}{i}") for i in range(count)]

    def data(name: str, count: int) -> list[sp.Symbol]:
        return [_sym(f"x{index}{name}{i}") for i in range(count)]

    if kind == "product":
        (k,) = opt
        t = syms("t", k)
        p = [ch.element([1, 2]) for _ in range(k)]
        (x,) = data("_", 1)
        f = x * sp.Mul(*[ti**pi for ti, pi in zip(t, p)])
        gens = []
        for i in range(1, k):  # a_0 = p_i, a_i = -p_0: Σ p_j a_j = 0
            a = [0] * k
            a[0], a[i] = p[i], -p[0]
            gens.append(_diag(a))
        return PlantedBlock(kind, f"product(p={p})", tuple(t), (x, y), f, tuple(gens))
    if kind == "bilinear":
        a, b = opt
        u, w = syms("u", a), syms("w", b)
        z, z2 = data("a", a), data("b", b)
        f = sp.Add(*[ui * zi for ui, zi in zip(u, z)]) * sp.Add(*[wi * zi for wi, zi in zip(w, z2)])
        return PlantedBlock(kind, f"bilinear({a},{b})", (*u, *w), (*z, *z2, y), f, (_diag([1] * a + [-1] * b),))
    if kind == "gl":
        m, d, k = opt
        U = sp.Matrix(m, d, lambda i, j: _sym(f"{P}U{i}{j}"))
        W = sp.Matrix(d, k, lambda i, j: _sym(f"{P}W{i}{j}"))
        X = sp.Matrix(k, m, lambda i, j: _sym(f"x{index}X{i}{j}"))
        f = (U * W * X).trace()
        # the flow (U, W) -> (U e^{-λN}, e^{λN} W); row-major vec: vec(U Nᵀ) = (I_m ⊗ N) vec(U),
        # vec(N W) = (N ⊗ I_k) vec(W); so J = diag(-(I_m ⊗ Nᵀ), N ⊗ I_k)
        gens, rots = [], []
        for a in range(d):
            for b in range(a, d):
                N = sp.zeros(d, d)
                N[a, b] = N[b, a] = 1
                gens.append(sp.diag(-sp.kronecker_product(sp.eye(m), N.T), sp.kronecker_product(N, sp.eye(k))))
                if a != b:
                    N[b, a] = -1
                    rots.append(sp.diag(-sp.kronecker_product(sp.eye(m), N.T), sp.kronecker_product(N, sp.eye(k))))
        return PlantedBlock(kind, f"gl(m={m}, d={d}, k={k})", (*U, *W), (*X, y), f, tuple(gens), tuple(rots))
    if kind == "scale":
        (b,) = opt
        t = syms("t", b)
        z = data("_", b)
        zt = sp.Add(*[ti * zi for ti, zi in zip(t, z)])
        if ch.boolean():
            c = [ch.element(_RATIONALS) for _ in range(b)]
            num, what = zt * sp.Add(*[ci * ti for ci, ti in zip(c, t)]), f"c={c}"
        else:
            num, what = _pow(zt, 2), "c=z"
        f = num / sp.Add(*[ti**2 for ti in t])
        return PlantedBlock(kind, f"scale({b}, {what})", tuple(t), (*z, y), f, (sp.eye(b),))
    if kind == "relu":
        h, p, bias = opt
        slope = ch.element([None, *_LEAKY])
        z = data("_", p)
        params: list[sp.Symbol] = []
        f = sp.Integer(0)
        gens = []
        for j in range(h):
            w, bj, v = _neuron(P, j, p, bias)
            s = sp.Add(*[wi * zi for wi, zi in zip(w, z)], *bj)
            act = sp.Max(0, s, evaluate=False) if slope is None else sp.Max(slope * s, s, evaluate=False)
            f += v * act
            start = len(params)
            params += [*w, *bj, v]
            gens.append([start, len(w) + len(bj)])
        n = len(params)
        mats = []
        for start, fan_in in gens:
            a = [0] * n
            for i in range(start, start + fan_in):
                a[i] = 1
            a[start + fan_in] = -1
            mats.append(_diag(a))
        name = "relu" if slope is None else f"leaky_relu({slope})"
        return PlantedBlock(kind, f"{name}(h={h}, in={p}, bias={bias})", tuple(params), (*z, y), f, tuple(mats))
    if kind == "monomial":
        h, p, bias = opt
        q = ch.element([2, 3])
        params = []
        xs: list[sp.Symbol] = []
        f = sp.Integer(0)
        spans = []
        for j in range(h):
            w, bj, v = _neuron(P, j, p, bias)
            z = [_sym(f"x{index}_{j}{i}") for i in range(p)]
            f += v * _pow(sp.Add(*[wi * zi for wi, zi in zip(w, z)], *bj), q)
            spans.append((len(params), len(w) + len(bj)))
            params += [*w, *bj, v]
            xs += z
        n = len(params)
        mats = []
        for start, fan_in in spans:
            a = [0] * n
            for i in range(start, start + fan_in):
                a[i] = 1
            a[start + fan_in] = -q
            mats.append(_diag(a))
        desc = f"monomial(q={q}, h={h}, in={p}, bias={bias})"
        return PlantedBlock(kind, desc, tuple(params), (*xs, y), f, tuple(mats))
    if kind == "generic":
        (s,) = opt
        t = syms("t", s)
        c = [ch.element(_RATIONALS) for _ in range(s)]
        f = sp.Add(*[ci * ti + ti**2 for ci, ti in zip(c, t)])
        # rotations: ∇fᵀJt = cᵀJt ≡ 0 iff Jc = 0, for s = 3 the cross product with c
        rots = (sp.Matrix([[0, -c[2], c[1]], [c[2], 0, -c[0]], [-c[1], c[0], 0]]),) if s == 3 else ()
        return PlantedBlock(kind, f"generic({s}, c={c})", tuple(t), (y,), f, (), rots)
    raise AssertionError(kind)  # pragma: no cover


def _cayley(ch: Any, size: int) -> sp.Matrix:
    """A rational orthogonal matrix (I - S)(I + S)⁻¹ from a rational skew-symmetric S ≠ 0."""
    S = sp.zeros(size, size)
    pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
    for i, j in pairs:
        v = ch.element([0, *_SKEW]) if size > 2 else ch.element(_SKEW)
        S[i, j], S[j, i] = v, -v
    if S == sp.zeros(size, size):
        S[0, 1], S[1, 0] = _SKEW[0], -_SKEW[0]
    return (sp.eye(size) - S) * (sp.eye(size) + S).inv()


def _validate_plant_options(
    kinds: Any, max_params: Any, max_blocks: Any, max_rotations: Any, permute: Any, min_generators: Any,
    max_denominator: Any = None,
) -> tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = (kinds,)
    try:
        kinds = tuple(kinds)
    except TypeError:
        raise InvalidArgumentError(
            f"kinds must be a sequence of block kinds from {sorted(BLOCK_KINDS)}; got {kinds!r}"
        ) from None
    bad = [k for k in kinds if k not in BLOCK_KINDS]
    if not kinds or bad:
        raise InvalidArgumentError(
            f"kinds must be a non-empty sequence of block kinds from {sorted(BLOCK_KINDS)}; "
            f"got {list(kinds)!r}"
        )
    for value, name, lo in ((max_params, "max_params", 1), (max_blocks, "max_blocks", 1),
                            (max_rotations, "max_rotations", 0), (min_generators, "min_generators", 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise InvalidArgumentError(f"{name} must be an integer ≥ {lo}; got {value!r}")
    smallest = min(_MIN_SIZE[k] for k in kinds)
    if max_params < smallest:
        raise InvalidArgumentError(
            f"max_params={max_params} is too small for the kinds {list(kinds)} (the smallest block "
            f"needs {smallest} parameters); raise max_params or add 'generic' to kinds"
        )
    if min_generators and all(k == "generic" for k in kinds):
        raise InvalidArgumentError(
            "min_generators > 0 needs a kind with symmetries; 'generic' blocks have none: add "
            "another kind (e.g. 'bilinear')"
        )
    if min_generators > max_params * (max_params + 1) // 2:
        raise InvalidArgumentError(
            f"min_generators={min_generators} exceeds the dimension of Sym(n) for n ≤ max_params="
            f"{max_params}; lower min_generators or raise max_params"
        )
    if not isinstance(permute, bool):
        raise InvalidArgumentError(f"permute must be True or False; got {permute!r}")
    if max_denominator is not None and (
        isinstance(max_denominator, bool) or not isinstance(max_denominator, (int, np.integer)) or max_denominator < 1
    ):
        raise InvalidArgumentError(f"max_denominator must be None or an integer ≥ 1; got {max_denominator!r}")
    return kinds


def _plant(ch: Any, kinds: tuple[str, ...], max_params: int, max_blocks: int, max_rotations: int,
           permute: bool) -> PlantedLoss:
    blocks: list[PlantedBlock] = []
    budget = max_params
    n_blocks = ch.integer(1, max_blocks)
    while len(blocks) < n_blocks:
        fitting = [k for k in kinds if _MIN_SIZE[k] <= budget and _options(k, budget)]
        if not fitting:
            break
        kind = ch.element(fitting)
        blk = _block(ch, kind, len(blocks), budget)
        blocks.append(blk)
        budget -= len(blk.params)
    theta = [p for b in blocks for p in b.params]
    n = len(theta)
    # planted basis in natural coordinates: block diagonal
    planted: list[sp.Matrix] = []
    rotations: list[sp.Matrix] = []
    off = 0
    for b in blocks:
        k = len(b.params)
        for mats, out in ((b.generators, planted), (b.rotations, rotations)):
            for A in mats:
                G = sp.zeros(n, n)
                G[off:off + k, off:off + k] = A
                out.append(G)
        off += k
    # change of variables θ = M φ: Cayley rotations on random subsets, then a permutation
    M = sp.eye(n)
    notes = []
    for _ in range(ch.integer(0, max_rotations) if n >= 2 else 0):
        size = ch.element([s for s in (2, 3) if s <= n])
        idx = sorted(ch.permutation(n)[:size])
        Q = _cayley(ch, size)
        G = sp.eye(n)
        for a, i in enumerate(idx):
            for b_, j in enumerate(idx):
                G[i, j] = Q[a, b_]
        M = M * G
        notes.append("{" + ",".join(map(str, idx)) + "}")
    if permute and n >= 2:
        perm = ch.permutation(n)
        P = sp.zeros(n, n)
        for new, old in enumerate(perm):
            P[old, new] = 1  # θ_old = φ_new
        M = M * P
        if perm != list(range(n)):
            notes.append("permuted")
    # the construction must be exactly orthogonal, otherwise MᵀAM are not the generators
    assert M.T * M == sp.eye(n), "internal error: the change of variables is not orthogonal"
    phi = list(sp.Matrix(n, 1, [_sym(f"t_{i}") for i in range(n)]))
    new_theta = M * sp.Matrix(phi)
    sub = dict(zip(theta, new_theta))
    y_terms = [_pow(_substitute(b.output, sub) - b.data[-1], 2) for b in blocks]
    expr = sp.Add(*y_terms)
    data = [s for b in blocks for s in b.data]
    desc = " + ".join(b.description for b in blocks)
    turns = [n_ for n_ in notes if n_ != "permuted"]
    if turns:
        desc += "; rotated " + " ".join(turns)
    if "permuted" in notes:
        desc += "; permuted"
    loss = Loss(expr, phi, data=data, name="planted", description=desc)
    return PlantedLoss(loss=loss, generators=tuple(M.T * A * M for A in planted), blocks=tuple(blocks),
                       description=desc, change_of_variables=M, rotations=tuple(M.T * J * M for J in rotations))


_ALL_KINDS = tuple(BLOCK_KINDS)


def planted_losses(
    *,
    kinds: Sequence[str] = _ALL_KINDS,
    max_params: int = 10,
    max_blocks: int = 3,
    max_rotations: int = 2,
    permute: bool = True,
    min_generators: int = 0,
    max_denominator: int | None = 10**8,
) -> st.SearchStrategy[PlantedLoss]:
    """A strategy of losses with planted symmetries (:class:`PlantedLoss`).

    Explanation
    -----------
    Each loss is ``Σ_k (f_k - y_k)²`` over up to ``max_blocks`` invariant blocks (kinds in
    :data:`BLOCK_KINDS`: products across a rescaling, traces of products across GL(d),
    norms for scale invariance, homogeneous activations, generic terms), then an exact
    rational orthogonal change of variables (up to ``max_rotations`` Cayley rotations on
    random subsets of 2-3 parameters) and a permutation of the parameters. The planted
    generators span exactly the symmetric generators of the loss (module docstring).

    Parameters
    ----------
    kinds
        Block kinds to draw from (default: all).
    max_params
        Largest number of parameters (keep it ≤ ~12 for the finder's exact route).
    max_blocks
        Largest number of blocks.
    max_rotations
        Largest number of Cayley rotations applied.
    permute
        Scramble the parameter order.
    min_generators
        Only produce losses with at least this many planted generators.
    max_denominator
        Only produce losses whose canonical planted basis has denominators ≤ this
        (:attr:`PlantedLoss.denominator`; composed rotations create large ones). Default
        10⁸; ``None`` for no bound. The finder recovers any denominator exactly (its
        numeric candidates are refined in exact arithmetic); the bound keeps the cases
        of a test run comparable in cost.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> import noether_sym.testing as nst
    >>> @settings(max_examples=3, deadline=None, database=None)
    ... @given(nst.planted_losses(max_params=4, kinds=["bilinear", "scale"]))
    ... def test_finder(planted):
    ...     nst.check_planted(planted)
    >>> test_finder()
    """
    kinds = _validate_plant_options(kinds, max_params, max_blocks, max_rotations, permute, min_generators,
                                    max_denominator)

    @st.composite
    def strategy(draw: Callable) -> PlantedLoss:
        planted = _plant(_Draws(draw), kinds, int(max_params), int(max_blocks), int(max_rotations), permute)
        assume(len(planted.generators) >= min_generators)
        assume(max_denominator is None or planted.denominator <= max_denominator)
        return planted

    return strategy()


def planted_loss(
    seed: int,
    *,
    kinds: Sequence[str] = _ALL_KINDS,
    max_params: int = 10,
    max_blocks: int = 3,
    max_rotations: int = 2,
    permute: bool = True,
    min_generators: int = 0,
    max_denominator: int | None = 10**8,
) -> PlantedLoss:
    """One planted loss, chosen by a seed (same construction as :func:`planted_losses`).

    With ``min_generators`` or ``max_denominator`` the seeds ``seed, seed + 10_000, ...``
    are tried until a loss qualifies, so the result is still a function of ``seed``.

    Examples
    --------
    >>> import noether_sym.testing as nst
    >>> p = nst.planted_loss(3, kinds=["gl"], max_blocks=1, max_rotations=0, permute=False)
    >>> p.description, len(p.generators)  # d(d+1)/2 = 3
    ('gl(m=2, d=2, k=1)', 3)
    """
    kinds = _validate_plant_options(kinds, max_params, max_blocks, max_rotations, permute, min_generators,
                                    max_denominator)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidArgumentError(f"seed must be an integer; got {seed!r}")
    for attempt in range(1000):
        planted = _plant(_Seeded(int(seed) + 10_000 * attempt), kinds, int(max_params), int(max_blocks),
                         int(max_rotations), permute)
        if len(planted.generators) >= min_generators and (
            max_denominator is None or planted.denominator <= max_denominator
        ):
            return planted
    raise InvalidArgumentError(  # pragma: no cover - needs absurd option combinations
        f"no planted loss with ≥ {min_generators} generators and denominators ≤ {max_denominator} found "
        "in 1000 tries; lower min_generators, raise max_params or max_denominator"
    )


# ------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------


def _upper(A: sp.Matrix) -> dict[int, Any]:
    n = A.shape[0]
    out = {}
    c = 0
    for i in range(n):
        for j in range(i, n):
            v = sp.Rational(A[i, j])
            if v != 0:
                out[c] = QQ(int(v.p), int(v.q))
            c += 1
    return out


def _canonical(mats: Sequence[sp.Matrix], n: int, sigma: int = 1) -> list[sp.Matrix]:
    """RREF over the flattened upper triangle (strict for sigma = -1, antisymmetric)."""
    pairs = [(i, j) for i in range(n) for j in range(i if sigma == 1 else i + 1, n)]
    col = {p: c for c, p in enumerate(pairs)}
    rows = []
    for A in mats:
        r = {col[(i, j)]: QQ(int(v.p), int(v.q)) for (i, j), v in
             ((ij, sp.Rational(v)) for ij, v in sp.Matrix(A).todok().items()) if (i, j) in col and v != 0}
        if r:
            rows.append(r)
    if not rows:
        return []
    R, pivots = DomainMatrix(dict(enumerate(rows)), (len(rows), len(pairs)), QQ).rref()
    sdm = R.to_sdm()
    out = []
    for r in range(len(pivots)):
        A = sp.zeros(n, n)
        for c, v in sdm.get(r, {}).items():
            i, j = pairs[c]
            A[i, j] = QQ.to_sympy(v)
            A[j, i] = sigma * A[i, j]
        out.append(A)
    return out


def _neuron(prefix: str, j: int, fan_in: int, bias: bool) -> tuple[list[sp.Symbol], list[sp.Symbol], sp.Symbol]:
    """The in-weights, optional bias and out-weight symbols of hidden neuron ``j``."""
    w = [_sym(f"{prefix}w{j}{i}") for i in range(fan_in)]
    return w, [_sym(f"{prefix}c{j}")] if bias else [], _sym(f"{prefix}v{j}")
