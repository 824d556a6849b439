"""HDF5Stream: modes, lazily created resizable datasets, flush per put, SWMR readers, honest errors."""

from __future__ import annotations

import time

import h5py
import numpy as np
import pytest

from streamreg import ChunkShapeError, DatasetNotFoundError, OutputExistsError, StreamClosedError
from streamreg.streams import HDF5Stream, _h5writer


@pytest.fixture
def frames():
    """Twenty frames of (3, 2)."""
    return np.random.default_rng(2).normal(size=(20, 3, 2)).astype(np.float32)


def test_written_dataset_is_resizable_chunked_along_time_and_complete(tmp_path, frames):
    """Ragged puts append every frame to a (None, *frame) dataset chunked along time."""
    path = tmp_path / "o.h5"
    with HDF5Stream(f"{path}:/g/y", "w-", chunk_frames=8) as out:
        assert out.dataset is None and len(out) == 0
        for block in np.split(frames, [1, 2, 9]):
            out.put(block)
        assert len(out) == 20 and out.frames_written == 20
    with h5py.File(path, "r") as f:
        ds = f["g/y"]
        assert ds.maxshape == (None, 3, 2) and ds.chunks == (8, 3, 2)
        np.testing.assert_array_equal(ds[:], frames)


def test_swmr_writer_publishes_whole_chunks_and_flush_publishes_the_rest(tmp_path, frames, monkeypatch):
    """A SWMR reader sees every completed HDF5 chunk after the put that completes it, the rest after flush()."""
    monkeypatch.setattr(_h5writer, "PUBLISH_INTERVAL_S", 1e9)  # no timed publishing of the partial chunk
    path = tmp_path / "o.h5"
    out = HDF5Stream(f"{path}:/y", "w-", swmr=True, chunk_frames=4)
    try:
        out.put(frames[:6])  # one whole chunk of 4, two frames buffered
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            np.testing.assert_array_equal(f["y"][:], frames[:4])
        out.flush()
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            np.testing.assert_array_equal(f["y"][:], frames[:6])
        out.put(frames[6:])
        out.flush()
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            np.testing.assert_array_equal(f["y"][:], frames)
    finally:
        out.close()


def test_swmr_writer_publishes_the_partial_chunk_at_most_every_interval(tmp_path, frames, monkeypatch):
    """The first put is visible at once (so readers can follow a slow run); later partial chunks are published
    again only once PUBLISH_INTERVAL_S has passed since the last publication."""
    monkeypatch.setattr(_h5writer, "PUBLISH_INTERVAL_S", 0.3)
    path = tmp_path / "o.h5"

    def visible() -> int:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return len(f["y"])

    with HDF5Stream(f"{path}:/y", "w-", swmr=True) as out:  # one HDF5 chunk holds every frame here
        out.put(frames[:2])
        assert visible() == 2
        out.put(frames[2:3])
        assert visible() == 2  # just published: this one waits
        time.sleep(0.35)
        out.put(frames[3:5])
        assert visible() == 5
    assert visible() == 5


def test_swmr_reader_stream_sees_the_dataset_grow(tmp_path, frames):
    """An HDF5Stream opened with swmr=True reports new frames after refresh()."""
    path = tmp_path / "o.h5"
    with HDF5Stream(f"{path}:/y", "w-", swmr=True) as out:
        out.put(frames[:4])
        out.flush()
        with HDF5Stream(f"{path}:/y", "r", swmr=True) as live:
            assert len(live) == 4
            np.testing.assert_array_equal(live.get(10), frames[:4])
            out.put(frames[4:9])
            out.flush()
            assert live.refresh() == 9
            np.testing.assert_array_equal(live.get(10), frames[4:9])
            assert len(live.get(10)) == 0


