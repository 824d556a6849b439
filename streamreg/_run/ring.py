"""A small ring of reused read buffers that never overwrites memory someone still holds.

The I/O thread reads each input chunk straight into a buffer of the ring
(``get_into``, for HDF5 ``read_direct``), so a run allocates no new memory per
chunk. The layer gets a view of the buffer, not a copy. A buffer is reused only
when nothing but the ring references its memory: a layer that keeps a view of its
input chunk in its state (or returns one as its output) keeps that buffer for
itself, and the ring takes a fresh one in its place. Torch counts the references
to a tensor's storage (every view, ``.numpy()`` array and ``from_numpy`` source
holds one), so the check cannot miss a holder.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["ReadRing"]

_use_count = getattr(torch._C, "_storage_Use_Count", None)  # absent: every chunk gets a fresh buffer


def _only_ring_holds(buf: torch.Tensor) -> bool:
    if _use_count is None:
        return False
    storage = buf.untyped_storage()  # this temporary handle counts as one reference, the ring's tensor as one
    return _use_count(storage._cdata) <= 2


class ReadRing:
    """``slots`` buffers of ``(capacity, *frame)`` frames of ``dtype``, handed out in turn.

    Parameters
    ----------
    frame : tuple of int
        Shape of one frame.
    dtype : numpy.dtype
        The reader's dtype (native byte order).
    slots : int
        Buffers in the ring: one being computed, one read ahead, one whose output may still be written.
    """

    def __init__(self, frame: tuple[int, ...], dtype: np.dtype, slots: int) -> None:
        self.frame, self.dtype = tuple(frame), np.dtype(dtype)
        self._buffers: list[torch.Tensor | None] = [None] * slots
        self._next = 0
        self.fresh = 0  # buffers allocated because the previous one was still held (or was too small)

    def take(self, n: int) -> tuple[torch.Tensor, np.ndarray]:
        """The next buffer for ``n`` frames: a tensor ``(n, *frame)`` and a numpy view of the same memory.

        The previous buffer of this slot is reused if only the ring still holds it
        and it has room for ``n`` frames; otherwise the slot gets a new buffer and
        the old memory is left to whoever holds it.
        """
        slot = self._next
        self._next = (slot + 1) % len(self._buffers)
        buf = self._buffers[slot]
        if buf is None or len(buf) < n or not _only_ring_holds(buf):
            buf = torch.from_numpy(np.empty((max(n, 1), *self.frame), dtype=self.dtype))
            self._buffers[slot] = buf
            self.fresh += 1
        view = buf[:n]
        return view, view.numpy()
