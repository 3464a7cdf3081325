"""The catalog (THEORY §7): every family is an ordinary Loss with a data model, checked by
the generic finder against the symmetry counts the theory predicts (formulas in the widths,
derived in the comments below, never read off the implementation)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sympy as sp
from helpers import gl_count
from sympy.stats import Normal

import noether_sym as ns
from noether_sym.cli._main import main
from noether_sym.compile._compiled import compiled

FAMILIES = [k for k in ns.families.CATALOG if k != "matrix-factorization-30-40-30"]


# ---- every entry ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_family_builds_with_data_model_and_start(name):
    fam = ns.families.get(name)
    loss = fam.build()
    assert isinstance(loss, ns.Loss)
    # a data model: random symbols or a dataset, no plain data symbol left without one
    has_random = len(loss.random_symbols) == len(loss.data_symbols) > 0
    assert has_random or loss.dataset is not None
    ns.make_sampler(loss)  # raises if some data symbol has no distribution
    theta0 = fam.theta0(loss, seed=1)
    assert theta0.shape == (loss.n,) and np.all(np.isfinite(theta0))
    assert fam.section.startswith("7.") and fam.description and fam.theorems
    assert {"lr", "batch_size", "steps", "replicas"} <= set(fam.settings)
    # the settings are accepted by the simulator as they are (a short run)
    short = {**fam.settings, "steps": 5, "replicas": 2}
    res = ns.simulate(loss, theta0, **short, seed=0)
    assert res.theta.shape == (2, loss.n) and not res.diverged.any()


#: smaller options for the moment test where the default size makes exact moments slow
SMALL = {"deep-linear": {"dims": (2, 1, 1, 1)}, "normalized-linear": {"d": 2}}


@pytest.mark.parametrize("name", FAMILIES)
def test_moments_compute(name):
    fam = ns.families.get(name)
    loss = fam.build(**SMALL.get(name, {}))
    theta = fam.theta0(loss)
    mom = ns.moments(loss, theta=theta, n_samples=2000)  # exact where polynomial in the data
    cov = np.array(mom.covariance, dtype=float)
    assert cov.shape == (loss.n, loss.n) and np.all(np.isfinite(cov))
    assert np.allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > -1e-9 * max(1.0, np.abs(cov).max())


@pytest.mark.parametrize("name", FAMILIES)
def test_finder_count_matches_the_family_prediction(name):
    fam = ns.families.get(name)
    sym = ns.find_symmetries(fam.build())
    assert sym.n_generators == fam.extra["n_generators"](**fam.options)
    assert not sym.unconfirmed


# ---- counts from the theory, per family ---------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3])
def test_rescaling_one_generator(d):
    loss = ns.families.rescaling(d=d)
    sym = ns.find_symmetries(loss)
    A = sym.generators[0]
    expected = sp.diag(1, *([-1] * d))  # §7.1: A = diag(I_u, −I_w)
    assert sym.n_generators == 1 and (A == expected or A == -expected)


def test_rescaling_worked_numbers():
    # THEORY §7.1: Σ_x = diag(1, 4, 1/4), β = (1, −1/2, 2), σ² = 1/2, u = 2, w = β/2.
    # Tr Σ_u / Tr Σ_w = wᵀΣ_x w / (u² Tr Σ_x) = (3/4) / (4 · 21/4) = 1/28, so λ* = −log(28)/4
    # for A = diag(1, −1, −1, −1) and u*² = 4 e^{2λ*} = 4/√28 = 0.7559.
    fam = ns.families.get("rescaling")
    loss = fam.build()
    theta = fam.theta0(loss)
    assert theta.tolist() == [2.0, 0.5, -0.25, 1.0]
    A = ns.find_symmetries(loss).generators[0]
    A = A if A[0, 0] > 0 else -A
    eq = ns.noise_equilibrium(loss, A, theta)
    assert eq.kind == "balanced"
    assert abs(eq.lam - (-math.log(28) / 4)) < 1e-4 and abs(eq.lam + 0.8331) < 1e-4
    assert abs(eq.theta[0] ** 2 - 0.7559) < 1e-4
    # the data model is exact: variances 1, 4, 1/4 and σ² = 1/2
    std = {s.name: s.pspace.distribution.std for s in loss.random_symbols}
    assert std == {"E0": sp.sqrt(2) / 2, "X0": 1, "X1": 2, "X2": sp.Rational(1, 2)}


@pytest.mark.parametrize(
    "dims, anisotropic",
    [((2, 2, 2), False), ((3, 2, 2), True), ((2, 3, 2), False), ((2, 3, 3), True)],
)
def test_matrix_factorization_gl_count(dims, anisotropic):
    sym = ns.find_symmetries(ns.families.matrix_factorization(dims, anisotropic=anisotropic))
    assert sym.n_generators == gl_count(dims)


@pytest.mark.parametrize("dims, expected", [((1, 2, 1), 4), ((1, 3, 1), 9), ((1, 2, 1, 1), 4 + 1), ((1, 2, 2, 1), 3 + 3)])
def test_linear_width_one_ends_have_o_dd_symmetry(dims, expected):
    # a hidden layer of width d between two width-1 layers: f depends on (w, u) only via
    # uᵀw, and A = [[M, C], [−C, −M]] with M symmetric, C antisymmetric solves gᵀAθ = 0:
    # d² generators (the symmetric part of o(d, d)); THEORY §7.2's d(d+1)/2 counts C = 0 only
    sym = ns.find_symmetries(ns.families.linear_net(list(dims)))
    assert sym.n_generators == expected


@pytest.mark.parametrize("dims", [(2, 2, 2, 2), (2, 3, 2, 1)])
def test_deep_linear_count(dims):
    assert ns.find_symmetries(ns.families.deep_linear(dims)).n_generators == gl_count(dims)


@pytest.mark.parametrize(
    "builder, dims, bias",
    [
        (lambda dims, bias: ns.families.build("relu-net", dims=dims, bias=bias), (2, 3, 1), False),
        (lambda dims, bias: ns.families.build("relu-net", dims=dims, bias=bias), (2, 2, 2, 1), True),
        (lambda dims, bias: ns.families.leaky_relu_net(dims, bias=bias), (2, 3, 1), False),
        (lambda dims, bias: ns.families.leaky_relu_net(dims, bias=bias), (2, 2, 1), True),
    ],
)
def test_homogeneous_one_generator_per_hidden_neuron(builder, dims, bias):
    sym = ns.find_symmetries(builder(dims, bias))
    assert sym.n_generators == sum(dims[1:-1]) == sym.n_independent_charges  # §7.4


@pytest.mark.parametrize("p", [2, 3])
def test_monomial_generators_have_eigenvalues_one_and_minus_p(p):
    sym = ns.find_symmetries(ns.families.monomial_net((2, 2, 1), p=p))
    assert sym.n_generators == 2
    for A in sym.generators:
        eig = sorted({v for v in A.diagonal() if v != 0}) if A.is_diagonal() else None
        assert eig is not None and len(eig) == 2
        assert eig[0] / eig[1] == -p  # a = 1 on the in-weights, −p on the out-weight (§7.4)


def test_tanh_has_no_symmetry():
    assert ns.find_symmetries(ns.families.tanh_net((2, 2, 1))).n_generators == 0
    assert ns.find_symmetries(ns.families.tanh_net((2, 2, 1), bias=True)).n_generators == 0


@pytest.mark.parametrize("gain", [True, False])
def test_normalized_linear_identity_on_the_block(gain):
    loss = ns.families.normalized_linear(3, gain=gain)
    sym = ns.find_symmetries(loss)
    expected = sp.diag(0, 1, 1, 1) if gain else sp.eye(3)  # §7.5: A = I on w, 0 on the gain
    assert sym.generators == [expected] and sym.classes == ["semidefinite"]
    eq = ns.noise_equilibrium(loss, expected, ns.families.get("normalized-linear").theta0(loss))
    assert eq.kind == "divergent"


def test_scale_invariant_2d():
    loss = ns.families.scale_invariant_2d()
    sym = ns.find_symmetries(loss)
    assert sym.generators == [sp.eye(2)] and sym.classes == ["semidefinite"]
    assert ns.noise_equilibrium(loss, sp.eye(2), [0.6, 0.8]).kind == "divergent"


def test_diagonal_net_per_index():
    # inputs x_i per index: f = Σ u_i w_i x_i, exactly the d rescalings of (u_i, w_i)
    d = 3
    sym = ns.find_symmetries(ns.families.diagonal_net(d, shared_input=False))
    expected = []
    for i in range(d):
        A = sp.zeros(2 * d)
        A[i, i], A[d + i, d + i] = 1, -1
        expected.append(A)
    assert sym.n_generators == d
    span = sp.Matrix([list(A) for A in sym.generators])
    assert all(span.rank() == sp.Matrix.vstack(span, sp.Matrix([list(E)])).rank() for E in expected)


def test_diagonal_net_shared_input_contains_per_index_rescalings():
    # §7.6 with scalar x: the per-index rescalings are symmetries, but so is all of the
    # symmetric part of o(d, d) (see test_matrix_factorization_scalar_ends...): d² generators
    d = 2
    sym = ns.find_symmetries(ns.families.diagonal_net(d))
    assert sym.n_generators == d * d and sym.n_independent_charges == 2 * d - 1
    span = sp.Matrix([list(A) for A in sym.generators])
    for i in range(d):
        A = sp.zeros(2 * d)
        A[i, i], A[d + i, d + i] = 1, -1
        assert span.rank() == sp.Matrix.vstack(span, sp.Matrix([list(A)])).rank()


@pytest.mark.parametrize("d, classes, bias", [(2, 3, False), (2, 3, True), (3, 2, False)])
def test_softmax_translation_symmetry(d, classes, bias):
    loss = ns.families.softmax_classifier(d, classes, bias=bias, n_samples=12)
    m = d + int(bias)
    # translations θ -> θ + λ v, v = (shift of every logit by input coordinate j): gᵀv = 0
    vs = []
    for j in range(m):
        v = np.zeros(loss.n)
        for c in range(classes):
            v[c * d + j if j < d else classes * d + c] = 1.0
        vs.append(v)
    rng = np.random.default_rng(0)
    theta, x = rng.standard_normal((20, loss.n)), rng.standard_normal((20, d + classes))
    g = compiled(loss).grad(theta, x)
    assert np.abs(g @ np.array(vs).T).max() < 1e-12
    # the finder is exponential-only: it reports A = J ⊗ B (B ∈ Sym(m)), m(m+1)/2 generators,
    # each A θ in the span of the translations, with m independent charges (products of vᵀθ)
    sym = ns.find_symmetries(loss)
    assert sym.n_generators == m * (m + 1) // 2 and sym.n_independent_charges == m
    V = np.array(vs).T
    for A in sym.generators:
        At = np.array(A, dtype=float) @ theta[0]
        coef, *_ = np.linalg.lstsq(V, At, rcond=None)
        assert np.allclose(V @ coef, At)


# ---- fast gradients survive attach_data -----------------------------------------------------


@pytest.mark.parametrize(
    "loss",
    [
        ns.families.matrix_factorization((2, 3, 2), anisotropic=True, teacher=[[1, 2], [sp.Rational(-1, 2), 3]]),
        ns.families.build("relu-net", dims=(3, 4, 2), bias=True),
        ns.families.monomial_net((2, 3, 1), p=3, bias=True),
    ],
)
def test_fast_grad_after_attach_data_matches_compiled(loss):
    assert loss.fast_grad is not None
    rng = np.random.default_rng(3)
    d = len(loss.x)
    theta, x = rng.standard_normal((6, loss.n)), rng.standard_normal((6, d))
    ref = compiled(loss).grad(theta, x)
    assert np.allclose(loss.fast_grad(theta, x), ref, rtol=1e-10, atol=1e-10)
    X = rng.standard_normal((6, 5, d))
    mean = loss.fast_grad.batch_mean(theta, X)
    assert np.allclose(mean, compiled(loss).grad(theta[:, None, :], X).mean(axis=1), rtol=1e-10, atol=1e-10)
    assert np.allclose(loss.fast_grad.value(theta, x), compiled(loss).value(theta, x), rtol=1e-10)


def test_fast_grad_through_a_nonlinear_data_map():
    net = ns.families.linear_net([2, 2, 1])
    x0, x1, y0 = net.data_symbols
    X, Z = Normal("X", 0, 1), Normal("Z", 0, 1)
    loss = ns.attach_data(net, {x0: X, x1: X**2 - 1, y0: sp.sin(Z)})
    assert "lambdified" in repr(loss.fast_grad)
    rng = np.random.default_rng(4)
    theta, x = rng.standard_normal((5, loss.n)), rng.standard_normal((5, 2))
    assert np.allclose(loss.fast_grad(theta, x), compiled(loss).grad(theta, x), rtol=1e-10, atol=1e-12)


def test_paper_30_40_30_builds_and_simulates_with_its_matrix_gradient():
    fam = ns.families.get("matrix-factorization-30-40-30")
    loss = fam.build()
    assert loss.n == 40 * 30 * 2 and type(loss.fast_grad).__name__ == "DataMapGradient"
    # the fast gradient on the teacher's columns (E*, X*, in name order) against the plain
    # matrix formulas: r = U W x − y, y = x + e; ∇W = 2 Uᵀ r xᵀ, ∇U = 2 r (W x)ᵀ
    rng = np.random.default_rng(5)
    theta = fam.theta0(loss)
    cols = rng.standard_normal(len(loss.x))
    names = [str(s) for s in loss.x]
    e = np.array([cols[names.index(f"E{i}")] for i in range(30)])
    x = np.array([cols[names.index(f"X{i}")] for i in range(30)])
    W, U = theta[:1200].reshape(40, 30), theta[1200:].reshape(30, 40)
    r = U @ W @ x - (x + e)
    expected = np.concatenate([(2 * np.outer(U.T @ r, x)).ravel(), (2 * np.outer(r, W @ x)).ravel()])
    assert np.allclose(loss.fast_grad(theta, cols), expected, rtol=1e-12, atol=1e-12)
    res = ns.simulate(loss, theta, lr=fam.settings["lr"], batch_size=1, steps=20, replicas=2, seed=0)
    assert np.all(np.isfinite(res.theta)) and not res.diverged.any()
    model = fam.extra["data_model"](**{k: v for k, v in fam.options.items() if k != "dims"}, dims=fam.options["dims"])
    assert model["Sigma_x"] == sp.eye(30) and model["Sigma_eps"] == sp.eye(30) / 2 and model["teacher"] == sp.eye(30)


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: ns.families.rescaling(d=3, beta=[1, 2]),
        lambda: ns.families.rescaling(Sigma_x=[[1, 1, 0], [1, 1, 0], [0, 0, 1]]),
        lambda: ns.families.rescaling(noise_var=-1),
        lambda: ns.families.rescaling(noise_var="1/2"),
        lambda: ns.families.matrix_factorization((2, 2, 2, 2)),
        lambda: ns.families.matrix_factorization((2, 2, 2), teacher=[[1, 2]]),
        lambda: ns.families.monomial_net((2, 2, 1), p=1),
        lambda: ns.families.leaky_relu_net((2, 2, 1), slope=2),
        lambda: ns.families.normalized_linear(1),
        lambda: ns.families.softmax_classifier(classes=1),
        lambda: ns.families.build("rescaling", nonsense=1),
        lambda: ns.families.build("linear-net", bias=True),
        lambda: ns.families.get("no-such-family"),
    ],
)
def test_bad_options_raise_noether_sym_errors(call):
    with pytest.raises(ns.NoetherSymError):
        call()


# ---- command line ---------------------------------------------------------------------------


def test_cli_families_json(capsys):
    assert main(["families", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == set(ns.families.CATALOG)
    assert doc["rescaling"]["section"] == "7.1" and doc["rescaling"]["options"]["noise_var"] == "1/2"
    assert "E17" in doc["rescaling"]["theorems"] and doc["matrix-factorization-30-40-30"]["options"]["dims"] == [30, 40, 30]
    for entry in doc.values():
        assert {"description", "section", "options", "settings", "theorems"} <= set(entry)


def test_cli_families_text(capsys):
    assert main(["families"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ns.families.CATALOG) and "§7.5" in out


def test_cli_option_parsing(capsys):
    code = main(["symmetries", "rescaling", "--option", "beta=1,-1/2,2,0.5", "--option", "noise_var=1/4", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["n_params"] == 5 and doc["n_generators"] == 1
    code = main(["symmetries", "monomial-net", "--dims", "2,3,1", "--option", "p=3", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["n_generators"] == 3


@pytest.mark.parametrize(
    "args",
    [
        ["symmetries", "rescaling", "--option", "nonsense=1"],
        ["symmetries", "rescaling", "--option", "beta=__import__('os')"],
        ["symmetries", "rescaling", "--option", "noise_var"],
        ["symmetries", "rescaling", "--option", "noise_var=1/0"],
        ["symmetries", "tanh-net", "--bias", "--option", "bias=true"],
        ["symmetries", "softmax", "--dims", "2,2"],
    ],
)
def test_cli_bad_options_exit_2(args, capsys):
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: ns.families.linear_net([2, True, 1]), r"dims\[1\] must be an integer"),
        (lambda: ns.families.linear_net({2, 3}), "dims must be a list"),
        (lambda: ns.families.linear_net([2, 0, 1]), r"dims\[1\] must be an integer in \[1, 1000\]"),
        (lambda: ns.families.relu_net([2, 10**6, 1]), "over the limit 1000"),
        (lambda: ns.families.diagonal_net(True), "d must be an integer"),
        (lambda: ns.families.mlp([2, 2, 1], activation="rleu"), "did you mean 'relu'"),
        (lambda: ns.families.monomial_net([2, 2, 1], p=1), "p must be an integer >= 2"),
    ],
)
def test_family_size_options_are_bounded_integers(build, match):
    with pytest.raises(ns.InvalidArgumentError, match=match):
        build()
