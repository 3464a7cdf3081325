"""The catalog of loss families: each is an ordinary Loss built by a function.

``CATALOG`` maps a command-line name to (builder, one-line description); ``noether-sym
families`` lists it.
"""

from ._networks import ACTIVATIONS as ACTIVATIONS, linear_net as linear_net, mlp as mlp, relu_net as relu_net

CATALOG = {
    "linear-net": (linear_net, "deep linear network W_L...W_1 x, squared loss (GL(d) per hidden layer)"),
    "relu-net": (relu_net, "ReLU network, squared loss (one rescaling per hidden neuron)"),
}

__all__ = ["ACTIVATIONS", "CATALOG", "linear_net", "mlp", "relu_net"]
