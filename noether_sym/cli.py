"""Command line: ``noether-sym`` (symmetries, families; more subcommands as stages land).

Exit status: 0 success, 1 a check failed, 2 bad usage (argparse errors and every
NoetherSymError caused by the user's input).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import sympy as sp

from . import families
from ._errors import NoetherSymError
from ._loss import Loss
from ._parse import parse_expression

__all__ = ["main", "build_parser"]


class _UsageError(Exception):
    pass


#: subcommands that live in their own module (``add_parser(subparsers)``, ``run(args)``);
#: the module's name is the subcommand's name with ``-`` -> ``_``.
_PLUGGED = [
    "._cli_simulate",
    "._cli_prove",
    "._cli_sweep",
    "._cli_sweep_plot",
    "._cli_verify",
]


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


def _float_list(text: str) -> list[float]:
    try:
        out = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("expected at least one number")
    return out


def _option_value(text: str) -> Any:
    """One ``--option`` value, parsed strictly (never evaluated): true/false/none, an int, a
    rational ``p/q`` (exact), a decimal (exact: ``0.1`` -> 1/10), or a comma list of those."""
    t = text.strip()
    if "," in t:
        return tuple(_option_value(part) for part in t.split(",") if part.strip())
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    if re.fullmatch(r"[+-]?\d+", t):
        return int(t)
    if re.fullmatch(r"[+-]?\d+/\d+", t) or re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", t):
        num, _, den = t.partition("/")
        q = Fraction(num) / Fraction(den or 1) if den != "0" else None
        if q is None:
            raise argparse.ArgumentTypeError(f"division by zero in {text!r}")
        return sp.Integer(q.numerator) if q.denominator == 1 else sp.Rational(q.numerator, q.denominator)
    raise argparse.ArgumentTypeError(
        f"cannot read {text!r}: use an integer, a rational like 1/2, a decimal, true/false/none, "
        "or a comma list of those"
    )


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. noise_var=1/2), got {text!r}")
    return key, _option_value(value)


def add_loss_arguments(p: argparse.ArgumentParser) -> None:
    """The options that choose a loss: a catalog FAMILY (--dims, --bias, --option) or --loss text."""
    p.add_argument("family", nargs="?", choices=sorted(families.CATALOG), help="a catalog family")
    p.add_argument("--dims", type=_int_list, help="widths input -> output, e.g. 5,3,2")
    p.add_argument("--bias", action="store_true", help="biases on hidden layers (network families)")
    p.add_argument("--option", type=_option, action="append", default=None, metavar="KEY=VALUE",
                   help="a family option, e.g. noise_var=1/2 or beta=1,-1/2,2 (see `noether-sym families --json`)")
    p.add_argument("--loss", help="a loss expression (whitelisted grammar), e.g. '(u*w*x - y)^2'")
    p.add_argument("--params", type=_name_list, help="parameter names for --loss, e.g. u,w")
    p.add_argument("--data", type=_name_list, default=None, help="data names for --loss, e.g. x,y")


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

    import importlib

    for mod in _PLUGGED:  # each module owns one subcommand: add_parser(sub) and run(args)
        importlib.import_module(mod, __package__).add_parser(sub)

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
    family = families.get(args.family)
    kwargs: dict[str, Any] = {}
    for key, value in getattr(args, "option", None) or []:
        if key not in family.options:
            raise _UsageError(
                f"{args.family} has no option {key!r}; its options are {', '.join(sorted(family.options)) or '(none)'}"
            )
        if key in kwargs:
            raise _UsageError(f"--option {key}=... given twice")
        kwargs[key] = value
    for flag, key, given in (("--dims", "dims", args.dims is not None), ("--bias", "bias", args.bias)):
        if given and key in kwargs:
            raise _UsageError(f"give {flag} or --option {key}=..., not both")
    if args.dims is not None:
        if "dims" not in family.options:
            raise _UsageError(f"{args.family} takes no --dims")
        kwargs["dims"] = args.dims
    if args.bias:
        if args.family == "linear-net" or "bias" not in family.options:
            raise _UsageError(f"--bias does not apply to {args.family} (families with biases: "
                              + ", ".join(k for k, f in families.CATALOG.items() if "bias" in f.options
                                          and k != "linear-net") + ")")
        kwargs["bias"] = True
    return family.build(**kwargs)


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


def _with_gaussian_data(loss: Loss) -> Loss:
    """Replace every plain data symbol by an independent standard normal."""
    from sympy.stats import Normal

    from ._data import attach_data

    mapping = {s: Normal(f"{s}_rv" if not str(s).endswith("_rv") else str(s), 0, 1) for s in loss.data_symbols}
    return attach_data(loss, mapping, name=loss.name)


def _cmd_derive(args: argparse.Namespace) -> int:
    import numpy as np

    from ._derive import derive

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


def _json_value(v: Any) -> Any:
    """Option values for JSON: exact rationals as text ("1/2"), tuples as lists."""
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, sp.Integer):
        return int(v)
    if isinstance(v, sp.Basic):
        return str(v)
    return v


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
        import importlib

        for mod in _PLUGGED:
            if mod == "._cli_" + args.command.replace("-", "_"):
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
