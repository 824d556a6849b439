"""Capturing named sub-module outputs chunk by chunk, and writing them beside the output.

:class:`Capture` hooks the recorded modules (``register_forward_hook``) and the layer
itself. During one forward of the layer it keeps a copy of every call's output of each
recorded module; when the layer's forward returns, the calls of each module are joined
in call order, which must give exactly the chunk's frames (one call, or consecutive
blocks in time order, as a layer that works through long chunks in blocks makes), and
the chunk's records wait in a queue. Anything else (a module not called, called on
another number of frames, on two signals, returning no tensor) raises there, in the
forward, before any of the chunk is written.

:class:`RecordingWriter` stands for the run's output writer in the chunk loop: each
``put`` of the model's output takes the oldest chunk of records from the queue (one per
forward, in the same order) and writes the output, then each record, on the run's one
I/O thread. Warm-up frames before ``start`` are cut from the records as from the output.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from streamreg._run.endpoints import Output
from streamreg.exceptions import ChunkShapeError
from streamreg.streams.base import Stream

__all__ = ["Capture", "RecordingWriter"]


class Capture:
    """Forward hooks collecting the outputs of ``modules`` (path → module), one forward of ``layer`` at a time."""

    def __init__(self, layer: nn.Module, modules: dict[str, nn.Module]) -> None:
        self._calls: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
        self._ready: deque[dict[str, torch.Tensor]] = deque()  # appended by the compute thread, popped by I/O
        self._handles = [layer.register_forward_pre_hook(self._begin)]
        self._handles += [m.register_forward_hook(functools.partial(self._grab, name)) for name, m in modules.items()]
        self._handles.append(layer.register_forward_hook(self._end))

    def remove(self) -> None:
        """Remove every hook (the layer is left as it was)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def pop(self) -> dict[str, torch.Tensor]:
        """The records of the oldest forward not yet written: path → ``(n, *frame)`` CPU tensor."""
        if not self._ready:
            msg = "record: an output chunk came without the records of its forward (a streamreg bug)."
            raise RuntimeError(msg)
        return self._ready.popleft()

    @property
    def waiting(self) -> int:
        """Forwards whose records are not written yet."""
        return len(self._ready)

    def _begin(self, module: nn.Module, args: Any) -> None:
        for calls in self._calls.values():
            calls.clear()  # left by a forward that raised

    def _grab(self, name: str, module: nn.Module, args: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or output.ndim == 0:
            got = "a 0-d tensor" if isinstance(output, torch.Tensor) else f"a {type(output).__name__}"
            msg = f"record: module {name!r} returned {got}; only a tensor (T, *frame), time on axis 0, can be recorded."
            raise TypeError(msg)
        if output.dtype == torch.bfloat16 or output.is_complex():
            msg = f"record: module {name!r} gives {output.dtype}, which numpy and HDF5 cannot hold without loss."
            raise TypeError(msg)
        self._calls[name].append(output.detach().to("cpu", copy=True))  # a copy: the layer may change it in place

    def _end(self, module: nn.Module, args: Any, output: Any) -> None:
        n = len(args[0])
        chunk = {}
        for name, calls in self._calls.items():
            got = sum(len(c) for c in calls)
            if got != n:
                raise ValueError(_count_message(name, len(calls), got, n))
            chunk[name] = calls[0] if len(calls) == 1 else _join(name, calls)
            calls.clear()
        self._ready.append(chunk)


def _count_message(name: str, calls: int, got: int, n: int) -> str:
    if calls == 0:
        return (
            f"record: module {name!r} was not called during the layer's forward of {n} frames, so it has no "
            "output to record (is it unused, or called through .forward(), which skips hooks?)."
        )
    return (
        f"record: module {name!r} gave {got} frames in {calls} call(s) during the layer's forward of {n} frames. "
        "A recorded module must see the chunk's frames once, or in consecutive blocks in time order; one "
        "called on several signals (a shared module) or on another number of frames (with a window of past "
        "frames) has no single time series to record. Record a module called once per frame instead."
    )


def _join(name: str, calls: list[torch.Tensor]) -> torch.Tensor:
    shapes = {tuple(c.shape[1:]) for c in calls}
    if len(shapes) > 1:
        msg = f"record: module {name!r} gave frames of different shapes {sorted(shapes)} within one forward."
        raise ChunkShapeError(msg)
    return torch.cat(calls)


class RecordingWriter(Stream):
    """The output writer and the record writers as one, for the chunk loop (see the module docstring).

    Its frame shape, dtype and location are the output's; its length is the longest of them
    all (so a resume cuts every one back); :meth:`truncate` cuts each, refusing one that holds
    fewer frames than asked.
    """

    def __init__(self, output: Output, records: dict[str, Output], capture: Capture,
                 release: Callable[[], None], probe: Callable[[], None]) -> None:
        super().__init__(None, None)
        self._main, self._records = output, records
        self._capture, self._release, self._probe = capture, release, probe
        self._todo: list[tuple[Stream, np.ndarray]] | None = None  # a chunk's puts not yet done (queues retry)
        self._first = True
        self._complete = True

    def _writers(self) -> list[Stream]:
        return [self._main.writer, *(out.writer for out in self._records.values())]

    @property
    def frame_shape(self) -> tuple[int, ...] | None:
        return self._main.writer.frame_shape

    @property
    def dtype(self) -> Any:
        return self._main.writer.dtype

    @property
    def location(self) -> tuple[str, str] | None:
        return self._main.writer.location

    @property
    def in_memory(self) -> bool:
        return all(w.in_memory for w in self._writers())

    @property
    def blocking(self) -> bool:  # type: ignore[override]
        return any(w.blocking for w in self._writers())

    @property
    def resizable(self) -> bool:
        return all(w.resizable for w in self._writers())

    @property
    def complete(self) -> bool:
        """False for a run that stopped early (arrays given then need not be full)."""
        return self._complete

    @complete.setter
    def complete(self, value: bool) -> None:
        self._complete = value
        for w in self._writers():
            if hasattr(w, "complete"):
                w.complete = value

    def writable(self) -> bool:
        return True

    def _length(self) -> int | None:
        lengths = [w.length for w in self._writers()]
        return None if None in lengths else max(lengths)

    def __repr__(self) -> str:
        return repr(self._main.writer)

    def put(self, frames: Any, timeout: float | None = None) -> None:
        """Write one chunk of output frames and the records of the forward that made it."""
        self._check_open("put")
        if self._todo is None:
            self._todo = self._chunk(frames)
        while self._todo:
            writer, part = self._todo[0]
            writer.put(part, timeout)  # a full queue raises TimeoutError: the loop retries from here
            self._todo.pop(0)
        self._todo = None

    def _chunk(self, frames: np.ndarray) -> list[tuple[Stream, np.ndarray]]:
        records = self._capture.pop()
        m = len(frames)  # fewer than the forward's frames when warm-up frames before start are cut
        if any(len(t) < m for t in records.values()):
            msg = "record: an output chunk is longer than the forward its records came from (a streamreg bug)."
            raise RuntimeError(msg)
        parts = {name: t[len(t) - m :].numpy() for name, t in records.items()}
        if self._first:
            for name, out in self._records.items():
                _check_record(name, out.writer, parts[name])
            for name, out in self._records.items():  # every dataset exists before the output's first write
                if out.writer.location is not None and out.writer.frame_shape is None:  # switches to SWMR mode
                    out.writer.put(parts[name][:0])
            self._first = False
        return [(self._main.writer, frames), *((out.writer, parts[name]) for name, out in self._records.items())]

    def flush(self) -> None:
        """Flush the output, then every record."""
        self._check_open("flush")
        for w in self._writers():
            if not w.closed:
                w.flush()

    def truncate(self, n: int) -> None:
        """Cut the output and every record to ``n`` frames (resume); one holding fewer is a ``ValueError``."""
        for w in self._writers():
            have = w.length or 0
            if have < n:
                msg = (
                    f"resume=True: {w!r} holds {have} frames, fewer than the {n} the checkpoint counts; it was "
                    "changed or damaged. Start again with overwrite=True."
                )
                raise ValueError(msg)
        for w in self._writers():
            if (w.length or 0) > n:
                w.truncate(n)

    def result(self) -> tuple[Any, dict[str, Any]]:
        """``(output, {name: record})``, each as ``run()`` hands back its output form."""
        if self._first and self._complete and any(out.writer.frame_shape is None for out in self._records.values()):
            self._probe()  # no frame at all, and the output knew its frame shape: give the records theirs
            self.put(np.empty((0, *(self.frame_shape or ())), dtype=self.dtype))
        if self._capture.waiting:  # every forward's records must have gone out with its output chunk
            msg = f"record: {self._capture.waiting} forward(s) gave records never written (a streamreg bug)."
            raise RuntimeError(msg)
        for w in self._writers():
            written = getattr(w, "frames_written", None)  # a fixed-size dataset must end exactly full
            if self._complete and not w.resizable and written is not None and w.length != written:
                msg = f"output {w!r} holds {w.length} frames and cannot be resized; the input gave {written}."
                raise ChunkShapeError(msg)
        return self._main.result(), {name: out.result() for name, out in self._records.items()}

    def _close(self) -> None:
        try:
            if self._main.owned:
                self._main.writer.close()
        finally:
            self._release()


def _check_record(name: str, writer: Stream, frames: np.ndarray) -> None:
    """A record's frames must fit a destination that already has a frame shape and dtype."""
    frame = tuple(frames.shape[1:])
    if writer.frame_shape is not None and tuple(writer.frame_shape) != frame:
        msg = (
            f"record[{name!r}]: the module gives frames of shape {frame}, but its destination {writer!r} "
            f"holds frames of shape {tuple(writer.frame_shape)}."
        )
        raise ChunkShapeError(msg)
    if isinstance(writer.dtype, np.dtype) and not np.can_cast(frames.dtype, writer.dtype, casting="safe"):
        msg = (
            f"record[{name!r}]: its destination has dtype {writer.dtype}, which cannot hold the module's "
            f"{frames.dtype} output without loss; give a destination of a wider dtype (or none, for the module's own)."
        )
        raise TypeError(msg)
