"""The stream protocol, checked for every readable stream in ``stream_cases.CASES``."""

from __future__ import annotations

import io
import itertools
import os

import numpy as np
import pytest
import torch

import streamreg
from streamreg.exceptions import ChunkShapeError, StreamClosedError
from tests.streams.stream_cases import CASES, FRAME, WRITERS, T, to_numpy

SIZE_PATTERNS = [(1,), (0, 3, 1), (7, 0, 2, 11), (T - 1, 1), (T + 5,), (2, T + 100), (5, 0, 0, 13, 1)]


def read_with_sizes(stream, sizes, limit):
    """Read ``limit`` frames (or to the end) cycling through ``sizes``; check each get's length bound."""
    parts, got = [], 0
    for size in itertools.cycle(sizes):
        if got >= limit:
            break
        chunk = stream.get(size)
        assert len(chunk) <= size
        if size and not len(chunk):
            break
        parts.append(to_numpy(chunk).copy())
        got += len(chunk)
    return np.concatenate(parts)[:limit]


@pytest.mark.parametrize("sizes", SIZE_PATTERNS, ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_any_get_sizes_give_the_reference_frames(case, sizes):
    """Reading with any sequence of get sizes (1, 0, past the end) gives the reference frames in order."""
    stream, _ = case.open()
    np.testing.assert_array_equal(read_with_sizes(stream, sizes, case.n_frames), case.expected())


@pytest.mark.parametrize("case", CASES, ids=str)
def test_last_frame_is_not_dropped(case):
    """Reading T - 1 frames and then asking for more returns exactly the last frame."""
    if case.infinite:
        pytest.skip("an infinite stream has no last frame")
    stream, _ = case.open()
    assert len(stream.get(T - 1)) == T - 1
    last = stream.get(10)
    assert last.shape == (1, *FRAME)
    np.testing.assert_array_equal(to_numpy(last)[0], case.expected()[-1])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_get_past_the_end_returns_empty_again_and_again(case):
    """After the end every get returns an empty (0, *frame) array and never raises."""
    if case.infinite:
        pytest.skip("an infinite stream has no end")
    stream, _ = case.open()
    stream.get(T)
    for n in (1, 5, 0, 1000):
        chunk = stream.get(n)
        assert tuple(chunk.shape) == (0, *FRAME)
    assert stream.position == T


@pytest.mark.parametrize("case", CASES, ids=str)
def test_get_zero_returns_empty_frames_and_does_not_move(case):
    """get(0) returns a (0, *frame) array of the stream's type and leaves the position alone."""
    stream, _ = case.open()
    stream.get(3)
    chunk = stream.get(0)
    assert tuple(chunk.shape) == (0, *FRAME)
    assert isinstance(chunk, torch.Tensor) == case.tensor
    assert stream.position == 3


@pytest.mark.parametrize("case", CASES, ids=str)
def test_get_returns_the_stream_type_and_dtype(case):
    """Tensor-backed streams return tensors, the others numpy arrays, in the stream's dtype."""
    stream, _ = case.open()
    chunk = stream.get(4)
    assert isinstance(chunk, torch.Tensor) == case.tensor
    assert chunk.dtype == stream.dtype
    assert stream.frame_shape == FRAME


@pytest.mark.parametrize("case", CASES, ids=str)
def test_get_returns_new_arrays(case):
    """Writing into what get returned changes neither the source data nor later reads."""
    stream, data = case.open()
    for chunk in itertools.islice(stream.chunks(6), -(-case.n_frames // 6)):  # all of an infinite one: never
        chunk[...] = -1
    np.testing.assert_array_equal(data, case.source())
    if case.seekable:
        stream.seek(0)
        np.testing.assert_array_equal(to_numpy(stream.get(case.n_frames)), case.expected())


@pytest.mark.parametrize("dt", [1, 4, 7, T, T + 3])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_chunks_cover_the_stream(case, dt):
    """chunks(dt) yields (≤ dt, *frame) blocks, full except the last, that join to the reference."""
    stream, _ = case.open()
    chunks = list(itertools.islice(stream.chunks(dt), -(-case.n_frames // dt)))
    assert all(len(c) == dt for c in chunks[:-1])
    assert all(tuple(c.shape[1:]) == FRAME and 0 < len(c) <= dt for c in chunks)
    joined = np.concatenate([to_numpy(c) for c in chunks])[: case.n_frames]
    np.testing.assert_array_equal(joined, case.expected())
    if not case.infinite:
        assert list(stream.chunks(dt)) == []


@pytest.mark.parametrize("case", CASES, ids=str)
def test_seek_then_get_equals_slicing(case):
    """Where seekable, seek(t) then get(n) gives reference[t:t + n], also backwards and at the end."""
    stream, _ = case.open()
    if not case.seekable:
        assert not stream.seekable()
        with pytest.raises(io.UnsupportedOperation):
            stream.seek(0)
        return
    expected = case.expected()
    ends = (case.n_frames - 4,) if case.infinite else (case.n_frames - 1, case.n_frames)
    for t in (5, 0, 17, *ends, 2):
        assert stream.seek(t) == t
        np.testing.assert_array_equal(to_numpy(stream.get(4)), expected[t : t + 4])
        assert stream.position == min(t + 4, case.n_frames)


@pytest.mark.parametrize(("bad", "error"), [(-1, ValueError), (2.0, TypeError), (True, TypeError), ("3", TypeError)])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_n_is_refused_by_name(case, bad, error):
    """A negative, float, bool or string n raises an error that names n and consumes nothing."""
    stream, _ = case.open()
    with pytest.raises(error, match="^n must be"):
        stream.get(bad)
    np.testing.assert_array_equal(to_numpy(stream.get(2)), case.expected()[:2])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_closed_stream_refuses_get_and_put(case):
    """get and put on a closed stream raise StreamClosedError."""
    stream, data = case.open()
    stream.close()
    assert stream.closed
    with pytest.raises(StreamClosedError, match="closed"):
        stream.get(1)
    with pytest.raises(StreamClosedError, match="closed"):
        stream.put(data[:1])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_read_only_streams_refuse_put(case):
    """A stream that is not writable raises io.UnsupportedOperation on put."""
    stream, data = case.open()
    if stream.writable():
        pytest.skip("writable stream")
    with pytest.raises(io.UnsupportedOperation, match="put"):
        stream.put(data[:1])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_close_is_idempotent(case):
    """Calling close() twice is fine and leaves the stream closed."""
    stream, _ = case.open()
    stream.close()
    stream.close()
    assert stream.closed


@pytest.mark.parametrize("case", CASES, ids=str)
def test_context_manager_closes(case):
    """Leaving a with block closes the stream, also on an exception."""
    stream, _ = case.open()
    with stream as s:
        assert s is stream
        s.get(1)
    assert stream.closed
    other, _ = case.open()
    with pytest.raises(KeyError), other:
        raise KeyError
    assert other.closed


@pytest.mark.parametrize("case", CASES, ids=str)
def test_repr_shows_shape_position_and_state(case):
    """The repr names the class, the frame shape, the position and whether the stream is open."""
    stream, _ = case.open()
    stream.get(5)
    text = repr(stream)
    assert text.startswith(f"<{type(stream).__name__}")
    assert "(4, 3)" in text
    assert "position 5" in text
    assert text.endswith("open>")
    stream.close()
    assert repr(stream).endswith("closed>")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_len_where_known(case):
    """len() is the number of frames for sized streams; others raise TypeError."""
    stream, _ = case.open()
    if case.sized:
        assert len(stream) == T
    else:
        with pytest.raises(TypeError, match="len"):
            len(stream)
    assert bool(stream)


# -- the public members the run loop relies on ---------------------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
def test_length_is_len_or_none(case):
    """length is the frame count where len() works, None where it raises."""
    stream, _ = case.open()
    assert stream.length == (T if case.sized else None)
    stream.get(3)
    queued = case.name.startswith("QueueStream")  # its length is what is still queued
    assert stream.length == (T - 3 if queued else T if case.sized else None)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_in_memory_resizable_location_and_result(case):
    """in_memory, resizable and location say what the stream is; result() is the stream itself."""
    stream, _ = case.open()
    assert stream.in_memory is case.in_memory
    assert stream.resizable is case.writable
    if case.hdf5:
        path, dataset = stream.location
        assert os.path.isabs(path) and path == os.path.realpath(path)
        assert os.path.samefile(path, stream.dataset.file.filename)
        assert dataset == stream.dataset.name and dataset.startswith("/")
    else:
        assert stream.location is None
    assert stream.result() is stream


@pytest.mark.parametrize("case", CASES, ids=str)
def test_get_and_put_accept_a_timeout(case):
    """Every stream takes get(n, timeout=...) (only blocking ones use it)."""
    stream, data = case.open()
    np.testing.assert_array_equal(to_numpy(stream.get(3, timeout=1.0)), case.expected()[:3])
    np.testing.assert_array_equal(to_numpy(stream.get(2, 5.0)), case.expected()[3:5])
    if stream.writable() and not stream.blocking:
        stream.put(data[:1], timeout=0.5)


@pytest.mark.parametrize("sizes", [(1,), (7, 0, 2, 11), (T + 5,)], ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_get_into_gives_the_reference_frames(case, sizes):
    """get_into(out) fills out[:k] with the next k frames, returns k and moves the position as get does."""
    stream, _ = case.open()
    parts, got = [], 0
    for size in itertools.cycle(sizes):
        if got >= case.n_frames:
            break
        out = np.full((size, *FRAME), np.nan, dtype=np.float32)
        k = stream.get_into(out)
        assert 0 <= k <= size
        assert np.isnan(out[k:]).all()  # the rest is left alone
        if size and not k:
            break
        parts.append(out[:k].copy())
        got += k
        assert stream.position == got
    np.testing.assert_array_equal(np.concatenate(parts)[: case.n_frames], case.expected())
    if not case.infinite:
        assert stream.get_into(np.empty((4, *FRAME), dtype=np.float32)) == 0


@pytest.mark.parametrize("case", CASES, ids=str)
def test_get_into_widens_safely_and_refuses_bad_buffers(case):
    """A float64 buffer takes float32 frames; a lossy dtype, a wrong frame or a strided view is refused."""
    stream, _ = case.open()
    wide = np.empty((4, *FRAME), dtype=np.float64)
    assert stream.get_into(wide) == 4
    np.testing.assert_array_equal(wide, case.expected()[:4])
    with pytest.raises(TypeError, match="float16.*without loss"):
        stream.get_into(np.empty((2, *FRAME), dtype=np.float16))
    with pytest.raises(ChunkShapeError, match=r"out must have shape \(m, 4, 3\)"):
        stream.get_into(np.empty((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        stream.get_into(np.empty((4, *FRAME), dtype=np.float32)[::2])
    with pytest.raises(TypeError, match="out must be a numpy array"):
        stream.get_into([1, 2])
    assert stream.position == 4
    stream.close()
    with pytest.raises(StreamClosedError):
        stream.get_into(wide)


def _as_array(result):
    if isinstance(result, torch.Tensor):
        return result.numpy()
    if hasattr(result, "array"):  # a SequenceStream
        return result.array()
    return np.asarray(result[...])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_run_continues_from_a_partial_read(case):
    """After reading 3 frames, layer.run(stream, reset=False) gives the model applied to the rest.

    This also covers streams that cannot seek (a queue, a generator): the run starts where the reads stopped.
    """
    stream, _ = case.open()
    stream.get(3)
    layer = streamreg.Sequential(torch.nn.ReLU())
    kw = {"n_frames": case.n_frames - 3} if case.infinite else {}
    result = _as_array(layer.run(stream, 5, reset=False, progress=False, **kw))
    want = np.maximum(case.expected()[3:], 0)
    np.testing.assert_array_equal(result, want)


# -- writable streams ----------------------------------------------------------------

LOSSY = [(np.float32, np.float16), (np.int64, np.int8), (np.float64, np.float32), (np.int64, np.float32),
         (np.float32, np.int32), (np.uint16, np.int16)]
SAFE = [(np.float16, np.float32), (np.int16, np.float32), (np.uint8, np.int16), (np.bool_, np.float64),
        (np.int32, np.int64)]


def _frames(dtype, n=6):
    """n frames of FRAME with values 0, 1, 2, ... (exact in every dtype used here, bool: 0 and 1)."""
    values = np.arange(n * 12).reshape(n, *FRAME) % (2 if dtype is np.bool_ else 100)
    return values.astype(dtype)


@pytest.mark.parametrize(("src", "dst"), LOSSY, ids=str)
@pytest.mark.parametrize("writer", WRITERS, ids=str)
def test_put_refuses_lossy_casts(writer, src, dst):
    """A put that would change values (float32 into float16, int64 into int8, ...) is a TypeError naming both dtypes,
    and writes nothing."""
    stream = writer.build(np.dtype(dst))
    try:
        stream.put(_frames(dst, 2))
        with pytest.raises(TypeError, match=rf"dtype {np.dtype(src)} .*{np.dtype(dst)}.*without loss"):
            stream.put(_frames(src))
        with pytest.raises(TypeError, match="without loss"):
            stream.put(torch.from_numpy(_frames(src)))
        np.testing.assert_array_equal(writer.read_back(stream), _frames(dst, 2))
    finally:
        stream.close()


@pytest.mark.parametrize(("src", "dst"), SAFE, ids=str)
@pytest.mark.parametrize("writer", WRITERS, ids=str)
def test_put_makes_safe_casts(writer, src, dst):
    """Casts that keep every value (float16 into float32, int16 into float32, ...) are made."""
    stream = writer.build(np.dtype(dst))
    try:
        stream.put(_frames(src))
        back = writer.read_back(stream)
        assert back.dtype == np.dtype(dst)
        np.testing.assert_array_equal(back, _frames(src).astype(dst))
    finally:
        stream.close()


@pytest.mark.parametrize("writer", WRITERS, ids=str)
def test_writers_are_resizable_and_take_a_timeout(writer):
    """Writers say whether they grow without limit, take put(frames, timeout=...) and keep every frame."""
    stream = writer.build(np.dtype(np.float32))
    try:
        assert stream.writable()
        assert stream.resizable is (not writer.name.endswith("fixed"))
        stream.put(_frames(np.float32, 3), timeout=1.0)
        stream.put(_frames(np.float32, 2), 1.0)
        stream.flush()
        want = np.concatenate([_frames(np.float32, 3), _frames(np.float32, 2)])
        np.testing.assert_array_equal(writer.read_back(stream), want)
    finally:
        stream.close()
