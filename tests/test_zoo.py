"""A zoo of user losses (none from the catalog): the toolkit's prediction from a start on or off
the minimum manifold against an independent, hand-written NumPy SGD (THEORY §5, §9).

For each case the per-sample gradient is written by hand below, SGD runs at η and 2η for the
same η²k (the charges move at rate η²/S per step, (E12)), each observable is averaged over the
second half of every replica, and the η → 0 value is the two-point Richardson estimate
2m(η) − m(2η). The test asserts |estimate − prediction| ≤ 2%·|prediction| + 0.01 (the O(η²)
bias left by the two-point rule and the start's finite run length) + 4 standard errors.
Cases whose stationary state needs the whole-manifold flow (local symmetries: ReLU units
sharing an activation pattern) or deterministic ReLU moments are listed and skipped with
that reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest
import sympy as sp
from sympy.stats import Normal

import noether_sym as ns
from noether_sym.theory._predict import predict_equilibrium

SIGMA = 0.5  # label-noise standard deviation of every Gaussian case


@dataclass
class Case:
    name: str
    loss: ns.Loss
    theta0: list[float]
    grad: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (R, n), data (R, d) -> (R, n)
    draw: Callable[[np.random.Generator, int], np.ndarray]  # (rng, R) -> data (R, d)
    observables: dict[str, Callable[[np.ndarray], np.ndarray]]  # θ (..., n) -> (...)
    lr: float = 0.01
    steps: int = 80_000
    replicas: int = 200


def _gauss(d: int, scale: Any = None) -> Callable[[np.random.Generator, int], np.ndarray]:
    sc = np.ones(d) if scale is None else np.asarray(scale, dtype=float)

    def draw(rng: np.random.Generator, R: int) -> np.ndarray:
        return rng.standard_normal((R, d)) * sc

    return draw


def _sgd(case: Case, lr: float, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Hand-written SGD (batch 1), all replicas at once; tail averages of every observable
    over the second half of the run: (mean over replicas, s.e., number diverged)."""
    rng = np.random.default_rng(seed)
    R = case.replicas
    th = np.tile(np.asarray(case.theta0, dtype=float), (R, 1))
    names = list(case.observables)
    acc = np.zeros((R, len(names)))
    count = 0
    every = 10
    for k in range(steps):
        th = th - lr * case.grad(th, case.draw(rng, R))
        if k >= steps // 2 and k % every == 0:
            acc += np.stack([case.observables[nm](th) for nm in names], axis=-1)
            count += 1
    per = acc / count
    ok = np.all(np.isfinite(per), axis=1) & np.all(np.isfinite(th), axis=1)
    per = per[ok]
    return per.mean(axis=0), per.std(axis=0, ddof=1) / math.sqrt(per.shape[0]), int((~ok).sum())


