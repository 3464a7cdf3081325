"""Shared test set-up: hypothesis profiles and helpers.

CI=true makes hypothesis load its built-in 'ci' profile (derandomized, no deadline);
locally the 'dev' profile below applies. Numeric bugs must fail loudly: RuntimeWarnings
raised inside noether_sym are errors (pyproject.toml, filterwarnings).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
if not os.environ.get("CI"):
    settings.load_profile("dev")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
