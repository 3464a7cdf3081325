"""Command line: ``noether-sym simulate`` -- SGD replicas on a catalog family or a typed loss.

``add_parser(subparsers)`` declares the subcommand; ``run(args)`` executes it and returns
the exit status (0 success; usage errors are raised as ``cli._UsageError`` or
``NoetherSymError`` and turned into status 2 by ``cli.main``).

Data models:

* ``--loss``: data symbols (``--data``) get their distribution from ``--dist``
  (``x=normal:0:1``, ``e=uniform:-1:1``, ``r=rademacher``), attached with
  ``ns.attach_data``; build correlated data in the expression itself
  (``(u*w*x - (x + e))^2``).
* catalog families carry their own data model (``ns.families.get(name).build()``); their
  default start and simulation settings fill in ``--theta0``, ``--lr``, ``--batch-size``,
  ``--steps``, ``--replicas`` and ``--weight-decay`` when those are not given.

With ``--plot`` the figure shows the predicted equilibrium of each charge (dashed) when the
theory gives one from the start (one generator, or commuting ones, (E16)-(E18)); with
``--compare`` the run is repeated at 2η and 4η and the table of predicted against measured
(with the Richardson η → 0 estimate) is printed (``ns.compare``).
"""


from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np
import sympy as sp
from sympy.stats import Normal, Rademacher, Uniform

from noether_sym import families

from .._errors import NoetherSymError
from ..check._compare import compare
from ..data._model import attach_data
from ..loss._loss import Loss
from ..report._plot import plot_charges
from ..simulate._run import simulate
from ..symmetry._finder import find_symmetries
from ..theory._predict import predict_equilibrium
from .._validate import Integer, OutputFile, Real, Seed
from ._common import _option_value, _checked, _checked_path, _loss_from_args, _UsageError, add_loss_arguments

__all__ = ['add_parser', 'run']



