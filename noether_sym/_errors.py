"""Errors: one base class, NoetherSymError, and a subclass per kind of bad input.

Every message names the problem and says how to fix it. Subclasses also derive from the
matching built-in (TypeError for the wrong kind of object, ValueError for the wrong
meaning) so that generic ``except ValueError`` code keeps working.
"""

from __future__ import annotations

__all__ = [
    "SweepMismatchError",
    "MissingDependencyError",
    "ProofError",
    "NoetherSymError",
    "InvalidLossError",
    "InvalidParameterError",
    "InvalidDataError",
    "ParseError",
    "UnsupportedExpressionError",
    "NoDifferentiablePointError",
    "InvalidGeneratorError",
    "InvalidArgumentError",
    "CertificationError",
    "GradientFlowError",
    "NoiseAlongManifoldError",
    "LocalSymmetryError",
]


class NoetherSymError(Exception):
    """Base class of every error noether_sym raises on purpose."""


class InvalidLossError(NoetherSymError, TypeError):
    """The loss expression is not a scalar SymPy expression, or it cannot be used."""


class InvalidParameterError(NoetherSymError, ValueError):
    """The parameter list is empty, has duplicates, non-symbols or unused symbols."""


class InvalidDataError(NoetherSymError, ValueError):
    """The data (random symbols, data symbols or a finite dataset) is inconsistent."""


class ParseError(NoetherSymError, ValueError):
    """A textual expression contains something outside the whitelisted grammar."""


class UnsupportedExpressionError(NoetherSymError, ValueError):
    """The expression uses a construct the compiler or the exact engine cannot handle."""


class NoDifferentiablePointError(NoetherSymError, ValueError):
    """No point was found where the loss is finite and differentiable."""


class InvalidGeneratorError(NoetherSymError, ValueError):
    """A matrix given as a symmetry generator is not one (wrong shape, not symmetric...)."""


class InvalidArgumentError(NoetherSymError, ValueError):
    """A numeric argument is out of range or has the wrong shape."""


class CertificationError(NoetherSymError, RuntimeError):
    """A result could not be certified (for example, no bracket for a root)."""

class SweepMismatchError(InvalidArgumentError):
    """``out`` holds a sweep made from a different spec."""


class MissingDependencyError(NoetherSymError, ImportError):
    """An optional dependency (pyarrow, dask.distributed, matplotlib) is not installed."""


class ProofError(NoetherSymError, ValueError):
    """A proof file is malformed (no ``proof`` function, wrong return type, bad folder)."""


class GradientFlowError(NoetherSymError, RuntimeError):
    """Gradient flow on the population loss does not settle on a minimum (it diverges, or
    does not reach the gradient-norm tolerance within its time budget): there is no point
    of the minimum manifold to predict from."""


class ResourceLimitError(NoetherSymError, ValueError):
    """A step would exceed a stated budget (memory, terms, degree, integer size, symbols).

    The message names the budget, the estimate that exceeded it, and how to raise it (the
    module attribute that holds it) or how to shrink the problem.
    """


class NoiseAlongManifoldError(NoetherSymError, ValueError):
    """The gradient noise has a component along the minimum manifold (P_T Σ ≠ 0): the
    per-sample losses are not invariant along it, SGD diffuses there, and the deterministic
    slow flow (E22) does not apply."""


class LocalSymmetryError(NoetherSymError, ValueError):
    """The minimum manifold has flat directions that no global symmetry explains (a local
    symmetry, e.g. ReLU units sharing their activation pattern) and the noise drives SGD along
    them: per-generator balance is not the stationary state; the slow flow (E22),
    ``noether_flow``, is the prediction."""
