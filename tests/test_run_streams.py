"""run() over streams: any stream as input or output, n_frames for endless inputs, frames out = frames in."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from streamreg.filters import LowPass, TemporalFIR
from streamreg.streams import ArrayStream, GeneratorStream, QueueStream, RandomStream, SequenceStream
from tests.runner_models import one_shot

FRAME = (3, 2)


@pytest.fixture
def x():
    """Ninety-seven frames of (3, 2)."""
    return np.random.default_rng(4).normal(size=(97, *FRAME)).astype(np.float32)


@pytest.mark.parametrize("dt", [1, 5, 97, 200])
def test_stream_in_stream_out_equals_one_shot(x, dt):
    """An ArrayStream through a recursive filter into a SequenceStream gives the one-shot output."""
    out = SequenceStream()
    assert LowPass(3.0).run(ArrayStream(x), dt, output=out) is out
    np.testing.assert_array_equal(out.array(), one_shot(LowPass(3.0), x))


def test_a_stream_is_read_from_its_position(x):
    """A stream that was partly read gives the rest; the run covers exactly those frames."""
    stream = ArrayStream(x)
    stream.get(10)
    y = TemporalFIR(torch.ones(3)).run(stream, 8)
    np.testing.assert_array_equal(y, one_shot(TemporalFIR(torch.ones(3)), x[10:]))


def test_infinite_input_needs_n_frames():
    """A RandomStream without n_frames is refused; with it, exactly n_frames frames come out."""
    with pytest.raises(ValueError, match="infinite; pass n_frames="):
        LowPass(2.0).run(RandomStream(FRAME, seed=1), 10)
    y = LowPass(2.0).run(RandomStream(FRAME, seed=1), 7, n_frames=50)
    np.testing.assert_array_equal(y, one_shot(LowPass(2.0), RandomStream(FRAME, seed=1).get(50)))


def test_unknown_length_runs_to_the_end_and_n_frames_caps_it(x):
    """A generator runs until it ends; n_frames stops early; a shorter generator gives the frames it had."""
    def gen():
        return GeneratorStream(iter(np.array_split(x, 6)))

    with pytest.raises(ValueError, match="needs the input's length; pass dt="):
        LowPass(2.0).run(gen())
    np.testing.assert_array_equal(LowPass(2.0).run(gen(), 9), one_shot(LowPass(2.0), x))
    np.testing.assert_array_equal(LowPass(2.0).run(gen(), 9, n_frames=40), one_shot(LowPass(2.0), x[:40]))
    np.testing.assert_array_equal(LowPass(2.0).run(gen(), 9, n_frames=500), one_shot(LowPass(2.0), x))


def test_known_length_shorter_than_n_frames_is_refused(x):
    """n_frames past the end of a finite input raises naming both numbers."""
    with pytest.raises(ValueError, match="start \\+ n_frames = 98 is past the end of the input, which has 97"):
        LowPass(2.0).run(x, n_frames=98)


def test_queue_fed_by_another_thread(x):
    """A QueueStream filled by a producer thread and ended runs to the one-shot output, no frame lost."""
    queue = QueueStream(FRAME, maxsize=8)

    def produce():
        for block in np.array_split(x, 13):
            queue.put(block)
        queue.end()

    producer = threading.Thread(target=produce)
    producer.start()
    y = LowPass(2.0).run(queue, 5)
    producer.join(timeout=10)
    np.testing.assert_array_equal(y, one_shot(LowPass(2.0), x))


def test_reset_false_continues_into_the_same_output_stream(x):
    """Two runs with reset=False into one SequenceStream equal one run over the whole recording."""
    lp, out = LowPass(4.0), SequenceStream()
    lp.run(x[:40], 6, output=out)
    lp.run(x[40:], 6, output=out, reset=False)
    np.testing.assert_array_equal(out.array(), one_shot(LowPass(4.0), x))


def test_empty_stream_gives_an_empty_output_with_the_frame_shape():
    """A stream with no frames gives (0, *frame_out)."""
    y = LowPass(2.0).run(ArrayStream(np.zeros((0, *FRAME), dtype=np.float32)), 4)
    assert y.shape == (0, *FRAME)
