"""QueueStream: a thread-safe bounded FIFO with back-pressure, end() and close()."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from streamreg.exceptions import ChunkShapeError, StreamClosedError
from streamreg.streams import QueueStream

WAIT = 5.0  # generous timeout so that a bug fails the test instead of hanging the suite
BLOCKED = 0.05  # how long a thread must stay blocked to count as blocked


def frames(start, stop):
    """(n, 2) frames whose values are their indices, so order and losses are visible."""
    return np.repeat(np.arange(start, stop, dtype=np.float32)[:, None], 2, axis=1)


class Worker(threading.Thread):
    """A daemon thread that records its result or exception."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.target, self.result, self.error = target, None, None
        self.done = threading.Event()

    def run(self):
        try:
            self.result = self.target()
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()


@pytest.fixture
def start():
    """Start Worker threads; after the test, fail if any is still alive."""
    workers = []

    def _start(target):
        worker = Worker(target)
        workers.append(worker)
        worker.start()
        return worker

    yield _start
    for worker in workers:
        worker.join(WAIT)
    assert not [w for w in workers if w.is_alive()], "a QueueStream worker thread is still blocked"


def test_producer_and_consumer_move_10000_frames_intact_and_in_order(start):
    """10,000 frames in random chunks through a 7-frame queue arrive whole and in order."""
    data = np.random.default_rng(0).random((10_000, 3)).astype(np.float32)
    queue = QueueStream((3,), maxsize=7)

    def produce():
        rng, i = np.random.default_rng(1), 0
        while i < len(data):
            k = int(rng.integers(1, 20))  # often larger than maxsize
            queue.put(data[i : i + k], timeout=WAIT)
            i += k
        queue.end()

    producer = start(produce)
    rng, parts = np.random.default_rng(2), []
    while True:
        chunk = queue.get(int(rng.integers(0, 25)), timeout=WAIT)
        parts.append(chunk)
        if queue.ended and len(chunk) == 0 and len(queue) == 0:
            break
    producer.join(WAIT)
    assert producer.error is None
    np.testing.assert_array_equal(np.concatenate(parts), data)
    assert queue.position == len(data)


def test_get_returns_exactly_n_frames_until_the_end(start):
    """Each get(n) returns n frames, also for n above maxsize, and fewer only after end()."""
    queue = QueueStream((2,), maxsize=3)
    producer = start(lambda: (queue.put(frames(0, 50), timeout=WAIT), queue.end()))
    sizes = [len(queue.get(n, timeout=WAIT)) for n in (1, 10, 4, 30, 8)]
    producer.join(WAIT)
    assert sizes == [1, 10, 4, 30, 5]


def test_put_blocks_while_the_queue_is_full(start):
    """A put into a full queue waits until a get makes room, then completes in order."""
    queue = QueueStream((2,), maxsize=4)
    queue.put(frames(0, 4))
    putter = start(lambda: queue.put(frames(4, 6), timeout=WAIT))
    assert not putter.done.wait(BLOCKED)
    np.testing.assert_array_equal(queue.get(3, timeout=WAIT), frames(0, 3))
    assert putter.done.wait(WAIT)
    assert putter.error is None
    np.testing.assert_array_equal(queue.get(3, timeout=WAIT), frames(3, 6))


def test_put_timeout_on_a_full_queue_reports_the_frames_queued():
    """A put that runs out of time raises TimeoutError saying how many of its frames were queued."""
    queue = QueueStream((2,), maxsize=4)
    queue.put(frames(0, 3))
    with pytest.raises(TimeoutError, match="1 of 3 frames were queued"):
        queue.put(frames(3, 6), timeout=0.01)
    np.testing.assert_array_equal(queue.get(4, timeout=0), frames(0, 4))


def test_get_timeout_raises_and_consumes_nothing():
    """A get that runs out of time raises TimeoutError and leaves the queued frames in place."""
    queue = QueueStream((2,), maxsize=8)
    queue.put(frames(0, 2))
    with pytest.raises(TimeoutError, match="nothing was consumed"):
        queue.get(3, timeout=0.01)
    assert len(queue) == 2
    assert queue.position == 0
    np.testing.assert_array_equal(queue.get(2, timeout=0), frames(0, 2))


def test_timed_out_get_larger_than_maxsize_gives_back_what_it_took(start):
    """A get(n > maxsize) that takes frames from a full queue and then times out puts them back in order."""
    queue = QueueStream((2,), maxsize=3)
    producer = start(lambda: queue.put(frames(0, 5), timeout=WAIT))
    with pytest.raises(TimeoutError):
        queue.get(10, timeout=0.2)
    np.testing.assert_array_equal(queue.get(5, timeout=WAIT), frames(0, 5))
    producer.join(WAIT)
    assert producer.error is None


def test_end_lets_get_drain_then_return_empty_and_refuses_put():
    """After end() get returns what is left (fewer than n), then empty arrays; put raises 'ended'."""
    queue = QueueStream((2,), maxsize=8)
    queue.put(frames(0, 3))
    queue.end()
    assert queue.ended
    with pytest.raises(StreamClosedError, match="ended"):
        queue.put(frames(3, 4))
    np.testing.assert_array_equal(queue.get(2), frames(0, 2))
    np.testing.assert_array_equal(queue.get(5), frames(2, 3))
    for _ in range(3):
        assert queue.get(5, timeout=0).shape == (0, 2)
    assert not queue.closed


