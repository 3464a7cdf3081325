"""The robustness corpus: bad inputs that must be refused cleanly, and odd valid ones that must work.

Each case is ``(id, kind, payload, expect)``:

* ``kind="api"``: ``payload`` is Python source run with ``ns`` (noether_sym), ``sp``
  (sympy), ``np`` (numpy), ``Normal`` and the symbols ``u, w, x, y`` in scope;
* ``kind="cli"``: ``payload`` is the argument list of ``noether-sym``;
* ``expect="error"``: a NoetherSymError (API) or exit status 2 with a one-line message (CLI);
  ``expect="ok"``: no exception (API) or exit status 0 (CLI).

``{tmp}`` in a payload is replaced by a fresh temporary directory.
"""

from __future__ import annotations

CASES: list[tuple[str, str, object, str]] = []


def _add(kind: str, payload: object, expect: str, name: str | None = None) -> None:
    CASES.append((name or f"{kind}-{len(CASES):03d}", kind, payload, expect))


# ---- non-numeric exponents: the power rewrite must terminate ------------------------------
L = "ns.Loss(ns.parse_expression({e!r}), params=[u, w], data=[x])"
for e in ["(u*w*x - x)**pi", "(u*w*x - x)**sqrt(2)", "abs(u*w*x - x)**E", "u**E*w*x", "(u*w*x - 1)**(pi/2)",
          "exp(u)**w * x", "u**w * x", "(u**2 + 1)**(1/pi) * w*x"]:
    _add("api", f"loss = {L.format(e=e)}\nns.find_symmetries(loss)", "either", f"pow-{e}")
    _add("api", f"loss = {L.format(e=e)}\nloss.gradient([1.5, 0.5, 0.7])" if False else
         f"loss = {L.format(e=e)}\nns.find_symmetries(loss, route='dense')", "either", f"pow-dense-{e}")

# ---- huge integers and nested powers in the parser ----------------------------------------
for e in ["((((9**64)**64)**64)**64)**64", "9**64**64", "(u*w*x - x)**(10**9)", "u**(2**64)",
          "((((u*w*x-x)**64)**64)**64)**64", "(u*w*x-x)**64**2", "10**400*u*w*x", "u*w*x*1e308*1e308",
          "1e1000000000*u", "2**-10000*u", "(2**63)**63*u", "((u+w)**60)**60",
          "9" * 39 + "**" + "9" * 39, "u**(1/(10**50))", "(-8)**(1/3)*u", "0**-1*u", "u/0", "(u-u)**-1",
          "zoo", "oo*u", "nan*u", "1/0*u"]:
    expect = "either" if e in ("u**(1/(10**50))",) else "error"
    _add("api", f"loss = {L.format(e=f'({e}) + u*w*x')}\nns.find_symmetries(loss)", expect, f"big-{e}")

# ---- unknown functions, injection attempts -------------------------------------------------
for e in ["DiracDelta(u)*w*x", "zeta(u)*w*x", "gamma(u)*w", "u.__class__", "__import__('os')",
          "().__class__", "[u][0]", "{'a': 1}", "lambda: 0", "u if w else x", "u < w", "u and w",
          "f'{u}'", "b'abc'", "...", "u @ w", "u // w", "u % w", "u << 2", "~u", "not u", "u; w", "u\nw",
          "exec('1')", "eval('u')", "getattr(u, 'x')", "Symbol('u')", "sp.exp(u)", "exp(u, w)", "max(u)",
          "exp()", "exp(*[u])", "exp(x=u)", "1j*u", "u" * 30000, "(" * 500 + "u" + ")" * 500,
          "-" * 5000 + "u", "u**" * 300 + "2", "", "   ", "é(u)", "u\x00w", "\u202eu", "u + ", "()", "_u"]:
    _add("api", f"ns.parse_expression({e!r})", "error", f"parse-{e[:40]!r}")

