"""The catalog of loss families: each is an ordinary Loss built by a function (THEORY §7).

``CATALOG`` maps a command-line name to a :class:`Family` (builder, default options,
default start, simulation settings, the THEORY tags that apply); ``noether-sym families``
lists it. ``get(name)`` and ``build(name, **options)`` look entries up with a clear error
for unknown names. The builders are public too (``ns.families.rescaling()``...), and every
family goes through the same generic code as a user's loss: nothing downstream knows which
family a Loss came from.

``extra`` holds what the checks need: ``n_generators(**options)``, the dimension of 𝒜(ℓ)
that the theory predicts (formulas in the widths, from the derivations in the builders'
docstrings, never from running the finder), which ``noether-sym verify`` compares
``ns.find_symmetries`` to; ``data_model(**options)`` for the linear families (exact Σ_x,
Σ_ε and teacher V, for (E20)-(E21)); ``large=True`` for entries too big for quick runs
(2400 parameters: the finder takes many minutes there).

Examples
--------
>>> import noether_sym as ns
>>> fam = ns.families.get("rescaling")
>>> loss = fam.build()
>>> fam.theta0(loss).tolist(), fam.extra["n_generators"](**fam.options)
([2.0, 0.5, -0.25, 1.0], 1)
"""

from typing import Any

import sympy as sp

from .._errors import InvalidArgumentError
from ._catalog import CATALOG as CATALOG
from ._catalog import Family as Family
from ._catalog import build as build
from ._catalog import get as get
from ._catalog import names as names
from ._catalog import register as register
from ._diagonal import diagonal_net as diagonal_net
from ._diagonal import diagonal_start as diagonal_start
from ._linear import (
    deep_linear as deep_linear,
)
from ._linear import (
    linear_start as linear_start,
)
from ._linear import (
    matrix_factorization as matrix_factorization,
)
from ._linear import (
    teacher_model as teacher_model,
)
from ._networks import (
    ACTIVATIONS as ACTIVATIONS,
)
from ._networks import (
    gaussian_teacher as gaussian_teacher,
)
from ._networks import (
    leaky_relu_net as leaky_relu_net,
)
from ._networks import (
    linear_net as linear_net,
)
from ._networks import (
    mlp as mlp,
)
from ._networks import (
    monomial_net as monomial_net,
)
from ._networks import (
    network_start as network_start,
)
from ._networks import (
    relu_net as relu_net,
)
from ._networks import (
    tanh_net as tanh_net,
)
from ._networks import (
    teacher_net as teacher_net,
)
from ._rescaling import rescaling as rescaling
from ._rescaling import rescaling_start as rescaling_start
from ._scale_invariant import (
    normalized_linear as normalized_linear,
)
from ._scale_invariant import (
    normalized_start as normalized_start,
)
from ._scale_invariant import (
    scale_invariant_2d as scale_invariant_2d,
)
from ._softmax import softmax_classifier as softmax_classifier
from ._architectures import attention_head as attention_head
from ._architectures import conv1d_net as conv1d_net
from ._architectures import normalized_mlp as normalized_mlp
from ._architectures import residual_block as residual_block
from ._architectures import theory_count as _theory_count
from ._softmax import softmax_start as softmax_start

HALF = sp.Rational(1, 2)

#: THEORY tags by kind of symmetry
_BALANCED = ("E4", "E5", "E6", "E7", "E8", "E9", "E10", "E11", "E12", "E13", "E14", "E15", "E16")
_DIVERGENT = ("E4", "E5", "E6", "E7", "E8", "E9", "E10", "E11", "E12", "E14", "E18")


def _gl_count(dims: Any) -> int:
    """Σ over hidden layers i of d_i(d_i+1)/2 (§7.2-7.3), except where a hidden layer sits
    between two width-1 layers: there W_i = w (a column) and W_{i+1} = uᵀ (a row) enter only
    through the scalar uᵀw, which all of O(d_i, d_i) preserves, and the layer carries d_i²
    symmetric generators (A = [[M, C], [−C, −M]], M symmetric, C antisymmetric; see
    :func:`diagonal_net`)."""
    dims = list(dims)
    return sum(
        dims[i] ** 2 if dims[i - 1] == 1 and dims[i + 1] == 1 else dims[i] * (dims[i] + 1) // 2
        for i in range(1, len(dims) - 1)
    )


def _linear_net(dims: Any, bias: bool = False) -> Any:
    if bias:

        raise InvalidArgumentError("linear-net has no biases (bias=True applies to relu-net)")
    return gaussian_teacher(linear_net(dims))


