"""derive: split from noether_sym.cli (docstring to write)."""


from __future__ import annotations

import argparse
import json

import numpy as np
import sympy as sp

from ..report._derive import derive
from ._common import _loss_from_args, _UsageError, _with_gaussian_data

__all__ = []



def _cmd_derive(args: argparse.Namespace) -> int:


    loss = _loss_from_args(args)
    if args.gaussian or (args.family and not loss.random_symbols and loss.dataset is None):
        loss = _with_gaussian_data(loss)
    if args.theta is not None:
        if len(args.theta) != loss.n:
            raise _UsageError(f"--theta needs {loss.n} numbers (params order: {', '.join(map(str, loss.params))})")
        theta = [sp.Rational(str(v)) for v in args.theta]
    else:
        rng = np.random.default_rng(args.seed)
        # a random point with short decimals, taken exactly (small rationals keep the
        # exact derivation fast)
        theta = [sp.Rational(str(v)) for v in np.round(rng.standard_normal(loss.n), 2)]
    has_data = bool(loss.random_symbols) or loss.dataset is not None
    d = derive(loss, theta if has_data else None, batch_size=args.batch_size, weight_decay=args.weight_decay, lr=args.lr)
    if args.latex:
        print(d.latex())
        return 0
    if args.json:
        doc = d.to_dict()
        doc["theta"] = theta
        print(json.dumps(doc, default=str))
        return 0
    print(f"{loss.name}: {loss.n} parameters, {d.symmetries.n_generators} generators, "
          f"{d.symmetries.n_independent_charges} independent charges  ({d.seconds:.2f} s)")
    for k, dyn in enumerate(d.dynamics, start=1):
        print(f"  C_{k} = {sp.sstr(dyn.charge)[:90]}")
        print(f"     dC/dt = {sp.sstr(dyn.drift)[:110]}")
    for k, (eq, sh) in enumerate(zip(d.equilibria, d.sharpness), start=1):
        print(f"  generator {k}: {eq.kind}, λ* = {eq.lam:.6g} ({eq.method}); sharpness: {sh.verdict} "
              f"(T(λ*) − T(0) = {sh.change:.4g})")
    for note in d.notes:
        print(f"  note: {note}")
    return 0
