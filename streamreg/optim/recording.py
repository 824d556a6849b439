"""Private: a recording read in slabs along time by :func:`streamreg.optim.optimize`.

It reads through the same readers as ``run()`` and ``Runner``
(:func:`streamreg._run.endpoints.open_reader`), so every input form they accept works here,
any seekable stream included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from streamreg._hdf5 import H5Files
from streamreg._run.endpoints import open_reader
from streamreg.streams.base import Stream

__all__ = ["Recording", "open_recording", "to_tensor"]


class Recording:
    """A seekable stream of known length, read as slabs ``[t0, t1)``.

    Parameters
    ----------
    stream : Stream
        Readable, seekable, of known length; read from its current position.
    name : str
        The argument it came from, for messages.
    """

    def __init__(self, stream: Stream, name: str) -> None:
        if not stream.seekable() or stream.length is None:
            why = "cannot seek" if not stream.seekable() else "does not know its length"
            msg = (
                f"{name} must be a recording that can be read again (each step reads it forwards and "
                f"backwards); {stream!r} {why}."
            )
            raise ValueError(msg)
        self.stream, self.name = stream, name
        self.origin = stream.position
        self.n_frames = stream.length - self.origin
        self.frame_shape = tuple(stream.frame_shape or ())
        self.dtype = stream.dtype

    def read(self, t0: int, t1: int) -> np.ndarray | torch.Tensor:
        """Frames ``[t0, t1)``, counted from the stream's position when it was given."""
        self.stream.seek(self.origin + t0)
        return self.stream.get(t1 - t0)


def open_recording(data: Any, files: H5Files, name: str) -> Recording:
    """Any input form ``run()`` accepts, as a :class:`Recording`."""
    return Recording(open_reader(data, files, name), name)


def to_tensor(chunk: np.ndarray | torch.Tensor, dtype: torch.dtype, device: Any) -> torch.Tensor:
    """Copy a slab into a new tensor of ``dtype`` on ``device``.

    Always a copy, so a layer that works in place cannot change the caller's
    array; non-native byte order (common in HDF5 files) is converted.
    """
    if isinstance(chunk, torch.Tensor):
        return chunk.detach().to(device=device, dtype=dtype, copy=True)
    arr = np.asarray(chunk)
    native = arr.dtype.newbyteorder("=")
    return torch.from_numpy(np.array(arr, dtype=native, order="C", copy=True)).to(device=device, dtype=dtype)
