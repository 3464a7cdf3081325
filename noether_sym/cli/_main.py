"""Command line: the ``noether-sym`` parser and its dispatch (the CLI stage's entry point).

:func:`build_parser` asks each subcommand module in :data:`SUBCOMMANDS` to add its parser
(``add_parser(subparsers)``, which ends with ``set_defaults(func=run)``); :func:`main`
parses ``argv`` and calls ``args.func(args)``.

Exit status: 0 success, 1 a check failed, 2 bad usage (argparse errors, ``_UsageError``
and every NoetherSymError caused by the user's input, printed as one line on stderr).
"""


from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._errors import NoetherSymError
from . import derive, families, prove, simulate, sweep, sweep_plot, symmetries, verify
from ._common import _Parser, _UsageError

__all__ = ['SUBCOMMANDS', 'build_parser', 'main']


#: the subcommand modules, in the order ``--help`` lists them
SUBCOMMANDS = (symmetries, derive, simulate, prove, sweep, sweep_plot, verify, families)


def build_parser() -> argparse.ArgumentParser:
    """The ``noether-sym`` parser with every subcommand of :data:`SUBCOMMANDS`."""
    p = _Parser(prog="noether-sym", description="Parameter symmetries and the noise equilibrium of SGD.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``noether-sym`` on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except _UsageError as exc:
        print(f"noether-sym: error: {exc}", file=sys.stderr)
        return 2
    except NoetherSymError as exc:
        print(f"noether-sym: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
