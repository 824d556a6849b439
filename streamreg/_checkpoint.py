"""Checkpoints of a chunked run: model state plus input and output positions, saved atomically.

A checkpoint lives beside the output HDF5 file, ``<file>.<dataset>.ckpt``, and is
written with ``torch.save`` to a temporary file that replaces the old one with
``os.replace`` (atomic on POSIX), after the output frames it counts have been
flushed. A killed run therefore always finds a checkpoint whose output frames
are on disk. ``<file>.<dataset>.ckpt.lock`` is held (``flock``) while a run
writes, so a resume cannot race a live writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Any

import numpy as np
import torch

__all__ = ["CHECKPOINT_VERSION", "CheckpointFile", "input_fingerprint", "model_fingerprint"]

CHECKPOINT_VERSION = 1
_SAMPLE_FRAMES = 16

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def checkpoint_path(filename: str, dataset: str) -> str:
    """Sidecar path of the checkpoint for ``filename:dataset``."""
    return f"{filename}.{dataset.strip('/').replace('/', '.')}.ckpt"


class CheckpointFile:
    """The checkpoint of one output dataset, with the lock that guards it."""

    def __init__(self, filename: str, dataset: str) -> None:
        self.path = checkpoint_path(os.path.realpath(filename), dataset)
        self.location = f"{filename}:{dataset}"
        self.lock_path = f"{os.path.realpath(filename)}.lock"  # per file: one writer per HDF5 file
        self._lock_fd: int | None = None

    def exists(self) -> bool:
        """True if a checkpoint was saved."""
        return os.path.exists(self.path)

    def lock(self) -> None:
        """Take the writer lock; raise ``BlockingIOError`` if a live process holds it."""
        if fcntl is None or self._lock_fd is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            msg = (
                f"another run is writing into the file of {self.location} (it holds {self.lock_path}); "
                "stop it first."
            )
            raise BlockingIOError(msg) from None
        self._lock_fd = fd

    def unlock(self, *, remove: bool = False) -> None:
        """Release the lock (and remove the lock file if ``remove``)."""
        if self._lock_fd is None:
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.lock_path)
        os.close(self._lock_fd)
        self._lock_fd = None

    def save(self, record: dict[str, Any]) -> None:
        """Write ``record`` atomically: temporary file, fsync, ``os.replace``."""
        tmp = f"{self.path}.tmp{os.getpid()}"
        with open(tmp, "wb") as fh:
            torch.save({"version": CHECKPOINT_VERSION, **record}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def load(self) -> dict[str, Any]:
        """Read the checkpoint (``weights_only``: no pickled code runs)."""
        record = torch.load(self.path, map_location="cpu", weights_only=True)
        if not isinstance(record, dict) or record.get("version") != CHECKPOINT_VERSION:
            msg = f"{self.path} is not a streamreg checkpoint of version {CHECKPOINT_VERSION}."
            raise ValueError(msg)
        return record

    def remove(self) -> None:
        """Delete the checkpoint (the run it describes has finished)."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)


def model_fingerprint(layer: torch.nn.Module) -> dict[str, Any]:
    """Class name and a hash of every parameter and buffer, to recognise the same model."""
    digest = hashlib.sha256()
    for name, tensor in layer.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return {"class": type(layer).__qualname__, "weights": digest.hexdigest()}


def input_fingerprint(stream: Any) -> dict[str, Any]:
    """Type, shape, dtype, length, source file and a hash of sample frames of a seekable stream."""
    n = stream._length()
    fp: dict[str, Any] = {
        "type": type(stream).__name__,
        "frame_shape": list(stream.frame_shape or ()),
        "dtype": str(stream.dtype),
        "frames": n,
    }
    ds = getattr(stream, "dataset", None)
    if ds is not None:
        fp["source"] = f"{os.path.realpath(ds.file.filename)}:{ds.name}"
    position = stream.position
    digest = hashlib.sha256()
    for t0 in (0, None if n is None else max(0, n - 1)):
        if t0 is None:
            continue
        stream.seek(t0)
        digest.update(_frame_bytes(stream.get(_SAMPLE_FRAMES if t0 == 0 else 1)))
    stream.seek(position)
    fp["sample"] = digest.hexdigest()
    return fp


def _frame_bytes(frames: Any) -> bytes:
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    return np.ascontiguousarray(frames).tobytes()
