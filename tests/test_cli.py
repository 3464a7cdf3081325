"""Command line (shared/CONTRACT.md): JSON fields, exit status 0 / 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from noether_sym.cli._main import main


def run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_symmetries_linear_net_json(capsys):
    code, out, _ = run(["symmetries", "linear-net", "--dims", "5,3,2", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["n_params"] == 21 and doc["n_generators"] == 6 and doc["n_independent_charges"] == 6
    assert len(doc["generators"]) == 6 and len(doc["generators"][0]) == 21
    for G in doc["generators"]:
        assert all(G[i][j] == G[j][i] for i in range(21) for j in range(21))


def test_symmetries_relu_net_bias_json(capsys):
    code, out, _ = run(["symmetries", "relu-net", "--dims", "5,3,2", "--bias", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["n_params"] == 24 and doc["n_generators"] == 3 == doc["n_independent_charges"]


def test_symmetries_from_loss_text(capsys):
    code, out, _ = run(["symmetries", "--loss", "(u*w*x - y)^2", "--params", "u,w", "--data", "x,y", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["generators"] == [[[1, 0], [0, -1]]]


@pytest.mark.parametrize(
    "args",
    [
        ["symmetries"],
        ["symmetries", "nonsense-net", "--dims", "2,2"],
        ["symmetries", "linear-net", "--dims", "a,b"],
        ["symmetries", "linear-net", "--dims", "3"],
        ["symmetries", "linear-net", "--dims", "3,2", "--bias"],
        ["symmetries", "--loss", "u*w"],
        ["symmetries", "--loss", "__import__('os').system('true')", "--params", "u"],
        ["symmetries", "--loss", "u.real*w", "--params", "u,w"],
        ["symmetries", "--loss", "u*w*q", "--params", "u,w"],
        ["symmetries", "--loss", "u*w", "--params", "u,u"],
        [],
    ],
)
def test_bad_usage_exits_2(args, capsys):
    try:
        code = main(args)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert "error" in err or "usage" in err


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "noether_sym.cli", "symmetries", "relu-net", "--dims", "3,2,1", "--json"],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(out.stdout)["n_generators"] == 2


def test_families_lists_catalog(capsys):
    code, out, _ = run(["families"], capsys)
    assert code == 0 and "linear-net" in out and "relu-net" in out


def test_derive_json_from_loss_text(capsys):
    code, out, _ = run(
        ["derive", "--loss", "(u*w*x - x - e)^2", "--params", "u,w", "--data", "x,e", "--gaussian",
         "--theta", "2,0.5", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0
    eq = doc["equilibria"][0]
    # x, e independent standard normals: s+ = Tr Σ_u = 4w²E[e²x²] = 1, s- = Tr Σ_w = 4u² = 16
    # at the minimum uw = 1, so λ* = ¼ log(1/16) (E17)
    assert eq["kind"] == "balanced" and abs(eq["lam"] - np.log(1 / 16) / 4) < 1e-12
    assert doc["sharpness"][0]["verdict"] == "flatten"


def test_derive_latex_document(capsys):
    code, out, _ = run(["derive", "linear-net", "--dims", "2,1,1", "--theta", "1,2,3", "--latex"], capsys)
    assert code == 0 and out.startswith("\\documentclass") and out.rstrip().endswith("\\end{document}")


def test_derive_bad_theta_length(capsys):
    code, _, err = run(["derive", "linear-net", "--dims", "2,1,1", "--theta", "1,2"], capsys)
    assert code == 2 and "--theta needs 3 numbers" in err
