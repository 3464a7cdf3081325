"""Robustness: bad input is refused cleanly and fast; odd valid input keeps working.

The corpus (``tests/robustness/corpus.py``, over 200 cases over the Python API and the
CLI) runs in one child process under a memory cap (``RLIMIT_AS``) with a per-case alarm
(``tests/robustness/runner.py``); a case that kills the child (a C library aborting on
an allocation) is recorded as an abort and the child restarted after it. Every bad case
must end in a NoetherSymError (CLI: exit status 2 and one ``noether-sym: error:`` line)
within the bound; zero hangs, aborts and raw tracebacks. The regression tests below pin
each failure class at its root, comparing against values worked out by hand.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from robustness.corpus import CASES

import noether_sym as ns
from noether_sym import ParseError
from noether_sym.cli._main import main

TESTS = Path(__file__).resolve().parent
MEM_MB = 4000  # the child's address-space cap
TIMEOUT_S = 20  # per case; every case finishes in well under a second except the scheduler one (5 s)


def _run_corpus() -> dict[str, dict]:
    results: dict[str, dict] = {}
    todo = [c[0] for c in CASES]
    while todo:
        proc = subprocess.run([sys.executable, "-m", "robustness.runner", str(MEM_MB), str(TIMEOUT_S), *todo],
                              cwd=TESTS, capture_output=True, text=True, timeout=TIMEOUT_S * len(todo) + 120)
        for line in proc.stdout.splitlines():
            row = json.loads(line)
            results[row["id"]] = row
        rest = [i for i in todo if i not in results]
        if rest:  # the child died inside rest[0]
            results[rest[0]] = {"id": rest[0], "outcome": "abort", "seconds": math.nan,
                                "detail": f"exit {proc.returncode}: {proc.stderr[-300:]}"}
            rest = rest[1:]
        todo = rest
    return results


@pytest.fixture(scope="module")
def corpus_results():
    return _run_corpus()


def test_corpus_is_large_and_has_both_sides():
    assert len(CASES) >= 200
    assert len({c[0] for c in CASES}) == len(CASES)
    kinds = {(c[1], c[3]) for c in CASES}
    assert {("api", "error"), ("cli", "error"), ("api", "ok"), ("cli", "ok")} <= kinds


def test_corpus_no_hang_abort_or_traceback(corpus_results):
    outcomes = {}
    for cid, kind, payload, expect in CASES:
        outcomes.setdefault(corpus_results[cid]["outcome"], []).append(cid)
    bad = {k: v for k, v in outcomes.items() if k in ("hang", "abort", "traceback", "exit")}
    assert not bad, bad


@pytest.mark.parametrize("case", CASES, ids=[c[0][:70] for c in CASES])
def test_corpus_case(case, corpus_results):
    cid, kind, payload, expect = case
    row = corpus_results[cid]
    allowed = {"error": {"error"}, "ok": {"ok"}, "either": {"ok", "error"}}[expect]
    assert row["outcome"] in allowed, row
    assert row["seconds"] < TIMEOUT_S


# ------------------------------------------------------------------------------------------
# The parser under fuzzing: a ParseError or an expression, fast, whatever the text
# ------------------------------------------------------------------------------------------

TOKENS = ["u", "w", "x", "(", ")", "+", "-", "*", "/", "**", "^", "9", "64", "0.5", "1e300", "1e-400", "pi", "E",
          "exp(", "log(", "sqrt(", "max(", ",", "abs(", " ", "θ", "é", "\u202e", "_", ".", "[", "]", "'", "lambda",
          "9" * 39, "0", "j"]


@contextlib.contextmanager
def _hang_guard(what: str, seconds: int = 60):
    """Fail with TimeoutError if the block runs for `seconds`: a hang detector, not a speed test."""
    def alarm(signum, frame):
        raise TimeoutError(f"{what} hung (no answer within {seconds} s)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _parse_bounded(text: str, seconds: int = 5):
    with _hang_guard(f"parse_expression on {text[:80]!r}", seconds):
        try:
            return ns.parse_expression(text)
        except ParseError:
            return None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_fuzz_token_strings(tokens):
    out = _parse_bounded("".join(tokens))
    assert out is None or isinstance(out, sp.Basic)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.sampled_from(["(", "exp(", "-(", "(u+", "abs(", "((u)**2)**("]))
def test_fuzz_deep_nesting(depth, opener):
    close = ")" * depth
    out = _parse_bounded(opener * depth + "u" + close + ("" if opener != "((u)**2)**(" else ")" * depth))
    assert out is None or isinstance(out, sp.Basic)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**12), st.integers(-10**6, 10**6), st.sampled_from(["{a}**{b}", "{a}e{b}*u", "u**{b}",
                                                                             "({a}**{a})**{b}", "u*{a}.5e{b}"]))
def test_fuzz_huge_literals(a, b, template):
    out = _parse_bounded(template.format(a=a, b=b))
    assert out is None or isinstance(out, sp.Basic)


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=30))
def test_fuzz_unicode(text):
    out = _parse_bounded(text)
    assert out is None or isinstance(out, sp.Basic)


# ------------------------------------------------------------------------------------------
# Regressions, one per failure class
# ------------------------------------------------------------------------------------------


def test_irrational_exponent_gets_its_generator_fast():
    # ℓ = (uwx - x)^π depends on u, w through uw only: u -> e^t u, w -> e^-t w, A = diag(1, -1)
    u, w, x = sp.symbols("u w x")
    with _hang_guard("find_symmetries on (uwx - x)^pi"):
        sym = ns.find_symmetries(ns.Loss(ns.parse_expression("(u*w*x - x)**pi"), params=[u, w], data=[x]))
    assert [list(g) for g in sym.generators] == [[1, 0, 0, -1]]


def test_variable_exponent_compiles_to_exp_log():
    # u**w at (2, 3): value 8, gradient (w u^(w-1), u^w log u) = (12, 8 log 2)
    from noether_sym.compile._codegen import compile_graph
    from noether_sym.compile._graph import Graph

    u, w = sp.symbols("u w")
    g = Graph((u, w))
    root = g.add(u**w)
    f = compile_graph(g, [root], grad_of=root, wrt=[0, 1])
    (val,), grad = f(np.array(2.0), np.array(3.0))
    assert val == pytest.approx(8.0) and grad[0] == pytest.approx(12.0) and grad[1] == pytest.approx(8 * math.log(2))


@pytest.mark.parametrize("text,value", [
    ("1e-400", sp.Rational(1, 10**400)),
    ("0.123456789012345678901234567891", sp.Rational(123456789012345678901234567891, 10**30)),
    ("2.5e3", sp.Integer(2500)),
    ("1_000.25", sp.Rational(4001, 4)),
])
def test_decimal_literals_are_exact(text, value):
    assert ns.parse_expression(text) == value


@pytest.mark.parametrize("text,words", [
    ("((((9**64)**64)**64)**64)**64", "MAX_INTEGER_BITS"),
    ("1e1000000000*u", "MAX_DECIMAL_EXPONENT"),
    ("(u*w*x - x)**(10**9)", "MAX_EXPONENT"),
    ("((((u*w*x-x)**64)**64)**64)**64", "MAX_EXPONENT"),
    ("u/0", "division by zero"),
    ("(-8)**(1/3)*u", "not real"),
])
def test_parser_budgets(text, words):
    with _hang_guard(f"parse_expression on {text!r}"), pytest.raises(ParseError, match=words):
        ns.parse_expression(text)


@pytest.mark.parametrize("expr,words", [
    ("u*w*x*10**400", "beyond the float range"),
    ("DiracDelta(u)*w*x", "no NumPy/SciPy implementation of DiracDelta"),
    ("zeta(u)*w*x", "no derivative of zeta"),
])
def test_codegen_refuses_what_it_cannot_write(expr, words):
    u, w, x = sp.symbols("u w x")
    e = sp.sympify(expr, locals={"u": u, "w": w, "x": x})
    with pytest.raises(ns.UnsupportedExpressionError, match=words):
        ns.find_symmetries(ns.Loss(e, params=[u, w], data=[x]))


def test_equilibrium_charge_at_extreme_theta():
    # θ = (1e200, 1e-200) for (uwx - x)^2 with A = diag(1, -1): the orbit has uw = 1 and the
    # balanced point is u* = w* = 1, so C(θ*) = u*^2 - w*^2 = 0 (finite, no overflow)
    from sympy.stats import Normal

    u, w = sp.symbols("u w")
    X = Normal("X", 0, 1)
    loss = ns.Loss((u * w * X - X) ** 2, params=[u, w])
    eq = ns.noise_equilibrium(loss, sp.diag(1, -1), theta=[1e200, 1e-200], batch_size=1)
    assert eq.kind == "balanced"
    assert np.allclose(eq.theta, [1.0, 1.0]) and abs(eq.charge) < 1e-9


def test_simulation_memory_budget():
    from sympy.stats import Normal

    u, w = sp.symbols("u w")
    X = Normal("X", 0, 1)
    loss = ns.Loss((u * w * X - X) ** 2, params=[u, w])
    with pytest.raises(ns.ResourceLimitError, match="MAX_SIMULATION_BYTES"):
        ns.simulate(loss, [1.0, 0.5], lr=0.01, batch_size=1, steps=10, replicas=10**8, seed=0)


def test_matrix_symbol_budget():
    with pytest.raises(ns.ResourceLimitError, match="symbols"):
        ns.matrix("W", 10**5, 10**5)


def test_cli_conflicting_flags_name_both(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["derive", "--loss", "(u*w*x - x)^2", "--params", "u,w", "--data", "x", "--latex", "--json"])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("noether-sym: error:") and "--json" in last and "--latex" in last


def test_output_file_constraint(tmp_path):
    from noether_sym._validate import OutputFile

    assert OutputFile()(tmp_path / "a.png", "plot") == tmp_path / "a.png"
    for bad, words in [(tmp_path, "is a folder"), (tmp_path / "no" / "a.png", "does not exist"),
                       ("/proc/a.png", "cannot write")]:
        with pytest.raises(ns.InvalidArgumentError, match=words):
            OutputFile()(bad, "plot")


# ------------------------------------------------------------------------------------------
# Sweeps: corrupt shards are quarantined and recomputed; only manifest shards count
# ------------------------------------------------------------------------------------------

SPEC = {"family": "linear-net", "batch_size": 1, "steps": 30, "replicas": 2, "grid": {"lr": [0.02, 0.03, 0.05]}}


def test_sweep_truncated_shard_resumes_by_itself(tmp_path):
    pytest.importorskip("pyarrow")
    first = ns.sweep(SPEC, out=tmp_path, scheduler="serial")
    shards = sorted((tmp_path / "shards").glob("*.parquet"))
    assert len(shards) == 3
    data = shards[0].read_bytes()
    shards[0].write_bytes(data[: len(data) // 2])  # a crash mid-copy
    shards[1].write_bytes(b"")  # an empty file
    (tmp_path / "shards" / "copy-of-a-shard.parquet").write_bytes(shards[2].read_bytes())
    with pytest.warns(UserWarning, match="corrupt"):
        res = ns.sweep(SPEC, out=tmp_path, scheduler="serial")
    assert res.ran == 2 and res.complete
    assert sorted(res.column("task_id")) == sorted(t["id"] for t in res.manifest["tasks"])  # each exactly once
    assert len(res) == res.n_tasks == 3
    assert len(list((tmp_path / "quarantine").iterdir())) == 2
    # the recomputed rows are bit-identical to the first run's (repr keeps every bit; NaN == NaN)
    assert repr(res.numbers()) == repr(first.numbers())


def test_sweep_counts_only_manifest_shards(tmp_path):
    pytest.importorskip("pyarrow")
    ns.sweep(SPEC, out=tmp_path, scheduler="serial")
    shard = sorted((tmp_path / "shards").glob("*.parquet"))[0]
    (tmp_path / "shards" / "stray.parquet").write_bytes(shard.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = ns.load_sweep(tmp_path)
    assert len(res) == 3 and "3 of 3 tasks" in res.summary()
    assert not list(tmp_path.glob(".tmp-*"))  # the manifest was written atomically
