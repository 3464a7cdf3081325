"""Command line stage: ``noether-sym`` (also ``python -m noether_sym.cli``).

Modules: ``_main`` (the parser built from an explicit tuple of subcommand modules, and the
dispatch with its exit codes), ``_common`` (shared loss options and usage errors),
``__main__`` (``python -m``), and one module per subcommand, each with
``add_parser(subparsers)`` and ``run(args) -> int``: ``symmetries``, ``derive``,
``simulate``, ``prove``, ``sweep``, ``sweep_plot`` (``sweep-plot``), ``verify``, ``families``.
"""

from ._main import build_parser as build_parser
from ._main import main as main

__all__ = ["main", "build_parser"]
