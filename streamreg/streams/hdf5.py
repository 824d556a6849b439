"""HDF5 datasets as streams: read ``"file.h5:/dataset"`` or append to one, with live (SWMR) output."""

from __future__ import annotations

import os
import posixpath
from typing import Any

import h5py
import numpy as np

from streamreg._hdf5 import parse_h5_path, resolve_dataset
from streamreg._validation import check_choice, check_nonnegative_int, check_numeric_dtype, check_positive_int
from streamreg.exceptions import ChunkShapeError
from streamreg.streams._h5writer import (
    ChunkWriter,
    check_time_dataset,
    create_time_dataset,
    existing_output,
    open_for_writing,
)
from streamreg.streams.base import Stream

__all__ = ["HDF5Stream", "create_time_dataset"]

_MODES = ("r", "r+", "a", "w", "w-", "x")


class HDF5Stream(Stream):
    """A time-first HDF5 dataset ``(T, *frame)`` as a stream.

    Parameters
    ----------
    location : str, h5py.Dataset or h5py.Group
        ``"file.h5:/dataset"`` (the stream opens the file and closes it on
        :meth:`close`), an open dataset, or an open group with ``name``. An NWB
        TimeSeries group stands for its ``data`` dataset.
    mode : {"r", "r+", "a", "w", "w-", "x"}, default "r"
        As :class:`h5py.File`: ``"r"`` reads; ``"r+"`` writes over an existing dataset
        from frame 0; ``"a"`` appends to a dataset, creating it if missing; ``"w"``
        creates it, replacing an existing one; ``"w-"``/``"x"`` create it and raise
        :class:`~streamreg.exceptions.OutputExistsError` if it exists.
    name : str, optional
        Dataset name inside ``location`` when it is a group.
    frame_shape, dtype : optional
        Shape and dtype of a dataset to create; by default taken from the first ``put``.
    chunk_frames : int, optional
        HDF5 chunk length along time of a created dataset (default: about 1 MiB per chunk).
    compression : str, optional
        HDF5 filter of a created dataset (``"gzip"``, ``"lzf"``).
    swmr : bool, default False
        Writing: switch the file to single-writer/multiple-reader mode once the first
        frames are in the dataset, and flush every HDF5 chunk as it is written (the
        partial last one on the first put, then at most every 0.2 s), so other
        processes can read it while it grows (the file must have been opened with
        ``libver="latest"``; a string location is). Reading: open with ``swmr=True`` and
        see the frames flushed so far (:meth:`refresh`).

    Notes
    -----
    Created datasets are resizable and chunked along time, ``maxshape=(None, *frame)``,
    about 1 MiB per chunk. Writing: ``put`` keeps the frames of an incomplete HDF5
    chunk in memory and writes every chunk once, when it is complete (large aligned
    puts go straight from the caller's array), so small puts never rewrite a chunk.
    :meth:`flush` and :meth:`close` write the partial last chunk and flush the file:
    after ``flush()`` every frame put so far is on disk. A SWMR reader sees whole
    chunks as they are written, and a chunk never before its data.
    Errors: a failed write (a full disk) raises ``OSError`` naming the file and
    dataset, cuts the dataset back to the frames of the last successful ``flush()``
    (so it holds only frames written whole), and the stream takes no more frames;
    :meth:`close` still releases the file. Files opened from a string get HDF5 1.10
    object formats (readable by HDF5 ≥ 1.10; a new file keeps a version 0
    superblock unless ``swmr``). ``put`` refuses lossy casts (float32
    into float16, int64 into int8): ``TypeError``. Reading: ``get`` reads from the
    read position to at most the current length; :meth:`get_into` reads into a
    given buffer with ``Dataset.read_direct``, without allocating.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "s.h5")
    >>> with HDF5Stream(f"{path}:/y", "w-") as out:
    ...     out.put(np.zeros((3, 2), dtype=np.float32))
    ...     out.put(np.ones((2, 2), dtype=np.float32))
    >>> with HDF5Stream(f"{path}:/y") as s:
    ...     s.get(4).shape, s.get(4).shape, len(s)
    ((4, 2), (1, 2), 5)
    """

    def __init__(
        self,
        location: str | h5py.Dataset | h5py.Group,
        mode: str = "r",
        *,
        name: str | None = None,
        frame_shape: Any = None,
        dtype: Any = None,
        chunk_frames: int | None = None,
        compression: str | None = None,
        swmr: bool = False,
    ) -> None:
        mode = check_choice(mode, "mode", _MODES)
        self._mode = "w-" if mode == "x" else mode
        self._owns_file = isinstance(location, str)
        self._swmr = bool(swmr)
        self._create_kw = {"chunk_frames": chunk_frames, "compression": compression}
        if chunk_frames is not None:
            check_positive_int(chunk_frames, "chunk_frames")
        self._file: h5py.File | None = None
        self._group, self._name, ds = self._open(location, name)
        self._filename = self._group.file.filename
        self._write_pos = 0
        self._last_length = 0
        self._ds: h5py.Dataset | None = None
        self._writer: ChunkWriter | None = None
        try:
            ds = self._prepare(ds)
        except BaseException:
            self._release()
            raise
        if ds is not None:
            super().__init__(ds.shape[1:], ds.dtype)
        else:
            dt = None if dtype is None else check_numeric_dtype(np.dtype(dtype), "dtype")
            super().__init__(frame_shape, dt)
            if frame_shape is not None and dtype is not None:
                self._create(self._frame_shape, self._dtype)
        self._ds = self._ds if self._ds is not None else ds
        if self._ds is not None and self._mode != "r" and self._writer is None:
            self._writer = ChunkWriter(self._ds, self._write_pos, swmr=self._swmr)

    # -- opening ---------------------------------------------------------------
    def _open(self, location: Any, name: str | None) -> tuple[h5py.Group, str, h5py.Dataset | None]:
        if isinstance(location, str):
            path, dataset = parse_h5_path(location, "location")
            if self._mode == "r":
                kw = {"libver": "latest", "swmr": True} if self._swmr else {}
                self._file = h5py.File(path, "r", **kw)
            else:
                self._file = open_for_writing(path, swmr=self._swmr)
            group, name = self._file, dataset
        elif isinstance(location, h5py.Dataset):
            return location.parent, location.name, location
        elif isinstance(location, h5py.Group):
            if not isinstance(name, str) or not name:
                msg = f"name must be a dataset name when location is an h5py.Group; got {name!r}."
                raise ValueError(msg)
            group = location
        else:
            msg = (
                "location must be a string 'file.h5:/dataset', an h5py.Dataset or an h5py.Group; "
                f"got {type(location).__name__}."
            )
            raise TypeError(msg)
        if self._mode in ("r", "r+"):
            try:
                return group, name, resolve_dataset(group, name, "location")
            except BaseException:
                self._release()
                raise
        return group, name, None

    def _prepare(self, ds: h5py.Dataset | None) -> h5py.Dataset | None:
        if self._mode in ("r", "r+"):
            check_time_dataset(ds)
            return ds
        existing = existing_output(self._group, self._name, self._mode)
        self._write_pos = 0 if existing is None else existing.shape[0]
        return existing

    # -- protocol --------------------------------------------------------------
    @property
    def dataset(self) -> h5py.Dataset | None:
        """The underlying dataset (``None`` until a lazily created one gets its first frames)."""
        return self._ds

    @property
    def file(self) -> h5py.File | None:
        """The open file (``None`` until the dataset exists)."""
        return self._group.file if self._group is not None else None

    @property
    def frames_written(self) -> int:
        """Write position: frames written over or appended to the dataset (some may still be buffered)."""
        return self._write_pos if self._writer is None else self._writer.position

    @property
    def location(self) -> tuple[str, str]:
        """``(real path of the file, absolute dataset path)``; for a dataset yet to be created, the path it gets."""
        if self._ds is not None:
            return os.path.realpath(self._filename), self._ds.name
        return os.path.realpath(self._filename), posixpath.normpath(posixpath.join(self._group.name, self._name))

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return self._mode != "r"

    def seekable(self) -> bool:
        return True

    def _length(self) -> int | None:
        if self._ds is None:
            return 0
        if self._closed or not self._ds.id.valid:  # closed: the length it had
            return self._last_length
        if self._swmr and self._mode == "r":
            self._ds.refresh()
        n = int(self._ds.shape[0])
        self._last_length = n if self._writer is None else max(n, self._writer.position)
        return self._last_length

    def refresh(self) -> int:
        """Re-read the dataset's length (a SWMR reader sees frames flushed since); return it."""
        self._check_open("refresh")
        return self._length() or 0

    def _describe(self) -> str:
        filename = self._filename
        return f"{filename!r}:{self._ds.name if self._ds is not None else self._name}"

    def _get(self, n: int) -> np.ndarray:
        end = min(self._position + n, len(self))
        if self._ds is None or end <= self._position:
            return np.empty((0, *(self._frame_shape or ())), dtype=self._dtype)
        self._spill_before(end)
        return self._ds[self._position : end]

    def _get_into(self, out: np.ndarray, timeout: float | None) -> int:
        """Read with ``Dataset.read_direct`` straight into ``out``."""
        t0 = self._position
        k = max(0, min(len(out), len(self) - t0))
        if k and self._ds is not None and out.size:
            self._spill_before(t0 + k)
            self._ds.read_direct(out, np.s_[t0 : t0 + k], np.s_[0:k])
        self._position += k
        return k

    def _spill_before(self, end: int) -> None:
        """Before reading frames up to ``end`` back: write those still buffered to the dataset."""
        if self._writer is not None and end > self._writer.buffered_from:
            self._writer.spill()

    def _seek(self, t: int) -> None:
        """Nothing to do: reads index the dataset at the position."""

    def _put(self, frames: np.ndarray) -> None:
        if self._ds is None:
            self._frame_shape = tuple(frames.shape[1:])
            self._dtype = check_numeric_dtype(frames.dtype, "frames")
            self._create(self._frame_shape, self._dtype)
        ds, start = self._ds, self._writer.position
        end = start + len(frames)
        if ds.maxshape[0] is not None and end > ds.maxshape[0]:
            msg = (
                f"dataset {ds.name!r} holds at most {ds.maxshape[0]} frames and is not resizable; "
                f"cannot write frames [{start}, {end})."
            )
            raise ChunkShapeError(msg)
        self._writer.put(np.ascontiguousarray(frames))

    def truncate(self, n: int) -> None:
        """Cut the dataset to its first ``n`` frames, flush, and write from there (resizable datasets)."""
        self._check_open("truncate")
        n = check_nonnegative_int(n, "n")
        have = self._length() or 0
        if self._writer is None or n > have:
            msg = f"n must be at most the {have} frames the dataset holds; got {n}."
            raise ValueError(msg)
        self._writer.truncate(n)
        self._position = min(self._position, n)

    def flush(self) -> None:
        """Write every frame put so far (the partial last chunk too) and flush the file to disk."""
        self._check_open("flush")
        if self._writer is not None:
            self._writer.flush()

    def _close(self) -> None:
        try:
            if self._writer is not None and self._writer.failed is None and self._ds.id.valid:
                self._writer.flush()
        finally:
            try:
                self._length()
            finally:
                self._release()

    def _release(self) -> None:
        file, self._file = self._file, None
        if self._owns_file and file is not None:
            file.close()

    # -- creation -------------------------------------------------------------
    @property
    def resizable(self) -> bool:
        """True for a writer whose dataset grows without limit (``maxshape[0]`` is ``None``)."""
        return self.writable() and (self._ds is None or self._ds.maxshape[0] is None)

    def _create(self, frame: tuple[int, ...], dtype: np.dtype) -> None:
        self._ds = create_time_dataset(self._group, self._name, frame, dtype, **self._create_kw)
        self._write_pos = 0
        self._writer = ChunkWriter(self._ds, 0, swmr=self._swmr)

