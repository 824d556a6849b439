"""The stream protocol: time-first frame sources and sinks with one small API.

A stream holds frames of one shape and dtype along axis 0. :meth:`Stream.get`
reads the next frames, :meth:`Stream.put` appends, :meth:`Stream.close` ends
the use of it. Concrete streams implement the private ``_get`` / ``_put`` /
``_seek`` / ``_close`` hooks; validation and the closed/position bookkeeping
live here, so every stream behaves the same at its boundaries.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from streamreg._validation import check_nonnegative_int, check_positive_int, shape_text
from streamreg.exceptions import ChunkShapeError, StreamClosedError
from streamreg.streams._frames import as_frames, check_frame_shape, check_out

__all__ = ["Stream", "as_frames"]


class Stream:
    """Base class of every stream: ``(T, *frame)`` frames read with ``get`` and appended with ``put``.

    Parameters
    ----------
    frame_shape : sequence of int or None
        Shape of one frame; ``None`` for a writer that learns it from its first ``put``.
    dtype : numpy.dtype, torch.dtype or None
        Element type; ``None`` for a writer that learns it from its first ``put``.

    Notes
    -----
    ``get(n)`` returns up to ``n`` frames: fewer only at the end of the stream,
    an empty ``(0, *frame)`` array after it; :meth:`get_into` reads into a given
    buffer instead. ``put(frames)`` appends ``(n, *frame)`` frames, casting only
    where no value can change (numpy ``casting="safe"``; float32 into float16 or
    int64 into int8 raise ``TypeError``). ``get`` and ``put`` take a ``timeout``
    that only :attr:`blocking` streams use. ``len(stream)`` is the number of frames
    when the stream knows it (``TypeError`` otherwise, as for any unsized object;
    :attr:`length` is ``None`` then); :attr:`infinite` streams never end.
    ``close()`` is idempotent; ``get``/``put`` afterwards raise
    :class:`~streamreg.exceptions.StreamClosedError`. A stream that cannot read,
    write or seek raises :class:`io.UnsupportedOperation` (an ``OSError`` and a
    ``ValueError``), as Python files do; :meth:`readable`, :meth:`writable` and
    :meth:`seekable` say which apply.
    """

    #: True for streams that never end (``len()`` raises ``TypeError``).
    infinite: bool = False
    #: True when ``get`` can wait for frames another thread has yet to ``put``.
    blocking: bool = False

    def __init__(self, frame_shape: Sequence[int] | None, dtype: Any) -> None:
        self._frame_shape = None if frame_shape is None else check_frame_shape(frame_shape)
        self._dtype = dtype
        self._position = 0
        self._closed = False

    # -- description ---------------------------------------------------------
    @property
    def frame_shape(self) -> tuple[int, ...] | None:
        """Shape of one frame (``None`` until a lazily created writer gets its first frames)."""
        return self._frame_shape

    @property
    def dtype(self) -> Any:
        """Element type of the frames (numpy dtype, or torch dtype for a tensor-backed stream)."""
        return self._dtype

    @property
    def position(self) -> int:
        """Index of the next frame ``get`` returns (frames read so far, plus any seek)."""
        return self._position

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def readable(self) -> bool:
        """True if :meth:`get` is supported."""
        return False

    def writable(self) -> bool:
        """True if :meth:`put` is supported."""
        return False

    def seekable(self) -> bool:
        """True if :meth:`seek` is supported."""
        return False

    @property
    def length(self) -> int | None:
        """Frames in the stream now, or ``None`` when unknown or infinite (``len()`` raises then)."""
        return self._length()

    @property
    def in_memory(self) -> bool:
        """True when ``get`` and ``put`` touch only process memory (no file, no waiting on another thread)."""
        return False

    @property
    def resizable(self) -> bool:
        """True when ``put`` can append without limit (False for read-only streams)."""
        return False

    @property
    def location(self) -> tuple[str, str] | None:
        """``(real path of the HDF5 file, absolute dataset path)`` for a file-backed stream, else ``None``."""
        return None

    def result(self) -> Any:
        """What ``run()`` and ``Runner`` hand back when this stream was their output: the stream itself."""
        return self

    def _length(self) -> int | None:
        """Frames in the stream now, or ``None`` when unknown or infinite."""
        return None

    def __len__(self) -> int:
        n = self._length()
        if n is None:
            why = "is infinite" if self.infinite else "does not know its length"
            msg = f"{type(self).__name__} {why}; it has no len()."
            raise TypeError(msg)
        return n

    def __bool__(self) -> bool:
        return True  # an empty stream is still a stream; never fall back to __len__

    def _describe(self) -> str:
        """Short identification for the repr (a path, a seed)."""
        return ""

    def __repr__(self) -> str:
        name = type(self).__name__
        what = self._describe()
        n = self._length()
        frames = "∞" if self.infinite else ("?" if n is None else str(n))
        frame = "?" if self._frame_shape is None else shape_text(self._frame_shape)
        dtype = "?" if self._dtype is None else str(self._dtype).replace("torch.", "")
        state = "closed" if self._closed else "open"
        where = f" {what}" if what else ""
        return f"<{name}{where}: {frames} frames of {frame} {dtype}, position {self._position}, {state}>"

    # -- I/O -------------------------------------------------------------------
    def _check_open(self, op: str) -> None:
        if self._closed:
            msg = f"cannot {op} on a closed {type(self).__name__}; it was closed with close()."
            raise StreamClosedError(msg)

    def _unsupported(self, op: str, why: str) -> io.UnsupportedOperation:
        return io.UnsupportedOperation(f"{type(self).__name__} does not support {op}(): {why}.")

    def get(self, n: int, timeout: float | None = None) -> np.ndarray | torch.Tensor:
        """Read the next ``n`` frames, ``(≤ n, *frame)``; fewer only at the end, none after it.

        The result is a new array that the caller may modify. ``timeout`` is
        accepted for every stream and used only by :attr:`blocking` ones.
        """
        self._check_open("get")
        n = check_nonnegative_int(n, "n")
        if not self.readable():
            error = self._unsupported("get", "it is write-only")
            raise error
        frames = self._get(n)
        self._position += len(frames)
        return frames

    def get_into(self, out: np.ndarray, timeout: float | None = None) -> int:
        """Read the next ``k ≤ len(out)`` frames into ``out[:k]`` and return ``k``, as :meth:`get` would.

        Parameters
        ----------
        out : numpy.ndarray
            Writable, C-contiguous buffer ``(m, *frame)`` whose dtype holds the
            stream's without loss (numpy ``casting="safe"``).
        timeout : float, optional
            As for :meth:`get`.

        Returns
        -------
        int
            Frames read; fewer than ``m`` only at the end of the stream.
        """
        self._check_open("get_into")
        if not self.readable():
            error = self._unsupported("get_into", "it is write-only")
            raise error
        check_out(out, self._frame_shape, self._dtype, type(self).__name__)
        return self._get_into(out, timeout)

    def _get_into(self, out: np.ndarray, timeout: float | None) -> int:
        """Default: :meth:`get` and a copy; streams that can read in place override it."""
        frames = self.get(len(out), timeout)
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
        k = len(frames)
        np.copyto(out[:k], frames, casting="safe")
        return k

    def put(self, frames: Any, timeout: float | None = None) -> None:
        """Append ``frames`` of shape ``(n, *frame)``; ``timeout`` is used only by :attr:`blocking` streams."""
        self._check_open("put")
        if not self.writable():
            error = self._unsupported("put", "it is read-only")
            raise error
        frames = self._check_frames(frames)
        if len(frames) or self._frame_shape is None:
            self._put(frames)

    def seek(self, t: int) -> int:
        """Move the read position to frame ``t``; return it."""
        self._check_open("seek")
        t = check_nonnegative_int(t, "t")
        if not self.seekable():
            error = self._unsupported("seek", "it is not seekable")
            raise error
        first, end, why = self._seek_bounds()
        if t < first or (end is not None and t > end):
            msg = f"t must be a frame index in [{first}, {end}] for this {type(self).__name__}{why}; got {t}."
            raise ValueError(msg)
        self._seek(t)
        self._position = t
        return t

    def chunks(self, dt: int) -> Iterator[np.ndarray | torch.Tensor]:
        """Yield the rest of the stream in chunks of ``dt`` frames (the last may be shorter)."""
        dt = check_positive_int(dt, "dt")
        while True:
            chunk = self.get(dt)
            if len(chunk) == 0:
                return
            yield chunk

    def flush(self) -> None:
        """Push written frames to their destination (a file); a no-op for memory streams."""
        self._check_open("flush")

    def close(self) -> None:
        """Release the stream's resources; calling it again does nothing."""
        if self._closed:
            return
        try:
            self._close()
        finally:
            self._closed = True

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hooks for subclasses ------------------------------------------------------
    def _get(self, n: int) -> np.ndarray | torch.Tensor:
        raise NotImplementedError

    def _put(self, frames: np.ndarray) -> None:
        raise NotImplementedError

    def _seek(self, t: int) -> None:
        raise NotImplementedError

    def _seek_bounds(self) -> tuple[int, int | None, str]:
        """First and last frame ``seek`` accepts (``None``: no end), and why earlier ones are not."""
        return 0, self._length(), ""

    def _close(self) -> None:
        """Release resources (called once)."""

    def _check_frames(self, frames: Any) -> np.ndarray:
        """Return ``frames`` as a numpy array ``(n, *frame)`` in the stream's dtype."""
        arr = as_frames(frames, "frames")
        if self._frame_shape is not None and tuple(arr.shape[1:]) != self._frame_shape:
            msg = (
                f"frames must have shape {shape_text(('n', *self._frame_shape))} to fit this "
                f"{type(self).__name__}; got {tuple(arr.shape)}."
            )
            raise ChunkShapeError(msg)
        if self._dtype is not None and isinstance(self._dtype, np.dtype) and arr.dtype != self._dtype:
            if not np.can_cast(arr.dtype, self._dtype, casting="safe"):
                msg = (
                    f"frames of dtype {arr.dtype} cannot be written to a {self._dtype} {type(self).__name__} "
                    "without loss (only casts numpy calls 'safe' are made); convert them explicitly."
                )
                raise TypeError(msg)
            arr = arr.astype(self._dtype)
        return arr

