"""An infinite stream of reproducible uniform noise frames."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from streamreg._validation import check_nonnegative_int, check_real
from streamreg.streams.base import Stream

__all__ = ["RandomStream"]

_BLOCK_BYTES = 2**20  # frames are generated in blocks of about this many bytes


class RandomStream(Stream):
    """Endless uniform noise frames in ``[mean - level/2, mean + level/2)``.

    Parameters
    ----------
    frame_shape : sequence of int
        Shape of one frame; ``get(n)`` returns ``(n, *frame_shape)``.
    mean : float, default 0.5
        Centre of the uniform distribution.
    level : float, default 1.0
        Width of the distribution, ``≥ 0``; with ``0`` every value is ``mean``.
    seed : int or None, default None
        Non-negative seed. ``None`` draws fresh entropy once; it is stored in
        :attr:`seed` (and shown in the repr), so the stream can be reproduced.
    dtype : numpy floating dtype, default numpy.float32
        Element type of the frames.

    Attributes
    ----------
    seed : int
        The seed in use (drawn when ``seed=None`` was given).
    block_frames : int
        Frames per generated block, ``max(1, 2**20 // bytes per frame)``.

    Notes
    -----
    Shape: ``get(n)`` returns ``(n, *frame_shape)``; the stream never ends and
    ``len()`` raises ``TypeError``.
    Chunking: frame ``t`` depends only on ``seed`` and ``t``, not on the get
    sizes or seeks that led to it. Frames are drawn in blocks of about 1 MiB,
    block ``b`` from ``numpy.random.default_rng([seed, b])``; the current block
    is cached. Values are computed in ``dtype`` and kept below the upper bound.

    Examples
    --------
    >>> a = RandomStream((2,), seed=7).get(5)
    >>> s = RandomStream((2,), seed=7)
    >>> bool((np.concatenate([s.get(1), s.get(4)]) == a).all())
    True
    """

    infinite = True

    def __init__(
        self,
        frame_shape: Sequence[int],
        mean: float = 0.5,
        level: float = 1.0,
        seed: int | None = None,
        dtype: Any = np.float32,
    ) -> None:
        if frame_shape is None:
            msg = "frame_shape must be a sequence of non-negative integers; got None."
            raise TypeError(msg)
        super().__init__(frame_shape, _check_float_dtype(dtype))
        self.mean = check_real(mean, "mean")
        self.level = _check_level(level)
        self._low, self._width, self._high = _bounds(self.mean, self.level, self._dtype)
        self.seed = np.random.SeedSequence().entropy if seed is None else check_nonnegative_int(seed, "seed")
        frame_bytes = math.prod(self._frame_shape) * self._dtype.itemsize
        self.block_frames = max(1, _BLOCK_BYTES // max(1, frame_bytes))
        self._block_index = -1
        self._block: np.ndarray | None = None

    def readable(self) -> bool:
        """True: frames are read with :meth:`get`."""
        return True

    def seekable(self) -> bool:
        """True: any non-negative frame index can be sought."""
        return True

    @property
    def in_memory(self) -> bool:
        """True: frames are computed in memory."""
        return True

    def _describe(self) -> str:
        return f"seed={self.seed}"

    def _get(self, n: int) -> np.ndarray:
        out = np.empty((n, *self._frame_shape), dtype=self._dtype)
        self._fill(out)
        return out

    def _get_into(self, out: np.ndarray, timeout: float | None) -> int:
        """Draw straight into ``out``: the stream never ends, so all of it is filled."""
        self._fill(out)
        self._position += len(out)
        return len(out)

    def _fill(self, out: np.ndarray) -> None:
        """Frames ``[position, position + len(out))`` into ``out``."""
        n, done = len(out), 0
        while done < n:
            b, offset = divmod(self._position + done, self.block_frames)
            block = self._load_block(b)
            k = min(n - done, self.block_frames - offset)
            out[done : done + k] = block[offset : offset + k]
            done += k

    def _load_block(self, b: int) -> np.ndarray:
        """Frames ``[b · block_frames, (b + 1) · block_frames)``, cached."""
        if b != self._block_index:
            self._block = self._draw_block(b)
            self._block_index = b
        return self._block

    def _draw_block(self, b: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, b])
        shape = (self.block_frames, *self._frame_shape)
        draw_dtype = self._dtype if self._dtype in (np.float32, np.float64) else np.float64
        u = rng.random(shape, dtype=draw_dtype).astype(self._dtype, copy=False)
        block = self._low + self._width * u
        if self._high > self._low:  # rounding may reach the excluded upper bound
            np.minimum(block, np.nextafter(self._high, self._low), out=block)
        return block

    def _seek(self, t: int) -> None:
        """Nothing to do: frames are found from the position at the next get."""

    def _close(self) -> None:
        self._block = None
        self._block_index = -1


def _check_float_dtype(dtype: Any) -> np.dtype:
    try:
        np_dtype = None if dtype is None else np.dtype(dtype)
    except TypeError:
        np_dtype = None
    if np_dtype is None or np_dtype.kind != "f":
        msg = f"dtype must be a numpy floating-point dtype such as numpy.float32; got {dtype!r}."
        raise TypeError(msg)
    return np_dtype


def _check_level(level: Any) -> float:
    level = check_real(level, "level")
    if level < 0:
        msg = f"level must be a finite real number ≥ 0; got {level!r}."
        raise ValueError(msg)
    return level


def _bounds(mean: float, level: float, dtype: np.dtype) -> tuple[np.floating, np.floating, np.floating]:
    """``mean - level/2``, ``level`` and ``mean + level/2`` in ``dtype``; refuse values that overflow it."""
    with np.errstate(over="ignore"):
        values = dtype.type(mean - level / 2), dtype.type(level), dtype.type(mean + level / 2)
    if not np.isfinite(values).all():
        msg = f"mean - level/2, mean + level/2 and level must be finite in {dtype}; got mean={mean!r}, level={level!r}."
        raise ValueError(msg)
    return values
