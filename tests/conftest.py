"""Shared test setup: Hypothesis profiles and the GPU marker.

HYPOTHESIS_PROFILE=ci (the default: small, fits the 10-minute budget on 2 cores)
or HYPOTHESIS_PROFILE=thorough (many more examples; run on demand).
"""
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import minigrad

settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def pytest_collection_modifyitems(config, items):
    if minigrad.cuda_is_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and an NVIDIA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    minigrad.manual_seed(0)
    yield
