"""Command line: ``noether-sym`` (symmetries, families; more subcommands as stages land).

Exit status: 0 success, 1 a check failed, 2 bad usage (argparse errors and every
NoetherSymError caused by the user's input).
"""


from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .._errors import NoetherSymError
from ._common import _float_list, _Parser, _UsageError, add_loss_arguments
from .derive import _cmd_derive
from .families import _cmd_families
from .symmetries import _cmd_symmetries

__all__ = ['build_parser', 'main']



#: subcommands that live in their own module (``add_parser(subparsers)``, ``run(args)``);
#: the module's name is the subcommand's name with ``-`` -> ``_``.
_PLUGGED = [
    ".simulate",
    ".prove",
    ".sweep",
    ".sweep_plot",
    ".verify",
]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="noether-sym", description="Parameter symmetries and the noise equilibrium of SGD.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("symmetries", help="find the exponential symmetries of a family or of a loss")
    add_loss_arguments(s)
    s.add_argument("--route", default="auto", choices=["auto", "exact", "dense", "structured"])
    s.add_argument("--no-rotations", action="store_true", help="skip the antisymmetric part")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    s.add_argument("--seed", type=int, default=0)

    d = sub.add_parser("derive", help="symmetries, charge dynamics, equilibria and sharpness of a loss")
    add_loss_arguments(d)
    d.add_argument("--gaussian", action="store_true",
                   help="treat every data symbol as an independent standard normal (families: teacher data)")
    d.add_argument("--theta", type=_float_list, default=None, help="the point θ (comma-separated, params order)")
    d.add_argument("--batch-size", type=int, default=1)
    d.add_argument("--lr", type=float, default=None)
    d.add_argument("--weight-decay", type=float, default=0.0)
    d.add_argument("--seed", type=int, default=0, help="seed of the default random point θ")
    d.add_argument("--json", action="store_true", help="print one JSON document")
    d.add_argument("--latex", action="store_true", help="print a complete LaTeX document")


    for mod in _PLUGGED:  # each module owns one subcommand: add_parser(sub) and run(args)
        importlib.import_module(mod, __package__).add_parser(sub)

    f = sub.add_parser("families", help="list the catalog")
    f.add_argument("--json", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "symmetries":
            return _cmd_symmetries(args)
        if args.command == "families":
            return _cmd_families(args)
        if args.command == "derive":
            return _cmd_derive(args)

        for mod in _PLUGGED:
            if mod == "." + args.command.replace("-", "_"):
                return importlib.import_module(mod, __package__).run(args)
    except _UsageError as exc:
        print(f"noether-sym: error: {exc}", file=sys.stderr)
        return 2
    except NoetherSymError as exc:
        print(f"noether-sym: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