def _reg(name: str, description: str, section: str, builder: Any, options: dict, start: Any, settings: dict,
         theorems: tuple, n_generators: Any, **extra: Any) -> None:
    register(Family(name, description, section, builder, options=options, start=start, settings=settings,
                    theorems=theorems, extra={"n_generators": n_generators, **extra}))


def _sim(lr: float, batch_size: int, steps: int, replicas: int, **more: Any) -> dict[str, Any]:
    """Default simulation options: from the default start the charges settle at the noise
    equilibrium (divergent class: with the weight decay given, (E18)) within a few seconds
    on two cores (measured with ``ns.simulate`` from ``Family.theta0``: 1-5 s each on the
    small entries, about 3-5 s for the 30-40-30 one)."""
    return dict(lr=lr, batch_size=batch_size, steps=steps, replicas=replicas, **more)


_reg("rescaling", "u (w^T x) with a Gaussian linear teacher; the §7.1 worked example", "7.1",
     rescaling, {"d": None, "Sigma_x": None, "beta": None, "noise_var": HALF}, rescaling_start, _sim(0.01, 1, 30_000, 100),
     _BALANCED + ("E17", "E19", "E22"), lambda **o: 1)
_reg("matrix-factorization", "two-layer linear net U W x, Gaussian teacher (GL(d) symmetry, Q = WW^T - U^TU)", "7.2",
     matrix_factorization, {"dims": (2, 2, 2), "anisotropic": False, "Sigma_x": None, "Sigma_eps": None, "teacher": None},
     linear_start, _sim(0.01, 1, 10_000, 100), _BALANCED + ("E20", "E21", "E22"), lambda **o: _gl_count(o["dims"]),
     data_model=teacher_model)
_reg("matrix-factorization-30-40-30", "the paper's Fig. 2: U W x, 30-40-30, x ~ N(0, I), y = x + eps", "7.2",
     matrix_factorization, {"dims": (30, 40, 30), "anisotropic": False, "Sigma_x": None, "Sigma_eps": None, "teacher": None},
     linear_start, _sim(0.002, 1, 16_000, 4), _BALANCED + ("E20", "E21"), lambda **o: _gl_count(o["dims"]),
     data_model=teacher_model, large=True)
# THEORY §7.2's caveat: both covariances anisotropic, so (E21) misses and the Noether flow (E22)
# turns the hidden frame; start W = [[1.5, 0.3], [-0.2, 0.8]], U = V W⁻¹ (on the minimum manifold)
_reg("matrix-factorization-rotating", "U W x, both covariances anisotropic: SGD turns the hidden frame (E22)", "7.2",
     matrix_factorization, {"dims": (2, 2, 2), "anisotropic": False, "Sigma_x": (1, 4), "Sigma_eps": (HALF**2, 1),
                            "teacher": ((1, HALF), (-HALF, 1))},
     lambda loss, rng: [1.5, 0.3, -0.2, 0.8, 5 / 7, 5 / 14, -10 / 63, 55 / 42], _sim(0.0025, 1, 640_000, 100),
     _BALANCED + ("E22",), lambda **o: _gl_count(o["dims"]), data_model=teacher_model, richardson="quadratic")
_reg("deep-linear", "deep linear net W_L...W_1 x, Gaussian teacher (one GL(d_i) per hidden layer)", "7.3",
     deep_linear, {"dims": (2, 2, 2, 2), "anisotropic": False, "Sigma_x": None, "Sigma_eps": None, "teacher": None},
     linear_start, _sim(0.02, 1, 15_000, 50), _BALANCED + ("E20",), lambda **o: _gl_count(o["dims"]), data_model=teacher_model)
_reg("linear-net", "deep linear network W_L...W_1 x, squared loss, Gaussian teacher (GL(d) per hidden layer)", "7.2-7.3",
     _linear_net, {"dims": (2, 2, 2), "bias": False}, linear_start, _sim(0.01, 1, 10_000, 100), _BALANCED + ("E20",),
     lambda **o: _gl_count(o["dims"]), data_model=teacher_model)
_reg("relu-net", "ReLU network, squared loss, Gaussian teacher (one rescaling per hidden neuron)", "7.4",
     lambda dims, bias=False: gaussian_teacher(relu_net(dims, bias=bias)), {"dims": (2, 2, 1), "bias": False},
     network_start, _sim(0.015, 1, 30_000, 100), _BALANCED + ("E17",), lambda **o: sum(list(o["dims"])[1:-1]))
