"""Private: a synchronous TensorBoard events file, one per Recorder.

``torch.utils.tensorboard.SummaryWriter`` hands every event to a background
thread, so each flush waits for a thread handoff (about 100-250 µs on a busy
2-core machine). A Recorder flushes at every step, so it writes the records
itself, in the calling thread, with the summaries built by
``torch.utils.tensorboard.summary`` and tensorboard's own record framing.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EventFile", "import_summary"]

_counter = itertools.count()
_STAMP = re.compile(r"events\.out\.tfevents\.(\d+)\.")


def import_summary() -> Any:
    """Return ``torch.utils.tensorboard.summary``, or raise an ImportError naming the extra."""
    try:
        from torch.utils.tensorboard import summary
    except ImportError as exc:
        msg = ("Recorder(tensorboard=True) needs the tensorboard package; install it with "
               "`pip install streamreg[tensorboard]` (or `pip install tensorboard`), or pass tensorboard=False.")
        raise ImportError(msg) from exc
    return summary


def _stamp(folder: Path) -> int:
    """Now in seconds, made later than every events file in ``folder``: TensorBoard reads files in name order."""
    stamps = [int(m.group(1)) for p in folder.glob("events.out.tfevents.*") if (m := _STAMP.match(p.name))]
    return max([int(time.time()), *(s + 1 for s in stamps)])


class EventFile:
    """An ``events.out.tfevents.*`` file in ``folder``, written synchronously."""

    def __init__(self, folder: Path, purge_step: int | None = None) -> None:
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._summary = import_summary()
        self._event = Event
        name = f"events.out.tfevents.{_stamp(folder):010d}.{socket.gethostname()}.{os.getpid()}.{next(_counter)}"
        self.path = folder / name
        self._file = open(self.path, "ab")  # noqa: SIM115 (kept open, closed in close())
        self._records = RecordWriter(self._file)
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:  # TensorBoard drops earlier files' events from this step on
            self._write(Event(wall_time=time.time(), step=purge_step,
                              session_log=SessionLog(status=SessionLog.START)))

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())

    def add_summary(self, summary: Any, step: int | None = None) -> None:
        """Append one Summary proto at ``step``."""
        self._write(self._event(wall_time=time.time(), step=step or 0, summary=summary))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """Append a scalar."""
        self.add_summary(self._summary.scalar(tag, value), step)

    def add_image(self, tag: str, image: np.ndarray, step: int, dataformats: str) -> None:
        """Append an image (uint8, or float in [0, 1]) laid out as ``dataformats``."""
        self.add_summary(self._summary.image(tag, image, dataformats=dataformats), step)

    def add_figure(self, tag: str, figure: Any, step: int) -> None:
        """Append a rendered matplotlib figure (left open)."""
        from torch.utils.tensorboard._utils import figure_to_image

        self.add_image(tag, figure_to_image(figure, close=False), step, dataformats="CHW")

    def add_hparams(self, params: dict[str, Any]) -> None:
        """Append the hparams summaries (in this file, not in a sub-run)."""
        for summary in self._summary.hparams(params, {}):
            self.add_summary(summary)

    def flush(self) -> None:
        """Hand the written records to the OS (they survive the death of the process)."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self._file.close()