def test_modes_w_minus_w_a_and_r_plus(tmp_path, frames):
    """'w-' refuses an existing dataset, 'w' replaces it, 'a' appends, 'r+' writes over from frame 0."""
    loc = f"{tmp_path / 'o.h5'}:/y"
    with HDF5Stream(loc, "w-") as out:
        out.put(frames[:10])
    with pytest.raises(OutputExistsError, match="already exists.*10 frames.*mode 'w'"):
        HDF5Stream(loc, "w-")
    with pytest.raises(OutputExistsError):
        HDF5Stream(loc, "x")
    with HDF5Stream(loc, "a") as out:
        out.put(frames[10:])
    with HDF5Stream(loc) as s:
        np.testing.assert_array_equal(s.get(100), frames)
    with HDF5Stream(loc, "r+") as out:
        out.put(-frames[:3])
    with HDF5Stream(loc) as s:
        np.testing.assert_array_equal(s.get(100), np.concatenate([-frames[:3], frames[3:]]))
    with HDF5Stream(loc, "w") as out:
        out.put(frames[:2])
    with HDF5Stream(loc) as s:
        assert len(s) == 2


def test_read_only_stream_refuses_put(tmp_path, frames):
    """A stream opened 'r' raises io.UnsupportedOperation on put."""
    import io

    with h5py.File(tmp_path / "i.h5", "w") as f:
        f["x"] = frames
    with HDF5Stream(f"{tmp_path / 'i.h5'}:/x") as s, pytest.raises(io.UnsupportedOperation, match="read-only"):
        s.put(frames)


def test_wrong_frames_and_closed_stream(tmp_path, frames):
    """A put of the wrong frame shape raises ChunkShapeError; get/put after close raise StreamClosedError."""
    out = HDF5Stream(f"{tmp_path / 'o.h5'}:/y", "w-")
    out.put(frames)
    with pytest.raises(ChunkShapeError, match=r"frames must have shape \(n, 3, 2\).*got \(4, 2\)"):
        out.put(np.zeros((4, 2), dtype=np.float32))
    out.close()
    out.close()
    assert "closed" in repr(out) and "(3, 2)" in repr(out)
    with pytest.raises(StreamClosedError):
        out.put(frames)
    with pytest.raises(StreamClosedError):
        out.get(1)


def test_missing_dataset_lists_what_the_file_holds_and_a_group_is_never_replaced(tmp_path, frames):
    """Reading a missing dataset names the datasets present; writing over a group is refused in every mode."""
    path = tmp_path / "i.h5"
    with h5py.File(path, "w") as f:
        f["a/b"] = frames
        f["c"] = frames
    with pytest.raises(DatasetNotFoundError, match=r"'/x' does not exist.*holds /a/b, /c"):
        HDF5Stream(f"{path}:/x")
    for mode in ("w", "a", "w-"):
        with pytest.raises(OutputExistsError, match="is a group"):
            HDF5Stream(f"{path}:/a", mode)
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["a", "c"]


def test_truncate_and_non_resizable_dataset(tmp_path, frames):
    """truncate(n) cuts a resizable dataset; writing past a fixed-size dataset raises naming its size."""
    loc = f"{tmp_path / 'o.h5'}:/y"
    with HDF5Stream(loc, "w-") as out:
        out.put(frames)
        out.truncate(5)
        out.put(frames[:1])
        assert len(out) == 6
        with pytest.raises(ValueError, match="at most the 6 frames"):
            out.truncate(7)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("y", shape=(4, 3, 2), dtype="f4")
    with h5py.File(tmp_path / "f.h5", "r+") as f:
        out = HDF5Stream(f["y"], "r+")
        out.put(frames[:4])
        with pytest.raises(ChunkShapeError, match="at most 4 frames and is not resizable"):
            out.put(frames[:1])


def test_bad_mode_and_location(frames):
    """An unknown mode or location type raises naming the value and what is allowed."""
    with pytest.raises(ValueError, match="mode"):
        HDF5Stream("x.h5:/y", "rw")
    with pytest.raises(TypeError, match="location must be"):
        HDF5Stream(3)
    with pytest.raises(ValueError, match="form 'file.h5:/dataset'"):
        HDF5Stream("nodataset.h5")