# ---- argument validation over the Python API -----------------------------------------------
LOSS = "loss = ns.Loss((u*w*x - y)**2, params=[u, w], data=[x, y])\n"
RLOSS = ("X = Normal('X', 0, 1)\nloss = ns.Loss((u*w*X - X)**2, params=[u, w])\n")
for arg in ["seed='abc'", "seed=-1", "seed=1.5", "seed=True", "seed=2**80", "steps=-1", "steps=1.5", "steps=10**12",
            "replicas=0", "replicas=10**8", "lr=float('nan')", "lr=-1", "lr='x'", "batch_size=0",
            "weight_decay=float('inf')", "every=0"]:
    _add("api", RLOSS + f"kw = dict(lr=0.01, batch_size=1, steps=10, replicas=2)\nkw.update(dict({arg}))\n"
         "ns.simulate(loss, [1.0, 0.5], **kw)",
         "error", f"simulate-{arg}")
for th in ["[float('nan'), 1]", "[1e200, 1e-200]", "[1, 2, 3]", "'abc'", "[]", "{u: 1}", "[float('inf'), 1]",
           "[1+1j, 1]", "None"]:
    _add("api", RLOSS + f"ns.simulate(loss, {th}, lr=0.01, batch_size=1, steps=10, replicas=2)", "error",
         f"simulate-theta-{th}")
    _add("api", RLOSS + "g = ns.find_symmetries(loss).generators[0]\n"
         f"ns.noise_equilibrium(loss, g, theta={th}, batch_size=1)", "either" if "e200" in th else "error",
         f"eq-theta-{th}")
for kw in ["max_generators=-1", "max_generators=1.5", "batch_size=0", "weight_decay=-1"]:
    _add("api", RLOSS + f"ns.derive(loss, [1, 2], {kw})", "error", f"derive-{kw}")
for kw in ["route='nope'", "seed='abc'", "seed=-1", "tol=-1"]:
    _add("api", RLOSS + f"ns.find_symmetries(loss, {kw})", "error", f"find-{kw}")
_add("api", "ns.Loss((u*w*x - y)**2, params={u, w}, data=[x, y])", "error", "params-set")
_add("api", "ns.Loss((u*w*x - y)**2, params=frozenset([u, w]), data=[x, y])", "error", "params-frozenset")
_add("api", "ns.Loss((u*w*x - y)**2, params=[u, u], data=[x, y])", "error", "params-dup")
_add("api", "ns.Loss((u*w*x - y)**2, params=[], data=[x, y])", "error", "params-empty")
_add("api", "ns.Loss('(u*w*x - y)**2', params=['u', 3])", "error", "params-nonsymbol")
_add("api", "ns.Loss(sp.Matrix([u, w]), params=[u, w])", "error", "loss-matrix")
_add("api", "ns.Loss(None, params=[u])", "error", "loss-none")
_add("api", "ns.Loss(sp.sqrt(u)*w*x, params=[u, w], data=[x]).value([-1.0, 1.0], {x: 1.0})"
     if False else RLOSS + "ns.noise_equilibrium(ns.Loss(sp.sqrt(u)*(w*X - X)**2, params=[u, w]), "
     "sp.Matrix([[1,0],[0,-1]]), theta=[-1.0, 1.0], batch_size=1)", "error", "sqrt-negative")
_add("api", RLOSS + "ns.compare(loss, [1.0, 0.5], predicted='abc', lr=0.01, batch_size=1, steps=10, replicas=2)",
     "error", "compare-predicted-str")
_add("api", RLOSS + "ns.compare(loss, [1.0, 0.5], predicted=[1, 2, 3, 4], lr=0.01, batch_size=1, steps=10, replicas=2)",
     "error", "compare-predicted-len")
_add("api", RLOSS + "ns.noise_equilibrium(loss, sp.Matrix([[1,2],[3,4]]), theta=[1, 1], batch_size=1)", "error",
     "eq-nonsymmetric")
