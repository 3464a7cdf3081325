"""symmetries: split from noether_sym.cli (docstring to write)."""


from __future__ import annotations

import argparse
import json

import sympy as sp

from ..symmetry._finder import find_symmetries
from ._common import _dense, _loss_from_args

__all__ = []



def _cmd_symmetries(args: argparse.Namespace) -> int:

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
