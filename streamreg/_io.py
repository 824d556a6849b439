"""Private input sources and output sinks for :func:`streamreg.run.run_layer`.

A source reads frames ``[t0, t1)`` of a time-first recording; a sink writes
them into a preallocated result. Both hold at most one chunk in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import h5py
import numpy as np
import torch

from streamreg._hdf5 import H5Files, parse_h5_path, resolve_dataset
from streamreg._validation import check_numeric_dtype, shape_text
from streamreg.exceptions import ChunkShapeError, OutputExistsError

__all__ = ["Sink", "Source", "open_input", "prepare_output"]

_INPUT_FORMS = "a numpy array, a torch tensor, an h5py.Dataset or a string 'file.h5:/dataset'"
_OUTPUT_FORMS = (
    "None, a numpy array, an h5py.Dataset, an h5py.Group or File, or a string 'file.h5:/dataset'"
)
_DEFAULT_OUTPUT_NAME = "output"
_HDF5_CHUNK_BYTES = 1 << 20


@dataclass
class Source:
    """A time-first recording that can be read in slabs along axis 0."""

    data: Any  # numpy array, tensor or h5py.Dataset
    name: str

    def __post_init__(self) -> None:
        shape = tuple(self.data.shape)
        if len(shape) == 0:
            msg = f"{self.name} must have shape (T, *frame) with time on axis 0; got a 0-d array."
            raise ChunkShapeError(msg)
        check_numeric_dtype(self.data.dtype, self.name)
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


class Sink(Protocol):
    """Where chunk outputs go."""

    def write(self, t0: int, y: np.ndarray) -> None:
        """Write frames ``[t0, t0 + len(y))``."""

    def result(self) -> Any:
        """The finished output."""


class ArraySink:
    """Writes into a preallocated numpy array."""

    def __init__(self, out: np.ndarray) -> None:
        self.out = out

    def write(self, t0: int, y: np.ndarray) -> None:
        self.out[t0 : t0 + len(y)] = y

    def result(self) -> np.ndarray:
        return self.out


class DatasetSink:
    """Writes slabs into an HDF5 dataset and flushes at the end.

    ``created`` marks a dataset the run made itself; :meth:`discard` deletes it
    after a failure, so no half-written output is left behind.
    """

    def __init__(self, dataset: h5py.Dataset, created: bool = False) -> None:
        self.dataset = dataset
        self.created = created

    def discard(self) -> None:
        """Delete the dataset if this run created it."""
        if self.created and self.dataset.id.valid:
            parent, name = self.dataset.parent, self.dataset.name
            del parent[name]

    def write(self, t0: int, y: np.ndarray) -> None:
        self.dataset[t0 : t0 + len(y)] = y

    def result(self) -> h5py.Dataset:
        self.dataset.file.flush()
        return self.dataset


SinkFactory = Callable[[int, tuple[int, ...], np.dtype, int], Sink]


def prepare_output(output: Any, files: H5Files, *, overwrite: bool) -> SinkFactory:
    """Check ``output`` up front; return a factory ``(T, frame, dtype, dt) -> Sink``.

    Existence is checked now, so a run that would overwrite fails before any
    work. The dataset itself is created once the first chunk gives the output
    frame shape and dtype.
    """
    if output is None:
        return lambda n, frame, dtype, dt: ArraySink(np.empty((n, *frame), dtype=dtype))
    if isinstance(output, np.ndarray):
        return lambda n, frame, dtype, dt: ArraySink(_check_existing(output, n, frame, dtype, "output"))
    if isinstance(output, h5py.Dataset):
        _refuse_existing_data(output, overwrite)
        return lambda n, frame, dtype, dt: DatasetSink(_fit_dataset(output, n, frame, dtype))
    if isinstance(output, str):
        path, dataset = parse_h5_path(output, "output")
        group = files.open(path, write=True, name="output")
        return _dataset_factory(group, dataset, overwrite)
    if isinstance(output, h5py.Group):
        return _dataset_factory(output, _DEFAULT_OUTPUT_NAME, overwrite)
    msg = f"output must be {_OUTPUT_FORMS}; got {type(output).__name__}."
    raise TypeError(msg)


def _dataset_factory(group: h5py.Group, name: str, overwrite: bool) -> SinkFactory:
    existing = group.get(name)
    if existing is not None and not isinstance(existing, h5py.Dataset):
        msg = (
            f"output {name!r} in {group.file.filename!r} is a group, not a dataset; "
            "name a dataset path (a group is never replaced)."
        )
        raise OutputExistsError(msg)
    if existing is not None and not overwrite:
        msg = (
            f"output dataset {name!r} already exists in {group.file.filename!r}; "
            "pass overwrite=True to replace it."
        )
        raise OutputExistsError(msg)

    def make(n: int, frame: tuple[int, ...], dtype: np.dtype, dt: int) -> Sink:
        if name in group:
            del group[name]
        frame_bytes = max(1, math.prod(frame) * np.dtype(dtype).itemsize)
        chunk_t = max(1, min(dt, _HDF5_CHUNK_BYTES // frame_bytes))
        ds = group.create_dataset(
            name,
            shape=(n, *frame),
            maxshape=(None, *frame),
            chunks=(chunk_t, *(max(1, f) for f in frame)),
            dtype=dtype,
        )
        return DatasetSink(ds, created=True)

    return make


def _refuse_existing_data(ds: h5py.Dataset, overwrite: bool) -> None:
    if ds.shape and ds.shape[0] > 0 and not overwrite:
        msg = (
            f"output dataset {ds.name!r} in {ds.file.filename!r} already holds {ds.shape[0]} frames; "
            "pass overwrite=True to write over them."
        )
        raise OutputExistsError(msg)


def _fit_dataset(ds: h5py.Dataset, n: int, frame: tuple[int, ...], dtype: np.dtype) -> h5py.Dataset:
    _check_cast(dtype, ds.dtype, "output dataset")
    if tuple(ds.shape) == (n, *frame):
        return ds
    if ds.maxshape and ds.maxshape[0] is None and tuple(ds.shape[1:]) == frame:
        ds.resize(n, axis=0)
        return ds
    msg = (
        f"output dataset {ds.name!r} has shape {tuple(ds.shape)}; the run needs "
        f"{shape_text((n, *frame))} or a dataset resizable along axis 0 with frame {frame}."
    )
    raise ChunkShapeError(msg)


def _check_existing(out: np.ndarray, n: int, frame: tuple[int, ...], dtype: np.dtype, name: str) -> np.ndarray:
    if tuple(out.shape) != (n, *frame):
        msg = f"{name} array has shape {tuple(out.shape)}; the run needs {shape_text((n, *frame))}."
        raise ChunkShapeError(msg)
    _check_cast(dtype, out.dtype, name)
    return out


def _check_cast(dtype: np.dtype, target: np.dtype, name: str) -> None:
    if not np.can_cast(dtype, target, casting="same_kind"):
        msg = f"{name} has dtype {target}, which cannot hold the layer's {np.dtype(dtype)} output without loss."
        raise TypeError(msg)
