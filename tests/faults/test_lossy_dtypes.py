"""Fault 6: an output that cannot hold the model's output dtype without loss is refused with TypeError, and
nothing is written to it."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from streamreg import Runner
from streamreg.streams import HDF5Stream, QueueStream, SequenceStream
from tests.faults.common import DT, recording, release
from tests.runner_models import model

LOSSY = ["float16", "int8", "int32", "uint8", "bool"]
SENTINEL = 7


@pytest.fixture
def x():
    """A float32 recording of 50 frames of 3 values, large enough to overflow float16 once scaled."""
    return recording(50) * np.float32(3e4)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("dtype", LOSSY)
def test_lossy_output_array_is_refused(x, dtype):
    """A float32 model output into a numpy array of a lossy dtype raises TypeError; the array is untouched."""
    out = np.full(x.shape, SENTINEL, dtype=dtype)
    before = out.copy()
    with pytest.raises(TypeError, match="dtype"):
        model().run(x, DT, output=out)
    np.testing.assert_array_equal(out, before)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("filled", [False, True], ids=["empty", "filled-overwrite"])
@pytest.mark.parametrize("dtype", LOSSY)
def test_lossy_output_dataset_is_refused(tmp_path, x, dtype, filled):
    """A float32 model output into an existing h5py.Dataset of a lossy dtype (an empty resizable one, or a full
    one with overwrite=True) raises TypeError; nothing is written. (A "file.h5:/y" string with overwrite=True
    replaces the dataset instead, which loses nothing.)"""
    path = tmp_path / "out.h5"
    with h5py.File(path, "w") as f:
        if filled:
            f.create_dataset("y", data=np.full(x.shape, SENTINEL, dtype=dtype), maxshape=(None, *x.shape[1:]))
        else:
            f.create_dataset("y", shape=(0, *x.shape[1:]), dtype=dtype, maxshape=(None, *x.shape[1:]))
    with h5py.File(path, "r+") as f, pytest.raises(TypeError, match="dtype"):
        release(model().run(x, DT, output=f["y"], overwrite=filled))
    with h5py.File(path, "r") as f:
        y = f["y"][()]
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y, np.full((len(x) if filled else 0, *x.shape[1:]), SENTINEL, dtype=dtype))


def _streams(tmp_path, dtype: str, frame: tuple[int, ...]) -> dict:
    return {
        "SequenceStream": lambda: SequenceStream(frame_shape=frame, dtype=dtype),
        "QueueStream": lambda: QueueStream(frame, dtype=dtype, maxsize=1000),
        "HDF5Stream": lambda: HDF5Stream(f"{tmp_path / 'out.h5'}:/y", "w-", frame_shape=frame, dtype=dtype),
    }


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", ["SequenceStream", "QueueStream", "HDF5Stream"])
@pytest.mark.parametrize(("dtype", "given"), [("float16", "float32"), ("int8", "int64"), ("int32", "float64"),
                                              ("uint8", "int16"), ("float32", "float64")])
def test_lossy_put_is_refused(tmp_path, kind, dtype, given):
    """put() of frames whose dtype the stream's dtype cannot hold without loss (float32 into float16, int64 into
    int8, ...) raises TypeError on every writable stream kind, and the stream stays empty."""
    frames = (np.arange(12).reshape(4, 3) * 1000).astype(given)
    stream = _streams(tmp_path, dtype, (3,))[kind]()
    try:
        with pytest.raises(TypeError, match="dtype"):
            stream.put(frames)
        assert len(stream) == 0
    finally:
        stream.close()


def _attempt(entry: str, x: np.ndarray, stream) -> None:
    if entry == "run":
        model().run(x, DT, output=stream)
    else:
        with Runner(model(), x, stream, dt=DT) as runner:
            runner.join()


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", ["SequenceStream", "QueueStream", "HDF5Stream"])
@pytest.mark.parametrize("entry", ["run", "Runner"])
def test_run_into_a_lossy_stream_is_refused(tmp_path, x, kind, entry):
    """run() or a Runner with a float32 model into a float16 stream raises TypeError and puts nothing."""
    stream = _streams(tmp_path, "float16", x.shape[1:])[kind]()
    try:
        with pytest.raises(TypeError, match="dtype"):
            _attempt(entry, x, stream)
        assert len(stream) == 0
    finally:
        stream.close()
