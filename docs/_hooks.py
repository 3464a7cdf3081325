"""MkDocs hooks of the documentation site (mkdocs.yml ``hooks:``).

Three pages are generated at build time so that they cannot drift from the code:

- ``api.md``: the marker ``<!-- api -->`` becomes one mkdocstrings block per public name of
  ``noether_sym`` (every name of ``dir(noether_sym)`` without a leading underscore, the
  ``families`` module included), grouped by pipeline stage;
- ``cli.md``: the marker ``<!-- cli -->`` becomes the ``--help`` of ``noether-sym`` and of each
  subcommand, rendered from ``noether_sym.cli.build_parser()`` (argparse);
- the notebooks of ``notebooks/`` are added to the site (rendered by mkdocs-jupyter, not
  executed) and listed in the navigation in file order.
"""

from __future__ import annotations

import argparse
import glob
import inspect
import os
import types

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: pipeline stages in order: (sub-package of noether_sym, heading)
STAGES = (
    ("_errors", "Errors"),
    ("loss", "Losses (stage loss)"),
    ("compile", "Compilation and exact confirmation (stage compile)"),
    ("data", "Data models and moments (stage data)"),
    ("families", "The catalog (stage families)"),
    ("symmetry", "Symmetries and charges (stage symmetry)"),
    ("theory", "Theory in closed form (stage theory)"),
    ("simulate", "Simulation (stage simulate)"),
    ("report", "LaTeX, derivations, proofs, plots (stage report)"),
    ("check", "Prediction against measurement, verify, sweeps (stage check)"),
)


def public_names() -> list[str]:
    """Every public name of the ``noether_sym`` namespace (what the API page must list)."""
    import noether_sym

    names = getattr(noether_sym, "__all__", None) or dir(noether_sym)
    return sorted(n for n in names if not n.startswith("_"))


def _stage(obj: object) -> str:
    if isinstance(obj, types.ModuleType):
        mod = obj.__name__
    else:
        mod = getattr(obj, "__module__", None) or ""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "noether_sym" else "other"


def api_markdown() -> str:
    """The API reference: one ``::: noether_sym.NAME`` block per public name, by stage."""
    import noether_sym

    by_stage: dict[str, list[str]] = {}
    for name in public_names():
        obj = getattr(noether_sym, name)
        by_stage.setdefault(_stage(obj), []).append(name)
    out = []
    headings = dict(STAGES)
    order = [s for s, _ in STAGES] + sorted(set(by_stage) - set(headings))
    for stage in order:
        names = by_stage.get(stage)
        if not names:
            continue
        out.append(f"## {headings.get(stage, stage)}\n")
        for name in names:
            opts = "\n    options:\n      members: false" if inspect.ismodule(getattr(noether_sym, name)) else ""
            out.append(f"::: noether_sym.{name}{opts}\n")
    return "\n".join(out)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_markdown() -> str:
    """The CLI reference: ``noether-sym --help`` and every subcommand's ``--help``."""
    from noether_sym.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal width: fix it for the docs
    parser = build_parser()
    out = ["## noether-sym\n", "```text", parser.format_help().rstrip(), "```\n"]
    for name, sub in _subcommands(parser).items():
        out += [f"## noether-sym {name}\n", "```text", sub.format_help().rstrip(), "```\n"]
    return "\n".join(out)


def _notebooks() -> list[str]:
    return sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def on_config(config, **kwargs):
    """List every notebook of ``notebooks/`` under the "Notebooks" navigation section."""
    entries = [f"notebooks/{os.path.basename(p)}" for p in _notebooks()]
    for item in config["nav"] or []:
        if isinstance(item, dict) and "Notebooks" in item:
            item["Notebooks"] = entries
    return config


@event_priority(100)  # before mkdocs-jupyter, which turns .ipynb files into pages
def on_files(files, config, **kwargs):
    """Add the notebooks of ``notebooks/`` (their only source) to the site as notebooks/*.ipynb."""
    for path in _notebooks():
        # a plain File whose source directory is the repository root (mkdocs-jupyter's wrapper
        # reads abs_src_path from src_dir, which File.generated leaves unset)
        files.append(File(f"notebooks/{os.path.basename(path)}", src_dir=ROOT,
                          dest_dir=config["site_dir"], use_directory_urls=config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    """Fill the generated parts of api.md and cli.md."""
    if "<!-- api -->" in markdown:
        markdown = markdown.replace("<!-- api -->", api_markdown())
    if "<!-- cli -->" in markdown:
        markdown = markdown.replace("<!-- cli -->", cli_markdown())
    return markdown
