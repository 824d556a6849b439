"""Private: the one chunk loop behind ``Layer.run`` and :class:`streamreg.Runner`.

A :class:`Job` holds a prepared run (reader, model, writer, positions). Its
:meth:`Job.execute` drives the loop in the calling thread while one I/O thread
owns every stream call: it prefetches the next input chunk and writes the
previous output chunk while the model computes. h5py serialises all HDF5 calls
under one global lock, so a single I/O thread is the fastest arrangement
(two reader threads measure slower than one) and no h5py call ever runs
concurrently with another from this package.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from streamreg._checkpoint import CheckpointFile
from streamreg._endpoints import ArrayWriter, OutputSpec, check_first_output
from streamreg._hdf5 import H5Files
from streamreg.exceptions import ChunkShapeError
from streamreg.streams.arrays import ArrayStream
from streamreg.streams.base import Stream
from streamreg.streams.sequences import SequenceStream

__all__ = ["Job"]

_POLL_S = 0.05  # how often a read blocked on a queue checks for stop()
_MEMORY_STREAMS = (ArrayStream, SequenceStream, ArrayWriter)


class _InlineIO:
    """Runs I/O in the calling thread (in-memory streams: a thread would only add hand-offs)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to release."""


def _done(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


@dataclass
class Job:
    """A prepared run: every input was checked and every file opened; no frame computed yet."""

    layer: nn.Module
    reader: Stream
    output: OutputSpec
    files: H5Files
    dt: int
    device: torch.device | None
    dtype: torch.dtype
    start: int  # absolute input index of the first output frame
    end: int | None  # absolute input index to stop before (None: until the input ends)
    in_pos: int  # absolute input index of the next frame to compute
    progress: bool = False
    checkpoint: CheckpointFile | None = None
    checkpoint_every: int | None = None
    checkpoint_base: dict[str, Any] = field(default_factory=dict)
    out_pos: int = 0  # output frames handed to the writer
    frames_done: int = 0  # output frames written (updated by the I/O thread)
    chunks_done: int = 0
    finished: bool = False  # the input ended or ``end`` was reached
    resumed: bool = False  # started from a checkpoint
    _abort: threading.Event = field(default_factory=threading.Event)

    # -- sizes -----------------------------------------------------------------
    @property
    def total(self) -> int | None:
        """Output frames the whole run produces, when known."""
        return None if self.end is None else self.end - self.start

    def _sizes(self) -> Any:
        pos = self.in_pos
        while self.end is None or pos < self.end:
            n = self.dt if self.end is None else min(self.dt, self.end - pos)
            pos += n
            yield n

    # -- the loop --------------------------------------------------------------
    def execute(self, stop: threading.Event | None = None) -> None:
        """Run to the end of the input, to ``end``, or until ``stop`` is set.

        Completed chunks are written and flushed even when the model or a stream
        raises; the exception then propagates to the caller.
        """
        threaded = not (isinstance(self.reader, _MEMORY_STREAMS) and isinstance(self.output.writer, _MEMORY_STREAMS))
        io = ThreadPoolExecutor(1, thread_name_prefix="streamreg-io") if threaded else _InlineIO()
        self._stop = stop
        bar = tqdm(total=self.total, initial=self.out_pos, unit="frame", disable=not self.progress,
                   desc=type(self.layer).__name__)
        try:
            self._loop(io, bar)
            io.submit(self._finish).result()
        except BaseException as exc:
            self._abort.set()
            self._salvage(io, exc)
            raise
        finally:
            bar.close()
            io.shutdown(wait=True)

    def _loop(self, io: Any, bar: tqdm) -> None:
        sizes = self._sizes()
        read = io.submit(self._read, next(sizes, 0))
        self._pending: Future | None = None
        self._saving: Future | None = None
        with torch.no_grad():
            while True:
                x = read.result()
                if x is None:  # stopped while waiting for input (nothing was taken from it)
                    self._empty_output(io)
                    return
                if len(x) == 0:
                    self.finished = True
                    self._empty_output(io)
                    return
                first = self.in_pos
                self.in_pos += len(x)
                # Once stopping, read no further: the chunk in hand (already taken from the
                # stream) is still computed and written, so no frame is dropped.
                stopping = self._stopping()
                read = _done(None) if stopping else io.submit(self._read, next(sizes, 0))
                y, ready = self._compute(x, first)
                if self.chunks_done == 0:
                    check_first_output(self.output.writer, tuple(y.shape[1:]), _numpy_dtype(y))
                self._wait_for_io()  # at most one chunk waits to be written
                self._pending = io.submit(self._write, y, ready)
                self.out_pos += len(y)
                self.chunks_done += 1
                bar.update(len(y))
                if self.end is not None and self.in_pos >= self.end:
                    self.finished = True
                elif self.checkpoint_every and self.chunks_done % self.checkpoint_every == 0:
                    self._saving = io.submit(self._save_checkpoint, self._record())
                if self.finished or stopping:
                    self._abort.set()
                    self._wait_for_io()
                    return

    def _wait_for_io(self) -> None:
        """Wait for the pending write and checkpoint; raise their errors here."""
        for future in (self._pending, self._saving):
            if future is not None:
                future.result()
        self._saving = None

    def _empty_output(self, io: Any) -> None:
        """No frame at all: give the output its frame shape from one probe frame."""
        writer = self.output.writer
        if self.chunks_done or writer.frame_shape is not None:
            return
        state = self.layer.get_state() if hasattr(self.layer, "get_state") else None
        try:
            frame = tuple(self.reader.frame_shape or ())
            y = self.layer(torch.zeros((1, *frame), dtype=self.dtype, device=self.device))
        finally:
            if state is not None:
                self.layer.set_state(state)
        check_output(y, 1, self.in_pos)
        io.submit(writer.put, np.empty((0, *y.shape[1:]), dtype=_numpy_dtype(y))).result()

    def _stopping(self) -> bool:
        return self._abort.is_set() or (self._stop is not None and self._stop.is_set())

    # -- I/O thread ---------------------------------------------------------------
    def _read(self, n: int) -> np.ndarray | torch.Tensor | None:
        if n == 0:
            return _empty(self.reader)
        if self.reader.blocking:
            while True:
                try:
                    x = self.reader.get(n, timeout=_POLL_S)
                    break
                except TimeoutError:
                    if self._stopping():
                        return None
        else:
            x = self.reader.get(n)
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("=")))
        if self.device is not None and self.device.type == "cuda" and x.device.type == "cpu":
            x = x.pin_memory()  # so the copy to the GPU can overlap the model
        return x

    def _write(self, y: torch.Tensor, ready: Any) -> None:
        if ready is not None:
            ready.synchronize()  # the device-to-host copy of this chunk has landed
        self.output.writer.put(y.numpy())
        self.frames_done += len(y)

    def _save_checkpoint(self, record: dict[str, Any]) -> None:
        self.output.writer.flush()  # the frames the checkpoint counts are on disk first
        assert self.checkpoint is not None
        self.checkpoint.save(record)

    def _finish(self) -> None:
        writer = self.output.writer
        if not writer.closed:
            writer.flush()
        if self.checkpoint is None:
            return
        if self.finished:
            self.checkpoint.remove()
        else:
            self.checkpoint.save(self._record())  # stopped: resume continues from here

    # -- compute thread -----------------------------------------------------------
    def _compute(self, x: torch.Tensor, first: int) -> tuple[torch.Tensor, Any]:
        n = len(x)
        x = x.to(device=self.device, dtype=self.dtype, non_blocking=True)
        y = self.layer(x)
        check_output(y, n, first)
        skip = max(0, self.start - first)  # warm-up frames before ``start`` are not output
        y = y[skip:].detach()
        if y.device.type == "cpu":
            return y, None
        host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
        host.copy_(y, non_blocking=True)
        ready = torch.cuda.Event()
        ready.record()
        return host, ready

    def _record(self) -> dict[str, Any]:
        state = _to_cpu(self.layer.get_state())
        return {**self.checkpoint_base, "in_pos": self.in_pos, "out_pos": self.out_pos,
                "chunks": self.chunks_done, "state": state}

    def _salvage(self, io: Any, exc: BaseException) -> None:
        """After a failure: write what was computed, flush, and note any second error."""
        try:
            pending = getattr(self, "_pending", None)
            if pending is not None and pending.exception() not in (None, exc):
                raise pending.exception()
            io.submit(self._flush_quietly).result()
        except BaseException as second:  # the first error wins; this one is noted on it
            if second is not exc:
                exc.add_note(f"while saving the completed chunks: {type(second).__name__}: {second}")

    def _flush_quietly(self) -> None:
        # No checkpoint here: the failed chunk may have half-updated the state, so the
        # last periodic checkpoint is the one a resume starts from.
        if not self.output.writer.closed:
            self.output.writer.flush()


def check_output(y: Any, n: int, t0: int) -> None:
    """A layer must map a chunk of ``n`` frames to ``n`` frames."""
    if not isinstance(y, torch.Tensor) or y.ndim == 0 or y.shape[0] != n:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        msg = (
            f"layer output for frames [{t0}, {t0 + n}) must be a tensor (T, *frame_out) "
            f"with T = {n} frames; got {got}."
        )
        raise ChunkShapeError(msg)


def _numpy_dtype(y: torch.Tensor) -> np.dtype:
    return torch.empty(0, dtype=y.dtype).numpy().dtype


def _empty(stream: Stream) -> torch.Tensor:
    return torch.empty((0, *(stream.frame_shape or ())))


def _to_cpu(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    return state
