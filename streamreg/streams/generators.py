"""A read-only stream over an iterable (such as a generator) of frame blocks."""

from __future__ import annotations

import types
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from streamreg._validation import check_numeric_dtype, shape_text
from streamreg.exceptions import ChunkShapeError
from streamreg.streams.base import Stream, as_frames
from streamreg.streams.sequences import _numeric_numpy_dtype

__all__ = ["GeneratorStream"]


class GeneratorStream(Stream):
    """Read frames from an iterable of blocks, each ``(n_i, *frame)``.

    Parameters
    ----------
    iterable : iterable of numpy.ndarray or torch.Tensor
        Blocks of frames with time on axis 0. Block lengths may vary; empty
        blocks are skipped.
    frame_shape : sequence of int or None, default None
        Shape of one frame; ``None`` takes it from the first block.
    dtype : numpy dtype or None, default None
        Element type (numeric); ``None`` takes it from the first block. Later
        blocks are cast to it, refusing lossy casts.

    Notes
    -----
    Shape: ``get(n)`` returns exactly ``(n, *frame)`` by joining and splitting
    blocks, fewer only once the iterable is exhausted. Frames are numpy arrays;
    tensor blocks are moved to the CPU. The length is unknown (``len()`` raises
    ``TypeError``) and the stream is readable only, not seekable.
    Eager peek: when ``frame_shape`` or ``dtype`` is not given, the constructor
    takes the first block from the iterable at once and buffers it (running a
    generator up to its first ``yield``); an iterable with no blocks is refused.
    Blocks are otherwise taken only when ``get`` needs them. A block of the
    wrong shape raises :class:`~streamreg.exceptions.ChunkShapeError` naming
    its index; the frames read before it in that ``get`` are kept for the next.
    :meth:`close` closes a generator. :attr:`in_memory` is True for a list or
    tuple of blocks; a generator may do any work (read a file), so it is False.

    Examples
    --------
    >>> s = GeneratorStream(np.ones((k, 2)) for k in (1, 3, 2))
    >>> [len(c) for c in s.chunks(4)]
    [4, 2]
    """

    def __init__(
        self,
        iterable: Iterable[Any],
        *,
        frame_shape: Sequence[int] | None = None,
        dtype: Any = None,
    ) -> None:
        try:
            self._iterator = iter(iterable)
        except TypeError:
            msg = f"iterable must be an iterable of (n, *frame) blocks; got {type(iterable).__name__}."
            raise TypeError(msg) from None
        super().__init__(frame_shape, None if dtype is None else _numeric_numpy_dtype(dtype, "dtype"))
        self._blocks_taken = 0
        self._in_memory = isinstance(iterable, (list, tuple))
        self._exhausted = False
        self._block: np.ndarray | None = None  # the current block; frames before _offset were read
        self._offset = 0
        if self._frame_shape is None or self._dtype is None:
            self._peek()

    def readable(self) -> bool:
        """True: frames are read with :meth:`get`."""
        return True

    @property
    def in_memory(self) -> bool:
        """True when the iterable is a list or tuple of blocks; a generator may do any work, so False."""
        return self._in_memory

    def _peek(self) -> None:
        """Take the first block now to learn the frame shape and dtype."""
        self._block = self._next_block()
        if self._block is None:
            msg = "iterable yielded no blocks, so the frame shape and dtype are unknown; give frame_shape and dtype."
            raise ValueError(msg)

    def _get(self, n: int) -> np.ndarray:
        parts: list[np.ndarray] = []  # views of this call's frames, joined into one new array below
        got = 0
        while got < n:
            if self._block is None or self._offset == len(self._block):
                self._refill(parts)
                if self._block is None:
                    break
                continue
            k = min(n - got, len(self._block) - self._offset)
            parts.append(self._block[self._offset : self._offset + k])
            self._offset += k
            got += k
        if not parts:
            return np.empty((0, *self._frame_shape), dtype=self._dtype)
        return np.concatenate(parts)

    def _refill(self, parts: list[np.ndarray]) -> None:
        """Make the next block current; on error keep ``parts`` for the next get."""
        try:
            block = self._next_block()
        except Exception:
            if parts:
                self._block = np.concatenate(parts)
                self._offset = 0
            raise
        self._block, self._offset = block, 0

    def _next_block(self) -> np.ndarray | None:
        """The next block from the iterable as a numpy array, or None when exhausted."""
        if self._exhausted:
            return None
        try:
            raw = next(self._iterator)
        except StopIteration:
            self._exhausted = True
            return None
        index = self._blocks_taken
        self._blocks_taken += 1
        return self._conform(raw, f"block {index} of the iterable")

    def _conform(self, raw: Any, name: str) -> np.ndarray:
        """``raw`` as numpy frames of the stream's shape and dtype (learning them if unknown)."""
        block = as_frames(raw, name)
        check_numeric_dtype(block.dtype, name)
        if self._frame_shape is None:
            self._frame_shape = tuple(block.shape[1:])
        if self._dtype is None:
            self._dtype = block.dtype
        if tuple(block.shape[1:]) != self._frame_shape:
            msg = f"{name} must have shape {shape_text(('n', *self._frame_shape))}; got {tuple(block.shape)}."
            raise ChunkShapeError(msg)
        if block.dtype != self._dtype:
            if not np.can_cast(block.dtype, self._dtype, casting="safe"):
                msg = (
                    f"{name} has dtype {block.dtype}, which cannot be cast to the stream's dtype {self._dtype} "
                    "without loss (numpy casting='safe'); yield blocks of that dtype, or give the stream the wider one."
                )
                raise TypeError(msg)
            block = block.astype(self._dtype)
        return block

    def _close(self) -> None:
        if isinstance(self._iterator, types.GeneratorType):
            self._iterator.close()
        self._iterator = iter(())
        self._block = None
        self._exhausted = True
