"""The reused read buffers: never overwritten while a layer or an output still holds them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamreg import Layer, Sequential
from streamreg._run import ring
from streamreg._run.ring import ReadRing


class DelayByView(Layer):
    """``y[t] = x[t - 1]`` (0 before the first frame), keeping the previous chunk's last frame as a *view*.

    A run that reused the buffer of that chunk for a later read would show the later data through the view.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_state("last")

    @property
    def own_history(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = torch.zeros_like(x[:1]) if self.last is None else self.last
        y = torch.cat([last, x[:-1]])
        self.last = x[-1:]  # a view of the input chunk, on purpose
        return y


class AddFirstFrame(Layer):
    """``y[t] = x[t] + x[0]``, keeping the recording's first frame as a view of the first chunk, for good."""

    def __init__(self) -> None:
        super().__init__()
        self.register_state("first")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first is None:
            self.first = x[:1]  # a view of the input chunk, on purpose
        return x + self.first


class Identity(Layer):
    """Returns its input chunk itself: the output is a view of the read buffer until it is written."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def one_shot(x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros_like(x[:1]), x[:-1]])


@pytest.fixture
def recording(tmp_path):
    x = np.random.default_rng(1).standard_normal((103, 3, 2)).astype(np.float32)
    path = tmp_path / "in.h5"
    import h5py

    with h5py.File(path, "w") as f:
        f["x"] = x
    return x, f"{path}:/x"


@pytest.mark.parametrize("dt", [1, 4, 10, 50])
def test_layer_keeping_a_view_of_its_input_sees_its_own_frames(recording, dt):
    x, src = recording
    got = DelayByView().run(src, dt, progress=False)
    np.testing.assert_array_equal(got, one_shot(x))


@pytest.mark.parametrize("dt", [1, 4, 10])
def test_layer_keeping_a_view_for_the_whole_run(recording, dt):
    x, src = recording
    got = AddFirstFrame().run(src, dt, progress=False)
    np.testing.assert_array_equal(got, x + x[:1])


@pytest.mark.parametrize("dt", [1, 7, 103])
def test_output_that_is_the_input_view_is_written_before_its_buffer_is_reused(recording, dt, tmp_path):
    x, src = recording
    out = Sequential(Identity()).run(src, dt, output=f"{tmp_path}/out.h5:/y", progress=False)
    import h5py

    path, name = out.rsplit(":", 1)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f[name][...], x)


def test_the_check_can_fail(recording, monkeypatch):
    """Control: a ring that reused buffers without looking would hand the delayed layer later data."""
    x, src = recording
    monkeypatch.setattr(ring, "_only_ring_holds", lambda buf: True)
    got = AddFirstFrame().run(src, 4, progress=False)
    assert not np.array_equal(got, x + x[:1])


def test_ring_reuses_a_free_buffer_and_replaces_a_held_one():
    r = ReadRing((2,), np.dtype(np.float32), 2)
    a, _ = r.take(3)
    b, _ = r.take(3)
    assert r.fresh == 2
    a_ptr = a.data_ptr()
    del a
    again, view = r.take(3)  # slot 0, nobody holds it: reused
    assert r.fresh == 2 and again.data_ptr() == a_ptr and view.ctypes.data == a_ptr
    kept = b[1:]  # slot 1 still held through a view
    del b
    new, _ = r.take(2)
    assert r.fresh == 3 and new.data_ptr() != kept.data_ptr() - kept.storage_offset() * 4
    bigger, _ = r.take(5)  # slot 0 too small: a new buffer
    assert r.fresh == 4 and bigger.shape == (5, 2)
