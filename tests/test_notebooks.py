"""The notebooks are their own source: committed stripped, valid, and not generated.

The notebooks themselves run as tests under nbmake (pyproject.toml, ``--nbmake``); this
file only checks the committed files: no outputs or execution counts (so a diff shows only
edits to cells), a valid nbformat-4 document, and no builder script next to them.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FILES = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_notebooks_are_numbered_without_holes():
    # 01-10 at least (10: normalized layers); later waves may add more after them
    numbers = [p.name[:2] for p in FILES]
    assert numbers == [f"{i:02d}" for i in range(1, len(numbers) + 1)] and len(numbers) >= 10


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code cells tests nothing"
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them (jupyter nbconvert --clear-output --inplace)"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state in metadata"


def test_no_generated_sources_next_to_the_notebooks():
    # notebooks are edited as notebooks; a .py here would also be imported by --doctest-modules
    assert sorted(p.name for p in NOTEBOOKS.glob("*.py")) == []
