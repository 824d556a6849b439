"""A thread-safe bounded FIFO of frames between a producer and a consumer thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from streamreg._validation import check_nonnegative_int, check_positive_int, check_real
from streamreg.exceptions import StreamClosedError
from streamreg.streams.base import Stream
from streamreg.streams.sequences import _FrameRing, _numeric_numpy_dtype

__all__ = ["QueueStream"]


class QueueStream(Stream):
    """A bounded first-in first-out queue of frames with back-pressure.

    Parameters
    ----------
    frame_shape : sequence of int
        Shape of one frame.
    dtype : numpy dtype, default numpy.float32
        Element type (numeric); ``put`` casts to it, refusing lossy casts.
    maxsize : int, default 1024
        Most frames queued at once; ``put`` waits while the queue is full.

    Attributes
    ----------
    maxsize : int
        Most frames queued at once.

    Notes
    -----
    Shape: ``put`` takes ``(n, *frame)``; ``get(n)`` returns ``(≤ n, *frame)``;
    ``len()`` is the number of frames queued now. Not seekable.
    Threads: all methods may be called from any thread. ``put(frames, timeout)``
    feeds frames as room appears, so a put larger than ``maxsize`` is split; on
    timeout the frames fed so far stay queued and the message says how many.
    ``get(n, timeout)`` waits until ``n`` frames are queued (taking them from a
    full queue as they come when ``n > maxsize``) or the queue has ended; on
    timeout nothing is consumed. Concurrent gets (and puts) take turns, so each
    returns (or queues) one contiguous run of frames. ``timeout=None`` waits
    for ever; ``TimeoutError`` is raised when it runs out.
    End: :meth:`end` says no more frames will come: ``put`` then raises
    :class:`~streamreg.exceptions.StreamClosedError` and ``get`` drains the
    queue, then returns empty ``(0, *frame)`` arrays. :meth:`close` ends the
    queue and discards its frames; threads waiting in ``get`` or ``put`` wake
    and raise ``StreamClosedError``.

    Examples
    --------
    >>> q = QueueStream((2,), maxsize=4)
    >>> q.put(np.ones((3, 2), dtype=np.float32))
    >>> q.end()
    >>> q.get(5).shape, q.get(5).shape
    ((3, 2), (0, 2))
    """

    blocking = True

    def __init__(self, frame_shape: Sequence[int], dtype: Any = np.float32, maxsize: int = 1024) -> None:
        if frame_shape is None:
            msg = "frame_shape must be a sequence of non-negative integers; got None."
            raise TypeError(msg)
        super().__init__(frame_shape, _numeric_numpy_dtype(dtype, "dtype"))
        self.maxsize = check_positive_int(maxsize, "maxsize")
        self._ring = _FrameRing(self._frame_shape, self._dtype, max_capacity=self.maxsize)
        self._cond = threading.Condition()
        self._ended = False
        self._discarded = False
        self._reading = False  # a get is taking its frames; others wait their turn
        self._writing = False  # a put is feeding its frames; others wait their turn

    @property
    def ended(self) -> bool:
        """True once :meth:`end` or :meth:`close` has been called."""
        return self._ended

    def readable(self) -> bool:
        """True: frames are read with :meth:`get`."""
        return True

    def writable(self) -> bool:
        """True until the queue ends: frames are added with :meth:`put`."""
        return True

    @property
    def resizable(self) -> bool:
        """True: ``put`` takes any number of frames (it waits for room as they are taken)."""
        return True

    def get(self, n: int, timeout: float | None = None) -> np.ndarray:
        """Take the next ``n`` frames, ``(≤ n, *frame)``, waiting at most ``timeout`` seconds.

        Fewer than ``n`` only after :meth:`end`; raises ``TimeoutError``,
        consuming nothing, when ``timeout`` runs out first.
        """
        self._check_open("get")
        n = check_nonnegative_int(n, "n")
        deadline = _deadline(timeout)
        with self._cond:
            frames = self._read(n, deadline)
            self._position += len(frames)
        return frames

    def put(self, frames: Any, timeout: float | None = None) -> None:
        """Queue ``frames`` ``(n, *frame)``, waiting at most ``timeout`` seconds for room."""
        self._check_open("put")
        deadline = _deadline(timeout)
        frames = self._check_frames(frames)
        self._write(frames, deadline)

    def end(self) -> None:
        """Signal that no more frames will be put; a no-op if already ended or closed."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _length(self) -> int:
        with self._cond:
            return self._ring.held

    def _describe(self) -> str:
        return f"maxsize={self.maxsize}" + (", ended" if self._ended and not self._closed else "")

    def _get(self, n: int) -> np.ndarray:
        with self._cond:
            return self._read(n, None)

    def _put(self, frames: np.ndarray) -> None:
        self._write(frames, None)

    def _close(self) -> None:
        with self._cond:
            self._discarded = self._ended = True
            self._ring = _FrameRing(self._frame_shape, self._dtype, max_capacity=self.maxsize)
            self._cond.notify_all()

    # -- reading and writing under the condition's lock ----------------------------
    def _read(self, n: int, deadline: float | None) -> np.ndarray:
        if not self._wait(lambda: not self._reading, deadline, "get"):
            msg = f"QueueStream.get({n}) timed out waiting for another get to finish; nothing was consumed."
            raise TimeoutError(msg)
        self._reading = True
        try:
            return self._take(n, deadline)
        finally:
            self._reading = False
            self._cond.notify_all()

    def _take(self, n: int, deadline: float | None) -> np.ndarray:
        taken: list[np.ndarray] = []  # only this call's frames; the queue itself is the ring
        got = 0
        while True:
            need = n - got
            if not self._wait(partial(self._can_take, need), deadline, "get"):
                if taken:
                    self._ring.prepend(np.concatenate(taken))  # give back: a timed-out get consumes nothing
                msg = f"QueueStream.get({n}) timed out with {self._ring.held} frames queued; nothing was consumed."
                raise TimeoutError(msg)
            k = min(need, self._ring.held)
            if k:
                taken.append(self._ring.pop(k))
                got += k
                self._cond.notify_all()
            if got == n or self._ended:
                return _join(taken, self._frame_shape, self._dtype)

    def _can_take(self, need: int) -> bool:
        """True once ``need`` frames are queued, the queue is full, or it has ended."""
        return self._ended or self._ring.held >= min(need, self.maxsize)

    def _write(self, frames: np.ndarray, deadline: float | None) -> None:
        with self._cond:
            self._refuse_if_ended()
            if not self._wait(lambda: not self._writing, deadline, "put"):
                msg = f"QueueStream.put() timed out waiting for another put to finish; none of {len(frames)} queued."
                raise TimeoutError(msg)
            self._writing = True
            try:
                self._feed(frames, deadline)
            finally:
                self._writing = False
                self._cond.notify_all()

    def _feed(self, frames: np.ndarray, deadline: float | None) -> None:
        done = 0
        while done < len(frames):
            if not self._wait(lambda: self._ended or self._ring.held < self.maxsize, deadline, "put"):
                msg = f"QueueStream.put() timed out on a full queue; {done} of {len(frames)} frames were queued."
                raise TimeoutError(msg)
            self._refuse_if_ended()
            k = min(len(frames) - done, self.maxsize - self._ring.held)
            self._ring.append(frames[done : done + k])
            done += k
            self._cond.notify_all()

    def _wait(self, ready: Callable[[], bool], deadline: float | None, op: str) -> bool:
        """Wait until ``ready()``; False on timeout; raise if the queue is closed meanwhile."""
        while True:
            if self._discarded:
                msg = f"cannot {op} on a closed QueueStream; it was closed with close()."
                raise StreamClosedError(msg)
            if ready():
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._cond.wait(remaining)

    def _refuse_if_ended(self) -> None:
        if self._discarded:
            msg = "cannot put on a closed QueueStream; it was closed with close()."
            raise StreamClosedError(msg)
        if self._ended:
            msg = "cannot put on a QueueStream that has ended; end() was called, so no more frames are accepted."
            raise StreamClosedError(msg)


def _deadline(timeout: Any) -> float | None:
    """``time.monotonic()`` at which ``timeout`` (seconds ≥ 0, or None) runs out."""
    if timeout is None:
        return None
    timeout = check_real(timeout, "timeout")
    if timeout < 0:
        msg = f"timeout must be None or a finite number of seconds ≥ 0; got {timeout!r}."
        raise ValueError(msg)
    return time.monotonic() + timeout


def _join(parts: list[np.ndarray], frame_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if not parts:
        return np.empty((0, *frame_shape), dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
