"""Shared test setup: Hypothesis profiles, the GPU marker and the slow marker.

HYPOTHESIS_PROFILE=ci (the default: small, fits the 10-minute budget on 2 cores)
or HYPOTHESIS_PROFILE=thorough (many more examples; run on demand).
Tests marked ``slow`` (long end-to-end runs) run only with ``pytest --runslow``.
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


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (long end-to-end runs)")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--runslow"):
        slow = pytest.mark.skip(reason="slow: run with --runslow")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(slow)
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
