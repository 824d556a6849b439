"""Exceptions raised by streamreg.

Each subclasses the builtin it means, so callers can catch ``ValueError``,
``KeyError`` or ``FileExistsError`` without importing streamreg.
"""

from __future__ import annotations

__all__ = [
    "ChunkShapeError",
    "DatasetNotFoundError",
    "NotFittedError",
    "OutputExistsError",
    "RunnerError",
    "StreamClosedError",
]


class ChunkShapeError(ValueError):
    """A chunk or time series does not have the shape a layer or stream expects."""


class StreamClosedError(ValueError):
    """I/O was attempted on a closed stream."""


class RunnerError(RuntimeError):
    """A background Runner failed; the original exception is the ``__cause__``."""


class NotFittedError(ValueError, AttributeError):
    """A fitter was used before ``fit`` was called."""


class DatasetNotFoundError(KeyError):
    """An HDF5 file does not hold the requested dataset.

    The message lists what the file does hold. ``str()`` shows the message as
    written (a plain ``KeyError`` would quote it).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class OutputExistsError(FileExistsError):
    """An output dataset exists and ``overwrite=True`` was not given."""
