"""Streams: time-first ``(T, *frame)`` frame sources and sinks sharing one small API.

Every stream reads with ``get(n)``, appends with ``put(frames)``, reports
``len()`` where it knows it, and closes with ``close()`` or a ``with`` block.
"""

from streamreg.streams.arrays import ArrayStream
from streamreg.streams.base import Stream
from streamreg.streams.generators import GeneratorStream
from streamreg.streams.hdf5 import HDF5Stream
from streamreg.streams.noise import RandomStream
from streamreg.streams.queues import QueueStream
from streamreg.streams.sequences import SequenceStream

__all__ = [
    "ArrayStream",
    "GeneratorStream",
    "HDF5Stream",
    "QueueStream",
    "RandomStream",
    "SequenceStream",
    "Stream",
]
