"""Fault 4: resume=True refuses every change that would change the output: weights, buffers, non-tensor
settings and input frames anywhere in the recording."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from streamreg import Runner, Sequential
from streamreg.filters import Elementwise, LowPass, Rectify, TemporalFIR
from tests.faults.common import DT, read, recording, release, write_input
from tests.runner_models import Sleep, wait_for

BASE = {"kernel": 0, "method": "direct", "tau": 4.0, "n_stages": 1, "threshold": 0.5, "fn": torch.tanh}


def build(**changes) -> Sequential:
    """FIR -> low-pass -> rectifier -> elementwise nonlinearity -> 5 ms sleep, with ``changes`` to BASE."""
    cfg = {**BASE, **changes}
    kernel = torch.linspace(1.0, 0.1, 7)
    kernel[3] = torch.nextafter(kernel[3], torch.tensor(2.0)) if cfg["kernel"] else kernel[3]
    return Sequential(TemporalFIR(kernel, method=cfg["method"]), LowPass(cfg["tau"], cfg["n_stages"]),
                      Rectify(cfg["threshold"]), Elementwise(cfg["fn"]), Sleep(0.005))


@pytest.fixture
def stopped(tmp_path):
    """A checkpointed Runner stopped part-way: (input array, input location, output location, frames done)."""
    x = recording(200)
    src = write_input(tmp_path, x)
    out = f"{tmp_path / 'out.h5'}:/y"
    runner = Runner(build(), src, out, dt=DT, checkpoint_every=1)
    runner.start()
    wait_for(lambda: runner.frames_done >= 60)
    runner.stop()
    assert 0 < runner.frames_done < len(x), "the Runner must stop part-way"
    return x, src, out, runner.frames_done


CHANGES = {
    "weight (one ulp)": {"kernel": 1},
    "buffer (LowPass tau)": {"tau": 4.001},
    "n_stages": {"n_stages": 2},
    "FIR method": {"method": "fft"},
    "threshold": {"threshold": 0.6},
    "nonlinearity": {"fn": torch.sigmoid},
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("change", list(CHANGES))
def test_resume_refuses_a_changed_model(stopped, change):
    """resume=True with a model that differs in one weight by one ulp, in a buffer, or in a non-tensor setting
    (n_stages, the FIR method, a threshold, the elementwise function) raises ValueError; the unchanged model
    then resumes to the uninterrupted output."""
    x, src, out, _ = stopped
    with pytest.raises(ValueError, match="resume"):
        release(build(**CHANGES[change]).run(src, DT, output=out, checkpoint_every=1, resume=True))
    release(build().run(src, DT, output=out, checkpoint_every=1, resume=True))
    np.testing.assert_array_equal(read(out.rsplit(":", 1)[0]), build().run(x, DT))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_resume_refuses_a_changed_input_frame(stopped, where):
    """resume=True after one input frame changed by one ulp (the first frame, one before the checkpoint, or the
    last frame of the recording) raises ValueError; with the frame restored the run resumes correctly."""
    x, src, out, done = stopped
    frame = {"first": 0, "middle": done // 2, "last": len(x) - 1}[where]
    path = src.rsplit(":", 1)[0]
    with h5py.File(path, "r+") as f:
        f["x"][frame, 0] = np.nextafter(x[frame, 0], np.float32(np.inf))
    with pytest.raises(ValueError, match="resume"):
        release(build().run(src, DT, output=out, checkpoint_every=1, resume=True))
    with h5py.File(path, "r+") as f:
        f["x"][frame] = x[frame]
    release(build().run(src, DT, output=out, checkpoint_every=1, resume=True))
    np.testing.assert_array_equal(read(out.rsplit(":", 1)[0]), build().run(x, DT))
