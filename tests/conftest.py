"""Shared test set-up: hypothesis profiles, the ``rng`` fixture, and tests/ on ``sys.path``.

CI=true makes hypothesis load its built-in 'ci' profile (derandomized, no deadline);
locally the 'dev' profile below applies. Numeric bugs must fail loudly: RuntimeWarnings
raised inside noether_sym are errors (pyproject.toml, filterwarnings). Models shared by
several test files live in tests/helpers.py; the path entry below lets test files
``from helpers import ...`` under any pytest import mode.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

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
