"""The expression compiler (THEORY §2 kernels): the DAG ``Graph``, the NumPy code of
``compile_graph`` and the exact engine ``ExactModel``.

References are written out here by hand, never taken from SymPy's ``diff`` or from the
compiler: NumPy values and gradients of each expression (derived in the comments), and
exact rationals (``fractions.Fraction``) for the exact engine. Only the public surface of
the compiler is used (``Graph.add``, ``compile_graph``'s arguments and return layout,
``ExactModel``'s ``val``/``der``/``confirm``/``rational_value``), so the tests hold
whatever the code generator looks like inside.
"""

from __future__ import annotations

from fractions import Fraction

import flint
import numpy as np
import pytest
import sympy as sp

from noether_sym._errors import UnsupportedExpressionError
from noether_sym.compile._codegen import compile_graph
from noether_sym.compile._exact import ExactModel
from noether_sym.compile._graph import Graph

x, y, z = sp.symbols("x y z")


def build(expr, inputs, *, grad=True, kinks=False):
    """Compile ``expr`` over ``inputs``: f(*arrays) -> ((value,), [grads], [kinks]?)."""
    g = Graph(tuple(inputs))
    root = g.add(expr)
    wrt = [g.add(s) for s in inputs]
    return compile_graph(g, [root], grad_of=root if grad else None, wrt=wrt, kinks=kinks)


def points(rng, n=9, avoid=None):
    """n random points (x, y), each coordinate in [-2, 2], away from where ``avoid`` is ~0."""
    out = []
    while len(out) < n:
        p = rng.uniform(-2.0, 2.0, size=2)
        if avoid is None or np.all(np.abs(avoid(*p)) > 0.1):
            out.append(p)
    return np.array(out).T


# ------------------------------------------------------------------------------------------
# values and gradients against hand-written NumPy
# ------------------------------------------------------------------------------------------

