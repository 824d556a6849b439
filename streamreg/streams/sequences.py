"""An in-memory stream that collects frames, optionally as a ring of the newest ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from streamreg._validation import check_nonnegative_int, check_numeric_dtype, check_positive_int, shape_text
from streamreg.exceptions import ChunkShapeError
from streamreg.streams.base import Stream, as_frames

__all__ = ["SequenceStream"]

_MIN_CAPACITY = 16  # frames allocated by the first growth of an empty buffer


class SequenceStream(Stream):
    """Frames held in memory: append with ``put``, read back with ``get``.

    Parameters
    ----------
    data : numpy.ndarray, torch.Tensor or None, default None
        Initial frames ``(T, *frame)``, copied in. They fix the frame shape and,
        unless ``dtype`` is given, the dtype.
    frame_shape : sequence of int or None, default None
        Shape of one frame when there is no ``data``. With neither, the shape
        and dtype are learned from the first ``put``.
    dtype : numpy dtype or None, default None
        Element type (numeric). Defaults to the dtype of ``data``, to
        ``numpy.float32`` with ``frame_shape``, else to the first ``put``.
    max_frames : int or None, default None
        Keep only the newest ``max_frames`` frames (a ring); ``None`` keeps all.

    Notes
    -----
    Shape: ``put`` takes ``(n, *frame)``; ``get(n)`` returns ``(≤ n, *frame)``
    from the read position; ``len()`` is the number of frames held now.
    Frames are indexed by when they were put: frame ``t`` is the ``t``-th frame
    ever put. The buffer grows by doubling. ``put`` always appends at the end,
    also after reads; frames put after the end was reached are read next.
    Ring: when ``max_frames`` is set, the oldest frames are dropped to make room
    and :attr:`dropped` counts them. Dropped frames that were not read yet are
    skipped: the read position moves to the oldest frame held. :meth:`seek`
    takes absolute indices and refuses a frame that was dropped.

    Examples
    --------
    >>> s = SequenceStream(frame_shape=(2,), max_frames=3)
    >>> s.put(np.arange(10, dtype=np.float32).reshape(5, 2))
    >>> s.dropped, s.position, s.get(1).tolist()
    (2, 2, [[4.0, 5.0]])
    """

    def __init__(
        self,
        data: np.ndarray | torch.Tensor | None = None,
        *,
        frame_shape: Sequence[int] | None = None,
        dtype: Any = None,
        max_frames: int | None = None,
    ) -> None:
        self._max_frames = None if max_frames is None else check_positive_int(max_frames, "max_frames")
        dtype = None if dtype is None else _numeric_numpy_dtype(dtype, "dtype")
        if data is not None:
            data = as_frames(data, "data")
            check_numeric_dtype(data.dtype, "data")
            frame_shape = data.shape[1:] if frame_shape is None else frame_shape
            dtype = data.dtype if dtype is None else dtype
        elif frame_shape is not None and dtype is None:
            dtype = np.dtype(np.float32)
        super().__init__(frame_shape, dtype)
        self._dropped = 0
        self._ring = None if frame_shape is None else _FrameRing(self._frame_shape, self._dtype)
        if data is not None:
            _check_data_shape(data, self._frame_shape)
            self._put(self._check_frames(data))

    @property
    def dropped(self) -> int:
        """Frames dropped from the ring so far (always 0 without ``max_frames``)."""
        return self._dropped

    @property
    def max_frames(self) -> int | None:
        """Most frames held at once, or ``None`` for no limit."""
        return self._max_frames

    def readable(self) -> bool:
        """True: frames are read with :meth:`get`."""
        return True

    def writable(self) -> bool:
        """True: frames are appended with :meth:`put`."""
        return True

    def seekable(self) -> bool:
        """True: any frame still held, or the end, can be sought."""
        return True

    @property
    def in_memory(self) -> bool:
        """True: frames live in process memory."""
        return True

    @property
    def resizable(self) -> bool:
        """True: ``put`` appends without limit (a ring drops its oldest frames instead of refusing)."""
        return True

    def truncate(self, n: int) -> None:
        """Keep only the frames before absolute index ``n`` (at least :attr:`dropped`); later puts follow them."""
        self._check_open("truncate")
        n = check_nonnegative_int(n, "n")
        first, end, why = self._seek_bounds()
        if not first <= n <= end:
            msg = f"n must be a frame index in [{first}, {end}] for this SequenceStream{why}; got {n}."
            raise ValueError(msg)
        if self._ring is not None:
            self._ring.held = n - self._dropped
        self._position = min(self._position, n)

    def array(self) -> np.ndarray:
        """Return a copy of the frames held, oldest first, ``(len(self), *frame)``."""
        self._check_open("array")
        ring = self._require_ring("array")
        return ring.read(0, ring.held)

    def _seek_bounds(self) -> tuple[int, int, str]:
        """Positions count every frame ever put: those dropped from the ring cannot be sought."""
        first = self._dropped
        why = f"; frames before {first} were dropped from the ring" if first else ""
        return first, first + self._length(), why

    def _seek(self, t: int) -> None:
        """Nothing to do: reads index the ring at the position."""

    def _length(self) -> int:
        return 0 if self._ring is None else self._ring.held

    def _describe(self) -> str:
        if self._max_frames is None:
            return ""
        return f"max_frames={self._max_frames}, dropped={self._dropped}"

    def _get(self, n: int) -> np.ndarray:
        ring = self._require_ring("get")
        offset = self._position - self._dropped
        return ring.read(offset, max(0, min(n, ring.held - offset)))

    def _get_into(self, out: np.ndarray, timeout: float | None) -> int:
        """Copy straight from the ring into ``out``."""
        ring = self._require_ring("get_into")
        offset = self._position - self._dropped
        k = max(0, min(len(out), ring.held - offset))
        ring.copy_out(offset, out[:k])
        self._position += k
        return k

    def _put(self, frames: np.ndarray) -> None:
        if self._ring is None:
            self._learn(frames)
        keep = frames if self._max_frames is None else frames[len(frames) - min(len(frames), self._max_frames) :]
        overflow = 0 if self._max_frames is None else max(0, self._ring.held + len(keep) - self._max_frames)
        self._ring.drop(overflow)
        self._ring.append(keep)
        self._dropped += overflow + len(frames) - len(keep)
        self._position = max(self._position, self._dropped)

    def _learn(self, frames: np.ndarray) -> None:
        """Take the frame shape and dtype from the first ``put``."""
        check_numeric_dtype(frames.dtype, "frames")
        self._frame_shape, self._dtype = tuple(frames.shape[1:]), frames.dtype
        self._ring = _FrameRing(self._frame_shape, self._dtype)

    def _require_ring(self, op: str) -> _FrameRing:
        if self._ring is None:
            msg = f"cannot {op} before the frame shape is known; give data or frame_shape, or put frames first."
            raise ValueError(msg)
        return self._ring

    def _close(self) -> None:
        self._ring = None


class _FrameRing:
    """Frames ``(held, *frame)`` in a circular numpy buffer that grows by doubling.

    ``max_capacity`` caps the doubling; :meth:`reserve` still grows past it when
    asked for more.
    """

    def __init__(self, frame_shape: tuple[int, ...], dtype: np.dtype, max_capacity: int | None = None) -> None:
        self._buf = np.empty((0, *frame_shape), dtype=dtype)
        self._head = 0
        self.held = 0
        self.max_capacity = max_capacity

    @property
    def capacity(self) -> int:
        """Frames the buffer can hold before it grows."""
        return len(self._buf)

    def reserve(self, n: int) -> None:
        """Grow the buffer, keeping the frames, so that it holds at least ``n`` frames."""
        if n <= self.capacity:
            return
        cap = max(2 * self.capacity, _MIN_CAPACITY)
        if self.max_capacity is not None:
            cap = min(cap, self.max_capacity)
        new = np.empty((max(n, cap), *self._buf.shape[1:]), dtype=self._buf.dtype)
        self.copy_out(0, new[: self.held])
        self._buf, self._head = new, 0

    def append(self, frames: np.ndarray) -> None:
        """Add ``frames`` after the newest frame."""
        self.reserve(self.held + len(frames))
        if len(frames):
            self._copy_in((self._head + self.held) % self.capacity, frames)
            self.held += len(frames)

    def prepend(self, frames: np.ndarray) -> None:
        """Add ``frames`` before the oldest frame (to give back frames taken)."""
        self.reserve(self.held + len(frames))
        if len(frames):
            self._head = (self._head - len(frames)) % self.capacity
            self._copy_in(self._head, frames)
            self.held += len(frames)

    def read(self, offset: int, k: int) -> np.ndarray:
        """A new array of the ``k`` frames starting ``offset`` frames after the oldest."""
        out = np.empty((k, *self._buf.shape[1:]), dtype=self._buf.dtype)
        self.copy_out(offset, out)
        return out

    def drop(self, k: int) -> None:
        """Forget the ``k`` oldest frames."""
        if k:
            self._head = (self._head + k) % self.capacity
            self.held -= k

    def pop(self, k: int) -> np.ndarray:
        """Remove and return the ``k`` oldest frames."""
        out = self.read(0, k)
        self.drop(k)
        return out

    def _copy_in(self, start: int, frames: np.ndarray) -> None:
        first = min(len(frames), self.capacity - start)
        self._buf[start : start + first] = frames[:first]
        self._buf[: len(frames) - first] = frames[first:]

    def copy_out(self, offset: int, out: np.ndarray) -> None:
        """Copy the ``len(out)`` frames starting ``offset`` frames after the oldest into ``out``."""
        if not len(out):
            return
        start = (self._head + offset) % self.capacity
        first = min(len(out), self.capacity - start)
        out[:first] = self._buf[start : start + first]
        out[first:] = self._buf[: len(out) - first]


def _numeric_numpy_dtype(dtype: Any, name: str) -> np.dtype:
    """``dtype`` as a numeric numpy dtype; torch dtypes and non-numeric kinds are refused."""
    msg = f"{name} must be a numeric numpy dtype (bool, integer or real floating point); got {dtype!r}."
    if isinstance(dtype, torch.dtype):
        raise TypeError(msg)
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(msg) from None
    return check_numeric_dtype(np_dtype, name)


def _check_data_shape(data: np.ndarray, frame_shape: tuple[int, ...]) -> None:
    if tuple(data.shape[1:]) != frame_shape:
        msg = (
            f"data must have shape {shape_text(('T', *frame_shape))} to match frame_shape; "
            f"got {tuple(data.shape)}."
        )
        raise ChunkShapeError(msg)
