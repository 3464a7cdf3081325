"""Command line: ``noether-sym`` (symmetries, families; more subcommands as stages land).

Exit status: 0 success, 1 a check failed, 2 bad usage (argparse errors and every
NoetherSymError caused by the user's input).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import sympy as sp

from . import families
from ._errors import NoetherSymError
from ._loss import Loss
from ._parse import parse_expression

__all__ = ["main", "build_parser"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit status 2 with a one-line message
        self.print_usage(sys.stderr)
        print(f"noether-sym: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _int_list(text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return out


def _name_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    for nm in names:
        if not nm.isidentifier() or nm.startswith("_"):
            raise argparse.ArgumentTypeError(f"{nm!r} is not a valid symbol name")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="noether-sym", description="Parameter symmetries and the noise equilibrium of SGD.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("symmetries", help="find the exponential symmetries of a family or of a loss")
    s.add_argument("family", nargs="?", choices=sorted(families.CATALOG), help="a catalog family")
    s.add_argument("--dims", type=_int_list, help="widths input -> output, e.g. 5,3,2")
    s.add_argument("--bias", action="store_true", help="biases on hidden layers (relu-net)")
    s.add_argument("--loss", help="a loss expression (whitelisted grammar), e.g. '(u*w*x - y)^2'")
    s.add_argument("--params", type=_name_list, help="parameter names for --loss, e.g. u,w")
    s.add_argument("--data", type=_name_list, default=None, help="data names for --loss, e.g. x,y")
    s.add_argument("--route", default="auto", choices=["auto", "exact", "dense", "structured"])
    s.add_argument("--no-rotations", action="store_true", help="skip the antisymmetric part")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    s.add_argument("--seed", type=int, default=0)

    f = sub.add_parser("families", help="list the catalog")
    f.add_argument("--json", action="store_true")
    return p


def _loss_from_args(args: argparse.Namespace) -> Loss:
    if args.loss is not None:
        if args.family:
            raise _UsageError("give either a FAMILY or --loss, not both")
        if not args.params:
            raise _UsageError("--loss needs --params (comma-separated parameter names)")
        names = list(args.params) + list(args.data or [])
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise _UsageError(f"name(s) {', '.join(sorted(dup))} given twice in --params/--data")
        table = {n: sp.Symbol(n) for n in names}
        expr = parse_expression(args.loss, table)
        extra = sorted(str(s) for s in expr.free_symbols if str(s) not in table)
        if extra:
            raise _UsageError(
                f"the loss uses name(s) {', '.join(extra)} that are neither in --params nor in --data"
            )
        data = [table[n] for n in (args.data or [])]
        return Loss(expr, [table[n] for n in args.params], data=data or None, name="--loss")
    if not args.family:
        raise _UsageError("give a FAMILY (one of: " + ", ".join(sorted(families.CATALOG)) + ") or --loss")
    builder = families.CATALOG[args.family][0]
    if args.dims is None:
        raise _UsageError(f"{args.family} needs --dims, e.g. --dims 5,3,2")
    kwargs: dict[str, Any] = {}
    if args.bias:
        if args.family != "relu-net":
            raise _UsageError("--bias applies to relu-net only")
        kwargs["bias"] = True
    return builder(args.dims, **kwargs)


def _dense(A: sp.Matrix) -> list[list[Any]]:
    out = []
    for i in range(A.shape[0]):
        row = []
        for j in range(A.shape[1]):
            v = A[i, j]
            row.append(int(v) if v.is_Integer else float(v))
        out.append(row)
    return out


def _cmd_symmetries(args: argparse.Namespace) -> int:
    from ._symmetry import find_symmetries

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


def _cmd_families(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({k: v[1] for k, v in families.CATALOG.items()}))
    else:
        width = max(len(k) for k in families.CATALOG)
        for k, (_, desc) in sorted(families.CATALOG.items()):
            print(f"{k:{width}s}  {desc}")
    return 0


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
    except _UsageError as exc:
        print(f"noether-sym: error: {exc}", file=sys.stderr)
        return 2
    except NoetherSymError as exc:
        print(f"noether-sym: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
