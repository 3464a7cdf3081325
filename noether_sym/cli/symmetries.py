"""Command line: ``noether-sym symmetries`` -- the exponential symmetries of a family or a loss.

Prints the number of generators, independent charges, rotations and classes with the first
charges, or with ``--json`` one document with every generator (dense and sparse), the
charges and the finder's certificate (``ns.find_symmetries``).
"""


from __future__ import annotations

import argparse
import json
from typing import Any

import sympy as sp

from ..symmetry._finder import find_symmetries
from ._common import _dense, _loss_from_args, add_loss_arguments

__all__ = ['add_parser', 'run']



def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``symmetries`` subcommand to ``subparsers``."""
    s = subparsers.add_parser("symmetries", help="find the exponential symmetries of a family or of a loss")
    add_loss_arguments(s)
    s.add_argument("--route", default="auto", choices=["auto", "exact", "dense", "structured"])
    s.add_argument("--no-rotations", action="store_true", help="skip the antisymmetric part")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=run)
    return s


def run(args: argparse.Namespace) -> int:
    """Execute ``noether-sym symmetries``; returns the exit status."""
    loss = _loss_from_args(args)
    sym = find_symmetries(loss, route=args.route, rotations=not args.no_rotations, seed=args.seed)
    if args.json:
        doc = {
            "family": args.family or "--loss",
            "n_params": loss.n,
            "n_generators": sym.n_generators,
            "n_independent_charges": sym.n_independent_charges,
            "generators": [_dense(A) for A in sym.generators],
            "params": [str(p) for p in loss.params],
            "generators_sparse": [[[i, j, str(v)] for (i, j), v in sorted(A.todok().items())] for A in sym.generators],
            "classes": sym.classes,
            "n_rotations": len(sym.rotations),
            "n_unconfirmed": len(sym.unconfirmed),
            "charges": [str(c) for c in sym.charges],
            "certificate": sym.to_dict(with_matrices=False)["certificate"],
            "seconds": round(sym.seconds, 4),
        }
        print(json.dumps(doc))
        return 0
    print(f"{loss.name}: {loss.n} parameters")
    print(f"  generators (symmetric, dim 𝒜):   {sym.n_generators}")
    print(f"  independent charges (generic rank): {sym.n_independent_charges}")
    print(f"  rotations (antisymmetric part):   {len(sym.rotations)}")
    print(f"  classes: {sym.classes.count('indefinite')} indefinite, {sym.classes.count('semidefinite')} semidefinite")
    if sym.unconfirmed:
        print(f"  unconfirmed numeric candidates: {len(sym.unconfirmed)} (not returned)")
    print(f"  route: {sym.certificate['route']}   time: {sym.seconds:.2f} s")
    for k, c in enumerate(sym.charges[:10]):
        print(f"  C_{k + 1} = {sp.sstr(c)[:100]}")
    if len(sym.charges) > 10:
        print(f"  ... and {len(sym.charges) - 10} more charges")
    return 0
