"""The checkpoint policy of a run into HDF5, in one place: lock, refuse, restore, save, finish.

Every run into an HDF5 output holds ``<file>.lock`` (``flock``) from preparation to the
end, so a second writer into the same file -- in this process or another -- is refused,
and a run that holds the lock knows that no other streamreg writer is live. That is what
makes it safe, under the lock, to clear the flags a killed writer leaves in the file's
superblock and to delete temporary files a killed run left behind.

A checkpoint ``<file>.<dataset, percent-encoded>.ckpt`` holds the model's streaming state,
the input and output positions and what identifies the model and input. It is written to a
new randomly named temporary file in the same folder (``O_EXCL``: a planted symlink is
never followed), fsynced and renamed over the old one, and only when every frame it counts
has been written and flushed. A killed run therefore always leaves the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from typing import Any
from urllib.parse import quote

import torch

from streamreg._h5repair import clear_status_flags, read_status_flags
from streamreg._run.options import RunOptions
from streamreg.exceptions import OutputExistsError

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "OutputGuard", "checkpoint_path"]

CHECKPOINT_VERSION = 2

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def checkpoint_path(filename: str, dataset: str) -> str:
    """Sidecar path of the checkpoint for ``filename:dataset`` (distinct for ``/a/b`` and ``/a.b``)."""
    return f"{os.path.realpath(filename)}.{quote(dataset.strip('/'), safe='')}.ckpt"


class Checkpoint:
    """The checkpoint file of one output dataset."""

    def __init__(self, filename: str, dataset: str) -> None:
        self.path = checkpoint_path(filename, dataset)
        self.location = f"{filename}:{dataset}"

    def exists(self) -> bool:
        """True if a checkpoint was saved (a run into this output was stopped or killed)."""
        return os.path.lexists(self.path)

    def save(self, record: dict[str, Any]) -> None:
        """Write ``record`` atomically; on any error the previous checkpoint stays as it was."""
        folder, base = os.path.split(self.path)
        fd, tmp = tempfile.mkstemp(prefix=f"{base}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save({"version": CHECKPOINT_VERSION, **record}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            exc.add_note(f"while saving the checkpoint {self.path}; the previous checkpoint is kept")
            raise

    def load(self) -> dict[str, Any]:
        """Read the checkpoint (``weights_only``: no pickled code runs); a bad file is a ``ValueError``."""
        try:
            record = torch.load(self.path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, ValueError) as exc:  # a damaged or foreign file, said in one line
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            msg = f"the checkpoint {self.path} cannot be read ({first}); start again with overwrite=True."
            raise ValueError(msg) from None
        if not isinstance(record, dict) or record.get("version") != CHECKPOINT_VERSION:
            msg = (
                f"{self.path} is not a streamreg checkpoint of version {CHECKPOINT_VERSION}; "
                "start again with overwrite=True."
            )
            raise ValueError(msg)
        return record

    def remove(self) -> None:
        """Delete the checkpoint (the run it describes has finished or is replaced)."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)


class OutputGuard:
    """The lock on an HDF5 output file and the checkpoint decisions for one of its datasets.

    Parameters
    ----------
    filename, dataset : str
        Where the run writes.
    opts : RunOptions
        ``checkpoint_every``, ``resume`` and ``overwrite`` decide what :meth:`reserve` does.
    """

    def __init__(self, filename: str, dataset: str, opts: RunOptions) -> None:
        self.filename = os.path.realpath(filename)
        self.lock_path = f"{self.filename}.lock"
        self.checkpoint = Checkpoint(filename, dataset)
        self.keeps = opts.wants_checkpoint  # this run saves checkpoints
        self.record: dict[str, Any] | None = None  # the checkpoint resumed from
        self.stale = False  # a checkpoint of an earlier run, to delete once its output is replaced
        self.created_checkpoint = False
        self._fd: int | None = None
        self._opts = opts

    def reserve(self, *, repair: bool) -> None:
        """Take the lock, clean up after a killed run, and load or refuse an existing checkpoint.

        ``repair``: the run opens the file itself (a string output), so flags set in its
        superblock were left by a killed writer (a file the caller passed open has them set
        by the caller's own handle).
        """
        self._lock()
        try:
            self._clean_temporaries()
            if repair and os.path.exists(self.filename) and read_status_flags(self.filename):
                clear_status_flags(self.filename)  # left by a killed writer: we hold the lock, none is live
            self._decide()
        except BaseException:
            self.release()
            raise

    def _decide(self) -> None:
        ckpt, opts = self.checkpoint, self._opts
        if opts.resume:
            if not ckpt.exists():
                msg = (
                    f"resume=True, but there is no checkpoint for {ckpt.location} ({ckpt.path} is missing); "
                    "run with checkpoint_every=k to make one, or without resume to start again."
                )
                raise FileNotFoundError(msg)
            self.record = ckpt.load()
        elif ckpt.exists():
            if not opts.overwrite:
                msg = (
                    f"a checkpoint of an earlier run into {ckpt.location} exists ({ckpt.path}); pass "
                    "resume=True to continue that run or overwrite=True to start again."
                )
                raise OutputExistsError(msg)
            self.stale = True

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            msg = (
                f"another run, in this process or another, is writing into {self.filename} "
                f"(it holds {self.lock_path}); stop it first or write to another file."
            )
            raise BlockingIOError(msg) from None
        if os.fstat(fd).st_ino != _inode(self.lock_path):  # removed by a run that just finished: lock anew
            os.close(fd)
            self._lock()
            return
        self._fd = fd

    def _clean_temporaries(self) -> None:
        """Temporary checkpoint and file-creation files of killed runs (no live run owns them: we hold the lock)."""
        folder, base = os.path.split(self.filename)
        escaped = glob.escape(self.filename), glob.escape(folder), glob.escape(base)
        patterns = (f"{escaped[0]}.*.tmp", os.path.join(escaped[1], f".{escaped[2]}.*.tmp"))
        for path in (p for pattern in patterns for p in glob.glob(pattern)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def replaced(self) -> None:
        """The output dataset was (re)opened for this run: a stale checkpoint no longer describes it."""
        if self.stale:
            self.checkpoint.remove()
            self.stale = False

    def save(self, record: dict[str, Any]) -> None:
        """Save a checkpoint of this run."""
        self.checkpoint.save(record)
        self.created_checkpoint = True

    def finish(self, *, finished: bool, wrote_nothing: bool) -> None:
        """End of the run: a finished run, or a new one that never wrote a frame, leaves no checkpoint."""
        if finished or (wrote_nothing and self.record is None and self.created_checkpoint):
            self.checkpoint.remove()
        self.release()

    def release(self) -> None:
        """Delete the lock file and release the lock (a later run creates a new one)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.lock_path)
        os.close(self._fd)
        self._fd = None


def _inode(path: str) -> int | None:
    try:
        return os.stat(path, follow_symlinks=False).st_ino
    except FileNotFoundError:
        return None
