"""CUDA paths: device moves and exactness against the CPU. Skipped without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamreg.models import LN, Retina
from streamreg.testing import assert_chunk_invariant

pytestmark = pytest.mark.gpu


def test_run_on_cuda_returns_host_arrays_close_to_cpu():
    """device='cuda' moves model and chunks; outputs come back as numpy and match the CPU run."""
    x = np.random.default_rng(0).random((200, 16, 16)).astype(np.float32)
    cpu = Retina().run(x, dt=50)
    model = Retina()
    gpu = model.run(x, dt=50, device="cuda")
    assert isinstance(gpu, np.ndarray)
    assert next(model.buffers()).device.type == "cuda" or model.get_state()["bipolar"]["v"].is_cuda
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-3)


def test_cuda_chunk_invariance():
    """Chunk invariance holds on the GPU too (spikes included: draws are made on the CPU)."""
    x = torch.rand(60, 12, 12)
    assert_chunk_invariant(LN((5, 3, 3)).cuda(), x, dts=(1, 7), exact=False)
    assert_chunk_invariant(Retina(spikes=True).cuda(), x, dts=(1, 7), exact=False)
