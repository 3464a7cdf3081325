"""Proof: the exact one-step law of the charge under SGD (E10) and its expectation (E11).

Setting checked: (E10) for d = 1..3, a generic symmetric A and minibatches of S = 1..3
per-sample gradients, each orthogonal to Aθ by (E4) (g = J Aθ, J generic antisymmetric);
(E11) for d = 1..2, data on K = 2 points with probabilities (p, 1 − p), and S = 1..3
draws, by enumerating all K^S minibatches with their probabilities.

Hypotheses (arguments of :func:`proof`):

* ``assume_symmetry``: every per-sample gradient satisfies gᵀAθ = 0 (E4); without it the
  cross term 2η(1 − ηγ) ĝᵀAθ survives and step 2 fails.
* ``independent_draws``: the S samples of a minibatch are drawn independently; replaced by
  "one sample repeated S times" the covariance does not shrink as 1/S and step 4 fails.
"""

from __future__ import annotations

import itertools

import sympy as sp

from noether_sym.report._prove import (
    Proof,
    Step,
    generic_vector,
    orthogonal_to,
    rewrite,
    symmetric,
    zero,
)

eta, gamma = sp.Symbol("eta", positive=True), sp.Symbol("gamma", nonnegative=True)


def _expand_step(d: int):
    A, th, gh = symmetric("A", d), generic_vector("theta", d), generic_vector("ghat", d)
    new = (1 - eta * gamma) * th - eta * gh
    lhs = (new.T * A * new)[0]
    rhs = (1 - eta * gamma) ** 2 * (th.T * A * th)[0] - 2 * eta * (1 - eta * gamma) * (gh.T * A * th)[0] + eta**2 * (gh.T * A * gh)[0]
    return lhs - rhs


def _minibatch(d: int, S: int, use_symmetry: bool):
    A, th = symmetric("A", d), generic_vector("theta", d)
    gs = [orthogonal_to(A * th, f"J{s}", constrain=use_symmetry) for s in range(1, S + 1)]
    gh = sum(gs, sp.zeros(d, 1)) / S
    return A, th, gh


def _cross(d: int, S: int, use_symmetry: bool):
    A, th, gh = _minibatch(d, S, use_symmetry)
    return (gh.T * A * th)[0]


def _e10(d: int, S: int, use_symmetry: bool):
    A, th, gh = _minibatch(d, S, use_symmetry)
    new = (1 - eta * gamma) * th - eta * gh
    return (new.T * A * new)[0] - ((1 - eta * gamma) ** 2 * (th.T * A * th)[0] + eta**2 * (gh.T * A * gh)[0])


def _batches(d: int, S: int, independent: bool):
    """(probability, ĝ) over all minibatches, the per-sample vectors, and their weights."""
    p = sp.Symbol("p", positive=True)
    probs = [p, 1 - p]
    g = [generic_vector(f"g{k}", d) for k in (1, 2)]
    if independent:
        out = []
        for idx in itertools.product(range(2), repeat=S):
            w = sp.Mul(*[probs[i] for i in idx])
            out.append((w, sum((g[i] for i in idx), sp.zeros(d, 1)) / S))
    else:  # one draw repeated S times
        out = [(probs[k], g[k]) for k in range(2)]
    return out, g, probs


def _cov(d: int, S: int, independent: bool):
    batches, g, probs = _batches(d, S, independent)
    E_ggT = sum((w * gh * gh.T for w, gh in batches), sp.zeros(d, d))
    m = sum((pk * gk for pk, gk in zip(probs, g)), sp.zeros(d, 1))
    M = sum((pk * gk * gk.T for pk, gk in zip(probs, g)), sp.zeros(d, d))
    Sigma = M - m * m.T
    return E_ggT - (m * m.T + Sigma / S)


def _mean(d: int, S: int):
    batches, g, probs = _batches(d, S, True)
    m = sum((pk * gk for pk, gk in zip(probs, g)), sp.zeros(d, 1))
    return sum((w * gh for w, gh in batches), sp.zeros(d, 1)) - m


def _trace(d: int):
    A, Sigma, m = symmetric("A", d), symmetric("Sigma", d), generic_vector("m", d)
    S = sp.Symbol("S", positive=True, integer=True)
    E = m * m.T + Sigma / S
    return (A * E).trace() - ((m.T * A * m)[0] + (A * Sigma).trace() / S)


n = sp.Symbol("n", integer=True, positive=True)
TH, GH, A_ = sp.MatrixSymbol("theta", n, 1), sp.MatrixSymbol("ghat", n, 1), sp.MatrixSymbol("A", n, n)
#: A symmetric: the 1x1 matrix ĝᵀ A θ equals its transpose θᵀ A ĝ
SYMMETRIC_A = [(GH.T * A_ * TH, TH.T * A_ * GH)]


