"""Command line: ``noether-sym``, one module per subcommand (``add_parser`` + ``run``), wired in ``_main``."""

from ._main import build_parser as build_parser
from ._main import main as main

__all__ = ["main", "build_parser"]
