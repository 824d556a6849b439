"""The plan of a run: chunk length, the frame range to read and to write, device and dtype."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from streamreg._modules import module_device
from streamreg._run.options import RunOptions
from streamreg.planning import plan_dt
from streamreg.streams.base import Stream

__all__ = ["Plan", "make_plan"]

_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


@dataclass(frozen=True)
class Plan:
    """What a run computes, fixed before the first frame.

    ``first`` is the absolute input index of the first frame read, ``start`` that of
    the first frame written (frames in between are history, run and discarded) and
    ``end`` the index to stop before (``None``: until the input ends or the Runner stops).
    """

    dt: int
    first: int
    start: int
    end: int | None
    device: torch.device | None
    dtype: torch.dtype

    @property
    def total(self) -> int | None:
        """Output frames the whole run produces, when known."""
        return None if self.end is None else self.end - self.start

    def sizes(self, pos: int) -> Iterator[int]:
        """Chunk lengths from input position ``pos`` to the end (the last one may be short)."""
        while self.end is None or pos < self.end:
            n = self.dt if self.end is None else min(self.dt, self.end - pos)
            pos += n
            yield n


def make_plan(layer: Any, reader: Stream, opts: RunOptions) -> Plan:
    """Check the frame range against ``reader`` and the model, and plan ``dt``."""
    first, start, end = _frame_range(layer, reader, opts)
    device = opts.device if opts.device is not None else module_device(layer)
    dtype = layer.compute_dtype(reader.dtype) if hasattr(layer, "compute_dtype") else torch.get_default_dtype()
    if dtype not in _NUMPY_FLOATS:
        msg = (
            f"the model computes in {dtype}, which numpy and HDF5 cannot hold; convert it first, "
            "for example with model.float()."
        )
        raise TypeError(msg)
    if opts.dt is not None:
        dt = opts.dt
    elif opts.max_memory is not None:
        dt = plan_dt(layer, reader.frame_shape or (), opts.max_memory, dtype, device)
    elif end is None:
        msg = "dt=None means one chunk, which needs the input's length; pass dt= for this input."
        raise ValueError(msg)
    else:
        dt = max(end - first, 1)
    return Plan(dt, first, start, end, device, dtype)


def _frame_range(layer: Any, reader: Stream, opts: RunOptions) -> tuple[int, int, int | None]:
    """Absolute input frames ``[first, end)`` and the first output frame ``start``.

    ``start``/``stop``/``n_frames`` count from the reader's current position.
    """
    origin = reader.position
    total = None if reader.infinite or reader.blocking else reader.length  # a queue's length is what it holds now
    length = None if total is None else total - origin
    start = opts.start
    if length is not None and start > length:
        msg = f"start={start} is past the end of the input, which has {length} frames."
        raise ValueError(msg)
    end = _end(opts, length, reader)
    first = start - lead_frames(layer, start, opts.warmup)
    for needed, what in ((first > 0, f"start={start}"), (opts.checkpoint_every is not None, "checkpoint_every"),
                         (opts.resume, "resume=True")):
        if needed and not reader.seekable():
            msg = f"{what} needs an input that can seek; {type(reader).__name__} cannot."
            raise ValueError(msg)
    return origin + first, origin + start, None if end is None else origin + end


def _end(opts: RunOptions, length: int | None, reader: Stream) -> int | None:
    if opts.stop is not None:
        end: int | None = opts.stop
    elif opts.n_frames is not None:
        end = opts.start + opts.n_frames
    elif length is not None:
        end = length
    elif reader.infinite and not opts.endless:
        msg = f"input {reader!r} is infinite; pass n_frames= to say how many frames to run."
        raise ValueError(msg)
    else:
        end = None  # until the input ends (or the Runner is stopped)
    if length is not None and end is not None and end > length:
        what = f"stop={opts.stop}" if opts.stop is not None else f"start + n_frames = {end}"
        msg = f"{what} is past the end of the input, which has {length} frames."
        raise ValueError(msg)
    return end


def lead_frames(layer: Any, start: int, warmup: int | None) -> int:
    """Frames to run before ``start`` so that frame ``start`` is computed exactly."""
    if start == 0:
        return 0
    history = layer.history if hasattr(layer, "history") else None
    if history is None and warmup is None:
        msg = (
            f"start={start}: {type(layer).__name__} has unbounded history (a recursive filter or a "
            "random generator), so no finite number of earlier frames gives frame start exactly. "
            "Pass warmup=N to run N frames before start and discard them (the error then decays "
            "with N, like exp(-N/tau) for a low-pass filter), or run from the beginning."
        )
        raise ValueError(msg)
    return min(start, max(history or 0, warmup or 0))
