"""Private random-access input sources for :func:`streamreg.optim.optimize`.

A source reads frames ``[t0, t1)`` of a time-first recording, one chunk at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import torch

from streamreg._hdf5 import H5Files, parse_h5_path, resolve_dataset
from streamreg._validation import check_recording

__all__ = ["Source", "open_input", "to_tensor"]

_INPUT_FORMS = "a numpy array, a torch tensor, an h5py.Dataset or a string 'file.h5:/dataset'"


@dataclass
class Source:
    """A time-first recording that can be read in slabs along axis 0."""

    data: Any  # numpy array, tensor or h5py.Dataset
    name: str

    def __post_init__(self) -> None:
        shape = check_recording(self.data, self.name)
        self.n_frames = shape[0]
        self.frame_shape = shape[1:]

    def read(self, t0: int, t1: int) -> np.ndarray | torch.Tensor:
        """Frames ``[t0, t1)``."""
        return self.data[t0:t1]


def open_input(input: Any, files: H5Files, name: str = "input") -> Source:  # noqa: A002
    """Wrap any accepted input form in a :class:`Source`."""
    if isinstance(input, (np.ndarray, torch.Tensor, h5py.Dataset)):
        return Source(input, name)
    if isinstance(input, str):
        path, dataset = parse_h5_path(input, name)
        return Source(resolve_dataset(files.open(path, write=False, name=name), dataset, name), name)
    msg = f"{name} must be {_INPUT_FORMS}; got {type(input).__name__}."
    raise TypeError(msg)


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
