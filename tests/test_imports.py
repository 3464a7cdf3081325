"""The package's import graph: no cycle, stages in pipeline order, imports at module top.

The graph is read from the source with ``ast`` (every ``import`` and ``from ... import`` of a
``noether_sym`` module, wherever it stands), not from ``sys.modules``, so a cycle hidden in a
function-level import is caught too.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "noether_sym"

#: the pipeline, lowest stage first: a module may import only from its own stage or below
#: (the foundation modules ``_errors``, ``_validate``, ``_printing`` sit under everything,
#: ``families`` is the catalog of ready-made losses, ``testing`` the public strategies).
STAGES = ["", "loss", "compile", "data", "families", "symmetry", "theory", "simulate", "report", "check", "cli"]

#: optional dependencies that justify an import inside a function
OPTIONAL = {"matplotlib", "dask", "distributed", "pyarrow", "tqdm", "numba", "IPython", "torch", "jupytext"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base) + ("." + node.module if node.module else "")


def _edges() -> dict[str, set[str]]:
    mods = _modules()
    out: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = _resolve(m, is_package, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in mods else base)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in mods and t != m:
                    out[m].add(t)
                    # importing a.b.c executes the packages a.b and a first
                    parent = t.rsplit(".", 1)[0]
                    while parent in mods and parent != m and not m.startswith(parent + "."):
                        out[m].add(parent)
                        parent = parent.rsplit(".", 1)[0]
    return out


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and not parts[1].startswith("_") and parts[1] != "testing" else ""


def test_the_package_has_no_import_cycle():
    edges = _edges()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_stages_import_only_downwards():
    bad = []
    for m, targets in _edges().items():
        if m in ("noether_sym", "noether_sym.testing"):
            continue  # the public surface re-exports every stage
        for t in targets:
            if t == "noether_sym":
                bad.append(f"{m} imports the package root")
            elif STAGES.index(_stage(t)) > STAGES.index(_stage(m)):
                bad.append(f"{m} ({_stage(m) or 'foundation'}) imports {t} ({_stage(t)})")
    assert not bad, "\n".join(sorted(bad))


def test_imports_stand_at_module_top_unless_optional():
    bad = []
    for m, path in _modules().items():
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                if isinstance(node, ast.ImportFrom) and node.level:
                    bad.append(f"{m}:{node.lineno} from {'.' * node.level}{node.module or ''}")
                elif not all(n.split(".")[0] in OPTIONAL for n in names):
                    bad.append(f"{m}:{node.lineno} {', '.join(names)}")
    assert not bad, "imports inside functions (move them to the top):\n" + "\n".join(bad)


@pytest.mark.parametrize("limit", [1000])
def test_no_module_is_over_the_line_limit(limit):
    long = {m: len(p.read_text().splitlines()) for m, p in _modules().items()}
    assert all(n <= limit for n in long.values()), {m: n for m, n in long.items() if n > limit}


def test_no_function_is_over_150_lines():
    long = []
    for m, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 150:
                long.append(f"{m}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long, "\n".join(long)
