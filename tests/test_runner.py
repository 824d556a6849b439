"""The Runner: background runs over every input and output form, clean ends, errors re-raised, live output."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from streamreg import ChunkShapeError, RunnerError, Sequential, StreamClosedError
from streamreg.runner import Runner
from streamreg.streams import ArrayStream, GeneratorStream, QueueStream, RandomStream, SequenceStream
from tests.runner_models import model, one_shot, wait_for

ROOT = Path(__file__).resolve().parents[1]
FRAME = (3, 2)


@pytest.fixture
def x():
    """A recording of 250 frames."""
    return np.random.default_rng(1).normal(size=(250, *FRAME)).astype(np.float32)


class Boom(torch.nn.Module):
    """Raises once it has seen ``at`` frames."""

    def __init__(self, at):
        super().__init__()
        self.at, self.seen = at, 0

    def forward(self, x):
        self.seen += len(x)
        if self.seen > self.at:
            msg = f"boom at {self.seen}"
            raise ValueError(msg)
        return x * 2


@pytest.mark.parametrize("dt", [1, 7, 64, 1000])
def test_runner_hdf5_to_hdf5_equals_one_shot(x, tmp_path, dt):
    """A Runner from one HDF5 file to another gives the one-shot output, bit for bit."""
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["x"] = x
    runner = Runner(model(), f"{tmp_path / 'in.h5'}:/x", f"{tmp_path / 'out.h5'}:/y", dt=dt)
    runner.start()
    runner.join(timeout=30)
    assert runner.done and not runner.running and runner.error is None
    assert runner.frames_done == len(x)
    assert runner.result == f"{tmp_path / 'out.h5'}:/y"
    with h5py.File(tmp_path / "out.h5", "r") as f:
        np.testing.assert_array_equal(f["y"][:], one_shot(model(), x))


@pytest.mark.parametrize("form", ["array", "tensor", "stream", "generator"])
def test_every_input_form(x, form):
    """Arrays, tensors, streams and generators all run to the one-shot output."""
    inputs = {
        "array": x,
        "tensor": torch.from_numpy(x),
        "stream": ArrayStream(x),
        "generator": GeneratorStream(iter(np.array_split(x, [3, 50, 51, 200]))),
    }
    with Runner(model(), inputs[form], None, dt=16) as runner:
        runner.join()
    np.testing.assert_array_equal(runner.result, one_shot(model(), x))


def test_output_into_array_and_sequence_stream(x):
    """A preallocated array is filled in place; a SequenceStream collects every frame."""
    out = np.empty_like(x)
    seq = SequenceStream()
    with Runner(model(), x, out, dt=30) as r1, Runner(model(), x, seq, dt=30) as r2:
        r1.join()
        r2.join()
    expected = one_shot(model(), x)
    assert r1.result is out
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(seq.array(), expected)


def test_two_runners_chained_through_a_queue(x):
    """Runner A feeds a bounded QueueStream that Runner B drains; ending the queue ends B cleanly."""
    queue = QueueStream(FRAME, maxsize=10)
    with Runner(model(), x, queue, dt=7) as first, Runner(Sequential(torch.nn.Identity()), queue, None, dt=5) as second:
        first.join(timeout=30)
        queue.end()
        second.join(timeout=30)
    assert second.done and second.error is None
    np.testing.assert_array_equal(second.result, one_shot(model(), x))


def test_infinite_input_runs_until_stop():
    """A RandomStream input runs until stop(); the output is the model over the frames it took."""
    runner = Runner(model(), RandomStream(FRAME, seed=3), None, dt=8)
    runner.start()
    assert wait_for(lambda: runner.frames_done >= 40)
    runner.stop(timeout=10)
    assert runner.done and runner.error is None
    n = runner.frames_done
    assert n % 8 == 0 and len(runner.result) == n
    frames = RandomStream(FRAME, seed=3).get(n)
    np.testing.assert_array_equal(runner.result, one_shot(model(), frames))


def test_stop_wakes_a_runner_waiting_on_an_empty_queue():
    """stop() ends a Runner blocked on input that never comes, promptly."""
    runner = Runner(model(), QueueStream(FRAME), None, dt=4)
    runner.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    runner.stop(timeout=10)
    assert time.monotonic() - t0 < 2
    assert runner.done and not runner.is_alive() and runner.frames_done == 0


def test_model_error_is_reraised_by_join_and_completed_chunks_are_kept(x, tmp_path):
    """An exception in the model ends the thread; join() re-raises it once; the output holds every completed chunk."""
    out = tmp_path / "o.h5"
    runner = Runner(Sequential(Boom(at=100)), x, f"{out}:/y", dt=25)
    runner.start()
    with pytest.raises(ValueError, match="boom at 125") as info:
        runner.join(timeout=30)
    assert any("Runner(Sequential)" in note for note in info.value.__notes__)
    assert runner.done and isinstance(runner.error, ValueError) and runner.frames_done == 100
    runner.join()  # raised once: a second join returns
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["y"][:], 2 * x[:100])


def test_stream_error_is_reraised_by_stop(x):
    """An exception raised by the input stream reaches the caller through stop()."""

    def blocks():
        yield x[:50]
        msg = "disk gone"
        raise OSError(msg)

    runner = Runner(model(), GeneratorStream(blocks()), None, dt=10)
    runner.start()
    assert wait_for(lambda: runner.done)
    with pytest.raises(OSError, match="disk gone"):
        runner.stop()


def test_context_manager_reraises_and_stops(x):
    """Leaving the with-block stops and joins; an error in the thread surfaces there."""
    with pytest.raises(ValueError, match="boom"), Runner(Sequential(Boom(at=0)), x, None, dt=10) as runner:
        assert wait_for(lambda: runner.done)
    assert not runner.is_alive()


def test_bad_input_raises_in_the_constructor(x, tmp_path):
    """A missing dataset, an existing output and bad arguments raise before any thread starts."""
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["x"] = x
        f["y"] = x
    with pytest.raises(KeyError, match="'/nope' does not exist.*holds /x, /y"):
        Runner(model(), f"{tmp_path / 'in.h5'}:/nope", None, dt=4)
    with pytest.raises(FileExistsError, match="already exists"):
        Runner(model(), x, f"{tmp_path / 'in.h5'}:/y", dt=4)
    with pytest.raises(ValueError, match="dt must be a positive integer"):
        Runner(model(), x, None, dt=0)
    with pytest.raises(TypeError, match=r"Runner\(\) got an unexpected keyword argument 'start'"):
        Runner(model(), x, None, dt=4, start=3)


def test_frame_mismatch_between_model_and_output_stream(x):
    """A model whose frames do not fit the output stream fails on the first chunk, writing nothing."""
    seq = SequenceStream(frame_shape=(5,), dtype=np.float32)
    runner = Runner(model(), x, seq, dt=10)
    runner.start()
    with pytest.raises(ChunkShapeError, match=r"model gives frames of shape \(3, 2\).*\(5,\)"):
        runner.join(timeout=30)
    assert len(seq) == 0


def test_closed_streams_are_refused(x):
    """A closed input or output stream is refused up front; get/put on them raise StreamClosedError."""
    s = ArrayStream(x)
    s.close()
    with pytest.raises(ValueError, match="closed"):
        Runner(model(), s, None, dt=4)
    with pytest.raises(StreamClosedError):
        s.get(1)


def test_a_runner_runs_once_and_result_waits_for_the_end(x):
    """start() twice raises RunnerError; result before the end raises RunnerError."""
    runner = Runner(model(), QueueStream(FRAME), None, dt=4)
    with pytest.raises(RunnerError, match="join"):
        _ = runner.result
    runner.start()
    with pytest.raises(RunnerError, match="already started"):
        runner.start()
    runner.stop(timeout=10)


def test_live_output_is_readable_from_another_process_while_it_grows(x, tmp_path):
    """A second process reading the output with SWMR sees a growing, consistent frame count while the run goes on."""
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    long_x = np.concatenate([x] * 4)
    with h5py.File(src, "w") as f:
        f["x"] = long_x
    reader = (
        "import h5py, sys, time, json\n"
        f"path = {str(out)!r}\n"
        "deadline = time.monotonic() + 30\n"
        "while time.monotonic() < deadline:\n"
        "    try:\n"
        "        f = h5py.File(path, 'r', libver='latest', swmr=True); ds = f['y']; break\n"
        "    except (OSError, KeyError):\n"
        "        time.sleep(0.01)\n"
        "seen = []\n"
        f"while time.monotonic() < deadline and (not seen or seen[-1][0] < {len(long_x)}):\n"
        "    ds.refresh(); n = ds.shape[0]\n"
        "    seen.append((n, float(ds[:n].sum(dtype='f8')) if n else 0.0))\n"
        "    time.sleep(0.01)\n"
        "print(json.dumps(seen))\n"
    )
    with subprocess.Popen([sys.executable, "-c", reader], cwd=ROOT, stdout=subprocess.PIPE, text=True) as child:
        # output is published at each checkpoint (and each full ~1 MiB HDF5 chunk)
        with Runner(model(0.01), f"{src}:/x", f"{out}:/y", dt=20, checkpoint_every=1) as runner:
            runner.join(timeout=60)
        stdout, _ = child.communicate(timeout=60)
    import json

    seen = json.loads(stdout)
    counts = [n for n, _ in seen]
    assert counts == sorted(counts), "the frame count never goes back"
    assert len(set(counts)) >= 3, f"the reader should watch the output grow; saw {sorted(set(counts))}"
    assert counts[-1] == len(long_x)
    expected = one_shot(model(), long_x).astype(np.float64)
    for n, total in seen:
        assert n % 20 == 0, "only whole chunks are published"
        np.testing.assert_allclose(total, expected[:n].sum(), rtol=1e-9, atol=1e-6)