def _step_n(use_symmetry: bool | None):
    """Symbolic n: C_{k+1} minus the expanded (use_symmetry=None) or the (E10) right side."""
    new = (1 - eta * gamma) * TH - eta * GH
    C = lambda z: z.T * A_ * z  # noqa: E731
    if use_symmetry is None:
        rhs = (1 - eta * gamma) ** 2 * C(TH) - 2 * eta * (1 - eta * gamma) * TH.T * A_ * GH + eta**2 * C(GH)
        return rewrite(C(new) - rhs, SYMMETRIC_A)
    rules = SYMMETRIC_A + ([(TH.T * A_ * GH, sp.ZeroMatrix(1, 1))] if use_symmetry else [])
    return rewrite(C(new) - ((1 - eta * gamma) ** 2 * C(TH) + eta**2 * C(GH)), rules)


def proof(*, assume_symmetry: bool = True, independent_draws: bool = True) -> Proof:
    """(E10) and (E11) (see the module docstring)."""
    ds = [(d, S) for d in (1, 2, 3) for S in (1, 2, 3) if d * S <= 6]
    ds2 = [(d, S) for d in (1, 2) for S in (1, 2, 3)]
    steps = [
        Step(
            "expand the update",
            r"C_{k+1} &= \big((1-\eta\gamma)\theta - \eta\hat g\big)^\top A \big((1-\eta\gamma)\theta - \eta\hat g\big)"
            r" = (1-\eta\gamma)^2 C_k - 2\eta(1-\eta\gamma)\,\hat g^\top A\theta + \eta^2\,\hat g^\top A\hat g",
            "Insert the SGD step (E1) into $C = \\theta^\\top A\\theta$; $A$ is symmetric.",
            [zero(lambda d=d: _expand_step(d), label=f"d={d}") for d in (1, 2, 3)]
            + [zero(lambda: _step_n(None), reduce="matexpr", label="symbolic n")],
            "d = 1..3 and symbolic n (MatrixSymbol), any minibatch gradient",
        ),
        Step(
            "minibatch gradient is orthogonal",
            r"\hat g^\top A\theta &= \frac{1}{S}\sum_{x\in B} g(\theta, x)^\top A\theta = 0",
            "(E4) for every sample of the batch.",
            [zero(lambda d=d, S=S: _cross(d, S, assume_symmetry), label=f"d={d}, S={S}") for d, S in ds],
            "d = 1..3, S = 1..3 (d S <= 6), generic symmetric A",
        ),
        Step(
            "(E10) exact step",
            r"C_{k+1} &= (1-\eta\gamma)^2 C_k + \eta^2\, \hat g_k^\top A\, \hat g_k",
            "Steps 1 and 2; no approximation.",
            [zero(lambda d=d, S=S: _e10(d, S, assume_symmetry), label=f"d={d}, S={S}") for d, S in ds]
            + [zero(lambda: _step_n(assume_symmetry), reduce="matexpr", label="symbolic n")],
            "d = 1..3, S = 1..3 (d S <= 6); symbolic n with step 2 as a rewriting rule",
        ),
        Step(
            "minibatch moments",
            r"\mathbb{E}\,\hat g = \nabla L,\qquad \mathbb{E}\,[\hat g\hat g^\top] &= \nabla L\nabla L^\top + \tfrac{1}{S}\,\Sigma",
            "Enumerate every minibatch of $S$ independent draws with its probability.",
            [zero(lambda d=d, S=S: _mean(d, S), label=f"mean d={d}, S={S}") for d, S in ds2]
            + [zero(lambda d=d, S=S: _cov(d, S, independent_draws), label=f"cov d={d}, S={S}") for d, S in ds2],
            "d = 1..2, S = 1..3, two-point data with probabilities p, 1 - p",
        ),
        Step(
            "(E11) expectation",
            r"\mathbb{E}[C_{k+1}\mid\theta_k] &= (1-\eta\gamma)^2 C_k + \eta^2\big(\nabla L^\top A\nabla L + \tfrac{1}{S}\Tr[A\Sigma]\big)",
            "$\\mathbb{E}[\\hat g^\\top A\\hat g] = \\Tr\\big[A\\,\\mathbb{E}\\hat g\\hat g^\\top\\big]$ and step 4 (symbolic $S$).",
            [zero(lambda d=d: _trace(d), label=f"d={d}") for d in (1, 2, 3, 4)],
            "d = 1..4, symbolic S, generic symmetric A and Sigma",
        ),
    ]
    hyps = []
    if assume_symmetry:
        hyps.append(r"$g(\theta, x)^\top A\theta = 0$ for every sample (E4);")
    if independent_draws:
        hyps.append(r"the $S$ samples of a minibatch are drawn independently from the data distribution.")
    return Proof(
        key="e10_e11",
        title="The exact discrete law of the charge and its expectation",
        tags=("E10", "E11"),
        statement=r"Under SGD (E1), $C_{k+1} = (1-\eta\gamma)^2 C_k + \eta^2\hat g_k^\top A\hat g_k$ exactly, and "
        r"$\mathbb{E}[C_{k+1}\mid\theta_k] = (1-\eta\gamma)^2 C_k + \eta^2(\nabla L^\top A\nabla L + \Tr[A\Sigma]/S)$.",
        hypotheses=hyps,
        steps=steps,
    )
