"""GeneratorStream: frames read from an iterable of ragged blocks."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import torch

from streamreg.exceptions import ChunkShapeError
from streamreg.streams import GeneratorStream


def frames(start, stop, width=2):
    """(n, width) frames whose values are their indices, so order and losses are visible."""
    return np.repeat(np.arange(start, stop, dtype=np.float64)[:, None], width, axis=1)


def ragged_blocks(sizes):
    """Consecutive blocks of the given sizes (zeros give empty blocks)."""
    bounds = np.cumsum([0, *sizes])
    return [frames(a, b) for a, b in itertools.pairwise(bounds)]


def test_get_joins_and_splits_ragged_blocks_into_exact_sizes():
    """Each get(n) returns exactly n frames across ragged and empty blocks, fewer only at the end."""
    rng = np.random.default_rng(0)
    sizes = [int(s) for s in rng.integers(0, 9, size=60)]
    total = sum(sizes)
    stream = GeneratorStream(iter(ragged_blocks(sizes)))
    parts = []
    while len(chunk := stream.get(n := int(rng.integers(0, 15)))) or n == 0:
        assert len(chunk) == n or sum(map(len, parts)) + len(chunk) == total
        parts.append(chunk)
    np.testing.assert_array_equal(np.concatenate(parts), frames(0, total))
    assert stream.get(3).shape == (0, 2)


def test_frame_shape_and_dtype_come_from_the_first_block_peeked_eagerly():
    """Without frame_shape/dtype the constructor takes the first block at once; with both it takes none."""
    taken = []

    def blocks():
        for i in range(3):
            taken.append(i)
            yield np.full((2, 3), i, dtype=np.int8)

    stream = GeneratorStream(blocks())
    assert (stream.frame_shape, stream.dtype, taken) == ((3,), np.dtype(np.int8), [0])
    lazy = GeneratorStream(blocks(), frame_shape=(3,), dtype=np.int16)
    assert taken == [0]
    assert lazy.get(1).dtype == np.int16
    assert taken == [0, 0]


def test_tensor_blocks_become_numpy_frames():
    """Tensor blocks are read as numpy frames of the matching dtype."""
    stream = GeneratorStream([torch.zeros(2, 3), torch.ones(1, 3)])
    chunk = stream.get(3)
    assert isinstance(chunk, np.ndarray) and chunk.dtype == np.float32
    np.testing.assert_array_equal(chunk[:, 0], [0.0, 0.0, 1.0])


def test_get_returns_copies_not_views_of_blocks():
    """The frames returned do not share memory with the blocks, even for a read inside one block."""
    block = frames(0, 10)
    chunk = GeneratorStream([block]).get(4)
    assert not np.shares_memory(chunk, block)


def test_wrong_block_shape_names_the_block_and_keeps_earlier_frames():
    """A block with another frame shape raises ChunkShapeError naming its index; frames read before it survive."""
    blocks = [frames(0, 2), frames(2, 3), np.ones((2, 5)), frames(3, 6)]
    stream = GeneratorStream(iter(blocks))
    with pytest.raises(ChunkShapeError, match=r"block 2 of the iterable must have shape \(n, 2\); got \(2, 5\)"):
        stream.get(5)
    np.testing.assert_array_equal(stream.get(10), np.concatenate([frames(0, 3), frames(3, 6)]))


@pytest.mark.parametrize(("bad", "error", "match"), [
    ([[1.0, 2.0]], TypeError, "block 1 of the iterable must be a numpy array or a torch tensor"),
    (np.ones(()), ChunkShapeError, "block 1 of the iterable must have shape"),
    (np.ones((1, 2), dtype=complex), TypeError, "block 1 of the iterable must have a numeric dtype"),
    (np.ones((1, 2), dtype=np.float32), TypeError, "block 1 of the iterable has dtype float32.*int16 without loss"),
    (np.ones((1, 2), dtype=np.int64), TypeError, "block 1 of the iterable has dtype int64.*int16 without loss"),
])
def test_bad_blocks_are_refused_by_index(bad, error, match):
    """Non-arrays, 0-d blocks, non-numeric and lossy-dtype blocks raise errors naming the block."""
    stream = GeneratorStream(iter([np.zeros((1, 2), dtype=np.int16), bad]))
    with pytest.raises(error, match=match):
        stream.get(2)


@pytest.mark.parametrize(("first", "later"), [(np.float32, np.float64), (np.float16, np.float32), (np.int8, np.int16),
                                               (np.float32, np.int64)])
def test_a_block_that_would_lose_precision_is_refused(first, later):
    """Blocks are cast only where numpy's casting="safe" allows: float64 into float32 would round, so it is refused."""
    value = np.array([[0.1, 300.0]]).astype(later)
    stream = GeneratorStream(iter([np.zeros((1, 2), dtype=first), value]))
    with pytest.raises(TypeError, match="cannot be cast to the stream's dtype .* without loss"):
        stream.get(2)


def test_a_widening_block_is_cast_exactly():
    """int16 blocks into a float32 stream: every value survives."""
    stream = GeneratorStream(iter([np.zeros((1, 2), dtype=np.float32), np.array([[-32768, 32767]], dtype=np.int16)]))
    got = stream.get(2)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got[1], [-32768.0, 32767.0])


def test_close_closes_a_generator():
    """close() closes the generator, running its cleanup."""
    cleaned = []

    def blocks():
        try:
            while True:
                yield np.zeros((3, 2))
        finally:
            cleaned.append(True)

    gen = blocks()
    stream = GeneratorStream(gen)
    stream.get(4)
    stream.close()
    assert cleaned == [True]
    assert gen.gi_frame is None


def test_close_of_a_plain_iterable_is_fine():
    """A list is not a generator; close() just forgets it."""
    stream = GeneratorStream([np.zeros((1, 2))])
    stream.close()
    assert stream.closed


def test_empty_iterable_needs_frame_shape_and_dtype():
    """An iterable with no blocks is refused unless frame_shape and dtype are given; then it is empty."""
    with pytest.raises(ValueError, match="give frame_shape and dtype"):
        GeneratorStream(iter([]))
    stream = GeneratorStream(iter([]), frame_shape=(4,), dtype=np.float32)
    assert stream.get(3).shape == (0, 4)


def test_length_is_unknown_and_the_stream_is_read_only():
    """len() raises TypeError, seek and put are unsupported."""
    stream = GeneratorStream([np.zeros((2, 2))])
    with pytest.raises(TypeError, match="does not know its length"):
        len(stream)
    assert stream.readable() and not stream.writable() and not stream.seekable()
    with pytest.raises(io.UnsupportedOperation):
        stream.seek(0)


def test_non_iterable_is_refused_by_name():
    """A non-iterable raises TypeError naming iterable."""
    with pytest.raises(TypeError, match="^iterable must be an iterable.*int"):
        GeneratorStream(3)
