"""Loss validation: every invalid input gets a NoetherSymError that names it."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.stats import Normal

import noether_sym as ns
from noether_sym import (
    InvalidDataError,
    InvalidLossError,
    InvalidParameterError,
    NoetherSymError,
)

u, w, x, y, z = sp.symbols("u w x y z")


def test_valid_loss_and_blocks_flatten_row_major():
    W = ns.matrix("W", 2, 2)
    v = ns.vector("v", 2)
    loss = ns.Loss(sp.Add(*[W[i, j] * v[j] * x for i in range(2) for j in range(2)]) ** 2, [W, v], data=[x])
    assert [str(p) for p in loss.params] == ["W_0_0", "W_0_1", "W_1_0", "W_1_1", "v_0", "v_1"]
    assert [b.shape for b in loss.blocks] == [(2, 2), (2, 1)]
    assert loss.blocks[1].slice == slice(4, 6)


def test_random_symbols_are_found_as_data():
    xr = Normal("x", 0, 1)
    loss = ns.Loss((u * w * xr - xr) ** 2, [u, w])
    assert loss.random_symbols == (xr,) and [s.name for s in loss.x] == ["x"]


@pytest.mark.parametrize(
    "kwargs,err,words",
    [
        (dict(expr=sp.Matrix([[u, w]]), params=[u]), InvalidLossError, "scalar"),
        (dict(expr=3.0, params=[u]), InvalidLossError, "SymPy expression"),
        (dict(expr="u*w", params=[u]), InvalidLossError, "not a string"),
        (dict(expr=[u], params=[u]), InvalidLossError, "SymPy expression"),
        (dict(expr=u > w, params=[u]), InvalidLossError, "scalar algebraic"),
        (dict(expr=u * w * sp.I, params=[u, w]), InvalidLossError, "real-valued"),
        (dict(expr=u * w, params=[]), InvalidParameterError, "empty"),
        (dict(expr=u * w, params=[u, 2]), InvalidParameterError, "Symbol"),
        (dict(expr=u * w, params=[u, u * w]), InvalidParameterError, "Symbol"),
        (dict(expr=u * w, params=[u, u, w]), InvalidParameterError, "twice"),
        (dict(expr=u * w, params=[u, w, z]), InvalidParameterError, "do not appear"),
        (dict(expr=u * w * x, params=[u, w]), InvalidLossError, "neither parameters nor data"),
        (dict(expr=u * w * x, params=[u, w, x], data=[x]), InvalidDataError, "both a parameter and a data"),
        (dict(expr=u * w, params="u w"), InvalidParameterError, "list of SymPy symbols"),
        (dict(expr=u * w * x, params=[u, w], data={x: [1.0, np.nan]}), InvalidDataError, "non-finite"),
        (dict(expr=u * w * x * y, params=[u, w], data={x: [1.0, 2.0], y: [1.0]}), InvalidDataError, "different lengths"),
        (dict(expr=u * w * x, params=[u, w], data={x: [[1.0, 2.0]]}), InvalidDataError, "1-D"),
        (dict(expr=u * w * x, params=[u, w], data={x: []}), InvalidDataError, "empty"),
        (dict(expr=u * w * x, params=[u, w], data={x: [1.0], z: [2.0]}), InvalidDataError, "does not appear"),
        (dict(expr=u * w * x, params=[u, w], data=3), InvalidDataError, "data must be"),
        (dict(expr=u * w * x, params=[u, w], data=[x], constants=[x]), InvalidLossError, "constant"),
    ],
)
def test_invalid_inputs(kwargs, err, words):
    with pytest.raises(err) as info:
        ns.Loss(**kwargs)
    assert isinstance(info.value, NoetherSymError)
    assert words in str(info.value)


def test_random_symbol_as_parameter_is_rejected():
    xr = Normal("x", 0, 1)
    with pytest.raises(InvalidParameterError, match="random symbol"):
        ns.Loss(u * xr, [u, xr])


def test_random_symbols_and_dataset_together_are_rejected():
    xr = Normal("xr", 0, 1)
    with pytest.raises(InvalidDataError, match="one data model"):
        ns.Loss(u * xr * x, [u], data={x: [1.0, 2.0]})


def test_name_clash_between_symbols_is_rejected():
    u_real = sp.Symbol("u", real=True)
    with pytest.raises(InvalidLossError, match="share the name"):
        ns.Loss(u * u_real * x, [u, u_real], data=[x])


def test_theta_vector_validation():
    loss = ns.Loss(u * w * x, [u, w], data=[x])
    assert np.allclose(loss.theta_vector({w: 2, u: 1}), [1, 2])
    with pytest.raises(ns.InvalidArgumentError, match="no value"):
        loss.theta_vector({u: 1})
    with pytest.raises(ns.InvalidArgumentError, match="one entry per parameter"):
        loss.theta_vector([1, 2, 3])
    with pytest.raises(ns.InvalidArgumentError, match="non-finite"):
        loss.theta_vector([1, np.inf])
    with pytest.raises(InvalidParameterError, match="not a parameter"):
        loss.theta_vector({x: 1, u: 1, w: 2})


def test_constants_are_allowed_when_declared():
    c = sp.Symbol("c")
    loss = ns.Loss(c * u * w * x, [u, w], data=[x], constants={c: 2.0})
    assert loss.constant_values() == {sp.Symbol("c", real=True): 2.0}


def test_no_differentiable_point():
    # the loss is undefined (complex) everywhere: sqrt of a negative quantity
    loss = ns.Loss(sp.sqrt(-(u**2) - w**2 - 1) * x, [u, w], data=[x])
    with pytest.raises(ns.NoDifferentiablePointError, match="differentiable"):
        ns.find_symmetries(loss)


def test_text_is_never_evaluated_as_a_number_or_matrix_entry():
    c = sp.Symbol("c")
    with pytest.raises(ns.InvalidArgumentError, match="real number"):
        ns.Loss(c * u * w * x, [u, w], data=[x], constants={c: "__import__('os')"})
    loss = ns.Loss(u * w * x, [u, w], data=[x])
    for bad in ([["1", 0], [0, -1]], [["__import__('os')", 0], [0, 1]]):
        with pytest.raises(ns.InvalidGeneratorError, match="real number"):
            ns.confirm_generator(loss, bad)
    assert ns.confirm_generator(loss, np.diag([1.0, -1.0]))[0]


# ---- the generator normaliser (loss/_generators.py) -------------------------------------

from noether_sym import InvalidArgumentError, InvalidGeneratorError  # noqa: E402
from noether_sym.loss._generators import SPARSE_ABOVE, as_generator, as_generators  # noqa: E402


@pytest.mark.parametrize(
    "given",
    [
        sp.Matrix([[1, 0], [0, -1]]),
        sp.SparseMatrix(2, 2, {(0, 0): 1, (1, 1): -1}),
        np.diag([1.0, -1.0]),
        np.diag([1, -1]),
        [[1, 0], [0, -1]],
        ((sp.Integer(1), 0), (0, -1.0)),
    ],
)
def test_as_generator_reads_every_kind_of_matrix_exactly(given):
    A = as_generator(given, 2, symmetry="symmetric")
    assert A == sp.diag(1, -1)
    assert all(v.is_Rational for v in A)


def test_as_generator_keeps_the_exact_value_of_a_float():
    A = as_generator(np.array([[0.1, 0.0], [0.0, 0.0]]), 2)
    assert A[0, 0] == sp.Rational(0.1) and A[0, 0] != sp.Rational(1, 10)
    with pytest.raises(InvalidGeneratorError, match="exact"):
        as_generator([[0.5, 0], [0, 0]], 2, allow_floats=False)


@pytest.mark.parametrize(
    "bad, kwargs, match",
    [
        (sp.diag(1, -1), {}, r"3x3 .*got 2x2"),
        ([[1, 0, 0], [0, 1, 0], [0, 0, 1, 5]], {}, "equal-length rows|2-D"),
        ("[[1,0],[0,1]]", {}, "never parsed"),
        ([["1", 0, 0], [0, 1, 0], [0, 0, 1]], {}, "real number"),
        ([[True, 0, 0], [0, 1, 0], [0, 0, 1]], {}, "real number"),
        (np.array([[np.nan, 0, 0], [0, 1, 0], [0, 0, 1]]), {}, "non-finite"),
        ([[float("inf"), 0, 0], [0, 1, 0], [0, 0, 1]], {}, "real number"),
        ([[sp.I, 0, 0], [0, 1, 0], [0, 0, 1]], {}, "real number"),
        ([[sp.Symbol("a"), 0, 0], [0, 1, 0], [0, 0, 1]], {}, "real number"),
        ([[sp.sqrt(2), 0, 0], [0, 1, 0], [0, 0, 1]], {}, "not a rational"),
        ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], {"symmetry": "symmetric"}, r"symmetric .*entry \(0,1\)"),
        ([[0, 1, 0], [1, 0, 0], [0, 0, 0]], {"symmetry": "antisymmetric"}, "antisymmetric"),
        (sp.zeros(3, 3), {"nonzero": True}, "zero matrix"),
    ],
)
def test_as_generator_rejects_with_a_message_that_says_what_to_fix(bad, kwargs, match):
    with pytest.raises(InvalidGeneratorError, match=match):
        as_generator(bad, 3, **kwargs)


def test_as_generator_admits_algebraic_entries_on_request_and_checks_its_options():
    assert as_generator(sp.diag(sp.sqrt(2), 1), 2, rational=False)[0, 0] == sp.sqrt(2)
    with pytest.raises(InvalidArgumentError, match="n must be"):
        as_generator(sp.eye(2), 0)
    with pytest.raises(InvalidArgumentError, match="symmetry"):
        as_generator(sp.eye(2), 2, symmetry="sym")


def test_as_generator_is_sparse_for_many_parameters():
    n = SPARSE_ABOVE + 1
    A = np.zeros((n, n))
    A[0, 0], A[n - 1, n - 1] = 1.0, -1.0
    G = as_generator(A, n, symmetry="symmetric")
    assert isinstance(G, sp.SparseMatrix) and G.todok() == {(0, 0): 1, (n - 1, n - 1): -1}
    assert isinstance(as_generator(np.eye(3), 3), sp.Matrix)


def test_as_generators_takes_one_matrix_a_sequence_or_a_result():
    one = as_generators([[1, 0], [0, -1]], 2)
    assert one == [sp.diag(1, -1)]
    assert as_generators(np.diag([1, -1]), 2) == one
    assert as_generators([sp.diag(1, -1), np.diag([2, 0])], 2) == [sp.diag(1, -1), sp.diag(2, 0)]

    class Result:
        generators = [sp.diag(1, -1)]

    assert as_generators(Result(), 2) == one
    assert as_generators([], 2, empty_ok=True) == []
    with pytest.raises(InvalidGeneratorError, match="empty"):
        as_generators([], 2)
    with pytest.raises(InvalidGeneratorError, match=r"generators\[1\] must be 2x2"):
        as_generators([sp.eye(2), sp.eye(3)], 2)
    with pytest.raises(InvalidGeneratorError, match="unordered set"):
        as_generators({1, 2}, 2)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"params": {u, w}, "data": [x]}, InvalidParameterError),
        ({"params": dict.fromkeys([u, w]).keys(), "data": [x]}, InvalidParameterError),
        ({"params": [u, w], "data": {x}}, InvalidDataError),
        ({"params": [u, w], "data": [x], "constants": {sp.Symbol("c")}}, InvalidLossError),
    ],
)
def test_an_unordered_set_is_refused_where_order_matters(kwargs, error):
    c = sp.Symbol("c")
    with pytest.raises(error, match="ordered sequence.*hash seed"):
        ns.Loss(u * w * x * c, **kwargs)


def test_block_sizes_are_checked_with_a_bound():
    with pytest.raises(InvalidArgumentError, match="n must be an integer"):
        ns.vector("w", 0)
    with pytest.raises(InvalidArgumentError, match="cols must be an integer"):
        ns.matrix("W", 2, True)
    with pytest.raises(InvalidArgumentError, match="over the limit"):
        ns.vector("w", 10**7)
