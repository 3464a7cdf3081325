"""Command line: ``noether-sym verify`` -- every theorem check on the catalog (the main job).

Prints a table (or, with ``--json``, one JSON document ``{"checks": [...], "seconds": ...}``,
see docs/cli.md), writes a report
directory (report.md, results.json, one PNG per stochastic check, derivations.tex) and
exits 0 when every check passed, 1 when one failed, 2 on bad usage.
"""


from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from noether_sym import families

from ..check._verify import verify

__all__ = ['add_parser', 'run']



def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``verify`` subcommand to ``subparsers``."""
    v = subparsers.add_parser(
        "verify",
        help="check every theorem of docs/theory.md on the catalog families (the main job)",
        description="Run the theorem checks (exact, numeric and stochastic) on every catalog family, print "
        "predicted against measured, and write a report directory.",
    )
    v.add_argument("--quick", action="store_true", help="shorter simulations, no Richardson runs: about half the time of the full run (benchmarks/RESULTS.md)")
    v.add_argument("--family", action="append", default=None, metavar="NAME",
                   help="only this catalog family (repeatable; default: all but the large ones)")
    v.add_argument("--json", action="store_true", help="print one JSON document to stdout")
    v.add_argument("--out", default="noether-sym-report", metavar="DIR",
                   help="report directory (default: ./noether-sym-report)")
    v.add_argument("--no-report", action="store_true", help="do not write the report directory")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=run)
    return v


def run(args: argparse.Namespace) -> int:
    """Execute ``noether-sym verify``; returns the exit status.

    Examples
    --------
    >>> import argparse
    >>> from noether_sym.cli.verify import add_parser, run
    >>> parser = argparse.ArgumentParser(prog="noether-sym")
    >>> _ = add_parser(parser.add_subparsers(dest="command"))
    >>> run(parser.parse_args(["verify", "--quick", "--family", "tanh-net", "--no-report", "--no-progress"]))
    ... # doctest: +ELLIPSIS
    family    theorem   kind   predicted  measured  tolerance  ok   s...
    tanh-net  E4 count  exact  0          0         0          yes  ...
    ...
    2 checks on 1 families: 2 passed, 0 failed (...)
    0
    """


    if args.family:
        for nm in args.family:
            families.get(nm)  # NoetherSymError (exit 2) for an unknown name
    rep = verify(args.family, quick=args.quick, seed=args.seed, out=None if args.no_report else args.out,
                 progress=not args.no_progress)
    if args.json:
        doc = rep.to_dict()
        doc["report"] = None if args.no_report else args.out
        print(json.dumps(doc))
    else:
        print(rep.table())
        print(rep.summary())
        if not args.no_report:
            print(f"report: {args.out}/report.md")
    sys.stdout.flush()
    return 0 if rep.passed else 1
