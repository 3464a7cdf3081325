"""The LaTeX is real: the proofs document and derive documents compile with pdflatex, with
no line wider than the page (no "Overfull \\hbox" in the log) and only vector fonts (no
bitmap ``.pk`` font). Locally the test skips when pdflatex is absent; under CI (CI set) it
fails instead, because .ci/run installs the engine (Debian's texlive-latex-base/recommended)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import sympy as sp
from sympy.stats import Normal

import noether_sym as ns
from noether_sym.cli import _main as cli

PDFLATEX = shutil.which("pdflatex")


def _need_pdflatex() -> str:
    if PDFLATEX:
        return PDFLATEX
    if os.environ.get("CI"):
        pytest.fail("pdflatex is not on PATH but CI is set: .ci/run must install texlive-latex-base "
                    "texlive-latex-recommended (apt-get) before running the tests")
    pytest.skip("pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended); "
                "CI installs it and runs this test")


def _compile(tex: Path) -> Path:
    exe = _need_pdflatex()
    # the documents have no cross-references, so one pass is a complete compile
    proc = subprocess.run(
        [exe, "-interaction=nonstopmode", "-halt-on-error", tex.name],
        cwd=tex.parent, capture_output=True, text=True, timeout=120,
    )
    if proc.returncode != 0:
        lines = proc.stdout.splitlines()
        err = [k for k, line in enumerate(lines) if line.startswith("!")]
        ctx = "\n".join(lines[err[0]: err[0] + 8]) if err else "\n".join(lines[-20:])
        pytest.fail(f"pdflatex failed on {tex.name}:\n{ctx}")
    pdf = tex.with_suffix(".pdf")
    assert pdf.exists() and pdf.stat().st_size > 1000
    log = tex.with_suffix(".log").read_text(encoding="latin-1")
    over = re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)[^\n]*lines? (\d+)", log)
    if over:
        src = tex.read_text(encoding="utf-8").splitlines()
        where = "; ".join(f"{pt} pt at line {ln}: {src[int(ln) - 1][:80]!r}" for pt, ln in over[:3])
        pytest.fail(f"{tex.name}: {len(over)} line(s) wider than the page (Overfull \\hbox): {where}")
    bitmap = re.findall(r"/([\w-]+\.\d+pk)", log)
    if bitmap:
        pytest.fail(f"{tex.name} uses bitmap fonts {sorted(set(bitmap))}: a vector font is needed (lmodern, or no T1 "
                    "encoding without cm-super)")
    return pdf


def test_proofs_document_compiles(tmp_path, capsys):
    _need_pdflatex()
    assert cli.main(["prove", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0 failed, 0 not reached" in out
    _compile(tmp_path / "proofs.tex")


def test_derive_document_compiles(tmp_path, capsys):
    _need_pdflatex()
    assert cli.main(["derive", "--loss", "(u*w*x - x - e)^2", "--params", "u,w", "--data", "x,e",
                     "--gaussian", "--theta", "2,0.5", "--latex"]) == 0
    tex = tmp_path / "derive.tex"
    tex.write_text(capsys.readouterr().out, encoding="utf-8")
    _compile(tex)


def test_every_result_type_compiles(tmp_path):
    _need_pdflatex()
    import numpy as np

    u, w = sp.symbols("u w")
    x, e = Normal("x", 0, 1), Normal("e", 0, 1)
    d = ns.derive(ns.Loss((u * w * x - x - e) ** 2, [u, w], name="rescaling_1 & co"), [2, sp.Rational(1, 2)])
    rng = np.random.default_rng(0)
    tl = ns.two_layer_equilibrium(rng.standard_normal((2, 2)), rng.standard_normal((2, 2)), np.diag([1.0, 3.0]), np.diag([0.5, 2.0]))
    body = "\n\n".join([ns.to_latex(d.symmetries, symbol_names={u: r"\alpha"}), ns.to_latex(d.dynamics[0]),
                        ns.to_latex(d.equilibria[0]), ns.to_latex(d.sharpness[0]), tl.latex()])
    from noether_sym.report._latex import document

    tex = tmp_path / "objects.tex"
    tex.write_text(document(body, title=d.loss.name), encoding="utf-8")
    _compile(tex)
    tex2 = tmp_path / "doc.tex"
    tex2.write_text(ns.to_latex(d, symbol_names={"w": r"\omega"}), encoding="utf-8")
    _compile(tex2)


def test_linear_net_derive_document_fits_the_page(tmp_path, capsys):
    """The two-layer net's derivation (8 parameters, 3 non-commuting generators, a start off
    the manifold): long sums broken, long fractions as decimals, at most a few pages."""
    _need_pdflatex()
    assert cli.main(["derive", "linear-net", "--dims", "2,2,2", "--latex"]) == 0
    tex = tmp_path / "linear_net.tex"
    tex.write_text(capsys.readouterr().out, encoding="utf-8")
    _compile(tex)
    log = tex.with_suffix(".log").read_text(encoding="latin-1")
    pages = int(re.search(r"Output written on .*?\((\d+) pages?", log).group(1))
    assert pages <= 8, f"{pages} pages: long polynomials are not being shortened"
    text = tex.read_text(encoding="utf-8")
    assert "Noether flow (E22)" in text and "Prediction used." in text


@pytest.mark.slow
@pytest.mark.parametrize("family", ["rescaling", "diagonal-net", "matrix-factorization", "monomial-net",
                                    "scale-invariant-2d", "tanh-net", "relu-net", "normalized-linear", "normalized-mlp",
                                    "residual-block"])
def test_catalog_derive_documents_fit_the_page(tmp_path, capsys, family):
    _need_pdflatex()
    assert cli.main(["derive", family, "--latex"]) == 0
    tex = tmp_path / f"{family}.tex"
    tex.write_text(capsys.readouterr().out, encoding="utf-8")
    _compile(tex)


def test_an_overfull_line_fails_the_compile_check(tmp_path):
    _need_pdflatex()
    from noether_sym.report._latex import document

    tex = tmp_path / "wide.tex"
    tex.write_text(document("\\begin{align*}x &= " + " + ".join(["123456789"] * 30) + "\\end{align*}"), encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match="Overfull"):
        _compile(tex)


def test_a_broken_document_fails_the_compile_check(tmp_path):
    _need_pdflatex()
    tex = tmp_path / "broken.tex"
    tex.write_text("\\documentclass{article}\\begin{document}$\\frac{1}{$\\end{document}\n", encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match="pdflatex failed on broken.tex"):
        _compile(tex)