def _check(case: Case, seed: int = 0) -> None:
    gens = ns.find_symmetries(case.loss).generators
    p = predict_equilibrium(case.loss, case.theta0, gens, finite=True)
    pred = np.array([float(f(np.asarray(p.theta)[None, :])[0]) for f in case.observables.values()])
    m1, s1, d1 = _sgd(case, case.lr, case.steps, seed)
    m2, s2, d2 = _sgd(case, 2 * case.lr, case.steps // 4, seed + 1)
    assert d1 == 0 and d2 == 0, f"{case.name}: diverged replicas ({d1}, {d2}): lower lr"
    est = 2 * m1 - m2
    se = np.sqrt(4 * s1**2 + s2**2)
    tol = 0.02 * np.abs(pred) + 0.01 + 4 * se
    assert np.all(np.abs(est - pred) <= tol), (
        f"{case.name}: predicted {pred}, SGD η → 0 {est} ± {se} (η: {m1}, 2η: {m2}); route {p.how}"
    )


# ---- the cases ------------------------------------------------------------------------------

x = Normal("x", 0, 1)
eps = Normal("eps", 0, sp.Rational(1, 2))


def _rescaling_off() -> Case:
    u, w = sp.symbols("u w")
    loss = ns.Loss((u * w * x - x - eps) ** 2, [u, w])

    def grad(th: np.ndarray, d: np.ndarray) -> np.ndarray:
        xv, e = d[:, 0], SIGMA * d[:, 1]
        r = 2 * (th[:, 0] * th[:, 1] * xv - xv - e) * xv
        return np.stack([r * th[:, 1], r * th[:, 0]], axis=-1)

    return Case("rescaling from (2, 1), off the manifold", loss, [2.0, 1.0], grad, _gauss(2),
                {"u^2": lambda t: t[..., 0] ** 2}, lr=0.01, steps=120_000)


def _boost() -> Case:
    t1, t2 = sp.symbols("t1 t2")
    loss = ns.Loss((x * (t1**2 - t2**2) - 3 * x - eps) ** 2, [t1, t2])

    def grad(th: np.ndarray, d: np.ndarray) -> np.ndarray:
        xv, e = d[:, 0], SIGMA * d[:, 1]
        r = 2 * (xv * (th[:, 0] ** 2 - th[:, 1] ** 2) - 3 * xv - e) * xv
        return np.stack([2 * r * th[:, 0], -2 * r * th[:, 1]], axis=-1)

    return Case("boost (t1² − t2²) from (2, 1/2)", loss, [2.0, 0.5], grad, _gauss(2),
                {"t1^2": lambda t: t[..., 0] ** 2, "t1 t2": lambda t: t[..., 0] * t[..., 1]},
                lr=0.005, steps=120_000)


def _three_factors() -> Case:
    a, b, c = sp.symbols("a b c")
    loss = ns.Loss((a * b * c * x - 2 * x - eps) ** 2, [a, b, c])

    def grad(th: np.ndarray, d: np.ndarray) -> np.ndarray:
        xv, e = d[:, 0], SIGMA * d[:, 1]
        p = th[:, 0] * th[:, 1] * th[:, 2]
        r = 2 * (p * xv - 2 * xv - e) * xv
        return np.stack([r * th[:, 1] * th[:, 2], r * th[:, 0] * th[:, 2], r * th[:, 0] * th[:, 1]], axis=-1)

    return Case("three factors abc from (1, 1.5, 2), off", loss, [1.0, 1.5, 2.0], grad, _gauss(2),
                {"a^2": lambda t: t[..., 0] ** 2, "c^2": lambda t: t[..., 2] ** 2}, lr=0.005, steps=160_000)


def _four_factors() -> Case:
    a, b, c, d_ = sp.symbols("a b c d")
    loss = ns.Loss((a * b * c * d_ * x - x - eps) ** 2, [a, b, c, d_])

    def grad(th: np.ndarray, d: np.ndarray) -> np.ndarray:
        xv, e = d[:, 0], SIGMA * d[:, 1]
        p = np.prod(th, axis=1)
        r = 2 * (p * xv - xv - e) * xv
        return r[:, None] * p[:, None] / th

    return Case("four factors abcd from (1, 1.2, 0.8, 1.1)", loss, [1.0, 1.2, 0.8, 1.1], grad, _gauss(2),
                {"a^2": lambda t: t[..., 0] ** 2, "b^2": lambda t: t[..., 1] ** 2}, lr=0.01, steps=120_000)


def _monomial() -> Case:
    v, w = sp.symbols("v w")
    loss = ns.Loss((v * w**2 * x - x - eps) ** 2, [w, v])  # f = v (w)² x: generator diag(1, −2)

    def grad(th: np.ndarray, d: np.ndarray) -> np.ndarray:
        xv, e = d[:, 0], SIGMA * d[:, 1]
        wv, vv = th[:, 0], th[:, 1]
        r = 2 * (vv * wv**2 * xv - xv - e) * xv
        return np.stack([r * 2 * vv * wv, r * wv**2], axis=-1)

    return Case("monomial v·w²·x from (1.5, 0.3), off", loss, [1.5, 0.3], grad, _gauss(2),
                {"w^2": lambda t: t[..., 0] ** 2, "v^2": lambda t: t[..., 1] ** 2}, lr=0.005, steps=160_000)


def _anisotropic_vector() -> Case:
    u, w0, w1 = sp.symbols("u w0 w1")
    x0, x1 = Normal("x0", 0, 1), Normal("x1", 0, 2)
    loss = ns.Loss((u * (w0 * x0 + w1 * x1) - (x0 - x1 / 2) - eps) ** 2, [u, w0, w1])

    def grad(th: np.ndarray, d: np.ndarray) -> np.ndarray:
        X0, X1, e = d[:, 0], 2 * d[:, 1], SIGMA * d[:, 2]
        s = th[:, 1] * X0 + th[:, 2] * X1
        r = 2 * (th[:, 0] * s - (X0 - X1 / 2) - e)
        return np.stack([r * s, r * th[:, 0] * X0, r * th[:, 0] * X1], axis=-1)

    return Case("u (w·x), Σx = diag(1, 4), from (1.5, 1, 0), off", loss, [1.5, 1.0, 0.0], grad, _gauss(3),
                {"u^2": lambda t: t[..., 0] ** 2}, lr=0.004, steps=160_000)


def _dataset() -> Case:
    u, w, xs, ys = sp.symbols("u w xs ys")
    rng = np.random.default_rng(3)
    X = rng.standard_normal(40)
    Y = 0.7 * X + 0.5 * rng.standard_normal(40)
    loss = ns.Loss((u * w * xs - ys) ** 2, [u, w], data={xs: X, ys: Y})

    def draw(r: np.random.Generator, R: int) -> np.ndarray:
        i = r.integers(0, len(X), R)
        return np.stack([X[i], Y[i]], axis=-1)

    def grad(th: np.ndarray, d: np.ndarray) -> np.ndarray:
        r = 2 * (th[:, 0] * th[:, 1] * d[:, 0] - d[:, 1]) * d[:, 0]
        return np.stack([r * th[:, 1], r * th[:, 0]], axis=-1)

    return Case("rescaling on a 40-point dataset from (1.5, 1.2), off", loss, [1.5, 1.2], grad, draw,
                {"u^2": lambda t: t[..., 0] ** 2}, lr=0.01, steps=120_000)


def _rotated() -> Case:
    p, q = sp.symbols("p q")
    # the rescaling loss in rotated coordinates u = (p + q)/√2, w = (p − q)/√2: uw = (p² − q²)/2
    loss = ns.Loss(((p**2 - q**2) / 2 * x - x - eps) ** 2, [p, q])

    def grad(th: np.ndarray, d: np.ndarray) -> np.ndarray:
        xv, e = d[:, 0], SIGMA * d[:, 1]
        r = 2 * (0.5 * (th[:, 0] ** 2 - th[:, 1] ** 2) * xv - xv - e) * xv
        return np.stack([r * th[:, 0], -r * th[:, 1]], axis=-1)

    return Case("rotated rescaling (p² − q²)/2 from (2, 0.5), off", loss, [2.0, 0.5], grad, _gauss(2),
                {"p^2": lambda t: t[..., 0] ** 2, "pq": lambda t: t[..., 0] * t[..., 1]}, lr=0.01, steps=120_000)


CASES = {f.__name__.lstrip("_"): f for f in (_rescaling_off, _boost, _three_factors, _four_factors, _monomial,
                                              _anisotropic_vector, _dataset, _rotated)}

#: cases that need what this test cannot check yet, with the reason
NEEDS = {
    "two ReLU units sharing an activation pattern": "local GL(2) symmetry: the stationary state needs the "
    "whole-manifold flow (E22), not per-generator balance",
    "two-unit ReLU net with biases (issue's user case)": "checked with deterministic ReLU moments by its own test",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_zoo_prediction_matches_hand_written_sgd(name):
    _check(CASES[name]())


@pytest.mark.parametrize("name", list(NEEDS))
def test_zoo_cases_needing_more_theory(name):
    pytest.skip(NEEDS[name])


def test_zoo_starts_off_the_manifold_are_projected():
    # fast: every off-manifold case is predicted from Φ(θ₀), with the charges of θ₀ (E9)
    for name, make in CASES.items():
        case = make()
        gens = ns.find_symmetries(case.loss).generators
        p = predict_equilibrium(case.loss, case.theta0, gens, finite=True)
        assert p.start is not None and p.start.moved, name
        th0 = np.asarray(case.theta0, dtype=float)
        for A in gens:
            An = np.array(A.tolist(), dtype=float)
            assert p.start.theta @ An @ p.start.theta == pytest.approx(th0 @ An @ th0, abs=1e-7), name
