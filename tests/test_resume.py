"""Checkpoints, resume after SIGKILL, and random access with start/stop/warmup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from streamreg import OutputExistsError
from streamreg.filters import LowPass, TemporalFIR
from streamreg.models import LN
from tests.runner_models import model, read_output, slow_model, wait_for

ROOT = Path(__file__).resolve().parents[1]
T, FRAME, DT = 600, (4, 3), 20


@pytest.fixture
def recording(tmp_path):
    """An HDF5 input of T frames and its path."""
    x = np.random.default_rng(7).normal(size=(T, *FRAME)).astype(np.float32)
    path = tmp_path / "in.h5"
    with h5py.File(path, "w") as f:
        f["x"] = x
    return x, f"{path}:/x"


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _checkpointed_frames(ckpt: Path) -> int:
    try:
        return int(torch.load(ckpt, weights_only=True)["out_pos"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_resume_after_sigkill_is_bit_identical(recording, tmp_path):
    """A run killed with SIGKILL mid-recording resumes from its checkpoint to the uninterrupted output, bit for bit."""
    x, src = recording
    out = tmp_path / "out.h5"
    child = _child(
        "from tests.runner_models import slow_model\n"
        f"slow_model().run({src!r}, {DT}, output={str(out) + ':/y'!r}, checkpoint_every=2)\n"
    )
    ckpt = Path(f"{out}.y.ckpt")
    with child:
        try:
            started = wait_for(lambda: _checkpointed_frames(ckpt) >= 4 * DT)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            child.kill()
        assert started, child.stderr.read().decode()
    done = _checkpointed_frames(ckpt)
    assert 0 < done < T, "the child must be killed mid-recording"
    with pytest.raises(OutputExistsError, match="resume=True"):
        model().run(src, DT, output=f"{out}:/y")
    result = slow_model().run(src, DT, output=f"{out}:/y", resume=True)
    np.testing.assert_array_equal(read_output(result), model().run(x, DT))
    assert not ckpt.exists()
    assert not Path(f"{out}.lock").exists()


def test_resume_refuses_a_missing_checkpoint_and_a_different_model_or_input(recording, tmp_path):
    """resume=True without a checkpoint, or with another model, input or dt, raises naming the difference."""
    x, src = recording
    out = f"{tmp_path / 'o.h5'}:/y"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        model().run(src, DT, output=out, resume=True)
    job_model = model()
    from streamreg.runner import Runner

    with Runner(job_model, src, out, dt=DT, checkpoint_every=1) as runner:
        runner.stop()
    other = model()
    with torch.no_grad():
        other[0].kernel.mul_(2)
    with pytest.raises(ValueError, match="different model"):
        other.run(src, DT, output=out, resume=True)
    with pytest.raises(ValueError, match="different input"):
        model().run(x[::-1].copy(), DT, output=out, resume=True)
    with pytest.raises(ValueError, match="different dt"):
        model().run(src, DT + 1, output=out, resume=True)
    result = model().run(src, DT, output=out, resume=True)
    np.testing.assert_array_equal(read_output(result), model().run(x, DT))


def test_checkpoint_needs_an_hdf5_output(recording):
    """checkpoint_every with an in-memory output is refused up front."""
    x, _ = recording
    with pytest.raises(ValueError, match="need an HDF5 output"):
        model().run(x, DT, checkpoint_every=2)


def test_a_stale_checkpoint_is_only_replaced_with_overwrite(recording, tmp_path):
    """A checkpoint left by a killed run blocks a fresh run unless overwrite=True."""
    x, src = recording
    out = f"{tmp_path / 'o.h5'}:/y"
    from streamreg.runner import Runner

    with Runner(model(), src, out, dt=DT, checkpoint_every=1) as runner:
        runner.stop()
    with pytest.raises(OutputExistsError, match="checkpoint of an earlier run"):
        model().run(src, DT, output=out, checkpoint_every=1)
    with pytest.raises(OutputExistsError, match="checkpoint of an earlier run"):
        model().run(src, DT, output=out)  # no checkpointing asked: the stale one still blocks
    result = model().run(src, DT, output=out, checkpoint_every=1, overwrite=True)
    np.testing.assert_array_equal(read_output(result), model().run(x, DT))


@pytest.mark.parametrize("dt", [1, 3, 16, 50])
@pytest.mark.parametrize(("start", "stop"), [(0, 30), (5, 41), (37, 90), (89, 90), (40, 40)])
def test_start_stop_equals_the_slice_of_a_whole_run(dt, start, stop):
    """run(start=, stop=) on a bounded-history model gives exactly frames [start, stop) of a whole run."""
    x = torch.randn(90, 3, 2)
    fir = TemporalFIR(torch.randn(9))
    whole = fir.run(x)
    np.testing.assert_array_equal(fir.run(x, dt, start=start, stop=stop), whole[start:stop])


def test_start_reads_only_history_frames_before_start(recording):
    """A range run reads exactly `history` frames before start (counted through a stream)."""
    from streamreg.streams import ArrayStream

    x, _ = recording
    fir = TemporalFIR(torch.ones(5))
    stream = ArrayStream(x)
    fir.run(stream, 10, start=100, stop=150)
    assert stream.position == 150
    stream2 = ArrayStream(x)
    reads = []
    original = stream2.get

    def spy(n):
        chunk = original(n)
        reads.append(stream2.position - len(chunk))
        return chunk

    stream2.get = spy
    fir.run(stream2, 10, start=100, stop=150)
    assert reads[0] == 100 - fir.history


def test_unbounded_history_needs_warmup_and_warmup_converges():
    """A recursive filter refuses start without warmup; with warmup the error decays like exp(-warmup/tau)."""
    x = torch.randn(400, 2)
    lp = LowPass(5.0)
    with pytest.raises(ValueError, match="unbounded history.*warmup=N"):
        lp.run(x, start=200)
    whole = lp.run(x)
    errors = [np.abs(lp.run(x, 7, start=300, stop=400, warmup=w) - whole[300:]).max() for w in (10, 40, 100)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-6 * np.abs(whole).max()


def test_stop_and_n_frames_are_checked(recording):
    """stop past the end, stop before start, or both stop and n_frames raise naming the values."""
    x, _ = recording
    fir = TemporalFIR(torch.ones(3))
    with pytest.raises(ValueError, match="past the end of the input, which has 600 frames"):
        fir.run(x, start=10, stop=601)
    with pytest.raises(ValueError, match="stop must be at least start=10"):
        fir.run(x, start=10, stop=5)
    with pytest.raises(ValueError, match="not both"):
        fir.run(x, stop=5, n_frames=5)


def test_ln_range_run_is_within_tolerance():
    """A tolerance-exact model (FFT Conv3d) matches the whole run's slice within the law's tolerance."""
    x = torch.randn(120, 6, 6)
    ln = LN((8, 3, 3))
    whole = ln.run(x)
    part = ln.run(x, 16, start=50, stop=110)
    np.testing.assert_allclose(part, whole[50:110], atol=1e-5 * np.abs(whole).max())


def test_flags_file_mode_is_left_usable_after_a_clean_run(tmp_path, recording):
    """A run that finished leaves a file that opens read-write again and no sidecar files."""
    _, src = recording
    out = tmp_path / "o.h5"
    model().run(src, DT, output=f"{out}:/y", checkpoint_every=3)
    with h5py.File(out, "r+") as f:
        assert f["y"].shape == (T, *FRAME)
    assert sorted(os.listdir(tmp_path)) == ["in.h5", "o.h5"]
