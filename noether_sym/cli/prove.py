"""Command line: ``noether-sym prove`` -- run every machine-checked proof and write LaTeX.

Prints one line per step (``PASS``, ``FAIL`` with the failing expression, or ``skip`` after
a failure), a summary, and with ``--out DIR`` writes ``DIR/proofs.tex`` (a complete
document: theorem statements, hypotheses, each step as an aligned equation with its
justification). Exit status: 0 every step passes, 1 a step failed, 2 bad usage.
"""


from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import sympy as sp

from ..report._prove import discover, proofs_document, run_proof
from ._common import _UsageError

__all__ = ['add_parser', 'run']



def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``prove`` subcommand to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "prove",
        help="run the machine-checked proofs of (E3)-(E21) and write a LaTeX document",
        description="Check every step of every proof with SymPy; print a pass/fail line per step; "
        "with --out DIR write DIR/proofs.tex.",
    )
    p.add_argument("--out", metavar="DIR", help="write the LaTeX document DIR/proofs.tex")
    p.add_argument("--proofs", metavar="DIR", help="folder of proof files (default: the repository's proofs/)")
    p.add_argument("--only", action="append", default=None, metavar="NAME",
                   help="run only the proofs whose file name contains NAME (repeatable), e.g. e09")
    p.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    p.set_defaults(func=run)
    return p


def _print_step(quiet: bool):
    def on_step(proof: Any, k: int, res: Any) -> None:
        n = len(proof.steps)
        if res.status == "pass":
            if not quiet:
                tag = "PASS" if res.step.checks else "LOGIC"
                print(f"  {tag:5s} {proof.key} step {k + 1}/{n}: {res.step.name}  ({res.seconds:.2f} s)")
        else:
            label = f" [{res.check_label}]" if res.check_label else ""
            print(f"  FAIL  {proof.key} step {k + 1}/{n}: {res.step.name}{label}: {res.reason}")
            if res.expression is not None:
                print(f"        failing expression: {sp.sstr(res.expression)[:400]}")
        sys.stdout.flush()

    return on_step


def run(args: argparse.Namespace) -> int:
    """Execute ``noether-sym prove``; returns the exit status.

    Examples
    --------
    >>> import argparse
    >>> from noether_sym.cli.prove import add_parser, run
    >>> parser = argparse.ArgumentParser(prog="noether-sym")
    >>> _ = add_parser(parser.add_subparsers(dest="command"))
    >>> run(parser.parse_args(["prove", "--only", "e09"]))  # doctest: +ELLIPSIS
    Gradient flow conserves the Noether charge (E9)
      PASS  e09 step 1/4: chain rule  (... s)
    ...
    1 proofs, 4 steps: 4 passed, 0 failed, 0 not reached (... s)
    0
    """

    found = discover(args.proofs)
    keys = list(found)
    if args.only:
        keys = [k for k in keys if any(o in k for o in args.only)]
        if not keys:
            raise _UsageError(f"--only {', '.join(args.only)} matches no proof file; available: {', '.join(found)}")
    t0 = time.perf_counter()
    results = []
    for key in keys:
        proof = found[key]()
        print(f"{proof.title} ({', '.join(proof.tags)})")
        results.append(run_proof(proof, on_step=_print_step(args.quiet)))
        for k, s in enumerate(results[-1].steps):
            if s.status == "skipped":
                print(f"  skip  {proof.key} step {k + 1}/{len(proof.steps)}: {s.step.name} (after a failure)")
    seconds = time.perf_counter() - t0
    steps = [s for r in results for s in r.steps]
    n_pass = sum(s.status == "pass" for s in steps)
    n_fail = sum(s.status == "fail" for s in steps)
    n_skip = sum(s.status == "skipped" for s in steps)
    print(f"{len(results)} proofs, {len(steps)} steps: {n_pass} passed, {n_fail} failed, {n_skip} not reached ({seconds:.1f} s)")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "proofs.tex"
        path.write_text(proofs_document(results, seconds=seconds), encoding="utf-8")
        print(f"wrote {path}")
    return 0 if n_fail == 0 else 1
