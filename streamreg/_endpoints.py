"""Private: turn every accepted ``input`` / ``output`` form of ``run()`` and ``Runner`` into a stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import torch

from streamreg._hdf5 import H5Files, parse_h5_path, resolve_dataset
from streamreg._validation import check_numeric_dtype, check_recording
from streamreg.exceptions import ChunkShapeError, OutputExistsError
from streamreg.streams.arrays import ArrayStream
from streamreg.streams.base import Stream
from streamreg.streams.hdf5 import HDF5Stream

__all__ = ["ArrayWriter", "OutputSpec", "check_first_output", "open_reader", "open_writer"]

_INPUT_FORMS = "a numpy array, a torch tensor, an h5py.Dataset, a string 'file.h5:/dataset' or a readable Stream"
_OUTPUT_FORMS = (
    "None, a numpy array, an h5py.Dataset, an h5py.Group or File, a string 'file.h5:/dataset' or a writable Stream"
)
_DEFAULT_OUTPUT_NAME = "output"


def open_reader(input: Any, files: H5Files, name: str = "input") -> Stream:  # noqa: A002
    """Wrap any accepted input form in a readable stream (a given stream is used as is)."""
    if isinstance(input, Stream):
        if input.closed or not input.readable():
            why = "closed" if input.closed else "not readable"
            msg = f"{name} stream {input!r} is {why}."
            raise ValueError(msg)
        return input
    if isinstance(input, (np.ndarray, torch.Tensor)):
        check_recording(input, name)
        return ArrayStream(input)
    if isinstance(input, h5py.Dataset):
        check_recording(input, name)
        return HDF5Stream(input, "r")
    if isinstance(input, str):
        path, dataset = parse_h5_path(input, name)
        group = files.open(path, write=False, name=name)
        ds = resolve_dataset(group, dataset, name)
        check_recording(ds, name)
        return HDF5Stream(ds, "r")
    msg = f"{name} must be {_INPUT_FORMS}; got {type(input).__name__}."
    raise TypeError(msg)


class ArrayWriter(Stream):
    """Private writer into a numpy array: a given one (filled in place) or a new one.

    A new array is allocated on the first ``put`` (``n`` frames when the length is
    known, otherwise it grows by doubling); a given one must end exactly full.
    """

    def __init__(self, out: np.ndarray | None, n: int | None) -> None:
        super().__init__(None if out is None else out.shape[1:], None if out is None else out.dtype)
        self._out = out
        self._given = out is not None
        self._alloc = n
        self._n = 0

    def writable(self) -> bool:
        return True

    def _length(self) -> int:
        return self._n

    def _put(self, frames: np.ndarray) -> None:
        if self._out is None:
            self._frame_shape, self._dtype = tuple(frames.shape[1:]), frames.dtype
            self._out = np.empty((self._alloc or len(frames), *self._frame_shape), dtype=frames.dtype)
        end = self._n + len(frames)
        if end > len(self._out):
            if self._given:
                msg = f"output array has {len(self._out)} frames; the run produced more ({end} so far)."
                raise ChunkShapeError(msg)
            grown = np.empty((max(end, 2 * len(self._out)), *self._out.shape[1:]), dtype=self._out.dtype)
            grown[: self._n] = self._out[: self._n]
            self._out = grown
        self._out[self._n : end] = frames
        self._n = end

    def result(self, *, complete: bool = True) -> np.ndarray:
        """The filled array; a given array is returned itself, and must be full if the run ``complete``d."""
        if self._out is None:
            return np.empty((0,), dtype=np.float32)
        if complete and self._given and self._n != len(self._out):
            msg = f"output array has {len(self._out)} frames; the input gave {self._n}."
            raise ChunkShapeError(msg)
        return self._out if self._given else self._out[: self._n]


@dataclass
class OutputSpec:
    """What ``output`` names, resolved before any frame is computed."""

    writer: Stream
    owned: bool = False  # the run opened it and closes it
    filename: str | None = None  # HDF5 outputs: for checkpoints and SWMR
    dataset: str | None = None
    given_stream: bool = False  # the caller passed this stream: returned as is, never closed


def open_writer(
    output: Any,
    files: H5Files,
    *,
    n: int | None,
    overwrite: bool,
    append: bool = False,
    swmr: bool = False,
    chunk_frames: int | None = None,
) -> OutputSpec:
    """Resolve ``output`` into a writer for ``n`` frames (``None``: unknown).

    ``append`` opens an existing HDF5 dataset to continue it (resume). Existence and
    length are checked here, before any work; the output frame shape and dtype are
    checked against the first chunk (:func:`check_first_output`), and HDF5 datasets are
    created on the first ``put``, so a run that fails before its first chunk leaves no dataset.
    """
    if output is None:
        return OutputSpec(ArrayWriter(None, n))
    if isinstance(output, np.ndarray):
        if output.ndim == 0 or (n is not None and len(output) != n):
            msg = f"output array has shape {tuple(output.shape)}; the run needs {n} frames along axis 0."
            raise ChunkShapeError(msg)
        return OutputSpec(ArrayWriter(output, n))
    if isinstance(output, Stream):
        if output.closed or not output.writable():
            why = "closed" if output.closed else "not writable"
            msg = f"output stream {output!r} is {why}."
            raise ValueError(msg)
        return OutputSpec(output, given_stream=True)
    mode = "a" if append else ("w" if overwrite else "w-")
    kw = {"frame_shape": None, "dtype": None, "chunk_frames": chunk_frames, "swmr": swmr}
    if isinstance(output, h5py.Dataset):
        return OutputSpec(_existing_dataset(output, n, overwrite, append),
                          filename=output.file.filename, dataset=output.name)
    if isinstance(output, str):
        path, dataset = parse_h5_path(output, "output")
        group = files.open(path, write=True, name="output", swmr=swmr)
        writer = HDF5Stream(group, mode, name=dataset, **kw)
        return OutputSpec(writer, owned=True, filename=group.file.filename, dataset=dataset)
    if isinstance(output, h5py.Group):
        writer = HDF5Stream(output, mode, name=_DEFAULT_OUTPUT_NAME, **kw)
        return OutputSpec(writer, owned=True, filename=output.file.filename,
                          dataset=f"{output.name.rstrip('/')}/{_DEFAULT_OUTPUT_NAME}")
    msg = f"output must be {_OUTPUT_FORMS}; got {type(output).__name__}."
    raise TypeError(msg)


def check_first_output(writer: Stream, frame: tuple[int, ...], dtype: np.dtype) -> None:
    """The model's output frames must fit a writer that already has a frame shape and dtype."""
    if writer.frame_shape is not None and tuple(writer.frame_shape) != frame:
        msg = (
            f"the model gives frames of shape {frame}, but the output {writer!r} holds frames "
            f"of shape {tuple(writer.frame_shape)}."
        )
        raise ChunkShapeError(msg)
    if isinstance(writer.dtype, np.dtype):
        name = "output array" if isinstance(writer, ArrayWriter) else "output"
        _check_cast(dtype, writer.dtype, name)


def _existing_dataset(ds: h5py.Dataset, n: int | None, overwrite: bool, append: bool) -> HDF5Stream:
    check_numeric_dtype(ds.dtype, "output dataset")
    if append:
        return HDF5Stream(ds.parent, "a", name=ds.name)
    if ds.shape[0] > 0 and not overwrite:
        msg = (
            f"output dataset {ds.name!r} in {ds.file.filename!r} already holds {ds.shape[0]} frames; "
            "pass overwrite=True to write over them."
        )
        raise OutputExistsError(msg)
    resizable = ds.maxshape[0] is None
    if n is not None and ds.shape[0] != n and not resizable:
        msg = (
            f"output dataset {ds.name!r} has shape {tuple(ds.shape)}; the run needs "
            f"{n} frames or a dataset resizable along axis 0."
        )
        raise ChunkShapeError(msg)
    writer = HDF5Stream(ds, "r+")
    if resizable:
        writer.truncate(0)
    return writer


def _check_cast(dtype: np.dtype, target: np.dtype, name: str) -> None:
    if not np.can_cast(dtype, target, casting="same_kind"):
        msg = f"{name} has dtype {target}, which cannot hold the layer's {np.dtype(dtype)} output without loss."
        raise TypeError(msg)
