"""noether_sym: parameter symmetries, Noether charges and the noise equilibrium of SGD.

The pipeline, one stage per module: loss (``_loss``) -> symmetries (``_symmetry``) ->
charges (``_charges``) -> equilibrium -> compile (``_compile``) -> simulate -> verify ->
report. Every public name is re-exported here.
"""

from . import families as families
from ._charges import confirm_conservation as confirm_conservation
from ._errors import (
    CertificationError as CertificationError,
    InvalidArgumentError as InvalidArgumentError,
    InvalidDataError as InvalidDataError,
    InvalidGeneratorError as InvalidGeneratorError,
    InvalidLossError as InvalidLossError,
    InvalidParameterError as InvalidParameterError,
    NoDifferentiablePointError as NoDifferentiablePointError,
    NoetherSymError as NoetherSymError,
    ParseError as ParseError,
    UnsupportedExpressionError as UnsupportedExpressionError,
)
from ._loss import Loss as Loss, matrix as matrix, vector as vector
from ._parse import parse_expression as parse_expression
from ._symmetry import (
    Symmetries as Symmetries,
    confirm_generator as confirm_generator,
    find_symmetries as find_symmetries,
)

__version__ = "0.1.0"
