"""SequenceStream: an in-memory stream that collects frames, optionally as a ring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamreg.exceptions import ChunkShapeError, StreamClosedError
from streamreg.streams import SequenceStream


def frames(start, stop, frame=(2,)):
    """Frames whose every value is the frame's index, so order and losses are visible."""
    return np.broadcast_to(np.arange(start, stop, dtype=np.float32).reshape(-1, *[1] * len(frame)),
                           (stop - start, *frame)).copy()


def test_growth_past_the_initial_capacity_keeps_every_frame():
    """Many puts of random sizes, far past the first allocation, are all held in order."""
    rng = np.random.default_rng(0)
    stream = SequenceStream(frame_shape=(2,))
    bounds = np.cumsum(rng.integers(0, 40, size=100))
    for start, stop in zip(np.r_[0, bounds[:-1]], bounds):
        stream.put(frames(start, stop))
    assert len(stream) == bounds[-1]
    np.testing.assert_array_equal(stream.array(), frames(0, bounds[-1]))
    np.testing.assert_array_equal(stream.get(bounds[-1] + 10), frames(0, bounds[-1]))


def test_data_is_copied_in():
    """Initial data is copied: changing it afterwards does not change the stream."""
    data = frames(0, 5)
    stream = SequenceStream(data)
    data[:] = -1
    np.testing.assert_array_equal(stream.array(), frames(0, 5))


def test_tensor_data_is_accepted_as_numpy():
    """Tensor data becomes numpy frames of the matching dtype."""
    stream = SequenceStream(torch.arange(6, dtype=torch.int32).reshape(3, 2))
    assert stream.dtype == np.dtype(np.int32)
    np.testing.assert_array_equal(stream.get(3), np.arange(6).reshape(3, 2))


def test_put_after_reading_appends_at_the_end():
    """Frames put after some were read are appended and read next; nothing is overwritten."""
    stream = SequenceStream(frames(0, 4))
    np.testing.assert_array_equal(stream.get(3), frames(0, 3))
    stream.put(frames(4, 6))
    np.testing.assert_array_equal(stream.get(10), frames(3, 6))
    assert stream.get(1).shape == (0, 2)
    stream.put(frames(6, 7))
    np.testing.assert_array_equal(stream.get(10), frames(6, 7))
    np.testing.assert_array_equal(stream.array(), frames(0, 7))


def test_shape_and_dtype_are_learned_from_the_first_put():
    """Without data or frame_shape the first put fixes the frame shape and dtype."""
    stream = SequenceStream()
    assert stream.frame_shape is None and len(stream) == 0
    assert "?" in repr(stream)
    stream.put(np.ones((3, 2, 5), dtype=np.int16))
    assert stream.frame_shape == (2, 5)
    assert stream.dtype == np.dtype(np.int16)
    with pytest.raises(ChunkShapeError, match=r"frames must have shape \(n, 2, 5\).*got \(1, 5, 2\)"):
        stream.put(np.ones((1, 5, 2), dtype=np.int16))


def test_an_empty_first_put_fixes_the_shape():
    """An empty (0, *frame) first put is enough to learn the frame shape."""
    stream = SequenceStream()
    stream.put(np.empty((0, 3), dtype=np.float64))
    assert stream.frame_shape == (3,)
    assert stream.get(5).shape == (0, 3)


def test_reading_before_the_shape_is_known_is_refused():
    """get and array before any frame shape is known raise ValueError saying what to do."""
    stream = SequenceStream()
    with pytest.raises(ValueError, match="frame shape is known"):
        stream.get(1)
    with pytest.raises(ValueError, match="frame shape is known"):
        stream.array()


def test_frame_shape_without_dtype_defaults_to_float32():
    """frame_shape alone gives an empty float32 stream."""
    stream = SequenceStream(frame_shape=(2, 2))
    assert stream.dtype == np.dtype(np.float32)
    assert stream.get(3).shape == (0, 2, 2)


def test_wrong_frame_shape_on_put_is_refused():
    """A put whose frames do not match the frame shape raises ChunkShapeError and stores nothing."""
    stream = SequenceStream(frames(0, 2))
    with pytest.raises(ChunkShapeError, match="frames must have shape"):
        stream.put(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ChunkShapeError):
        stream.put(np.ones(()))
    assert len(stream) == 2


def test_lossy_dtype_on_put_is_refused_and_safe_casts_are_made():
    """Floats into an integer stream and int64 into float32 raise TypeError; int16 into float32 is cast."""
    stream = SequenceStream(frame_shape=(2,), dtype=np.int32)
    with pytest.raises(TypeError, match="without loss"):
        stream.put(np.ones((1, 2), dtype=np.float32))
    floats = SequenceStream(frame_shape=(2,))
    with pytest.raises(TypeError, match="int64 cannot be written to a float32"):
        floats.put(np.array([[1, 2]], dtype=np.int64))
    floats.put(np.array([[1, 2]], dtype=np.int16))
    assert floats.get(1).tolist() == [[1.0, 2.0]] and len(floats) == 1


