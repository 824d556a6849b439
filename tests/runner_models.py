"""Models for the Runner, resume and CLI tests; importable by child processes as ``tests.runner_models``."""

from __future__ import annotations

import time

import numpy as np
import torch

from streamreg import Layer, Sequential
from streamreg.filters import LowPass, TemporalFIR


class Sleep(Layer):
    """Passes frames through after sleeping ``seconds`` per chunk, so a child process runs long enough to watch.

    The delay is a private attribute: it does not change the output, so it is not part of the model's
    fingerprint, and a run made with one delay resumes with another.
    """

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__()
        self._seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self._seconds)
        return x


def model(seconds: float = 0.0) -> Sequential:
    """A bitwise chunk-invariant model with FIR and recursive state: FIR → low-pass → sleep."""
    torch.manual_seed(0)
    return Sequential(TemporalFIR(torch.linspace(1.0, 0.1, 7)), LowPass(4.0), Sleep(seconds))


def slow_model() -> Sequential:
    """The same model, sleeping 20 ms per chunk."""
    return model(0.02)


def one_shot(layer: torch.nn.Module, frames) -> np.ndarray:
    """``layer`` applied to a whole recording in one plain call: the reference for chunked runs."""
    with torch.no_grad():
        return layer(torch.as_tensor(frames)).numpy()


def wait_for(predicate, timeout: float = 20.0) -> bool:
    """Poll ``predicate`` every 10 ms until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def not_a_layer() -> int:
    """A factory that returns something that is not a Layer."""
    return 3


def read_output(location: str) -> np.ndarray:
    """The frames of a ``"file.h5:/dataset"`` output that ``run()`` or a Runner returned."""
    import h5py

    path, _, dataset = location.rpartition(":")
    with h5py.File(path, "r") as f:
        return f[dataset][:]
