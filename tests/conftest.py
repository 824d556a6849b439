"""Shared fixtures."""

from __future__ import annotations

import os
import threading

import pytest
import torch
from hypothesis import settings

# CI replays a fixed set of examples so that a run is reproducible; local runs keep exploring.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def h5_path(tmp_path):
    """Path of a not-yet-existing HDF5 file in a fresh temporary folder."""
    return tmp_path / "data.h5"


@pytest.fixture(autouse=True)
def _no_leaked_runners():
    """Fail any test, in any module, that leaves a Runner thread alive."""
    yield
    from streamreg import Runner

    alive = [t for t in threading.enumerate() if isinstance(t, Runner) and t.is_alive()]
    assert not alive, f"{len(alive)} Runner thread(s) still alive after the test: {alive}"


@pytest.fixture(autouse=True)
def _seed():
    """Seed torch's global generator so default weight initialisation is reproducible."""
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    """Skip ``gpu`` tests where no CUDA device exists."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