def test_end_wakes_a_waiting_getter_with_the_frames_left(start):
    """A get waiting for more frames than will come returns the rest when end() is called."""
    queue = QueueStream((2,), maxsize=8)
    queue.put(frames(0, 2))
    getter = start(lambda: queue.get(5, timeout=WAIT))
    assert not getter.done.wait(BLOCKED)
    queue.end()
    assert getter.done.wait(WAIT)
    np.testing.assert_array_equal(getter.result, frames(0, 2))


def test_end_wakes_a_blocked_putter_with_stream_closed_error(start):
    """A put blocked on a full queue raises StreamClosedError when end() is called."""
    queue = QueueStream((2,), maxsize=2)
    queue.put(frames(0, 2))
    putter = start(lambda: queue.put(frames(2, 3), timeout=WAIT))
    assert not putter.done.wait(BLOCKED)
    queue.end()
    assert putter.done.wait(WAIT)
    assert isinstance(putter.error, StreamClosedError)
    assert "ended" in str(putter.error)


def test_close_wakes_a_blocked_getter_with_stream_closed_error(start):
    """close() makes a get waiting on an empty queue raise StreamClosedError."""
    queue = QueueStream((2,), maxsize=4)
    getter = start(lambda: queue.get(1, timeout=WAIT))
    assert not getter.done.wait(BLOCKED)
    queue.close()
    assert getter.done.wait(WAIT)
    assert isinstance(getter.error, StreamClosedError)


def test_close_wakes_a_blocked_putter_and_discards_the_frames(start):
    """close() makes a put waiting on a full queue raise StreamClosedError and empties the queue."""
    queue = QueueStream((2,), maxsize=2)
    queue.put(frames(0, 2))
    putter = start(lambda: queue.put(frames(2, 4), timeout=WAIT))
    assert not putter.done.wait(BLOCKED)
    queue.close()
    assert putter.done.wait(WAIT)
    assert isinstance(putter.error, StreamClosedError)
    assert len(queue) == 0
    assert queue.ended


def test_concurrent_getters_each_receive_contiguous_runs(start):
    """Two consumers reading 10 frames at a time each get runs of consecutive frames, together all of them."""
    queue = QueueStream((2,), maxsize=5)

    def consume():
        runs = []
        while len(run := queue.get(10, timeout=WAIT)):
            runs.append(run[:, 0])
        return runs

    consumers = [start(consume), start(consume)]
    queue.put(frames(0, 400), timeout=WAIT)
    queue.end()
    for consumer in consumers:
        consumer.join(WAIT)
    runs = [run for c in consumers for run in c.result]
    assert all(np.array_equal(np.diff(run), np.ones(len(run) - 1)) for run in runs)
    np.testing.assert_array_equal(np.sort(np.concatenate(runs)), np.arange(400))


def test_len_counts_queued_frames_and_queue_is_not_seekable():
    """len() is the number of queued frames; seek is unsupported; the stream is blocking."""
    queue = QueueStream((2,), maxsize=8)
    queue.put(frames(0, 5))
    queue.get(2)
    assert len(queue) == 3
    assert queue.blocking and queue.readable() and queue.writable() and not queue.seekable()
    with pytest.raises(io.UnsupportedOperation):
        queue.seek(0)
    assert "maxsize=8" in repr(queue)


def test_put_checks_frame_shape_and_dtype():
    """A put of the wrong frame shape raises ChunkShapeError; a lossy dtype raises TypeError."""
    queue = QueueStream((2,), dtype=np.int16, maxsize=8)
    with pytest.raises(ChunkShapeError, match=r"frames must have shape \(n, 2\)"):
        queue.put(np.ones((1, 3), dtype=np.int16))
    with pytest.raises(TypeError, match="without loss"):
        queue.put(np.ones((1, 2)))
    assert len(queue) == 0


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"maxsize": 0}, ValueError, "^maxsize must be a positive integer"),
    ({"maxsize": 1.0}, TypeError, "^maxsize must be a positive integer"),
    ({"dtype": "U3"}, TypeError, "^dtype must have a numeric dtype"),
])
def test_bad_arguments_are_refused_by_name(kwargs, error, match):
    """Bad maxsize and dtype values raise errors that name the argument."""
    with pytest.raises(error, match=match):
        QueueStream((2,), **kwargs)


@pytest.mark.parametrize(("timeout", "error"), [(-1, ValueError), ("1", TypeError), (float("nan"), ValueError)])
def test_bad_timeout_is_refused_by_name(timeout, error):
    """A negative, non-numeric or NaN timeout raises an error naming timeout, for get and put."""
    queue = QueueStream((2,))
    with pytest.raises(error, match="^timeout must be"):
        queue.get(1, timeout=timeout)
    with pytest.raises(error, match="^timeout must be"):
        queue.put(frames(0, 1), timeout=timeout)
