"""Command line: what several subcommands share -- the loss options and usage errors.

``add_loss_arguments`` declares the positional catalog family with its ``--dims`` /
``--option`` values, or ``--loss EXPR --params ... --data ...`` for a typed loss, and
``_loss_from_args`` builds the Loss from them; ``_UsageError`` and ``_Parser`` turn bad
usage into exit status 2 with a one-line message; ``_with_gaussian_data`` gives a loss
without a data model independent standard normal data.
"""


from __future__ import annotations

import argparse
import math
import re
import sys
from fractions import Fraction
from typing import Any

import sympy as sp
from sympy.stats import Normal

from noether_sym import families

from ..data._model import attach_data
from ..loss._loss import Loss
from .._errors import InvalidArgumentError
from .._validate import Integer, Seed
from ..loss._parse import MAX_DECIMAL_EXPONENT, MAX_LITERAL, parse_expression

__all__ = ['add_loss_arguments']



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


def _checked(constraint: Any, flag: str) -> Any:
    """An argparse ``type=`` that converts the text and checks it with a :mod:`_validate` constraint
    (so ``--lr nan``, ``--replicas -3`` or ``--seed -1`` end as exit status 2 naming the flag)."""

    def convert(text: str) -> Any:
        t = text.strip()
        try:
            value: Any = int(t) if re.fullmatch(r"[+-]?\d+", t) else float(t)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if isinstance(constraint, (Integer, Seed)) and isinstance(value, float):
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
        try:
            return constraint(value, flag)
        except InvalidArgumentError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = flag  # argparse names the type in its message
    return convert


def _checked_path(constraint: Any, flag: str) -> Any:
    """An argparse ``type=`` for a path checked by a :mod:`_validate` constraint (e.g. OutputFile)."""

    def convert(text: str) -> Any:
        try:
            return str(constraint(text, flag))
        except InvalidArgumentError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = flag
    return convert


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
    bad = [t for t, v in zip(text.split(","), out) if not math.isfinite(v) or (v != 0 and abs(v) < 1e-300)]
    if bad:
        raise argparse.ArgumentTypeError(
            f"expected finite numbers of moderate size (1e-300 < |x| < 1.8e308, or 0), got {', '.join(bad)}"
        )
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
        if len(t) > MAX_LITERAL:
            raise argparse.ArgumentTypeError(f"{text[:40]!r}...: an integer of more than {MAX_LITERAL} digits")
        return int(t)
    if re.fullmatch(r"[+-]?\d+/\d+", t) or re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", t):
        if len(t) > MAX_LITERAL:
            raise argparse.ArgumentTypeError(f"{text[:40]!r}...: a number of more than {MAX_LITERAL} characters")
        exponent = re.search(r"[eE]([+-]?\d+)$", t)
        if exponent and abs(int(exponent.group(1))) > MAX_DECIMAL_EXPONENT:
            raise argparse.ArgumentTypeError(
                f"{text!r}: decimal exponent beyond ±{MAX_DECIMAL_EXPONENT}; give a number of moderate size"
            )
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
    # no argparse choices=: families.get answers a typo with "did you mean" instead of the whole list
    p.add_argument("family", nargs="?", metavar="FAMILY",
                   help="a catalog family (`noether-sym families` lists them): " + ", ".join(sorted(families.CATALOG)))
    p.add_argument("--dims", type=_int_list, help="widths input -> output, e.g. 5,3,2")
    p.add_argument("--bias", action="store_true", help="biases on hidden layers (network families)")
    p.add_argument("--option", type=_option, action="append", default=None, metavar="KEY=VALUE",
                   help="a family option, e.g. noise_var=1/2 or beta=1,-1/2,2 (see `noether-sym families --json`)")
    p.add_argument("--loss", help="a loss expression (whitelisted grammar), e.g. '(u*w*x - y)^2'")
    p.add_argument("--params", type=_name_list, help="parameter names for --loss, e.g. u,w")
    p.add_argument("--data", type=_name_list, default=None, help="data names for --loss, e.g. x,y")


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


def _with_gaussian_data(loss: Loss) -> Loss:
    """Replace every plain data symbol by an independent standard normal."""


    mapping = {s: Normal(f"{s}_rv" if not str(s).endswith("_rv") else str(s), 0, 1) for s in loss.data_symbols}
    return attach_data(loss, mapping, name=loss.name)


def _json_value(v: Any) -> Any:
    """Option values for JSON: exact rationals as text ("1/2"), tuples as lists."""
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, sp.Integer):
        return int(v)
    if isinstance(v, sp.Basic):
        return str(v)
    return v
