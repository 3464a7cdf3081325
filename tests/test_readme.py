"""The README's examples run as written: every ```python block on its own (a fresh namespace
each, as a user would paste one snippet) and the cheap shell commands; the long-running and install
commands are skipped with the reason below. The `compare` example's prediction must be
confirmed by its own measurement."""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

#: shell commands not run here, each with its reason
SKIPPED = {
    "pip install": "installs the package (the test environment already has it)",
    "python -m pytest": "the test suite itself",
    "noether-sym verify": "the main job, about a minute; tests/test_verify.py and CI run it",
    "noether-sym prove": "runs every proof, long; tests/test_proofs.py covers it",
    "noether-sym sweep": "a Dask sweep, long; tests/test_sweep.py covers it",
    "noether-sym simulate": "full catalog simulations with figures; tests/test_cli.py covers the subcommand",
    "dask ": "starts a remote Dask scheduler or workers",
    "OMP_NUM_THREADS": "starts remote Dask workers",
}


def _blocks(lang: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def _shell_commands() -> list[str]:
    out = []
    for block in _blocks("bash"):
        lines = block.replace("\\\n", " ").splitlines()
        for line in lines:
            cmd = line.split("  #")[0].strip()
            if cmd and not cmd.startswith("#"):
                out.append(cmd)
    return out


def test_readme_has_the_examples_this_test_runs():
    assert len(_blocks("python")) >= 4
    assert any(c.startswith("noether-sym symmetries") for c in _shell_commands())


@pytest.mark.slow
def test_readme_python_blocks_run_on_their_own_and_compare_confirms_the_prediction(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write figures into the working directory
    ns_: dict = {}
    for i, block in enumerate(_blocks("python")):
        own: dict = {"__name__": "readme"}  # no snippet may rely on an earlier one
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), own)  # noqa: S102 - our README
        except Exception as exc:  # pragma: no cover - the message says which block
            pytest.fail(f"README python block {i + 1} raised {type(exc).__name__}: {exc}\n{block}")
        ns_.update(own)
    # the noise_equilibrium example: from (2, 1) the balance point of the minimum, u² = w² = 1
    eq = ns_["eq"]
    assert eq.kind == "balanced" and np.allclose(eq.theta, [1.0, 1.0], atol=1e-9)
    assert eq.start.moved and abs(eq.start.theta[0] * eq.start.theta[1] - 1) < 1e-8
    # the compare example: predicted u² = 1, and the η → 0 estimate agrees within 4 s.e.
    cmp = ns_["cmp"]
    assert cmp.predicted[0] == pytest.approx(1.0, abs=1e-9)
    assert cmp.richardson is not None, cmp.refusal
    assert abs(cmp.richardson[0] - 1.0) <= 4 * cmp.richardson_sem[0], cmp.table()
    assert (tmp_path / "compare.png").exists()


def _cheap() -> list[str]:
    return [c for c in _shell_commands() if not any(c.startswith(k) or k in c.split("|")[0][:20] for k in SKIPPED)]


@pytest.mark.slow
@pytest.mark.parametrize("cmd", _cheap())
def test_readme_shell_command_runs(cmd, tmp_path):
    out_file = None
    if ">" in cmd:
        cmd, out_file = (s.strip() for s in cmd.split(">", 1))
    argv = shlex.split(cmd)
    assert argv[0] == "noether-sym"
    res = subprocess.run([sys.executable, "-m", "noether_sym.cli", *argv[1:]], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip()
    if out_file:
        (tmp_path / out_file).write_text(res.stdout)
    if "--json" in argv:
        import json

        doc = json.loads(res.stdout)
        assert isinstance(doc, dict)


def test_every_skipped_shell_command_has_a_reason():
    skipped = [c for c in _shell_commands() if c not in _cheap()]
    for c in skipped:
        assert any(c.startswith(k) or k in c for k in SKIPPED), c
    assert not math.isnan(len(skipped))