def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``simulate`` subcommand to ``subparsers`` (from ``add_subparsers``)."""

    s = subparsers.add_parser(
        "simulate",
        help="simulate SGD replicas and record the Noether charges",
        description="Simulate SGD (or GD) on a catalog family or a loss, many replicas at once; "
        "print a summary or JSON and optionally plot the charge trajectories.",
    )
    add_loss_arguments(s)
    s.add_argument(
        "--dist",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="distribution of a --loss data symbol: normal:MEAN:STD, uniform:LO:HI or rademacher "
        "(repeat for each symbol)",
    )
    s.add_argument("--gaussian", action="store_true",
                   help="--loss data symbols without --dist become independent standard normals")
    s.add_argument("--theta0", help="start: 'u=2,w=1' or '2,1' (params order); families default: the family's start")
    s.add_argument("--lr", type=_checked(Real(0, None, low_open=True), "--lr"), default=None, help="learning rate (families: default from the catalog)")
    s.add_argument("--batch-size", type=_checked(Integer(1), "--batch-size"), default=None, help="batch size (families: default from the catalog)")
    s.add_argument("--steps", type=_checked(Integer(0), "--steps"), default=None, help="number of steps (families: default from the catalog)")
    s.add_argument("--replicas", type=_checked(Integer(1), "--replicas"), default=None, help="number of replicas (families: default from the catalog)")
    s.add_argument("--weight-decay", type=_checked(Real(0), "--weight-decay"), default=None, help="weight decay γ (families: default from the catalog)")
    s.add_argument("--compare", action="store_true",
                   help="also run 2η and 4η and print predicted vs measured with the Richardson η → 0 estimate")
    s.add_argument("--momentum", type=_checked(Real(0, 1, high_open=True), "--momentum"), default=0.0)
    s.add_argument("--optimizer", choices=["sgd", "gd"], default="sgd")
    s.add_argument("--every", type=_checked(Integer(1), "--every"), default=None, help="record stride (default steps/100)")
    s.add_argument("--seed", type=_checked(Seed(), "--seed"), default=0)
    s.add_argument("--chunk-size", type=_checked(Integer(1), "--chunk-size"), default=None)
    s.add_argument("--plot", metavar="OUT.png", type=_checked_path(OutputFile(), "--plot"), help="write a figure of the charge trajectories")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    s.add_argument("--progress", action="store_true", help="show a progress bar (needs tqdm)")
    s.set_defaults(func=run)
    return s


def _require_loss_flags(args: argparse.Namespace, loss: Loss, plain: Any) -> None:
    """Everything ``--loss`` still needs, named in one message (not one error per flag)."""
    missing = [f"--{k.replace('_', '-')}" for k in ("theta0", "lr", "batch_size", "steps", "replicas")
               if getattr(args, k) is None]
    if plain and loss.dataset is None:
        missing.append(f"a distribution for {', '.join(map(str, plain))} (--dist {plain[0]}=normal:0:1, "
                       "uniform:LO:HI or rademacher; or --gaussian for independent standard normals)")
    if missing:
        start = ",".join(f"{p}=1" for p in loss.params[:4]) + ("..." if loss.n > 4 else "")
        raise _UsageError(f"--loss needs {', '.join(missing)}; for example: --theta0 {start} --lr 0.01 "
                          "--batch-size 1 --steps 10000 --replicas 100" + (" --gaussian" if plain else ""))


def _parse_dist(spec: str) -> tuple[str, Any]:


    name, _, rhs = spec.partition("=")
    name = name.strip()
    parts = [p.strip() for p in rhs.split(":")]
    kind = parts[0].lower()
    try:
        nums = [_exact_number(p) for p in parts[1:]]
    except (TypeError, ValueError, ZeroDivisionError, argparse.ArgumentTypeError):
        raise _UsageError(f"--dist {spec!r}: parameters must be finite numbers (e.g. 0, 1/2, 1.5)") from None
    if kind == "normal" and len(nums) == 2 and not nums[1] > 0:
        raise _UsageError(f"--dist {spec!r}: the standard deviation must be > 0")
    if kind == "uniform" and len(nums) == 2 and not nums[0] < nums[1]:
        raise _UsageError(f"--dist {spec!r}: uniform:LO:HI needs LO < HI")
    if not name.isidentifier():
        raise _UsageError(f"--dist {spec!r}: expected NAME=normal:MEAN:STD, NAME=uniform:LO:HI or NAME=rademacher")
    if kind == "normal" and len(nums) == 2:
        return name, Normal(name, nums[0], nums[1])
    if kind == "uniform" and len(nums) == 2:
        return name, Uniform(name, nums[0], nums[1])
    if kind == "rademacher" and not nums:
        return name, Rademacher(name)
    raise _UsageError(f"--dist {spec!r}: expected NAME=normal:MEAN:STD, NAME=uniform:LO:HI or NAME=rademacher")




def _exact_number(text: str) -> sp.Rational:
    """A --dist parameter: an exact rational within the float range (never evaluated)."""
    value = _option_value(text)
    if isinstance(value, bool) or not isinstance(value, (int, sp.Rational)):
        raise ValueError(text)
    value = sp.Rational(value)
    if not math.isfinite(float(value)):
        raise ValueError(text)
    return value


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(text)
    return v


def _theta0(loss: Loss, text: str | None, family: bool, scale: float, seed: int) -> Any:

    if text is None:
        if not family:
            raise _UsageError("--loss needs --theta0 (e.g. --theta0 u=2,w=1)")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
        return scale * rng.standard_normal(loss.n)
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        if all("=" in t for t in items):
            by_name = {str(p): p for p in loss.params}
            out = {}
            for t in items:
                k, _, v = t.partition("=")
                if k.strip() not in by_name:
                    raise _UsageError(f"--theta0: {k.strip()!r} is not a parameter ({', '.join(by_name)})")
                out[by_name[k.strip()]] = _finite(v)
            return out
        return [_finite(t) for t in items]
    except ValueError:
        raise _UsageError(f"--theta0 {text!r}: expected NAME=VALUE pairs or numbers separated by commas") from None


def run(args: argparse.Namespace) -> int:
    """Execute ``noether-sym simulate``; returns the exit status.

    Examples
    --------
    >>> import argparse
    >>> from noether_sym.cli.simulate import add_parser, run
    >>> parser = argparse.ArgumentParser(prog="noether-sym")
    >>> _ = add_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["simulate", "linear-net", "--dims", "2,2,2", "--lr", "0.05",
    ...                           "--batch-size", "2", "--steps", "100", "--replicas", "4"])
    >>> run(args)  # doctest: +ELLIPSIS
    simulate linear-net 2-2-2: sgd, 4 replicas x 100 steps, lr=0.05, batch=2, ...
      diverged: none
    ...
    0
    """

    loss = _loss_from_args(args)
    family = None
    if args.loss is not None:
        if args.dist:

            by_name = {str(s): s for s in loss.data_symbols}
            mapping = {}
            for spec in args.dist:
                name, rv = _parse_dist(spec)
                if name not in by_name:
                    raise _UsageError(f"--dist names {name!r}, which is not a --data symbol")
                mapping[by_name[name]] = rv
            loss = attach_data(loss, mapping, name="--loss")
        plain = loss.data_symbols[len(loss.random_symbols):]
        if plain and loss.dataset is None and args.gaussian:
            loss = attach_data(loss, {d: Normal(f"{d}_rv", 0, 1) for d in plain}, name="--loss")
            plain = []
        _require_loss_flags(args, loss, plain)
    else:

        if args.dist:
            raise _UsageError("--dist applies to --loss; catalog families carry their own data model")
        family = families.get(args.family)
    settings = dict(family.settings) if family is not None else {}
    opts: dict[str, Any] = {}
    for key in ("lr", "batch_size", "steps", "replicas", "weight_decay"):
        v = getattr(args, key)
        if v is None:
            v = settings.get(key, 0.0 if key == "weight_decay" else None)
        if v is None:
            raise _UsageError(f"--{key.replace('_', '-')} is required with --loss")
        opts[key] = v
    if args.theta0 is None and family is not None:
        theta0: Any = family.theta0(loss, seed=args.seed)
    else:
        theta0 = _theta0(loss, args.theta0, False, 0.0, args.seed)

    sym = find_symmetries(loss, seed=args.seed)
    generators = sym.generators or None
    predicted, why = _prediction(loss, generators, theta0, opts)
    if args.compare:
        return _run_compare(args, loss, theta0, generators, opts, predicted, why)
    record = ["loss", "norm2"] + (["charges"] if generators else [])
    res = simulate(
        loss,
        theta0,
        record=record,
        every=args.every,
        seed=args.seed,
        momentum=args.momentum,
        optimizer=args.optimizer,
        chunk_size=args.chunk_size,
        progress=args.progress,
        generators=generators,
        **opts,
    )
    plot_path = None
    if args.plot:

        try:
            plot_charges(res, predicted if generators else None, args.plot, observable="charges" if generators else "norm2")
        except ImportError as exc:
            raise _UsageError(str(exc)) from None
        plot_path = args.plot
    if args.json:
        doc = res.to_dict()
        doc.update(
            {
                "family": args.family or "--loss",
                "n_params": loss.n,
                "n_generators": len(sym.generators),
                "charges": [str(c) for c in sym.charges],
                "predicted_charges": None if predicted is None else [float(v) for v in predicted],
                "prediction": why,
                "plot": plot_path,
            }
        )
        print(json.dumps(doc))
        return 0
    print(res.summary())
    if generators:
        print(f"  charges: {len(sym.generators)} generators ({sym.n_independent_charges} independent)")
        if predicted is not None:
            shown = ", ".join(f"{v:.6g}" for v in predicted[:6]) + (" ..." if len(predicted) > 6 else "")
            print(f"  predicted equilibrium charges ({why}): {shown}")
        else:
            print(f"  no predicted equilibrium: {why}")
    if plot_path:
        print(f"  figure: {plot_path}")
    sys.stdout.flush()
    return 0


def _prediction(loss: Loss, generators: Any, theta0: Any, opts: dict[str, Any]) -> tuple[np.ndarray | None, str]:
    """Predicted equilibrium charges from the start, or (None, why not)."""

    if not generators:
        return None, "no symmetry"
    if not (loss.random_symbols or loss.dataset is not None):
        return None, "the loss has no data model"
    th = np.asarray(loss.theta_vector(theta0, what="theta0"), dtype=float).ravel()
    try:
        gamma = float(opts["weight_decay"])
        p = predict_equilibrium(loss, list(th), list(generators), weight_decay=gamma, batch_size=int(opts["batch_size"]),
                                lr=float(opts["lr"]) if gamma > 0 else None, finite=True)
    except NoetherSymError as exc:
        return None, str(exc)
    star, how = p.theta, p.how
    mats = [np.array(A.tolist(), dtype=float) for A in generators]
    return np.array([star @ A @ star for A in mats]), how


def _run_compare(args: argparse.Namespace, loss: Loss, theta0: Any, generators: Any, opts: dict[str, Any],
                 predicted: Any, why: str) -> int:

    if predicted is None:
        raise _UsageError(f"--compare needs a predicted equilibrium: {why}")
    if args.optimizer != "sgd" or args.momentum:
        raise _UsageError("--compare runs plain SGD (no --optimizer gd, no --momentum)")
    cmp = compare(loss, theta0, generators=list(generators), seed=args.seed, progress=args.progress, **opts)
    plot_path = None
    if args.plot:
        try:
            cmp.plot(args.plot, title=f"{loss.name}: predicted vs measured")
        except ImportError as exc:
            raise _UsageError(str(exc)) from None
        plot_path = args.plot
    if args.json:
        doc = cmp.to_dict()
        doc.update({"family": args.family or "--loss", "plot": plot_path})
        print(json.dumps(doc))
        return 0
    print(f"{loss.name}: predicted ({cmp.prediction}) vs measured, tail half, mean ± s.e. over replicas")
    print(cmp.table())
    print(f"  stationary tails: {'yes' if cmp.stationary() else 'NO (run longer)'}")
    if plot_path:
        print(f"  figure: {plot_path}")
    return 0