CASES = {
    # x³y − 2xy² + 5:  ∂x = 3x²y − 2y²,  ∂y = x³ − 4xy
    "polynomial": (
        x**3 * y - 2 * x * y**2 + 5,
        lambda x, y: x**3 * y - 2 * x * y**2 + 5,
        lambda x, y: (3 * x**2 * y - 2 * y**2, x**3 - 4 * x * y),
        None,
    ),
    # e^{xy} + log(x² + 1):  ∂x = y e^{xy} + 2x/(x² + 1),  ∂y = x e^{xy}
    "exp-log": (
        sp.exp(x * y) + sp.log(x**2 + 1),
        lambda x, y: np.exp(x * y) + np.log(x**2 + 1),
        lambda x, y: (y * np.exp(x * y) + 2 * x / (x**2 + 1), x * np.exp(x * y)),
        None,
    ),
    # √(x² + y²) + tanh(x) sin(y):  ∂x = x/r + (1 − tanh²x) sin y,  ∂y = y/r + tanh x cos y
    "sqrt-tanh-sin": (
        sp.sqrt(x**2 + y**2) + sp.tanh(x) * sp.sin(y),
        lambda x, y: np.hypot(x, y) + np.tanh(x) * np.sin(y),
        lambda x, y: (x / np.hypot(x, y) + (1 - np.tanh(x) ** 2) * np.sin(y),
                      y / np.hypot(x, y) + np.tanh(x) * np.cos(y)),
        None,
    ),
    # (x² + 1)^y = e^{y log(x² + 1)}:  ∂x = 2xy (x² + 1)^{y−1},  ∂y = (x² + 1)^y log(x² + 1)
    "symbolic-power": (
        (x**2 + 1) ** y,
        lambda x, y: (x**2 + 1) ** y,
        lambda x, y: (2 * x * y * (x**2 + 1) ** (y - 1), (x**2 + 1) ** y * np.log(x**2 + 1)),
        None,
    ),
    # |x − y| + max(0, xy) (a ReLU of xy):  with s = sign(x − y), r = [xy > 0],
    # ∂x = s + r y,  ∂y = −s + r x
    "abs-relu": (
        sp.Abs(x - y) + sp.Max(0, x * y),
        lambda x, y: np.abs(x - y) + np.maximum(0.0, x * y),
        lambda x, y: (np.sign(x - y) + (x * y > 0) * y, -np.sign(x - y) + (x * y > 0) * x),
        lambda x, y: np.stack([x - y, x * y]),
    ),
    # x y for x < 0, y² − x otherwise:  ∂x = y | −1,  ∂y = x | 2y
    "piecewise": (
        sp.Piecewise((x * y, x < 0), (y**2 - x, True)),
        lambda x, y: np.where(x < 0, x * y, y**2 - x),
        lambda x, y: (np.where(x < 0, y, -1.0), np.where(x < 0, x, 2 * y)),
        lambda x, y: x,
    ),
    # min(x, y²) · y:  ∂x = [x < y²] y,  ∂y = [x < y²] x + [x ≥ y²] 3y²
    "min": (
        sp.Min(x, y**2) * y,
        lambda x, y: np.minimum(x, y**2) * y,
        lambda x, y: (np.where(x < y**2, y, 0.0), np.where(x < y**2, x, 3 * y**2)),
        lambda x, y: x - y**2,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_value_and_gradient_match_hand_written_numpy(case, rng):
    expr, value, grad, kink = CASES[case]
    f = build(expr, [x, y])
    if case == "symbolic-power":
        X, Y = points(rng)
    else:
        X, Y = points(rng, avoid=kink)
    (v,), (gx, gy) = f(X, Y)
    assert v.shape == gx.shape == gy.shape == X.shape
    np.testing.assert_allclose(v, value(X, Y), rtol=1e-12, atol=1e-12)
    ex, ey = grad(X, Y)
    np.testing.assert_allclose(gx, ex, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gy, ey, rtol=1e-12, atol=1e-12)


def test_gradient_of_a_product_of_many_factors(rng):
    # ∏_{k=1}^{12} (t_k + k):  ∂_i = ∏ / (t_i + i)  (no factor is near zero below)
    ts = sp.symbols("t1:13")
    expr = sp.Mul(*[t + k for k, t in enumerate(ts, start=1)])
    f = build(expr, ts)
    vals = [rng.uniform(0.1, 0.5, size=5) for _ in ts]
    factors = np.array([v + k for k, v in enumerate(vals, start=1)])
    (v,), grads = f(*vals)
    prod = factors.prod(axis=0)
    np.testing.assert_allclose(v, prod, rtol=1e-13)
    assert len(grads) == 12
    for i, g in enumerate(grads):
        np.testing.assert_allclose(g, prod / factors[i], rtol=1e-13)


def test_repeated_factor_and_a_factor_shared_by_two_terms():
    # x·x·x·y = x³y and (x + y)² + 3(x + y):  ∂x = 3x²y + 2(x + y) + 3,  ∂y = x³ + 2(x + y) + 3
    s = x + y
    expr = x * x * x * y + s**2 + 3 * s
    f = build(expr, [x, y])
    X, Y = np.array([0.5, -1.5, 2.0]), np.array([1.25, 0.75, -0.5])
    (v,), (gx, gy) = f(X, Y)
    np.testing.assert_allclose(v, X**3 * Y + (X + Y) ** 2 + 3 * (X + Y), rtol=1e-14)
    np.testing.assert_allclose(gx, 3 * X**2 * Y + 2 * (X + Y) + 3, rtol=1e-14)
    np.testing.assert_allclose(gy, X**3 + 2 * (X + Y) + 3, rtol=1e-14)


def test_inputs_broadcast_over_a_batch_and_outputs_take_the_common_shape():
    # x y² + z over a (4, 1) column of x, a (3,) row of y and a scalar z: value and
    # gradients (y², 2xy, 1) all have shape (4, 3), including the constant ∂z.
    expr = x * y**2 + z
    f = build(expr, [x, y, z])
    X = np.arange(1.0, 5.0).reshape(4, 1)
    Y = np.array([-1.0, 0.5, 2.0])
    (v,), (gx, gy, gz) = f(X, Y, 0.25)
    assert v.shape == gx.shape == gy.shape == gz.shape == (4, 3)
    np.testing.assert_allclose(v, X * Y**2 + 0.25)
    np.testing.assert_allclose(gx, np.broadcast_to(Y**2, (4, 3)))
    np.testing.assert_allclose(gy, 2 * X * Y)
    np.testing.assert_array_equal(gz, np.ones((4, 3)))


def test_gradient_with_respect_to_an_unused_input_is_zero_of_the_batch_shape():
    f = build(x**2, [x, y])
    _, (gx, gy) = f(np.array([1.0, -3.0]), np.array([5.0, 6.0]))
    np.testing.assert_allclose(gx, [2.0, -6.0])
    np.testing.assert_array_equal(gy, np.zeros(2))


def test_several_outputs_and_a_gradient_with_respect_to_a_subset_of_inputs():
    # outputs (x y, x + y), gradient of x y with respect to y only: x
    g = Graph((x, y))
    a, b = g.add(x * y), g.add(x + y)
    f = compile_graph(g, [a, b], grad_of=a, wrt=[g.add(y)])
    X, Y = np.array([2.0, -1.0]), np.array([3.0, 4.0])
    (va, vb), grads = f(X, Y)
    np.testing.assert_allclose(va, X * Y)
    np.testing.assert_allclose(vb, X + Y)
    assert len(grads) == 1
    np.testing.assert_allclose(grads[0], X)


def test_values_only_without_a_gradient():
    f = build(sp.exp(x) - y, [x, y], grad=False)
    out = f(np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    assert len(out) == 1  # the outputs alone, no gradient list
    np.testing.assert_allclose(out[0][0], [0.0, np.e - 1.0])


def test_kink_arguments_are_reported_with_their_values(rng):
    # |x − y| and max(0, xy) have kink arguments ±(x − y) and ±xy (the sign is the
    # compiler's choice; the zero set is what matters)
    expr, *_ = CASES["abs-relu"]
    f = build(expr, [x, y], kinks=True)
    X, Y = points(rng, avoid=lambda x, y: np.stack([x - y, x * y]))
    _, _, ks = f(X, Y)
    assert len(ks) == 2
    got = sorted(np.abs(np.asarray(k)).round(12).tolist() for k in ks)
    want = sorted([np.abs(X - Y).round(12).tolist(), np.abs(X * Y).round(12).tolist()])
    assert got == want


def test_complex_step_of_the_gradient_gives_the_hessian_vector_product():
    # |x − y| x² with s = sign(x − y):  ∇ = s (3x² − 2xy, −x²),
    # H = s [[6x − 2y, −2x], [−2x, 0]];  Im ∇(θ + i h v) / h = H v
    f = build(sp.Abs(x - y) * x**2, [x, y])
    X, Y = np.array([1.5, -0.5, 0.3]), np.array([0.25, 1.0, -2.0])
    vx, vy = np.array([1.0, 0.5, -2.0]), np.array([-1.0, 2.0, 0.5])
    h = 1e-30
    _, (gx, gy) = f(X + 1j * h * vx, Y + 1j * h * vy)
    s = np.sign(X - Y)
    np.testing.assert_allclose(np.imag(gx) / h, s * ((6 * X - 2 * Y) * vx - 2 * X * vy), rtol=1e-13)
    np.testing.assert_allclose(np.imag(gy) / h, s * (-2 * X * vx), rtol=1e-13)
    np.testing.assert_allclose(np.real(gx), s * (3 * X**2 - 2 * X * Y), rtol=1e-13)


def test_shared_sub_expressions_are_one_node():
    g = Graph((x, y))
    first = g.add(sp.exp(x * y) + (x * y) ** 2)
    n = len(g.nodes)
    assert g.add(sp.exp(x * y) + (x * y) ** 2) == first
    assert len(g.nodes) == n  # nothing new: the same expression is the same node
    g.add(sp.sin(x * y))
    assert len(g.nodes) == n + 1  # x·y is reused, only sin is new


def test_unsupported_input_is_refused_with_a_clear_error():
    with pytest.raises(UnsupportedExpressionError, match="not an input"):
        Graph((x,)).add(x * y)
    with pytest.raises(UnsupportedExpressionError, match="non-real"):
        Graph((x,)).add(x + sp.oo)
    with pytest.raises(UnsupportedExpressionError, match="ImaginaryUnit"):
        Graph((x,)).add(x + sp.I)
    f_ = sp.Function("f")
    with pytest.raises(UnsupportedExpressionError, match="cannot compile"):
        Graph((x,)).add(f_(x))


# ------------------------------------------------------------------------------------------
# the exact engine against hand-derived rationals
# ------------------------------------------------------------------------------------------

u, w = sp.symbols("u w")


def exact(expr, params, data=()):
    g = Graph(tuple(params) + tuple(data))
    return ExactModel(g, g.add(expr), len(params))


def at(em, frac, **values):
    """Value of an exact rational function at a point given by variable name (fmpq)."""
    args = [flint.fmpq(values[n].numerator, values[n].denominator) for n in em.names]
    num = frac.n(*args)
    den = flint.fmpq(1) if frac.d is None else frac.d(*args)
    return Fraction(int(num.p), int(num.q)) / Fraction(int(den.p), int(den.q))


POINTS = [
    {"in0": Fraction(1, 2), "in1": Fraction(-3, 4), "in2": Fraction(5, 3)},
    {"in0": Fraction(-2), "in1": Fraction(7, 5), "in2": Fraction(1, 9)},
    {"in0": Fraction(3), "in1": Fraction(2), "in2": Fraction(-4, 7)},
]


def test_exact_value_of_a_rational_loss():
    # ℓ = (u w x − 1)² / (1 + u²) at rationals, computed with Fraction
    em = exact((u * w * x - 1) ** 2 / (1 + u**2), [u, w], [x])
    assert not em.has_helpers
    val = em.rational_value()
    for p in POINTS:
        U, W, X = p["in0"], p["in1"], p["in2"]
        assert at(em, val, **p) == (U * W * X - 1) ** 2 / (1 + U**2)


def test_exact_directional_derivative_by_hand():
    # ℓ = u² w x along V(θ) = Jθ with J = [[0, 1], [0, 0]], i.e. V = (w, 0):
    # D_V ℓ = ∂_u ℓ · w = 2 u w² x
    em = exact(u**2 * w * x, [u, w], [x])
    em.set_direction([[0, 1], [0, 0]])
    d = em.der(em.root)
    for p in POINTS:
        U, W, X = p["in0"], p["in1"], p["in2"]
        assert at(em, d, **p) == 2 * U * W**2 * X
    # J = diag(1/3, −2): D_V ℓ = (2/3 − 2) ℓ = −(4/3) u² w x
    em.set_direction({(0, 0): Fraction(1, 3), (1, 1): Fraction(-2)})
    d = em.der(em.root)
    for p in POINTS:
        U, W, X = p["in0"], p["in1"], p["in2"]
        assert at(em, d, **p) == Fraction(-4, 3) * U**2 * W * X


def test_exact_confirmation_of_rescaling_and_rotation():
    # (u w x − y)²: rescaling A = diag(1, −1) is a symmetry, A = I is not
    em = exact((u * w * x - y) ** 2, [u, w], [x, y])
    assert em.confirm([[1, 0], [0, -1]]).confirmed
    res = em.confirm([[1, 0], [0, 1]])
    assert not res.confirmed and "not identically zero" in res.reason
    # √(u² + w²) through an atom variable: the rotation is a symmetry, the scaling is not
    em = exact(sp.sqrt(u**2 + w**2) * x, [u, w], [x])
    assert em.has_helpers
    assert em.confirm([[0, -1], [1, 0]]).confirmed
    assert not em.confirm([[1, 0], [0, 1]]).confirmed
    with pytest.raises(UnsupportedExpressionError):
        em.rational_value()


def test_exact_confirmation_through_a_relu_kink():
    # (v max(0, w x) − y)²: v → e^{−λ} v, w → e^{λ} w keeps every branch (max is positively
    # homogeneous and the kink argument w x is only rescaled); scaling both (A = I) is not
    v = sp.Symbol("v")
    em = exact((v * sp.Max(0, w * x) - y) ** 2, [v, w], [x, y])
    assert em.confirm([[-1, 0], [0, 1]]).confirmed
    assert not em.confirm([[1, 0], [0, 1]]).confirmed


def test_a_flow_that_crosses_a_kink_is_not_confirmed():
    # ℓ = |u|² − u² is 0 on every branch (s² = 1), so D_V ℓ ≡ 0 for any V; but along
    # V = (w, 0) the kink argument u has D_V u = w, not a multiple of u: refused
    em = exact(sp.Abs(u) ** 2 - u**2, [u, w])
    res = em.confirm([[0, 1], [0, 0]])
    assert not res.confirmed and "kink" in res.reason
    # along V = (u, 0) the kink only moves radially (D_V u = u): confirmed
    assert em.confirm([[1, 0], [0, 0]]).confirmed
