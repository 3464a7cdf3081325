"""Command line: ``noether-sym sweep`` -- run a sweep spec (TOML) serially or on Dask, resumably.

``add_parser(subparsers)`` declares the subcommand; ``run(args)`` executes it and returns
the exit status: 0 when every task finished without error, 1 when some task failed (its
error is in its shard and in the summary), 2 for bad usage (raised as ``NoetherSymError``
and turned into status 2 by ``cli.main``). Rerunning the same command resumes.
"""


from __future__ import annotations

import argparse
import sys
from typing import Any

from ..check._sweep import sweep

__all__ = ['add_parser', 'run']



def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to ``subparsers`` (from ``add_subparsers``)."""
    s = subparsers.add_parser(
        "sweep",
        help="run a sweep of simulations (TOML spec) on a local or remote Dask cluster",
        description="Run every task of a sweep spec (a grid or list of simulation settings) that is not "
        "finished in --out yet; each finished task is written as one Parquet shard. Without --scheduler "
        "a local Dask cluster is started; --scheduler tcp://HOST:8786 uses a running one; "
        "--scheduler serial (or --workers 0) runs in this process.",
    )
    s.add_argument("spec", metavar="SPEC.toml", help="the sweep spec")
    s.add_argument("--out", required=True, metavar="DIR", help="the sweep directory (created; reused to resume)")
    s.add_argument("--scheduler", metavar="ADDR", default=None,
                   help="address of a running Dask scheduler (tcp://host:8786), or 'serial'")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="workers of the local cluster (default 2; 0 = serial)")
    s.add_argument("--retry-failed", action="store_true", help="also rerun tasks recorded as failed")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=run)
    return s


def run(args: argparse.Namespace) -> int:
    """Execute ``noether-sym sweep``; returns the exit status.

    Examples
    --------
    >>> import argparse, pathlib, tempfile
    >>> from noether_sym.cli.sweep import add_parser, run
    >>> parser = argparse.ArgumentParser(prog="noether-sym")
    >>> _ = add_parser(parser.add_subparsers(dest="command"))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     spec = pathlib.Path(d, "spec.toml")
    ...     _ = spec.write_text('family = "linear-net"\\nbatch_size = 1\\nsteps = 50\\nreplicas = 2\\n'
    ...                         '[grid]\\nlr = [0.01, 0.02]\\n')
    ...     args = parser.parse_args(["sweep", str(spec), "--out", d + "/runs", "--workers", "0",
    ...                               "--no-progress"])
    ...     run(args)  # doctest: +ELLIPSIS
    sweep .../runs: 2 of 2 tasks finished (2 done, 0 failed, 0 pending); 2 computed by this run
    0
    """

    res = sweep(args.spec, out=args.out, scheduler=args.scheduler, workers=args.workers,
                progress=not args.no_progress, retry_failed=args.retry_failed)
    print(res.summary())
    sys.stdout.flush()
    return 1 if res.failed else 0
