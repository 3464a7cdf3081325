"""Benchmark (independent check): why deep narrow ReLU networks have more conservation laws at most random θ.

Claim: at a random θ ~ N(0, 1) of a deep ReLU network with a narrow hidden layer, the
number of conservation laws of gradient flow n - dim Lie(V)(θ) is usually larger than the
one-per-hidden-neuron count, because the region of θ has laws of its own: a weight between
two units never active together on any input (its gradient vanishes on every sample, on an
open set of θ) and, for a group of k units of one layer active on exactly the same inputs,
the k(k-1)/2 extra laws of their GL(k) (the layer is linear on that region). Where neither
happens the count is the hand count. No code of noether_sym is used.

Method (independent of ``noether_sym.symmetry._laws``):
* Activation patterns realised at θ: the distinct hidden-unit sign patterns of ``--inputs``
  Gaussian inputs (a subset of the patterns of the region; rank is monotone in the set).
* Near θ the per-sample fields are those of masked linear networks (one mask per pattern),
  polynomial in θ; the Lie algebra they generate is computed modulo the prime 33554393 at a
  random point: random left-normed brackets by nested dual numbers, rank by Gaussian
  elimination mod p, levels added until a batch of brackets adds nothing. The rank mod p is
  a lower bound of the generic rank over Q; the exact rescaling charges bound it from above.
* Structural count: hand count + never-co-active (unit, next-layer unit) pairs + Σ k(k-1)/2
  over groups of same-activity units of a layer, from the same patterns.

Run:  python benchmarks/relu_regions.py [--points 40] [--inputs 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

P = 33554393  # prime < 2^25: products < 2^50, sums of < 2^13 products fit in int64
ARCHS = [([4, 3, 8, 9, 2], False), ([2, 8, 7, 3, 6], True), ([9, 2, 6, 8, 8], False),
         ([8, 3, 2, 8, 5], False), ([9, 2, 8, 7, 4], True), ([2, 9, 2, 8, 2], False)]


class Jet:
    """Σ_mask a_mask ε^mask with ε_i² = 0, coefficients int64 arrays mod P."""

    def __init__(self, c):
        self.c = c

    def __add__(self, o):
        out = dict(self.c)
        for k, v in o.c.items():
            out[k] = (out[k] + v) % P if k in out else v
        return Jet(out)

    def __neg__(self):
        return Jet({k: (-v) % P for k, v in self.c.items()})

    def __sub__(self, o):
        return self + (-o)

    def prod(self, o, op):
        out = {}
        for ka, va in self.c.items():
            for kb, vb in o.c.items():
                if not ka & kb:
                    p = op(va, vb) % P
                    out[ka | kb] = (out[ka | kb] + p) % P if (ka | kb) in out else p
        return Jet(out)

    def map(self, f):
        return Jet({k: f(v) for k, v in self.c.items()})

    def part(self, bit, which):
        m = 1 << bit
        keep = {(k & ~m): v for k, v in self.c.items() if bool(k & m) == bool(which)}
        return Jet(keep or {0: 0 * next(iter(self.c.values()))})


def shapes(dims, bias):
    out = []
    for l in range(len(dims) - 1):
        out.append(("W", l, (dims[l + 1], dims[l])))
        if bias and l < len(dims) - 2:
            out.append(("b", l, (dims[l + 1],)))
    return out


def field(dims, bias, th, X, Y, masks, C):
    """Σ_s C_s ∇_θ ||f_s(θ) - y_s||², f_s the network with the hidden masks of sample s."""
    par, i = {}, 0
    for kind, l, s in shapes(dims, bias):
        k = int(np.prod(s))
        par[kind, l] = th.map(lambda v, i=i, k=k, s=s: v[i:i + k].reshape(s))
        i += k
    L = len(dims) - 1
    H = [Jet({0: X % P})]
    for l in range(L):
        z = H[-1].prod(par["W", l].map(lambda v: v.T), lambda a, b: a @ b)
        if ("b", l) in par:
            z = z + par["b", l].map(lambda v: v[None, :])
        H.append(z.map(lambda v, m=masks[l]: v * m) if l < L - 1 else z)
    g = (H[-1] - Jet({0: Y % P})).map(lambda v: (2 * v * C[:, None]) % P)
    grads = {}
    for l in range(L - 1, -1, -1):
        grads["W", l] = g.map(lambda v: v.T).prod(H[l], lambda a, b: a @ b)
        if ("b", l) in par:
            grads["b", l] = g.map(lambda v: v.sum(axis=0) % P)
        if l:
            g = g.prod(par["W", l], lambda a, b: a @ b).map(lambda v, m=masks[l - 1]: v * m)
    keys = set().union(*[grads[kind, l].c for kind, l, _ in shapes(dims, bias)])
    return Jet({k: np.concatenate([grads[kind, l].c.get(k, np.zeros(s, dtype=np.int64)).reshape(-1)
                                   for kind, l, s in shapes(dims, bias)]) for k in keys})


def bracket(dims, bias, th, X, Y, masks, Cs, tag=0):
    """[Y_{C1}, [Y_{C2}, ... Y_{Ck}]](θ) by nested dual numbers (tag = next free ε)."""
    y = field(dims, bias, th, X, Y, masks, Cs[0])
    if len(Cs) == 1:
        return y
    z_dual = bracket(dims, bias, th + Jet({k | (1 << tag): v for k, v in y.c.items()}), X, Y, masks, Cs[1:],
                     tag + 2)
    z, dz_y = z_dual.part(tag, 0), z_dual.part(tag, 1)
    y_dual = field(dims, bias, th + Jet({k | (1 << (tag + 1)): v for k, v in z.c.items()}), X, Y, masks, Cs[0])
    return dz_y - y_dual.part(tag + 1, 1)


def rank_mod_p(rows):
    """Rank of an integer matrix modulo P (Gaussian elimination)."""
    A = np.array(rows, dtype=np.int64) % P
    r = 0
    for c in range(A.shape[1]):
        piv = np.flatnonzero(A[r:, c])
        if not len(piv):
            continue
        A[[r, r + piv[0]]] = A[[r + piv[0], r]]
        A[r] = A[r] * pow(int(A[r, c]), P - 2, P) % P
        others = np.flatnonzero(A[:, c])
        others = others[others != r]
        A[others] = (A[others] - A[others, c][:, None] * A[r][None, :] % P) % P
        r += 1
        if r == A.shape[0]:
            break
    return r


def lie_rank(dims, bias, patterns, rng, per_pattern=3, batch=8, max_depth=5):
    n = sum(int(np.prod(s)) for _, _, s in shapes(dims, bias))
    S = len(patterns) * per_pattern
    X = rng.integers(0, P, (S, dims[0]))
    Y = rng.integers(0, P, (S, dims[-1]))
    masks = [np.repeat(np.array([p[l] for p in patterns], dtype=np.int64), per_pattern, axis=0)
             for l in range(len(dims) - 2)]
    th = Jet({0: rng.integers(0, P, n)})
    rows = [field(dims, bias, th, X, Y, masks, np.eye(S, dtype=np.int64)[s]).c[0] for s in range(S)]
    r = rank_mod_p(rows)
    for depth in range(2, max_depth + 1):
        grew = False
        while r < n:
            new = [bracket(dims, bias, th, X, Y, masks, [rng.integers(0, P, S) for _ in range(depth)]).c[0]
                   for _ in range(batch)]
            r2 = rank_mod_p(rows + new)
            if r2 == r:
                break
            rows, r, grew = rows + new, r2, True
        if not grew:
            break
    return r


def region(dims, bias, rng, inputs):
    """A random θ ~ N(0, 1): its realised patterns and the structural count."""
    L = len(dims) - 1
    Ws = [rng.standard_normal((dims[l + 1], dims[l])) for l in range(L)]
    bs = [rng.standard_normal(dims[l + 1]) if bias and l < L - 1 else 0.0 for l in range(L)]
    X = rng.standard_normal((inputs, dims[0]))
    if bias:
        X *= np.exp(1.5 * rng.standard_normal((inputs, 1)))
    h, act = X, []
    for l in range(L - 1):
        z = h @ Ws[l].T + bs[l]
        act.append(z > 0)
        h = np.maximum(z, 0)
    key = np.unique(np.concatenate(act, axis=1), axis=0)
    pats = [tuple(np.split(row, np.cumsum(dims[1:-2]))) for row in key]
    never = sum(int(((a.T.astype(float) @ b.astype(float)) == 0).sum()) for a, b in itertools.pairwise(act))
    same = 0
    for a in act:
        _, counts = np.unique(a.T, axis=0, return_counts=True)
        same += sum(k * (k - 1) // 2 for k in counts)
    dead = sum(int((~a.any(0)).sum()) for a in act)
    return pats, never, same, dead


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=40)
    ap.add_argument("--inputs", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    for dims, bias in ARCHS:
        t0 = time.perf_counter()
        n = sum(int(np.prod(s)) for _, _, s in shapes(dims, bias))
        hand = sum(dims[1:-1])
        laws, agree, alive, clean, clean_hand = [], 0, 0, 0, 0
        for _ in range(args.points):
            pats, never, same, dead = region(dims, bias, rng, args.inputs)
            count = n - lie_rank(dims, bias, pats, rng)
            laws.append(count)
            if not dead:  # a dead unit adds laws of its own (all its weights); not in the formula
                alive += 1
                agree += count == hand + never + same
                clean += never == 0 and same == 0
                clean_hand += never == 0 and same == 0 and count == hand
        laws = np.array(laws)
        print(f"relu {'-'.join(map(str, dims)):11s} bias={int(bias)} n={n:3d} hand={hand:2d}: laws at {args.points} "
              f"random θ: median {np.median(laws):.0f}, min {laws.min()}, max {laws.max()}, "
              f"= hand count at {int((laws == hand).sum())}; without dead units: {alive}, of which the count is "
              f"hand + never-co-active pairs + same-activity pairs at {agree}; points with neither: {clean} "
              f"(hand count at {clean_hand})  [{time.perf_counter() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