_reg("leaky-relu-net", "leaky-ReLU network Max(z/10, z), Gaussian teacher (one rescaling per hidden neuron)", "7.4",
     leaky_relu_net, {"dims": (2, 3, 1), "slope": sp.Rational(1, 10), "bias": False},
     network_start, _sim(0.015, 1, 30_000, 100), _BALANCED + ("E17",), lambda **o: sum(list(o["dims"])[1:-1]))
_reg("monomial-net", "network with activation z^p, Gaussian teacher (generators +1 in, -p out)", "7.4",
     monomial_net, {"dims": (2, 2, 1), "p": 2, "bias": False, "target": "monomial", "Sigma_x": HALF},
     network_start, _sim(0.004, 1, 72_500, 100), _BALANCED + ("E17",), lambda **o: sum(list(o["dims"])[1:-1]))

_reg("tanh-net", "tanh network, Gaussian teacher: no exponential symmetry (the finder must return none)", "7.4",
     tanh_net, {"dims": (2, 2, 1), "bias": False}, network_start, _sim(0.02, 1, 10_000, 50), ("E4",), lambda **o: 0)
_reg("normalized-linear", "weight-normalized linear model g w^T x/|w|: A = I on w, divergent class", "7.5",
     lambda d=3, gain=True, Sigma_x=1, beta=None, noise_var=HALF: normalized_linear(
         d, gain=gain, Sigma_x=Sigma_x, beta=beta, noise_var=noise_var),
     {"d": 3, "gain": True, "Sigma_x": 1, "beta": None, "noise_var": HALF},
     normalized_start, _sim(0.01, 1, 20_000, 100, weight_decay=0.01), _DIVERGENT, lambda **o: 1)
_reg("scale-invariant-2d", "2-D toy (a x + b z)^2/(a^2 + b^2): A = I, divergent class", "7.5",
     scale_invariant_2d, {"variances_xz": (1, sp.Rational(1, 4))}, normalized_start, _sim(0.01, 1, 20_000, 100, weight_decay=0.01), _DIVERGENT,
     lambda **o: 1)
_reg("diagonal-net", "diagonal network (sum_i u_i w_i) x: the law of balance per index", "7.6",
     diagonal_net, {"d": 2, "shared_input": True, "v_star": 1, "Sigma_x": 1, "noise_var": HALF},
     diagonal_start, _sim(0.02, 1, 10_000, 100), _BALANCED + ("E17",),
     lambda **o: o["d"] ** 2 if o["shared_input"] else o["d"])
_reg("softmax", "softmax classifier, cross-entropy on a finite dataset: logit-translation symmetry", "7.6",
     softmax_classifier, {"d": 2, "classes": 3, "n_samples": 48, "bias": False, "seed": 0},
     softmax_start, _sim(0.05, 4, 5_000, 50), ("E4", "E8", "E9", "E10"),
     lambda **o: (o["d"] + bool(o["bias"])) * (o["d"] + bool(o["bias"]) + 1) // 2)

# architectures practitioners use (theory counts: the builders' docstrings)
for _name, _builder, _opts, _section, _desc in (
    ("attention-head", attention_head, {"tokens": 2, "d": 2, "k": 2, "d_out": 1, "n_samples": 32, "seed": 0}, "7.2",
     "softmax attention head: GL(k) of W_Q W_K^T and of W_V W_O"),
    ("normalized-mlp", normalized_mlp, {"dims": (2, 3, 1), "norm": "rms", "n_samples": 32, "seed": 0}, "7.5",
     "two-layer MLP with RMSNorm or LayerNorm: scale invariance of the normalized weights"),
    ("residual-block", residual_block, {"d": 2, "k": 2, "n_samples": 32, "seed": 0}, "7.4",
     "residual block x + W2 relu(W1 x): one rescaling per hidden unit"),
    ("conv1d", conv1d_net, {"length": 4, "channels": (1, 2, 1), "kernel": 2, "n_samples": 32, "seed": 0}, "7.4",
     "two 1-D convolutions with ReLU: channel-wise rescaling"),
):
    _reg(_name, _desc, _section, _builder, _opts, None, _sim(0.01, 4, 2_000, 20), ("E4", "E8", "E9", "E10"),
         (lambda nm: lambda **o: _theory_count(nm, **o))(_name))

__all__ = [
    "ACTIVATIONS", "CATALOG", "attention_head", "conv1d_net", "normalized_mlp", "residual_block", "Family", "build", "deep_linear", "diagonal_net", "gaussian_teacher", "get",
    "leaky_relu_net", "linear_net", "matrix_factorization", "mlp", "monomial_net", "names", "normalized_linear",
    "register", "relu_net", "rescaling", "scale_invariant_2d", "softmax_classifier", "tanh_net", "teacher_model",
    "teacher_net",
]
