"""Every accepted ``input`` and ``output`` form of ``run()`` and ``Runner`` as a stream.

String HDF5 outputs follow one convention in ``run()`` and ``Runner``: the run opens
and closes the file itself and hands back the string ``"file.h5:/dataset"``, never a
dataset whose file the caller would have to close. A dataset or group the caller
passed stays open and is handed back (its dataset). Arrays come back as arrays and
streams as themselves (:meth:`~streamreg.streams.Stream.result`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
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

__all__ = ["ArrayWriter", "Output", "check_first_output", "hdf5_location", "numpy_dtype", "open_reader", "open_writer"]

_INPUT_FORMS = "a numpy array, a torch tensor, an h5py.Dataset, a string 'file.h5:/dataset' or a readable Stream"
_OUTPUT_FORMS = (
    "None, a numpy array, an h5py.Dataset, an h5py.Group or File, a string 'file.h5:/dataset' or a writable Stream"
)
DEFAULT_OUTPUT_NAME = "output"


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
        ds = resolve_dataset(files.open(path, write=False, name=name), dataset, name)
        check_recording(ds, name)
        return HDF5Stream(ds, "r")
    msg = f"{name} must be {_INPUT_FORMS}; got {type(input).__name__}."
    raise TypeError(msg)


def hdf5_location(output: Any) -> tuple[str, str] | None:
    """``(file, dataset)`` an HDF5 output form names, or ``None`` for other forms."""
    if isinstance(output, str):
        return parse_h5_path(output, "output")
    if isinstance(output, h5py.Dataset):
        return output.file.filename, output.name
    if isinstance(output, h5py.Group):
        return output.file.filename, f"{output.name.rstrip('/')}/{DEFAULT_OUTPUT_NAME}"
    if isinstance(output, Stream) and output.location is not None:
        return output.location
    return None


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
        self.complete = True  # set False by a run that stopped early

    def writable(self) -> bool:
        return True

    @property
    def in_memory(self) -> bool:
        return True

    @property
    def resizable(self) -> bool:
        return not self._given

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

    def result(self) -> np.ndarray:
        """The filled array; a given array is returned itself, and must be full if the run was complete."""
        if self._out is None:
            return np.empty((0,), dtype=np.float32)
        if self.complete and self._given and self._n != len(self._out):
            msg = f"output array has {len(self._out)} frames; the input gave {self._n}."
            raise ChunkShapeError(msg)
        return self._out if self._given else self._out[: self._n]


@dataclass
class Output:
    """What ``output`` names, resolved before any frame is computed.

    ``owned``: the run opened the stream and closes it. ``result`` gives what the run returns.
    """

    writer: Stream
    result: Callable[[], Any]
    owned: bool = False


def open_writer(output: Any, files: H5Files, *, n: int | None, overwrite: bool, append: bool, swmr: bool,
                dtype: torch.dtype, name: str = DEFAULT_OUTPUT_NAME) -> Output:
    """Resolve ``output`` into a writer for ``n`` frames (``None``: unknown) of the model's ``dtype``.

    ``append`` opens an existing HDF5 dataset to continue it (resume); ``name`` is the dataset
    created in an ``h5py.Group`` output. Existence, length and
    a lossless dtype are checked here, before any work; HDF5 datasets are created on the first
    ``put``, so a run that fails before its first chunk leaves no dataset.
    """
    if isinstance(output, (np.ndarray, h5py.Dataset)):  # before a dataset is truncated for overwrite
        _check_cast(numpy_dtype(dtype), output.dtype, "output array" if isinstance(output, np.ndarray) else "output")
    out = _open_writer(output, files, n=n, overwrite=overwrite, append=append, swmr=swmr, name=name)
    if isinstance(out.writer.dtype, np.dtype):
        _check_cast(numpy_dtype(dtype), out.writer.dtype, "output")
    return out


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype of a torch dtype (float32 -> float32)."""
    return torch.empty(0, dtype=dtype).numpy().dtype


