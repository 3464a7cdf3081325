"""Shared by the notebook build scripts (_build_01_04.py, _build_05_08.py): writing a
notebook from a list of cells with stripped outputs and deterministic cell ids."""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

def setup(extra_imports: str = "") -> str:
    """The first code cell of every notebook: imports, the Agg backend, the figure folder
    (docs/figures, relative to the notebook) and the run timer."""
    return f'''\
import time
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
{extra_imports}
import noether_sym as ns

FIG_DIR = Path("..") / "docs" / "figures"   # relative to this notebook
FIG_DIR.mkdir(parents=True, exist_ok=True)
T_START = time.perf_counter()
'''


FOOTER = '''\
print(f"notebook ran in {time.perf_counter() - T_START:.1f} s")
'''


def write(name: str, cells: list[tuple[str, str]]) -> Path:
    """Write notebooks/<name> from cells ("md", text) / ("code", source): no outputs,
    ``execution_count`` None, cell ids from the name, so rebuilding gives identical files."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    out = []
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "md":
            out.append(nbformat.v4.new_markdown_cell(src))
        else:
            c = nbformat.v4.new_code_cell(src)
            c.execution_count = None
            c.outputs = []
            out.append(c)
    for i, c in enumerate(out):
        c["id"] = f"{name[:2]}-{i:02d}"
    nb.cells = out
    path = HERE / name
    nbformat.write(nb, str(path))
    return path
