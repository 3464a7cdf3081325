"""noether_sym: parameter symmetries, Noether charges and the noise equilibrium of SGD.

The pipeline, one stage per module: loss (``_loss``) -> symmetries (``_symmetry``) ->
charges (``_charges``) -> data moments (``_data``) -> dynamics (``_dynamics``) ->
equilibrium (``_equilibrium``) -> compile (``_compile``) -> report (``_latex``,
``_derive``). Every public name is re-exported here.
"""

from . import families as families
from ._compare import Comparison as Comparison, compare as compare, richardson as richardson
from ._verify import Check as Check, VerifyReport as VerifyReport, verify as verify
from ._charges import confirm_conservation as confirm_conservation, generic_rank as generic_rank
from ._data import (
    MomentFunctions as MomentFunctions,
    Moments as Moments,
    attach_data as attach_data,
    compiled_moments as compiled_moments,
    expectation as expectation,
    gaussian_linear_teacher as gaussian_linear_teacher,
    minibatch_factor as minibatch_factor,
    moments as moments,
)
from ._derive import Derivation as Derivation, derive as derive
from ._dynamics import ChargeDynamics as ChargeDynamics, charge_dynamics as charge_dynamics
from ._equilibrium import (
    Equilibrium as Equilibrium,
    JointEquilibrium as JointEquilibrium,
    Sharpness as Sharpness,
    TwoLayerEquilibrium as TwoLayerEquilibrium,
    geometric_mean as geometric_mean,
    joint_equilibrium as joint_equilibrium,
    noise_equilibrium as noise_equilibrium,
    sharpness_along_orbit as sharpness_along_orbit,
    spectrum as spectrum,
    two_layer_equilibrium as two_layer_equilibrium,
)
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
from ._latex import to_latex as to_latex
from ._loss import Loss as Loss, matrix as matrix, vector as vector
from ._parse import parse_expression as parse_expression
from ._sample import Sampler as Sampler, make_sampler as make_sampler
from ._plot import plot_charges as plot_charges
from ._prove import Proof as Proof, ProofError as ProofError, ProofResult as ProofResult, run as prove
from ._simulate import (
    Cosine as Cosine,
    Schedule as Schedule,
    SimulationResult as SimulationResult,
    StepDecay as StepDecay,
    Warmup as Warmup,
    simulate as simulate,
)
from ._sweep import (
    SweepMismatchError as SweepMismatchError,
    SweepResult as SweepResult,
    SweepSpec as SweepSpec,
    load_sweep as load_sweep,
    sweep as sweep,
)
from ._symmetry import (
    Symmetries as Symmetries,
    confirm_generator as confirm_generator,
    find_symmetries as find_symmetries,
)

__version__ = "0.1.0"
