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


def test_runner_hdf5_on_cuda_uses_pinned_transfers_and_matches_cpu(tmp_path):
    """A Runner on CUDA from HDF5 to HDF5 (pinned buffers, non-blocking copies) matches the CPU run."""
    import h5py

    from streamreg import Runner

    x = np.random.default_rng(1).random((300, 16, 16)).astype(np.float32)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["x"] = x
    cpu = LN((5, 3, 3)).run(x, dt=64)
    torch.manual_seed(0)
    with Runner(LN((5, 3, 3)), f"{tmp_path / 'in.h5'}:/x", f"{tmp_path / 'o.h5'}:/y", dt=64, device="cuda") as r:
        r.join()
    with h5py.File(tmp_path / "o.h5", "r") as f:
        np.testing.assert_allclose(f["y"][:], cpu, rtol=1e-4, atol=1e-4)


def test_resume_on_cuda_is_bit_identical(tmp_path):
    """A CUDA run stopped after a checkpoint resumes to the uninterrupted CUDA output, bit for bit."""
    from streamreg import Runner
    from streamreg.filters import LowPass

    x = np.random.default_rng(2).random((400, 8, 8)).astype(np.float32)
    whole = LowPass(3.0).run(x, dt=20, device="cuda")
    out = f"{tmp_path / 'o.h5'}:/y"
    runner = Runner(LowPass(3.0), x, out, dt=20, device="cuda", n_frames=400, checkpoint_every=1)
    with runner:
        pass  # stopped at once by the with-block; the checkpoint records where
    result = LowPass(3.0).run(x, dt=20, output=out, device="cuda", resume=True)
    np.testing.assert_array_equal(result[:], whole)
    result.file.close()