def _open_writer(output: Any, files: H5Files, *, n: int | None, overwrite: bool, append: bool, swmr: bool,
                 name: str) -> Output:
    if output is None:
        writer = ArrayWriter(None, n)
        return Output(writer, writer.result)
    if isinstance(output, np.ndarray):
        if output.ndim == 0 or (n is not None and len(output) != n):
            msg = f"output array has shape {tuple(output.shape)}; the run needs {n} frames along axis 0."
            raise ChunkShapeError(msg)
        writer = ArrayWriter(output, n)
        return Output(writer, writer.result)
    if isinstance(output, Stream):
        if output.closed or not output.writable():
            why = "closed" if output.closed else "not writable"
            msg = f"output stream {output!r} is {why}."
            raise ValueError(msg)
        return Output(output, output.result)
    if isinstance(output, h5py.Dataset):
        stream = _existing_dataset(output, n, overwrite, append)
        return Output(stream, lambda: stream.dataset)
    mode = "a" if append else ("w" if overwrite else "w-")
    if isinstance(output, str):
        path, dataset = parse_h5_path(output, "output")
        group = files.open(path, write=True, name="output", swmr=swmr)
        _check_new_dataset(group, dataset, append or overwrite)
        stream = HDF5Stream(group, mode, name=dataset, swmr=swmr)
        return Output(stream, lambda: output, owned=True)
    if isinstance(output, h5py.Group):
        _check_new_dataset(output, name, append or overwrite)
        stream = HDF5Stream(output, mode, name=name, swmr=swmr)
        return Output(stream, lambda: stream.dataset, owned=True)
    msg = f"output must be {_OUTPUT_FORMS}; got {type(output).__name__}."
    raise TypeError(msg)


def _check_new_dataset(group: h5py.Group, name: str, replace: bool) -> None:
    """A named output that exists must be a time series, and is kept unless ``overwrite``/``resume`` is given."""
    existing = group.get(name)
    if not isinstance(existing, h5py.Dataset):
        return  # missing (created on the first chunk), or a group (refused by HDF5Stream: never replaced)
    where = f"{existing.name!r} in {group.file.filename!r}"
    if not existing.shape:
        msg = f"output dataset {where} is a scalar; an output needs shape (T, *frame) with time on axis 0."
        raise ChunkShapeError(msg)
    if not replace:
        msg = (
            f"output dataset {where} already exists with {existing.shape[0]} frames; pass overwrite=True "
            "to replace it, or resume=True to continue a run that saved checkpoints (checkpoint_every)."
        )
        raise OutputExistsError(msg)


def _existing_dataset(ds: h5py.Dataset, n: int | None, overwrite: bool, append: bool) -> HDF5Stream:
    check_numeric_dtype(ds.dtype, "output dataset")
    if not ds.shape:
        msg = f"output dataset {ds.name!r} is a scalar; an output needs shape (T, *frame) with time on axis 0."
        raise ChunkShapeError(msg)
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


def check_not_input(reader: Stream, output: Any, files: H5Files) -> None:
    """Refuse an output that is the input dataset (by name, through a symlink, another handle or a link)."""
    where, there = reader.location, hdf5_location(output)
    if where is None or there is None or not os.path.exists(there[0]):
        return
    same_file = os.path.samefile(where[0], there[0])
    target = output if isinstance(output, h5py.Dataset) else _existing(files, there)
    source = getattr(reader, "dataset", None)
    same = same_file and (where[1] == there[1] or (target is not None and source is not None and target == source))
    if same:
        msg = (
            f"output {there[0]}:{there[1]} is the input dataset; writing would destroy the recording. "
            "Write to another dataset or file (overwrite=True does not change this)."
        )
        raise ValueError(msg)


def _existing(files: H5Files, location: tuple[str, str]) -> h5py.Dataset | None:
    handle = files.get(location[0])
    obj = None if handle is None else handle.get(location[1])
    return obj if isinstance(obj, h5py.Dataset) else None


def check_first_output(writer: Stream, frame: tuple[int, ...], dtype: np.dtype) -> None:
    """The model's output frames must fit a writer that already has a frame shape and dtype."""
    if writer.frame_shape is not None and tuple(writer.frame_shape) != frame:
        msg = (
            f"the model gives frames of shape {frame}, but the output {writer!r} holds frames "
            f"of shape {tuple(writer.frame_shape)}."
        )
        raise ChunkShapeError(msg)
    if isinstance(writer.dtype, np.dtype):
        _check_cast(dtype, writer.dtype, "output array" if isinstance(writer, ArrayWriter) else "output")


def _check_cast(dtype: np.dtype, target: np.dtype, name: str) -> None:
    if not np.can_cast(dtype, target, casting="safe"):
        msg = (
            f"{name} has dtype {target}, which cannot hold the layer's {np.dtype(dtype)} output without "
            "loss; give an output of a wider dtype (or none, for the model's own)."
        )
        raise TypeError(msg)
