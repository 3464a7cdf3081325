"""Command line: ``noether-sym derive`` -- what the theory says about one loss (``ns.derive``).

Symmetries, the drift of every charge and, at a point θ (``--theta`` or a seeded random
point with short decimals, taken exactly), the noise equilibrium and sharpness along each
generator, and the Noether flow (E22) where the per-generator predictions do not apply
(the output says which prediction it uses); as text, ``--json`` or a complete LaTeX
document (``--latex``). Catalog
families without a data model get independent standard normal data (``--gaussian``
forces that for any loss).
"""


from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import sympy as sp

from .._validate import Integer, Real, Seed
from ..report._derive import derive
from ._common import (
    _checked,
    _float_list,
    _loss_from_args,
    _UsageError,
    _with_gaussian_data,
    add_loss_arguments,
)

__all__ = ['add_parser', 'run']



def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``derive`` subcommand to ``subparsers``."""
    d = subparsers.add_parser("derive", help="symmetries, charge dynamics, equilibria and sharpness of a loss")
    add_loss_arguments(d)
    d.add_argument("--gaussian", action="store_true",
                   help="treat every data symbol as an independent standard normal (families: teacher data)")
    d.add_argument("--theta", type=_float_list, default=None, help="the point θ (comma-separated, params order)")
    d.add_argument("--batch-size", type=_checked(Integer(1), "--batch-size"), default=1)
    d.add_argument("--lr", type=_checked(Real(0, None, low_open=True), "--lr"), default=None)
    d.add_argument("--weight-decay", type=_checked(Real(0), "--weight-decay"), default=0.0)
    d.add_argument("--seed", type=_checked(Seed(), "--seed"), default=0, help="seed of the default random point θ")
    form = d.add_mutually_exclusive_group()  # one output format: argparse names both flags on a clash
    form.add_argument("--json", action="store_true", help="print one JSON document")
    form.add_argument("--latex", action="store_true", help="print a complete LaTeX document")
    d.set_defaults(func=run)
    return d


def run(args: argparse.Namespace) -> int:
    """Execute ``noether-sym derive``; returns the exit status."""
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
    if d.flow is not None:
        fl = d.flow
        print(f"  Noether flow (E22): {fl.kind}, θ = {np.array2string(np.asarray(fl.theta), precision=5)}, "
              f"rotation rate {fl.rotation_rate:.5g} rad per unit η²k/S")
    if d.how:
        print(f"  prediction used: {d.prediction}: {d.how}")
    for note in d.notes:
        print(f"  note: {note}")
    return 0
