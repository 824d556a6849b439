"""Appending frames to a time-chunked HDF5 dataset in whole chunks, with rollback on a failed write.

HDF5 stores a chunked dataset chunk by chunk: writing a few frames into a chunk
rewrites (and, compressed, re-encodes) the whole chunk. :class:`ChunkWriter`
therefore keeps the frames of an incomplete chunk in memory and writes each
chunk once, when it is complete; large aligned puts are written straight from
the caller's array. A partial chunk reaches the file only on :meth:`flush`.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import h5py
import numpy as np

from streamreg.exceptions import ChunkShapeError, OutputExistsError

__all__ = ["ChunkWriter", "check_time_dataset", "create_time_dataset", "existing_output", "open_for_writing"]

_CHUNK_BYTES = 1 << 20  # HDF5 chunks of created datasets: about 1 MiB, so later reads stay fast
_MAX_BUFFER_BYTES = 64 << 20  # larger chunks are written through, as they come
PUBLISH_INTERVAL_S = 0.2  # a SWMR writer also publishes its partial chunk, at most this often


class ChunkWriter:
    """Write frames ``(n, *frame)`` to ``ds`` from frame ``start`` on, one whole HDF5 chunk at a time.

    Parameters
    ----------
    ds : h5py.Dataset
        The dataset ``(T, *frame)``; chunked along time, or contiguous (then every put is written through).
    start : int
        Frame index of the first frame to write.
    swmr : bool
        Switch the file to SWMR mode after the first write, and flush every chunk as it is written,
        so that readers see whole chunks, never one before its data. The partial last chunk is
        published too (written and flushed) on the first put and then at most every
        ``PUBLISH_INTERVAL_S`` seconds, so a live reader follows a slow run without every small
        put rewriting a chunk.

    Notes
    -----
    Frames ``[start, position)`` are either in the dataset or in the buffer. After a
    failed write the dataset's extent is cut back to the frames of the last
    successful :meth:`flush` (the only ones known to be on disk) and the writer
    refuses further use.
    """

    def __init__(self, ds: h5py.Dataset, start: int, *, swmr: bool) -> None:
        self.ds = ds
        self._swmr = swmr
        frame_bytes = math.prod(ds.shape[1:]) * ds.dtype.itemsize
        chunk = ds.chunks[0] if ds.chunks else None
        self._chunk = chunk if chunk and chunk * frame_bytes <= _MAX_BUFFER_BYTES else None
        self._start = start  # first frame in the buffer; frames before it are in the dataset
        self._held = 0
        self._buf: np.ndarray | None = None
        self._durable = int(ds.shape[0])  # extent known to be on disk (at open or the last flush)
        self._published = -math.inf  # time.monotonic() of the last SWMR write
        self.failed: OSError | None = None

    @property
    def position(self) -> int:
        """Index of the next frame to be written."""
        return self._start + self._held

    @property
    def buffered_from(self) -> int:
        """First frame that may be only in memory (``position`` when none is)."""
        return self._start if self._held else self.position

    # -- writing -------------------------------------------------------------------
    def put(self, frames: np.ndarray) -> None:
        """Append ``frames`` ``(n, *frame)`` (C-contiguous, the dataset's dtype)."""
        self._check_usable()
        c = self._chunk
        if c is None:
            self._write(self._start, frames)
            self._start += len(frames)
            return
        i = 0
        if self._held or self._start % c:
            i = self._fill(frames)
        whole = (len(frames) - i) // c * c
        if whole:
            self._write(self._start, frames[i : i + whole])
            self._start += whole
            i += whole
        if i < len(frames):
            self._buffer()[: len(frames) - i] = frames[i:]
            self._held = len(frames) - i
        if self._swmr and self._held and time.monotonic() - self._published >= PUBLISH_INTERVAL_S:
            self.spill()

    def _fill(self, frames: np.ndarray) -> int:
        """Add frames to the buffer up to the next chunk boundary; write it when full. Return frames taken."""
        boundary = (self._start // self._chunk + 1) * self._chunk
        k = min(len(frames), boundary - self.position)
        self._buffer()[self._held : self._held + k] = frames[:k]
        self._held += k
        if self.position == boundary:
            self._write(self._start, self._buf[: self._held])
            self._start, self._held = boundary, 0
        return k

    def _buffer(self) -> np.ndarray:
        if self._buf is None:
            self._buf = np.empty((self._chunk, *self.ds.shape[1:]), dtype=self.ds.dtype)
        return self._buf

    def spill(self) -> None:
        """Write the buffered frames (a partial chunk) to the dataset, keeping them buffered."""
        self._check_usable()
        if self._held:
            self._write(self._start, self._buf[: self._held])

    def flush(self) -> None:
        """Write the buffered frames and flush the file: everything put so far is on disk."""
        self.spill()
        try:
            self.ds.file.flush()
        except Exception as exc:
            raise self._failure(exc, f"flushing frames up to {self.position}") from exc
        self._durable = max(self.position, int(self.ds.shape[0]))

    def truncate(self, n: int) -> None:
        """Cut the dataset to ``n ≤ position`` frames, flush, and write from frame ``n`` on."""
        self.spill()
        try:
            if n < self.ds.shape[0]:
                self.ds.resize(n, axis=0)
            self._start, self._held = n, 0
            self.ds.file.flush()
        except Exception as exc:
            raise self._failure(exc, f"truncating to {n} frames") from exc
        self._durable = n

    def _write(self, t0: int, frames: np.ndarray) -> None:
        """Grow the dataset to hold frames ``[t0, t0 + n)``, write them, then publish them (SWMR)."""
        ds, t1 = self.ds, t0 + len(frames)
        try:
            if t1 > ds.shape[0]:
                ds.resize(t1, axis=0)
            if frames.size:
                ds.write_direct(frames, dest_sel=np.s_[t0:t1])
            if self._swmr:
                if ds.file.swmr_mode:
                    ds.flush()
                else:  # only now that data is in place: switching on flushes the metadata
                    ds.file.swmr_mode = True
                self._published = time.monotonic()
        except Exception as exc:
            raise self._failure(exc, f"writing frames [{t0}, {t1})") from exc

    # -- failures --------------------------------------------------------------------
    def _where(self) -> str:
        return f"dataset {self.ds.name!r} in {os.path.realpath(self.ds.file.filename)!r}"

    def _check_usable(self) -> None:
        if self.failed is not None:
            msg = f"{self._where()} takes no more frames: an earlier write failed ({self.failed})"
            raise OSError(msg)

    def _failure(self, exc: Exception, what: str) -> OSError:
        """The error to raise for a failed ``what``, after cutting the dataset back to its durable frames."""
        good = self._durable
        errno = getattr(exc, "errno", None)
        text = f"{what} of {self._where()} failed: {exc}; the dataset is cut back to the {good} frames on disk"
        error = OSError(errno, text) if errno else OSError(text)
        try:
            if self.ds.shape[0] > good:
                self.ds.resize(good, axis=0)
            self.ds.file.flush()
        except Exception as rollback:  # best effort: report it, keep the first error
            error.add_note(f"cutting {self._where()} back to {good} frames also failed: {rollback}")
        self.failed = error
        self._start, self._held = good, 0
        return error


def create_time_dataset(
    group: h5py.Group,
    name: str,
    frame: tuple[int, ...],
    dtype: Any,
    *,
    chunk_frames: int | None = None,
    compression: str | None = None,
) -> h5py.Dataset:
    """Create an empty ``(0, *frame)`` dataset, resizable and chunked along time.

    An uncompressed dataset is opened without an HDF5 chunk cache: :class:`ChunkWriter` writes whole
    chunks, which the cache would only copy once more on their way to the file (a 1 MiB chunk is
    just small enough to be cached by default). That saves a fifth to a half of a plain copy's CPU time.
    """
    frame_bytes = max(1, math.prod(frame) * np.dtype(dtype).itemsize)
    chunk_t = chunk_frames or max(1, _CHUNK_BYTES // frame_bytes)
    cache = {} if compression is not None else {"rdcc_nbytes": 0}
    return group.create_dataset(
        name,
        shape=(0, *frame),
        maxshape=(None, *frame),
        chunks=(chunk_t, *(max(1, f) for f in frame)),
        dtype=dtype,
        compression=compression,
        **cache,
    )


def open_for_writing(path: str, *, swmr: bool) -> h5py.File:
    """Open ``path`` for writing (creating it), with a chunk index that a failed write can be rolled back in.

    Datasets get HDF5 1.10 layouts (an extensible-array chunk index, which survives cutting the extent back
    after a full disk; the 1.8 B-tree lost chunks there). A new file keeps a version 0 superblock unless
    SWMR needs the latest one, so a killed writer leaves no "file is already open for write" flags behind.
    """
    if not swmr and not os.path.exists(path):
        h5py.File(path, "a").close()
    return h5py.File(path, "a", libver="latest" if swmr else ("v110", "latest"))


def check_time_dataset(ds: h5py.Dataset) -> None:
    """Refuse a scalar or null-dataspace dataset: a stream needs ``(T, *frame)``."""
    if not ds.shape:
        what = "a scalar" if ds.shape == () else "empty (no dataspace)"
        where = f"dataset {ds.name!r} in {ds.file.filename!r}"
        msg = f"{where} is {what}; a stream needs shape (T, *frame) with time on axis 0."
        raise ChunkShapeError(msg)


def existing_output(group: h5py.Group, name: str, mode: str) -> h5py.Dataset | None:
    """The dataset ``group[name]`` a writer in ``mode`` ("w-", "w", "a") appends to, or None to create one.

    "w-" refuses an existing dataset, "w" deletes it; a group is never replaced.
    """
    existing = group.get(name)
    where = group.file.filename
    if existing is not None and not isinstance(existing, h5py.Dataset):
        msg = f"{name!r} in {where!r} is a group, not a dataset; name a dataset path (a group is never replaced)."
        raise OutputExistsError(msg)
    if existing is None:
        return None
    if mode == "w-":
        msg = (
            f"dataset {name!r} already exists in {where!r} with {existing.shape[0] if existing.shape else 0} frames; "
            "use mode 'w' (overwrite=True) to replace it or 'a' to append."
        )
        raise OutputExistsError(msg)
    if mode == "w":
        del group[name]
        return None
    check_time_dataset(existing)  # mode "a"
    return existing
