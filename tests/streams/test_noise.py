"""RandomStream: reproducible, chunk-independent uniform noise."""

from __future__ import annotations

import numpy as np
import pytest

from streamreg.streams import RandomStream

BIG_FRAME = (128, 128)  # 64 KiB float32 frames: blocks of 16 frames, so reads cross block boundaries


def _documented_frames(seed, frame, start, stop):
    """Frames [start, stop) from the documented recipe: block b of L frames from default_rng([seed, b])."""
    block = max(1, 2**20 // (int(np.prod(frame)) * 4))
    rows = []
    for t in range(start, stop):
        b, i = divmod(t, block)
        rows.append(np.random.default_rng([seed, b]).random((block, *frame), dtype=np.float32)[i])
    return np.stack(rows)


def test_frames_follow_the_documented_block_recipe():
    """With mean 0.5 and level 1 frame t is draw t % L of default_rng([seed, t // L]), across block edges."""
    stream = RandomStream(BIG_FRAME, seed=3)
    assert stream.block_frames == 16
    stream.seek(10)
    np.testing.assert_array_equal(stream.get(30), _documented_frames(3, BIG_FRAME, 10, 40))


@pytest.mark.parametrize("sizes", [(1,), (15, 2, 1), (16,), (3, 31, 7), (45,)])
def test_frames_do_not_depend_on_get_sizes(sizes):
    """Any sequence of get sizes gives the frames of one big read from a fresh stream."""
    reference = RandomStream(BIG_FRAME, seed=9).get(45)
    stream = RandomStream(BIG_FRAME, seed=9)
    parts, i = [], 0
    while sum(len(p) for p in parts) < 45:
        parts.append(stream.get(sizes[i % len(sizes)]))
        i += 1
    np.testing.assert_array_equal(np.concatenate(parts)[:45], reference)


def test_frames_do_not_depend_on_seeks():
    """Seeking back and forth, across and within blocks, gives the same frames as a straight read."""
    reference = RandomStream(BIG_FRAME, seed=4).get(70)
    stream = RandomStream(BIG_FRAME, seed=4)
    for t in (50, 3, 3, 64, 15, 16, 0, 66):
        stream.seek(t)
        np.testing.assert_array_equal(stream.get(4), reference[t : t + 4])


def test_far_seek_matches_the_recipe():
    """Seeking a million frames ahead is cheap and still follows the recipe."""
    stream = RandomStream((3,), seed=2)
    stream.seek(10**6)
    np.testing.assert_array_equal(stream.get(2), _documented_frames(2, (3,), 10**6, 10**6 + 2))


def test_seed_none_draws_a_seed_that_reproduces_the_stream():
    """Without a seed the stream stores the one it drew, and that seed gives the same frames."""
    first = RandomStream((5,))
    assert isinstance(first.seed, int) and first.seed >= 0
    frames = first.get(20)
    np.testing.assert_array_equal(RandomStream((5,), seed=first.seed).get(20), frames)
    assert f"seed={first.seed}" in repr(first)
    assert RandomStream((5,)).seed != first.seed


def test_different_seeds_give_different_frames():
    """Two seeds give streams that differ almost everywhere."""
    a = RandomStream((10,), seed=0).get(100)
    b = RandomStream((10,), seed=1).get(100)
    assert np.mean(a == b) < 0.01


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_values_are_uniform_in_the_documented_interval(dtype):
    """Values lie in [mean - level/2, mean + level/2) with the mean and variance of a uniform distribution."""
    mean, level = 2.0, 0.5
    x = RandomStream((50,), mean=mean, level=level, seed=7, dtype=dtype).get(2000).astype(np.float64)
    assert x.dtype == np.float64
    assert x.min() >= mean - level / 2
    assert x.max() < mean + level / 2
    n = x.size
    assert abs(x.mean() - mean) < 5 * level / np.sqrt(12 * n)
    assert abs(x.var() - level**2 / 12) < 0.02 * level**2 / 12 + 1e-3 * level**2
    counts = np.histogram(x, bins=10, range=(mean - level / 2, mean + level / 2))[0]
    assert counts.min() > 0.9 * n / 10


def test_frames_have_the_requested_dtype_and_shape():
    """get(n) returns (n, *frame_shape) in the requested dtype."""
    chunk = RandomStream((2, 3), seed=0, dtype=np.float64).get(4)
    assert chunk.shape == (4, 2, 3)
    assert chunk.dtype == np.float64


def test_zero_level_gives_the_mean():
    """level=0 makes every value equal to the mean."""
    np.testing.assert_array_equal(RandomStream((3,), mean=-1.5, level=0, seed=0).get(5), np.full((5, 3), -1.5))


def test_stream_is_infinite_and_read_only():
    """len() raises TypeError saying the stream is infinite; put is unsupported."""
    stream = RandomStream((2,), seed=0)
    assert stream.infinite
    with pytest.raises(TypeError, match="infinite"):
        len(stream)
    assert stream.readable() and stream.seekable() and not stream.writable()


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"level": -0.1}, ValueError, "^level must be"),
    ({"level": float("nan")}, ValueError, "^level must be"),
    ({"mean": float("inf")}, ValueError, "^mean must be"),
    ({"mean": "0"}, TypeError, "^mean must be"),
    ({"dtype": np.int32}, TypeError, "^dtype must be a numpy floating"),
    ({"dtype": None}, TypeError, "^dtype must be a numpy floating"),
    ({"seed": -1}, ValueError, "^seed must be"),
    ({"seed": 1.5}, TypeError, "^seed must be"),
    ({"mean": 1e6, "dtype": np.float16}, ValueError, "must be finite in float16"),
])
def test_bad_arguments_are_refused_by_name(kwargs, error, match):
    """Bad mean, level, seed and dtype values raise errors that name the argument."""
    with pytest.raises(error, match=match):
        RandomStream((2,), **kwargs)


@pytest.mark.parametrize("frame_shape", [None, 3, (2, -1), (2.0,)])
def test_bad_frame_shape_is_refused_by_name(frame_shape):
    """A missing, scalar, negative or float frame_shape raises an error naming frame_shape."""
    with pytest.raises((TypeError, ValueError), match="^frame_shape must be"):
        RandomStream(frame_shape)
