"""Where a run stands: positions and counters, updated by the loop."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Progress"]


@dataclass
class Progress:
    """Positions and counters of a run.

    ``in_pos`` is the absolute input index of the next frame to compute, ``out_pos``
    the output frames handed to the writer and ``frames_done`` those it has written
    (updated by the I/O thread).
    """

    in_pos: int
    out_pos: int = 0
    frames_done: int = 0
    chunks_done: int = 0
    finished: bool = False  # the input ended or the frame range was done
