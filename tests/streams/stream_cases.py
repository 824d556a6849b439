"""The table of readable streams, each built over the same kind of source data.

``tests/streams/test_common_streams.py`` runs the generic protocol checks over it.
Each case builds its stream from a source array; the expected frames come from
that array (or, for an infinite stream, from one big read of a fresh stream),
never from the code under test reading in the same way.
"""

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from streamreg.streams import (
    ArrayStream,
    GeneratorStream,
    HDF5Stream,
    QueueStream,
    RandomStream,
    SequenceStream,
    Stream,
)

T = 41  # prime, so most get sizes leave a ragged last read
FRAME = (4, 3)
LIMIT = 60  # frames read from an infinite stream


def to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """A numpy view of ``x`` for comparisons."""
    return x.numpy() if isinstance(x, torch.Tensor) else x


@dataclass
class StreamCase:
    """One row of the table: how to build the stream from its source data."""

    name: str
    build: Callable[[np.ndarray], Stream]
    seekable: bool = False
    infinite: bool = False
    tensor: bool = False
    sized: bool = True
    in_memory: bool = False
    writable: bool = False
    hdf5: bool = False

    def source(self) -> np.ndarray:
        """The source data ``(T, *FRAME)``, a fresh array each call."""
        return np.random.default_rng(5).random((T, *FRAME)).astype(np.float32)

    def open(self) -> tuple[Stream, np.ndarray]:
        """A fresh stream and the source array it was built from."""
        data = self.source()
        return self.build(data), data

    def expected(self) -> np.ndarray:
        """The frames the stream must give, from an independent reference."""
        if self.infinite:
            return self.build(self.source()).get(LIMIT)
        return self.source()

    @property
    def n_frames(self) -> int:
        """Frames to read: all of a finite stream, LIMIT of an infinite one."""
        return LIMIT if self.infinite else T

    def __str__(self) -> str:
        return self.name


def _queue(data: np.ndarray) -> QueueStream:
    q = QueueStream(data.shape[1:], maxsize=64)
    q.put(data)
    q.end()
    return q


def _ragged_blocks(data: np.ndarray) -> GeneratorStream:
    """Blocks of 0, 3, 1, 0, 13, 13 and 11 frames, one of them a tensor sharing memory with ``data``."""
    blocks = np.split(data, [0, 3, 4, 4, 17, 30])
    blocks[4] = torch.from_numpy(blocks[4])
    return GeneratorStream(iter(blocks))


_TMP = Path(tempfile.mkdtemp(prefix="streamreg-stream-cases-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
_COUNTER = itertools.count()


def _hdf5(data: np.ndarray) -> HDF5Stream:
    path = _TMP / f"case{next(_COUNTER)}.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data, chunks=(5, *data.shape[1:]))
    return HDF5Stream(f"{path}:/x")


def _nwb(data: np.ndarray) -> HDF5Stream:
    """An NWB TimeSeries group: the stream reads its ``data``."""
    path = _TMP / f"case{next(_COUNTER)}.h5"
    with h5py.File(path, "w") as f:
        ts = f.create_group("acquisition/stimulus")
        ts.attrs["neurodata_type"] = "TimeSeries"
        ts["data"] = data
    return HDF5Stream(f"{path}:/acquisition/stimulus")


def _hdf5_written(data: np.ndarray) -> HDF5Stream:
    """Written by an HDF5Stream in ragged puts, then read back through the same open stream."""
    path = _TMP / f"case{next(_COUNTER)}.h5"
    stream = HDF5Stream(f"{path}:/y", "w-", chunk_frames=4)
    for block in np.split(data, [0, 3, 20]):
        stream.put(block)
    return stream


def _listed_blocks(data: np.ndarray) -> GeneratorStream:
    """A list of blocks (already in memory) rather than a generator."""
    return GeneratorStream(np.split(data, [5, 6, 30]))


CASES = [
    StreamCase("ArrayStream-numpy", ArrayStream, seekable=True, in_memory=True),
    StreamCase("ArrayStream-tensor", lambda d: ArrayStream(torch.from_numpy(d)), seekable=True, tensor=True,
               in_memory=True),
    StreamCase("RandomStream", lambda d: RandomStream(FRAME, seed=11), seekable=True, infinite=True, sized=False,
               in_memory=True),
    StreamCase("SequenceStream", SequenceStream, seekable=True, in_memory=True, writable=True),
    StreamCase("QueueStream-ended", _queue, writable=True),
    StreamCase("GeneratorStream-ragged", _ragged_blocks, sized=False),
    StreamCase("GeneratorStream-list", _listed_blocks, sized=False, in_memory=True),
    StreamCase("HDF5Stream", _hdf5, seekable=True, hdf5=True),
    StreamCase("HDF5Stream-NWB", _nwb, seekable=True, hdf5=True),
    StreamCase("HDF5Stream-written", _hdf5_written, seekable=True, hdf5=True, writable=True),
]


def new_h5_path() -> Path:
    """A fresh file name in the table's temporary folder."""
    return _TMP / f"case{next(_COUNTER)}.h5"


@dataclass
class WriterCase:
    """One writable stream kind: how to build an empty one for frames of ``FRAME`` and a dtype."""

    name: str
    build: Callable[[np.dtype], Stream]
    read_back: Callable[[Stream], np.ndarray]

    def __str__(self) -> str:
        return self.name


def _h5_writer(mode: str) -> Callable[[np.dtype], Stream]:
    def build(dtype: np.dtype) -> HDF5Stream:
        return HDF5Stream(f"{new_h5_path()}:/g/y", mode, frame_shape=FRAME, dtype=dtype, chunk_frames=4)
    return build


def _h5_existing(dtype: np.dtype) -> HDF5Stream:
    """'a' on a dataset that exists already (and so fixes the dtype)."""
    path = new_h5_path()
    with h5py.File(path, "w") as f:
        f.create_dataset("y", shape=(0, *FRAME), maxshape=(None, *FRAME), chunks=(4, *FRAME), dtype=dtype)
    return HDF5Stream(f"{path}:/y", "a")


def _h5_fixed(dtype: np.dtype) -> HDF5Stream:
    """'r+' over a fixed-size dataset of 100 frames, written from frame 0."""
    path = new_h5_path()
    with h5py.File(path, "w") as f:
        f.create_dataset("y", shape=(100, *FRAME), chunks=(4, *FRAME), dtype=dtype)
    return HDF5Stream(f"{path}:/y", "r+")


def _h5_read_back(stream: Stream) -> np.ndarray:
    stream.flush()
    return stream.dataset[: stream.frames_written]


def _queue_read_back(stream: Stream) -> np.ndarray:
    stream.end()
    return stream.get(10**6)


WRITERS = [
    WriterCase("SequenceStream", lambda dt: SequenceStream(frame_shape=FRAME, dtype=dt), lambda s: s.array()),
    WriterCase("SequenceStream-ring", lambda dt: SequenceStream(frame_shape=FRAME, dtype=dt, max_frames=1000),
               lambda s: s.array()),
    WriterCase("QueueStream", lambda dt: QueueStream(FRAME, dtype=dt, maxsize=1000), _queue_read_back),
    WriterCase("HDF5Stream-w-", _h5_writer("w-"), _h5_read_back),
    WriterCase("HDF5Stream-w", _h5_writer("w"), _h5_read_back),
    WriterCase("HDF5Stream-a-new", _h5_writer("a"), _h5_read_back),
    WriterCase("HDF5Stream-a-existing", _h5_existing, _h5_read_back),
    WriterCase("HDF5Stream-r+-fixed", _h5_fixed, _h5_read_back),
]