_add("api", RLOSS + "ns.noise_equilibrium(loss, 'abc', theta=[1, 1], batch_size=1)", "error", "eq-gen-str")
_add("api", RLOSS + "ns.noise_equilibrium(loss, sp.eye(3), theta=[1, 1], batch_size=1)", "error", "eq-gen-shape")
_add("api", "ns.families.linear_net([2000, 2000, 2000])", "error", "linear-net-huge")
_add("api", "ns.families.relu_net([10**6, 2])", "error", "relu-net-huge")
_add("api", "ns.families.linear_net([True, 2])", "error", "linear-net-bool")
_add("api", "ns.families.linear_net([2, -1, 2])", "error", "linear-net-negative")
_add("api", "ns.families.linear_net('abc')", "error", "linear-net-str")
_add("api", "ns.sweep('{tmp}', out='{tmp}/o', scheduler='serial')", "error", "sweep-dir-spec")
_add("api", "ns.sweep({'family': 'linear-net', 'lr': 0.1, 'batch_size': 1, 'steps': 5, 'replicas': 2}, "
     "out='{tmp}/o', scheduler='tcp://127.0.0.1:1')", "error", "sweep-unreachable")
_add("api", "ns.load_sweep('{tmp}')", "error", "load-sweep-empty")
_add("api", "ns.vector('u', -1)", "error", "vector-negative")
_add("api", "ns.vector('u', 10**9)", "error", "vector-huge")
_add("api", "ns.matrix('W', 10**5, 10**5)", "error", "matrix-huge")

# ---- the CLI -------------------------------------------------------------------------------
SIM = ["simulate", "--loss", "(u*w*x - x)^2", "--params", "u,w", "--data", "x", "--dist", "x=normal:0:1",
       "--theta0", "1,0.5", "--lr", "0.01", "--batch-size", "1", "--steps", "10", "--replicas", "2"]
DER = ["derive", "--loss", "(u*w*x - x)^2", "--params", "u,w", "--data", "x", "--gaussian"]


