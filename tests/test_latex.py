"""LaTeX export of derived objects: golden files for a few, symbol names,
every result type, errors. Regenerate the golden files with NOETHER_UPDATE_GOLDEN=1."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from sympy.stats import Normal

import noether_sym as ns
from noether_sym.report._latex import document

GOLDEN = Path(__file__).parent / "golden"
u, w = sp.symbols("u w")


@pytest.fixture(scope="module")
def rescaling():
    x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    return ns.Loss((u * w * x - x - e) ** 2, [u, w], name="rescaling")


@pytest.fixture(scope="module")
def derivation(rescaling):
    return ns.derive(rescaling, [2, sp.Rational(1, 2)])


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    text += "\n"
    if os.environ.get("NOETHER_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}: run with NOETHER_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"LaTeX differs from {path} (NOETHER_UPDATE_GOLDEN=1 to accept)"


def test_golden_charges_of_the_rescaling_loss(rescaling):
    _golden("rescaling_symmetries.tex", ns.to_latex(ns.find_symmetries(rescaling)))


def test_golden_equilibrium(derivation):
    _golden("rescaling_equilibrium.tex", ns.to_latex(derivation.equilibria[0]))


def test_golden_drift_law(derivation):
    _golden("rescaling_dynamics.tex", ns.to_latex(derivation.dynamics[0]))


def test_golden_sharpness(derivation):
    _golden("rescaling_sharpness.tex", derivation.sharpness[0].latex())


def test_user_chosen_symbol_names(rescaling, derivation):
    sym = ns.find_symmetries(rescaling)
    tex = ns.to_latex(sym, symbol_names={u: r"\alpha", "w": r"\beta"})
    assert r"C_{1}(\theta) &= \alpha^{2} - \beta^{2}" in tex and "u^{2}" not in tex
    assert sym.latex(symbol_names={"u": "a"}) == ns.to_latex(sym, {"u": "a"})
    drift = ns.to_latex(derivation.dynamics[0], symbol_names={"u": r"\alpha"})
    assert r"\alpha" in drift and r"\frac{dC}{dt}" in drift
    doc = ns.to_latex(derivation, symbol_names={"w": r"\omega"})
    assert r"\omega" in doc and doc.startswith(r"\documentclass")


def test_every_result_type_has_latex(derivation):
    eq, sh = derivation.equilibria[0], derivation.sharpness[0]
    assert r"\lambda^* &= - \frac{\log{\left(16 \right)}}{4}" in ns.to_latex(eq)
    assert "argmin" not in sh.latex() and r"\arg\min_\lambda T" in sh.latex()
    rng = np.random.default_rng(0)
    tl = ns.two_layer_equilibrium(rng.standard_normal((2, 2)), rng.standard_normal((2, 2)), np.diag([1.0, 3.0]), np.diag([0.5, 2.0]))
    assert r"M_W^{-1} \# (c\, M_U)" in tl.latex() and r"\begin{pmatrix}" in tl.latex()
    a, b, c = sp.symbols("a b c")
    xx, ee = Normal("x", 0, 1), Normal("e", 0, 1)
    loss = ns.Loss((a * b * c * xx - 2 * xx - ee) ** 2, [a, b, c])
    je = ns.joint_equilibrium(loss, ns.find_symmetries(loss).generators, [1, 1, 2])
    assert r"\lambda^*_1" in je.latex()


def test_derivation_document_is_complete(derivation):
    doc = derivation.latex()
    for part in (r"\documentclass", r"\begin{document}", "Symmetries and charges", "(E12)", "(E17)", "(E19)", r"\end{document}"):
        assert part in doc
    assert doc.count(r"\begin{align*}") == doc.count(r"\end{align*}")


def test_errors_say_how_to_fix():
    with pytest.raises(ns.InvalidArgumentError, match="no LaTeX export for object"):
        ns.to_latex(object())
    with pytest.raises(ns.InvalidArgumentError, match="mapping from symbols"):
        ns.to_latex(u, symbol_names=["u"])
    with pytest.raises(ns.InvalidArgumentError, match="LaTeX string"):
        ns.to_latex(u, symbol_names={"u": 3})
    with pytest.raises(ns.InvalidArgumentError, match="once"):
        ns.to_latex(u, {"u": "a"}, symbol_names={"u": "b"})


def test_document_wrapper():
    doc = document(ns.to_latex(u**2), title="x_1 & y")
    assert r"x\_1 \& y" in doc and doc.rstrip().endswith(r"\end{document}")


def test_point_given_as_a_mapping(rescaling):
    d = ns.derive(rescaling, {u: 2, w: sp.Rational(1, 2)})
    assert r"Point of evaluation: $u = 2,\allowbreak\ w = \frac{1}{2}$." in d.latex()


def test_long_fractions_print_as_decimals_and_short_ones_stay_exact():
    from noether_sym._printing import _latex

    x = sp.Symbol("x")
    long = sp.Rational(2**80 + 1, 3**50)  # 25 + 24 digits: an exact image of nothing readable
    tex = _latex(long * x + sp.Rational(1, 3))
    assert "\\frac{1}{3}" in tex and str(2**80 + 1) not in tex
    # the decimal is the fraction to 15 significant digits (computed here independently)
    digits = f"{float(long):.14e}".split("e")[0].replace(".", "")[:12]
    assert digits in tex.replace(".", "")


def test_row_limit_counts_the_terms_left_out():
    from noether_sym._printing import _rhs, row_limit

    xs = sp.symbols("x_0:60")
    expr = sp.Add(*[k * s**3 for k, s in enumerate(xs, start=1)])
    full = _rhs(expr)
    with row_limit(3):
        short = _rhs(expr)
    assert short.count("\\\\\n") == 3 and full.count("\\\\\n") > 3
    shown = short.count("x_{")
    assert f"({60 - shown} more of 60 terms)" in short


def test_cheap_factoring_before_printing():
    from noether_sym._printing import _rhs

    a, b, c = sp.symbols("a b c")
    expr = sp.expand((a + 2 * b + 1) ** 2 * (a - b + 5) ** 2 * c)  # 15 terms, a short product
    assert _rhs(expr, width=60) == ns.to_latex(sp.factor(expr))


def test_unicode_in_notes_becomes_latex():
    from noether_sym._printing import _escape

    out = _escape("‖∇L(θ₀)‖ = 4.86 from Φ(θ₀), ε ≈ 2")
    assert out.isascii()
    assert "$\\nabla$" in out and "$\\Phi$" in out and "$_{0}$" in out and "$\\approx$" in out


def test_long_sums_are_broken_across_rows():
    from noether_sym._printing import LINE_WIDTH, _rhs, _visible

    xs = sp.symbols("x_0:40")
    tex = _rhs(sp.Add(*[k * s**2 for k, s in enumerate(xs, start=1)]))
    rows = tex.split("\\\\\n")
    assert len(rows) > 2 and all(_visible(r) <= LINE_WIDTH + 15 for r in rows)
    assert _rhs(xs[0] + xs[1]) == "x_{0} + x_{1}"


def test_weight_decay_equilibrium_latex_shows_the_E18_balance():
    import sympy as sp
    from sympy.stats import Normal

    import noether_sym as ns

    a, b = sp.symbols("a b")
    x, y = Normal("x", 0, 1), Normal("y", 0, 1)
    loss = ns.Loss((a / sp.sqrt(a**2 + b**2) * x - y) ** 2, [a, b])
    tex = ns.to_latex(ns.noise_equilibrium(loss, sp.eye(2), [0, 1], weight_decay=0.1, lr=0.01))
    assert r"2\gamma\, C(\lambda^*)" in tex and "(E18)" in tex and "(E17)" not in tex
    assert r"C(\lambda) &= e^{2 \lambda}" in tex  # C(λ) = ‖e^{λ}θ‖² with ‖θ‖ = 1
    plain = ns.to_latex(ns.noise_equilibrium(loss, sp.eye(2), [0, 1]))
    assert "(E18)" not in plain
