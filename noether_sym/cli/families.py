"""families: split from noether_sym.cli (docstring to write)."""


from __future__ import annotations

import argparse
import json

from noether_sym import families

from ._common import _json_value

__all__ = []



def _cmd_families(args: argparse.Namespace) -> int:
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
