"""noether_sym: parameter symmetries, Noether charges and the noise equilibrium of SGD.

The pipeline, one stage per module: loss (``_loss``) -> symmetries (``_symmetry``) ->
charges (``_charges``) -> data moments (``_data``) -> dynamics (``_dynamics``) ->
equilibrium (``_equilibrium``) -> compile (``_compile``) -> report (``_latex``,
``_derive``). Every public name is re-exported here.
"""

from . import families as families
from ._errors import (
    CertificationError as CertificationError,
)
from ._errors import (
    GradientFlowError as GradientFlowError,
)
from ._errors import (
    InvalidArgumentError as InvalidArgumentError,
)
from ._errors import LocalSymmetryError as LocalSymmetryError
from ._errors import NoiseAlongManifoldError as NoiseAlongManifoldError
from ._errors import (
    InvalidDataError as InvalidDataError,
)
from ._errors import (
    InvalidGeneratorError as InvalidGeneratorError,
)
from ._errors import (
    InvalidLossError as InvalidLossError,
)
from ._errors import (
    InvalidParameterError as InvalidParameterError,
)
from ._errors import (
    NoDifferentiablePointError as NoDifferentiablePointError,
)
from ._errors import (
    NoetherSymError as NoetherSymError,
)
from ._errors import (
    ParseError as ParseError,
)
from ._errors import ProofError as ProofError
from ._errors import ResourceLimitError as ResourceLimitError
from ._errors import SweepMismatchError as SweepMismatchError
from ._errors import (
    UnsupportedExpressionError as UnsupportedExpressionError,
)
from ._version import __version__ as __version__
from .check._compare import Comparison as Comparison
from .check._compare import compare as compare
from .check._compare import richardson as richardson
from .check._sweep import sweep as sweep
from .check._sweep_spec import SweepSpec as SweepSpec
from .check._sweep_store import SweepResult as SweepResult
from .check._sweep_store import load_sweep as load_sweep
from .check._verify import Check as Check
from .check._verify import VerifyReport as VerifyReport
from .check._verify import verify as verify
from .compile._confirm import confirm_generator as confirm_generator
from .data._model import attach_data as attach_data
from .data._model import gaussian_linear_teacher as gaussian_linear_teacher
from .data._model import minibatch_factor as minibatch_factor
from .data._moments import MomentFunctions as MomentFunctions
from .data._moments import Moments as Moments
from .data._moments import compiled_moments as compiled_moments
from .data._moments import expectation as expectation
from .data._moments import moments as moments
from .data._piecewise import ConeMoments as ConeMoments
from .data._piecewise import cone_derivatives as cone_derivatives
from .data._piecewise import cone_hessian as cone_hessian
from .data._piecewise import cone_moments as cone_moments
from .data._sample import Sampler as Sampler
from .data._sample import make_sampler as make_sampler
from .loss._loss import Loss as Loss
from .loss._loss import matrix as matrix
from .loss._loss import vector as vector
from .loss._parse import parse_expression as parse_expression
from .report._derive import Derivation as Derivation
from .report._derive import derive as derive
from .report._latex import to_latex as to_latex
from .report._plot import plot_charges as plot_charges
from .report._prove import Proof as Proof
from .report._prove import ProofResult as ProofResult
from .report._prove import run as prove
from .simulate._fused import BackendFallbackWarning as BackendFallbackWarning
from .simulate._result import SimulationResult as SimulationResult
from .simulate._run import simulate as simulate
from .simulate._schedule import Cosine as Cosine
from .simulate._schedule import Schedule as Schedule
from .simulate._schedule import StepDecay as StepDecay
from .simulate._schedule import Warmup as Warmup
from .symmetry._approximate import ApproximateSymmetries as ApproximateSymmetries
from .symmetry._approximate import ApproximateSymmetry as ApproximateSymmetry
from .symmetry._approximate import ChargeDrift as ChargeDrift
from .symmetry._approximate import approximate_symmetries as approximate_symmetries
from .symmetry._charges import confirm_conservation as confirm_conservation
from .symmetry._charges import generic_rank as generic_rank
from .symmetry._finder import find_symmetries as find_symmetries
from .symmetry._laws import ConservationLaws as ConservationLaws
from .symmetry._laws import conservation_laws as conservation_laws
from .symmetry._result import Symmetries as Symmetries
from .theory._dynamics import ChargeDynamics as ChargeDynamics
from .theory._dynamics import charge_dynamics as charge_dynamics
from .theory._equilibrium import Equilibrium as Equilibrium
from .theory._gradient_flow import GradientFlowLimit as GradientFlowLimit
from .theory._gradient_flow import gradient_flow_limit as gradient_flow_limit
from .theory._equilibrium import noise_equilibrium as noise_equilibrium
from .theory._joint import JointEquilibrium as JointEquilibrium
from .theory._noether_flow import FlowDrift as FlowDrift
from .theory._noether_flow import NoetherFlow as NoetherFlow
from .theory._noether_flow import noether_flow as noether_flow
from .theory._joint import joint_equilibrium as joint_equilibrium
from .theory._sharpness import Sharpness as Sharpness
from .theory._sharpness import sharpness_along_orbit as sharpness_along_orbit
from .theory._spectrum import spectrum as spectrum
from .theory._two_layer import TwoLayerEquilibrium as TwoLayerEquilibrium
from .theory._two_layer import geometric_mean as geometric_mean
from .theory._two_layer import two_layer_equilibrium as two_layer_equilibrium
