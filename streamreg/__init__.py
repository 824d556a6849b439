"""streamreg: run and fit PyTorch models over time series longer than memory.

A time series is time-first, ``(T, *frame)``. Every :class:`Layer` runs over a
recording in chunks with :meth:`Layer.run` and gives the one-shot result.
"""

from importlib.metadata import PackageNotFoundError, version

from streamreg import filters, functional, models, optim, streams, testing
from streamreg.exceptions import (
    ChunkShapeError,
    DatasetNotFoundError,
    NotFittedError,
    OutputExistsError,
    RunnerError,
    StreamClosedError,
)
from streamreg.layer import Layer
from streamreg.planning import parse_bytes, plan_dt
from streamreg.runner import Runner
from streamreg.sequential import Sequential

try:
    __version__ = version("streamreg")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ChunkShapeError",
    "DatasetNotFoundError",
    "Layer",
    "NotFittedError",
    "OutputExistsError",
    "Runner",
    "RunnerError",
    "Sequential",
    "StreamClosedError",
    "__version__",
    "filters",
    "functional",
    "models",
    "optim",
    "parse_bytes",
    "plan_dt",
    "streams",
    "testing",
]
