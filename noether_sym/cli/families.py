"""Command line: ``noether-sym families`` -- list the catalog (``ns.families.CATALOG``).

One line per family (name, section of docs/theory.md, description), or with ``--json`` each family's
options, simulation settings and the THEORY tags its checks cover.
"""


from __future__ import annotations

import argparse
import json
from typing import Any

from noether_sym import families

from ._common import _json_value

__all__ = ['add_parser', 'run']



def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``families`` subcommand to ``subparsers``."""
    f = subparsers.add_parser("families", help="list the catalog")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=run)
    return f


def run(args: argparse.Namespace) -> int:
    """Execute ``noether-sym families``; returns the exit status."""
    if args.json:
        doc = {
            k: {
                "description": f.description,
                "section": f.section,
                "options": {o: _json_value(v) for o, v in f.options.items()},
                "settings": {o: _json_value(v) for o, v in f.settings.items()},
                "theorems": list(f.theorems),
            }
            for k, f in families.CATALOG.items()
        }
        print(json.dumps(doc))
    else:
        width = max(len(k) for k in families.CATALOG)
        sec = max(len(f.section) for f in families.CATALOG.values())
        for k, fam in families.CATALOG.items():
            print(f"{k:{width}s}  §{fam.section:{sec}s}  {fam.description}")
    return 0
