"""The catalog of loss families: each is an ordinary Loss built by a function.

``CATALOG`` maps a command-line name to a :class:`Family` (builder, default options,
default start, simulation settings); ``noether-sym families`` lists it. ``get(name)`` and
``build(name, **options)`` look entries up with a clear error for unknown names.
"""

from ._catalog import CATALOG as CATALOG, Family as Family, build as build, get as get, names as names, register as register
from ._networks import ACTIVATIONS as ACTIVATIONS, linear_net as linear_net, mlp as mlp, relu_net as relu_net

register(Family(
    "linear-net", "deep linear network W_L...W_1 x, squared loss (GL(d) per hidden layer)", "7.2-7.3",
    lambda dims, bias=False: linear_net(dims), options={"dims": (2, 2, 2), "bias": False},
))
register(Family(
    "relu-net", "ReLU network, squared loss (one rescaling per hidden neuron)", "7.4",
    lambda dims, bias=False: relu_net(dims, bias=bias), options={"dims": (2, 3, 1), "bias": False},
))

__all__ = ["ACTIVATIONS", "CATALOG", "Family", "build", "get", "linear_net", "mlp", "names", "register", "relu_net"]