def _swap(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


for dist in ["x=normal:0:-1", "x=uniform:1:0", "x=normal:0:1/0", "x=normal:0", "x=normal:a:1", "x=cauchy:0:1",
             "x=normal:0:0", "=normal:0:1", "x=normal:nan:1", "x=normal:0:inf", "x=uniform:0:0", "x=normal:1e999:1",
             "y=normal:0:1", "x=rademacher:1"]:
    _add("cli", _swap(SIM, "--dist", dist), "error", f"cli-dist-{dist}")
for flag, val in [("--replicas", "100000000"), ("--replicas", "0"), ("--replicas", "-3"), ("--steps", "-1"),
                  ("--steps", "10000000000000"), ("--lr", "nan"), ("--lr", "-1"), ("--lr", "inf"), ("--lr", "abc"),
                  ("--batch-size", "0"), ("--theta0", "nan,1"), ("--theta0", "1"), ("--theta0", "inf,1"),
                  ("--theta0", "q=1,w=2"), ("--theta0", "1e400,1"), ("--theta0", "abc"), ("--params", "u,w,_z"),
                  ("--loss", "(u*w*x - x)**(10**9)"), ("--loss", "DiracDelta(u)*x"),
                  ("--loss", "u.__class__"), ("--params", "u")]:
    _add("cli", _swap(SIM, flag, val), "error", f"cli-sim-{flag}={val}")
for extra in [["--seed", "-1"], ["--every", "0"], ["--momentum", "nan"], ["--chunk-size", "0"],
              ["--plot", "{tmp}/missing/dir/p.png"], ["--plot", "/proc/forbidden.png"], ["--plot", "{tmp}"],
              ["--weight-decay", "-1"]]:
    _add("cli", SIM + extra, "error", f"cli-sim-{' '.join(extra)}")
_add("cli", DER + ["--theta", "1e200,1e-200"], "either", "cli-derive-huge-theta")
for extra in [["--theta", "nan,1"], ["--theta", "1"], ["--theta", "inf,1"],
              ["--latex", "--json"], ["--batch-size", "0"], ["--lr", "nan"], ["--seed", "-1"]]:
    _add("cli", DER + extra, "error", f"cli-derive-{' '.join(extra)}")
for argv in [["symmetries", "linear-net", "--dims", "2000,2000,2000"],
             ["symmetries", "linear-net", "--option", "dims=1e1000000000"],
             ["symmetries", "linear-net", "--option", "dims=true,2"],
             ["symmetries", "linear-net", "--option", "dims=1.5,2"],
             ["symmetries", "linear-net", "--option", "dims=2,0,2"],
             ["symmetries", "linear-net", "--option", "dims=" + "9" * 5000],
             ["symmetries", "linear-net", "--dims", "2,-1"],
             ["symmetries", "linear-net", "--dims", "a,b"],
             ["symmetries", "linear-net", "--option", "nope=1"],
             ["symmetries", "relu-net", "--dims", "1000000,2"],
             ["symmetries", "nope"],
             ["sweep", "{tmp}", "--out", "{tmp}/o"],
             ["sweep", "{tmp}/missing.toml", "--out", "{tmp}/o"],
             ["sweep-plot", "{tmp}"],
             ["sweep-plot", "{tmp}/missing"],
             ["families", "--nope"],
             ["prove", "{tmp}/missing"],
             ["verify", "--families", "nope"],
             ["nope"]]:
    _add("cli", argv, "error", f"cli-{' '.join(argv)[:60]}")

# ---- the mirror: odd but valid inputs keep working -----------------------------------------
for e in ["(Abs(u)*w*x - x)**2", "(sign(u)*u*w*x - x)**2", "(cbrt(u**3)*w*x - x)**2", "(atan2(u, 1)*w*x - x)**2",
"(u*w*x - x)**2 + relu(u*w)",
          "(u*w*x - x)^2 + 0.000000000000000000000000000001*u", "(u*w*x - x)**2 + 1e-400*u*w",
          "(u*w*x - x)**(2)", "((u*w*x - x)**2)**(1/2)", "(u*w*x - x)**2.0", "(u*w*x-x)**4 / 2"]:
    _add("api", f"loss = {L.format(e=e)}\nns.find_symmetries(loss)", "ok", f"valid-{e}")
_add("api", "ns.find_symmetries(ns.Loss((u*w*x - x)**2 + sp.Piecewise((u**2, u > 0), (w**2, True)), params=[u, w], "
     "data=[x]))", "ok", "valid-piecewise")
_add("cli", _swap(SIM, "--loss", "(u*w*x - x)**pi"), "ok", "cli-sim-pi")
_add("api", "e = ns.parse_expression('0.123456789012345678901234567891*u')\n"
     "assert e == sp.Rational('0.123456789012345678901234567891')*sp.Symbol('u'), e", "ok", "exact-30-digits")
_add("api", "e = ns.parse_expression('1e-400*u')\nassert e != 0 and e.as_coeff_Mul()[0] == sp.Rational(1, 10**400)",
     "ok", "exact-tiny")
_add("api", "e = ns.parse_expression('(u*w*x - x)**64')\nassert e.exp == 64", "ok", "pow-64")
_add("api", "e = ns.parse_expression('\u03b8*w + \u0430')\nassert len(e.free_symbols) == 3", "ok", "unicode-names")
_add("api", RLOSS + "r = ns.simulate(loss, [1.0, 0.5], lr=0.01, batch_size=1, steps=0, replicas=2)", "ok", "steps-0")
_add("api", RLOSS + "r = ns.simulate(loss, [1.0, 0.5], lr=0.01, batch_size=1, steps=5, replicas=2, seed=2**32-1)",
     "ok", "seed-large")
_add("cli", SIM, "ok", "cli-sim-valid")
_add("cli", ["symmetries", "linear-net", "--dims", "2,2", "--json"], "ok", "cli-sym-valid")
