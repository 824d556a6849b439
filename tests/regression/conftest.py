"""Regression tests run torch on one thread: their tiny matmuls are 10x slower with two on a shared 2-core box."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Use one intra-op thread for the test, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
