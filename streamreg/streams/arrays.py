"""A read-only, seekable stream over an array or tensor already in memory."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from streamreg._validation import check_recording
from streamreg.streams.base import Stream

__all__ = ["ArrayStream"]


class ArrayStream(Stream):
    """Read a ``(T, *frame)`` numpy array or torch tensor frame by frame.

    Parameters
    ----------
    data : numpy.ndarray or torch.Tensor
        The recording, ``(T, *frame)`` with time on axis 0, of a numeric dtype
        (bool, integer or real floating point). It is wrapped, not copied:
        changing ``data`` later changes what the stream reads.

    Notes
    -----
    Shape: ``get(n)`` returns ``(≤ n, *frame)``; ``len()`` is ``T``.
    Type: numpy data gives numpy copies and :attr:`dtype` is a ``numpy.dtype``;
    tensor data gives detached clones on the tensor's device and :attr:`dtype`
    is a ``torch.dtype``. The stream is readable and seekable, not writable.

    Examples
    --------
    >>> s = ArrayStream(np.arange(10.0).reshape(5, 2))
    >>> s.get(2).tolist(), s.get(9).shape
    ([[0.0, 1.0], [2.0, 3.0]], (3, 2))
    """

    def __init__(self, data: np.ndarray | torch.Tensor) -> None:
        data = _check_data(data)
        super().__init__(check_recording(data, "data")[1:], data.dtype)
        self._data: np.ndarray | torch.Tensor | None = data
        self._n_frames = int(data.shape[0])

    def readable(self) -> bool:
        """True: frames are read with :meth:`get`."""
        return True

    def seekable(self) -> bool:
        """True: any frame index in ``[0, T]`` can be sought."""
        return True

    @property
    def in_memory(self) -> bool:
        """True: reads touch only memory."""
        return True

    def _length(self) -> int:
        return self._n_frames

    def _get(self, n: int) -> np.ndarray | torch.Tensor:
        chunk = self._data[self._position : self._position + n]
        if isinstance(chunk, torch.Tensor):
            return chunk.detach().clone()
        return chunk.copy()

    def _get_into(self, out: np.ndarray, timeout: float | None) -> int:
        """Copy straight from the data into ``out``."""
        chunk = self._data[self._position : self._position + len(out)]
        k = len(chunk)
        if isinstance(chunk, torch.Tensor):
            torch.from_numpy(out[:k]).copy_(chunk.detach())
        else:
            np.copyto(out[:k], chunk, casting="safe")
        self._position += k
        return k

    def _seek(self, t: int) -> None:
        """Nothing to do: the base class moves the position."""

    def _close(self) -> None:
        self._data = None


def _check_data(data: Any) -> np.ndarray | torch.Tensor:
    if not isinstance(data, (np.ndarray, torch.Tensor)):
        msg = f"data must be a numpy array or a torch tensor of shape (T, *frame); got {type(data).__name__}."
        raise TypeError(msg)
    return data
