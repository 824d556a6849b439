"""Private: a recording read in slabs along time by :func:`streamreg.optim.optimize`.

It reads through the same readers as ``run()`` and ``Runner``
(:func:`streamreg._run.endpoints.open_reader`), so every input form they accept works here,
any seekable stream included.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np
import torch

from streamreg._hdf5 import H5Files, parse_h5_path, resolve_dataset
from streamreg._run.endpoints import open_reader
from streamreg.streams.base import Stream

__all__ = ["Recording", "TrialRecording", "open_recording", "open_recordings", "to_tensor"]


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


class TrialRecording:
    """Trial ``index`` of a ``(n_trials, T, *frame)`` array or dataset, read as slabs ``[t0, t1)``."""

    def __init__(self, data: Any, index: int, name: str) -> None:
        self.data, self.index, self.name = data, index, f"{name}[{index}]"
        self.n_frames = int(data.shape[1])
        self.frame_shape = tuple(data.shape[2:])
        self.dtype = data.dtype

    def read(self, t0: int, t1: int) -> np.ndarray | torch.Tensor:
        """Frames ``[t0, t1)`` of this trial (only they are read from a file)."""
        return self.data[self.index, t0:t1]


def open_recording(data: Any, files: H5Files, name: str) -> Recording:
    """Any input form ``run()`` accepts, as a :class:`Recording`."""
    return Recording(open_reader(data, files, name), name)


def open_recordings(data: Any, files: H5Files, name: str, *, trials: bool = False) -> list[Any]:
    """One recording, a list or tuple of them, or (``trials=True``) a ``(n_trials, T, ...)`` block.

    Returns a list of :class:`Recording` / :class:`TrialRecording`, each with
    ``n_frames``, ``frame_shape``, ``dtype`` and ``read(t0, t1)``.
    """
    items = list(data) if isinstance(data, (list, tuple)) else [data]
    if not items:
        msg = f"{name} must hold at least one recording; got an empty {type(data).__name__}."
        raise ValueError(msg)
    if not trials:
        return [open_recording(d, files, name if len(items) == 1 else f"{name}[{i}]") for i, d in enumerate(items)]
    out: list[Any] = []
    for d in items:
        block = d
        if isinstance(d, str):
            path, dataset = parse_h5_path(d, name)
            block = resolve_dataset(files.open(path, write=False, name=name), dataset, name)
        if not isinstance(block, (np.ndarray, torch.Tensor, h5py.Dataset)) or block.ndim < 2:
            what = f"shape {tuple(block.shape)}" if hasattr(block, "shape") else type(block).__name__
            msg = (
                f"{name} with trials=True must be (n_trials, T, *frame) arrays, tensors, HDF5 datasets "
                f"or 'file.h5:/dataset' strings; got {what}."
            )
            raise ValueError(msg)
        out += [TrialRecording(block, i, name) for i in range(block.shape[0])]
    if not out:
        msg = f"{name} with trials=True holds no trials (n_trials = 0)."
        raise ValueError(msg)
    return out


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