def test_data_that_contradicts_frame_shape_is_refused():
    """data whose frames differ from frame_shape raises ChunkShapeError naming data."""
    with pytest.raises(ChunkShapeError, match=r"^data must have shape \(T, 3\)"):
        SequenceStream(np.ones((4, 2)), frame_shape=(3,))


def test_ring_keeps_the_newest_frames_and_counts_the_dropped():
    """With max_frames the oldest frames go, dropped counts them, and unread dropped frames are skipped."""
    stream = SequenceStream(frames(0, 3), max_frames=5)
    np.testing.assert_array_equal(stream.get(1), frames(0, 1))
    stream.put(frames(3, 9))
    assert (len(stream), stream.dropped, stream.position) == (5, 4, 4)
    np.testing.assert_array_equal(stream.array(), frames(4, 9))
    np.testing.assert_array_equal(stream.get(2), frames(4, 6))
    stream.put(frames(9, 21))  # larger than the ring
    assert (len(stream), stream.dropped, stream.position) == (5, 16, 16)
    np.testing.assert_array_equal(stream.get(100), frames(16, 21))
    assert "max_frames=5, dropped=16" in repr(stream)


def test_ring_does_not_move_a_reader_that_is_ahead():
    """Drops of frames already read leave the read position alone."""
    stream = SequenceStream(frame_shape=(2,), max_frames=4)
    stream.put(frames(0, 4))
    stream.get(4)
    stream.put(frames(4, 6))
    assert (stream.dropped, stream.position) == (2, 4)
    np.testing.assert_array_equal(stream.get(5), frames(4, 6))


def test_ring_seek_takes_absolute_indices_and_refuses_dropped_frames():
    """seek(t) counts frames ever put; a dropped t or one past the end raises ValueError with the range."""
    stream = SequenceStream(frames(0, 12), max_frames=5)
    np.testing.assert_array_equal(stream.get(1), frames(7, 8))
    stream.seek(9)
    np.testing.assert_array_equal(stream.get(2), frames(9, 11))
    assert stream.seek(7) == 7
    assert stream.seek(12) == 12
    with pytest.raises(ValueError, match=r"t must be a frame index in \[7, 12\].*dropped.*got 6"):
        stream.seek(6)
    with pytest.raises(ValueError, match=r"\[7, 12\].*got 13"):
        stream.seek(13)
    assert stream.position == 12


def test_ring_matches_a_reference_model_under_random_operations():
    """Random puts, gets and seeks agree with a plain list model of a ring that skips dropped frames."""
    rng = np.random.default_rng(1)
    stream = SequenceStream(frame_shape=(2,), max_frames=7)
    total, position = 0, 0
    for _ in range(300):
        op = rng.integers(3)
        if op == 0:
            k = int(rng.integers(0, 12))
            stream.put(frames(total, total + k))
            total += k
        first = max(0, total - 7)
        position = max(position, first)
        if op == 1:
            n = int(rng.integers(0, 10))
            stop = min(position + n, total)
            np.testing.assert_array_equal(stream.get(n), frames(position, stop))
            position = stop
        if op == 2:
            position = int(rng.integers(first, total + 1))
            stream.seek(position)
        assert (len(stream), stream.dropped, stream.position) == (total - first, first, position)
    np.testing.assert_array_equal(stream.array(), frames(max(0, total - 7), total))


def test_array_returns_a_copy():
    """array() returns a new array; writing into it does not change the stream."""
    stream = SequenceStream(frames(0, 3))
    held = stream.array()
    held[:] = -1
    np.testing.assert_array_equal(stream.array(), frames(0, 3))


def test_array_after_close_is_refused():
    """array() on a closed stream raises StreamClosedError."""
    stream = SequenceStream(frames(0, 3))
    stream.close()
    with pytest.raises(StreamClosedError):
        stream.array()


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"max_frames": 0}, ValueError, "^max_frames must be a positive integer"),
    ({"max_frames": 2.5}, TypeError, "^max_frames must be a positive integer"),
    ({"dtype": torch.float32}, TypeError, "^dtype must be a numeric numpy dtype"),
    ({"dtype": "U4"}, TypeError, "^dtype must have a numeric dtype"),
    ({"dtype": "not a dtype"}, TypeError, "^dtype must be a numeric numpy dtype"),
])
def test_bad_arguments_are_refused_by_name(kwargs, error, match):
    """Bad max_frames and dtype values raise errors that name the argument."""
    with pytest.raises(error, match=match):
        SequenceStream(frame_shape=(2,), **kwargs)


def test_non_numeric_first_put_is_refused():
    """A first put of strings cannot set the dtype: TypeError names frames."""
    with pytest.raises(TypeError, match="^frames must have a numeric dtype"):
        SequenceStream().put(np.array([["a"]]))
