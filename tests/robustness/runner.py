"""Run robustness cases under a time and memory bound; print one JSON line per case.

``python -m robustness.runner MEM_MB TIMEOUT_S ID...`` (from ``tests/``) sets ``RLIMIT_AS`` to
``MEM_MB`` for the whole process and runs each case under ``signal.alarm(TIMEOUT_S)``. The
outcome of a case is one of ``ok``, ``error`` (a NoetherSymError, or exit status 2 with a
one-line ``noether-sym: error:`` message), ``exit`` (another exit status), ``traceback``
(any other exception: the bug class this corpus exists for), ``hang`` (the alarm fired).
A process abort (a C library out of memory) shows as a missing line; the caller records it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _fill(payload, tmp):
    if isinstance(payload, str):
        return payload.replace("{tmp}", tmp)
    return [a.replace("{tmp}", tmp) for a in payload]


def run_case(kind, payload, timeout):
    import numpy as np
    import sympy as sp
    from sympy.stats import Normal

    import noether_sym as ns
    from noether_sym.cli._main import main

    tmp = tempfile.mkdtemp(prefix="nsrob-")
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    t0 = time.perf_counter()
    detail = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "api":
                u, w, x, y = sp.symbols("u w x y")
                env = {"ns": ns, "sp": sp, "np": np, "Normal": Normal, "u": u, "w": w, "x": x, "y": y}
                try:
                    exec(_fill(payload, tmp), env)  # noqa: S102 - the test corpus, written here
                    outcome = "ok"
                except ns.NoetherSymError as exc:
                    outcome, detail = "error", f"{type(exc).__name__}: {exc}"
            else:
                err, out = io.StringIO(), io.StringIO()
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                    try:
                        status = main(_fill(payload, tmp))
                    except SystemExit as exc:
                        status = exc.code
                lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("noether-sym: error:")]
                detail = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""
                if status == 0:
                    outcome = "ok"
                elif status == 2 and len(lines) == 1 and "Traceback" not in err.getvalue():
                    outcome = "error"
                else:
                    outcome, detail = "exit", f"status {status}: {err.getvalue()[-300:]}"
    except _Timeout:
        outcome = "hang"
    except Exception as exc:  # noqa: BLE001 - exactly what the corpus looks for
        outcome = "traceback"
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()[-300:]
    finally:
        signal.alarm(0)
        shutil.rmtree(tmp, ignore_errors=True)
    return outcome, detail[:300], time.perf_counter() - t0


def main(argv):
    mem_mb, timeout = int(argv[0]), int(argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
    from robustness.corpus import CASES

    by_id = {c[0]: c for c in CASES}
    for cid in argv[2:]:
        _, kind, payload, _ = by_id[cid]
        outcome, detail, sec = run_case(kind, payload, timeout)
        sys.__stdout__.write(json.dumps({"id": cid, "outcome": outcome, "detail": detail, "seconds": sec}) + "\n")
        sys.__stdout__.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
