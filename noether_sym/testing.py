"""Testing (public): hypothesis strategies and checks to property-test losses against planted symmetries.

The strategies and checks live in the check stage (:mod:`noether_sym.check`); this module is
their public address, ``noether_sym.testing``, for users who property-test their own losses.
See :mod:`noether_sym.check._planted` for how a planted loss is built and why its symmetry
space is known by construction.
"""

from .check._identities import check_identities as check_identities
from .check._identities import check_planted as check_planted
from .check._identities import span_ranks as span_ranks
from .check._planted import BLOCK_KINDS as BLOCK_KINDS
from .check._planted import PlantedBlock as PlantedBlock
from .check._planted import PlantedLoss as PlantedLoss
from .check._planted import planted_loss as planted_loss
from .check._planted import planted_losses as planted_losses
from .check._strategies import data_models as data_models
from .check._strategies import generators as generators
from .check._strategies import points as points

__all__ = [
    "BLOCK_KINDS",
    "PlantedBlock",
    "PlantedLoss",
    "points",
    "data_models",
    "generators",
    "planted_losses",
    "planted_loss",
    "check_planted",
    "check_identities",
    "span_ranks",
]
