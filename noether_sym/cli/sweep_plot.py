"""Command line: ``noether-sym sweep-plot`` -- the standard figures of a sweep directory.

Writes ``equilibrium.png`` (equilibrium error against η; measured against predicted
charge) and ``time_to_equilibrium.png`` (steps to equilibrium against η/S) into
``DIR/plots`` or ``--into``; see :func:`noether_sym.check._sweep.plot_sweep`.
"""


from __future__ import annotations

import argparse
from typing import Any

from ..check._sweep import plot_sweep

__all__ = ['add_parser', 'run']



def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep-plot`` subcommand to ``subparsers``."""
    s = subparsers.add_parser(
        "sweep-plot",
        help="plot a sweep: equilibrium error against η, time to equilibrium against η/S",
        description="Read the shards of a sweep directory and write its standard figures (PNG).",
    )
    s.add_argument("dir", metavar="DIR", help="a sweep directory (noether-sym sweep --out DIR)")
    s.add_argument("--into", metavar="FOLDER", default=None, help="where to write the figures (default DIR/plots)")
    s.set_defaults(func=run)
    return s


def run(args: argparse.Namespace) -> int:
    """Execute ``noether-sym sweep-plot``; prints the files written, returns 0."""

    for p in plot_sweep(args.dir, args.into):
        print(p)
    return 0
