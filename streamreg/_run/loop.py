"""The one chunk loop behind ``Layer.run`` and :class:`streamreg.Runner`.

The loop computes in the calling thread while one I/O thread owns every stream
call: it reads the next input chunk (into a small ring of reused buffers, see
:mod:`streamreg._run.ring`: a layer gets a view, not a copy) and
writes the previous output chunk while the model computes. h5py serialises all
HDF5 calls under one global lock, so one I/O thread is the fastest arrangement and
no h5py call from this package ever runs beside another. When input and output
are both in memory (:attr:`~streamreg.streams.Stream.in_memory`) there is no thread.

At most one chunk is read ahead and one waits to be written. A checkpoint is
saved on the I/O thread after the writes it counts, and only if they succeeded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from streamreg._modules import preserved_state
from streamreg._run.endpoints import check_first_output, numpy_dtype
from streamreg._run.ring import ReadRing
from streamreg.exceptions import ChunkShapeError

__all__ = ["ChunkLoop", "check_output"]

_POLL_S = 0.05  # how often a read or write blocked on a queue checks for stop()
_RING = 3  # read buffers: one being computed, one read ahead, one whose output may still be written


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


class ChunkLoop:
    """Drives one prepared :class:`~streamreg._run.job.Job` from its position to its end."""

    def __init__(self, job: Any, stop: threading.Event | None) -> None:
        self.job, self.plan, self.progress = job, job.plan, job.progress
        self.reader, self.writer = job.reader, job.output.writer
        self._stop = stop
        self._abort = threading.Event()
        self._pending: Future | None = None  # the write of the previous chunk
        self._held: Any = None  # that chunk's output, freed here once written (one allocating thread)
        self._saving: Future | None = None
        self._ring: ReadRing | None = None

    def stopping(self) -> bool:
        """True once the run was asked to stop or a failure aborted it."""
        return self._abort.is_set() or (self._stop is not None and self._stop.is_set())

    def execute(self) -> None:
        """Run to the end of the input, to the plan's end, or until stopped.

        Completed chunks are written and flushed even when the model or a stream
        raises; the exception then propagates to the caller.
        """
        threaded = not (self.reader.in_memory and self.writer.in_memory)
        io = ThreadPoolExecutor(1, thread_name_prefix="streamreg-io") if threaded else _InlineIO()
        bar = tqdm(total=self.plan.total, initial=self.progress.out_pos, unit="frame",
                   disable=not self.job.show_progress, desc=type(self.job.layer).__name__)
        try:
            self._loop(io, bar)
            if self.progress.chunks_done == 0:
                self._empty_output(io)
            io.submit(self._finish).result()
        except BaseException as exc:
            self._abort.set()
            self._salvage(io, exc)
            raise
        finally:
            bar.close()
            io.shutdown(wait=True)

    def _loop(self, io: Any, bar: tqdm) -> None:
        sizes = self.plan.sizes(self.progress.in_pos)
        read = io.submit(self._read, next(sizes, 0))
        with torch.no_grad():
            while True:
                got = read.result()
                if got is None or len(got) == 0:  # stopped while waiting, or the input ended
                    self.progress.finished = got is not None
                    return
                x = got
                first = self.progress.in_pos
                self.progress.in_pos += len(x)
                # Once stopping, read no further: the chunk in hand (already taken from the
                # stream) is still computed and written, so no frame is dropped.
                stopping = self.stopping()
                read = _done(None) if stopping else io.submit(self._read, next(sizes, 0))
                self._step(io, x, first)
                bar.update(len(x) - max(0, self.plan.start - first))
                if self._at_end() or stopping:
                    self._abort.set()
                    self._wait_for_io()
                    return

    def _step(self, io: Any, x: torch.Tensor, first: int) -> None:
        """Compute one chunk, queue its write, and a checkpoint when one is due."""
        y, ready = self._compute(x, first)
        if self.progress.chunks_done == 0:
            check_first_output(self.writer, tuple(y.shape[1:]), numpy_dtype(y.dtype))
        self._wait_for_io()  # at most one chunk waits to be written
        self._held = y
        self._pending = io.submit(self._write, y, ready)
        self.progress.out_pos += len(y)
        self.progress.chunks_done += 1
        every = self.job.checkpoint_every
        if every and not self._at_end() and self.progress.chunks_done % every == 0:
            self._saving = io.submit(self._save_checkpoint, self.job.record())

    def _at_end(self) -> bool:
        end = self.plan.end
        if end is not None and self.progress.in_pos >= end:
            self.progress.finished = True
        return self.progress.finished

    def _wait_for_io(self) -> None:
        """Wait for the pending write and checkpoint; raise their errors here."""
        for future in (self._pending, self._saving):
            if future is not None:
                future.result()
        self._saving = None
        self._held = None

    def _empty_output(self, io: Any) -> None:
        """No frame at all: give a new output its frame shape and dtype from one probe frame."""
        if self.writer.frame_shape is not None:
            return
        frame = tuple(self.reader.frame_shape or ())
        with preserved_state(self.job.layer), torch.no_grad():
            y = self.job.layer(torch.zeros((1, *frame), dtype=self.plan.dtype, device=self.plan.device))
        check_output(y, 1, self.progress.in_pos)
        io.submit(self.writer.put, np.empty((0, *y.shape[1:]), dtype=numpy_dtype(y.dtype))).result()

    # -- I/O thread ---------------------------------------------------------------
    def _read(self, n: int) -> torch.Tensor | None:
        if n == 0:
            return torch.empty((0, *(self.reader.frame_shape or ())))
        frames = self._get(n)
        if frames is None:
            return None
        x = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
        if self.plan.device is not None and self.plan.device.type == "cuda" and x.device.type == "cpu":
            x = x.pin_memory()  # so the copy to the GPU can overlap the model
        return x

    def _get(self, n: int) -> np.ndarray | torch.Tensor | None:
        reader = self.reader
        if reader.in_memory or not isinstance(reader.dtype, np.dtype) or not reader.dtype.isnative:
            frames = reader.get(n)
        else:
            return self._get_into_ring(n)
        if isinstance(frames, np.ndarray) and not frames.dtype.isnative:
            frames = frames.astype(frames.dtype.newbyteorder("="))
        return frames

    def _get_into_ring(self, n: int) -> torch.Tensor | None:
        if self._ring is None:
            self._ring = ReadRing(tuple(self.reader.frame_shape or ()), self.reader.dtype, _RING)
        x, buf = self._ring.take(n)
        while True:
            try:
                got = self.reader.get_into(buf, timeout=_POLL_S if self.reader.blocking else None)
                return x[:got]
            except TimeoutError:
                if self.stopping():
                    return None

    def _write(self, y: torch.Tensor, ready: Any) -> None:
        if ready is not None:
            ready.synchronize()  # the device-to-host copy of this chunk has landed
        frames = y.numpy()
        if not self.writer.blocking:
            self.writer.put(frames)
        else:
            self._put_blocking(frames)
        self.progress.frames_done += len(y)

    def _put_blocking(self, frames: np.ndarray) -> None:
        """A queue: wait for room, but give up with a clear error once the run is abandoned."""
        while True:
            try:
                self.writer.put(frames, timeout=_POLL_S)
                return
            except TimeoutError:
                if self.job.abandoned.is_set():
                    msg = (
                        f"output {self.writer!r} stayed full and nobody read it; "
                        f"{len(frames)} frames from output frame {self.progress.frames_done} were not delivered."
                    )
                    raise TimeoutError(msg) from None

    def _save_checkpoint(self, record: dict[str, Any]) -> None:
        if self.progress.frames_done != record["out_pos"]:
            return  # a counted frame failed to write: its error is raised by the write; keep the last good checkpoint
        self.writer.flush()  # the frames the checkpoint counts are on disk first
        self.job.guard.save(record)

    def _finish(self) -> None:
        if not self.writer.closed:
            self.writer.flush()
        if self.job.guard is not None and self.job.checkpoint_every is not None and not self.progress.finished:
            self._save_checkpoint(self.job.record())  # stopped: resume continues from here

    # -- compute thread -----------------------------------------------------------
    def _compute(self, x: torch.Tensor, first: int) -> tuple[torch.Tensor, Any]:
        n = len(x)
        if self.job.check_finite:
            check_finite_frames(x, first)
        x = x.to(device=self.plan.device, dtype=self.plan.dtype, non_blocking=True)
        y = self.job.layer(x)
        check_output(y, n, first)
        skip = max(0, self.plan.start - first)  # warm-up frames before ``start`` are not output
        y = y[skip:].detach()
        if y.device.type == "cpu":
            return y, None
        host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
        host.copy_(y, non_blocking=True)
        ready = torch.cuda.Event()
        ready.record()
        return host, ready

    def _salvage(self, io: Any, exc: BaseException) -> None:
        """After a failure: write what was computed, flush, and note any second error."""
        try:
            pending = self._pending
            if pending is not None and pending.exception() not in (None, exc):
                raise pending.exception()
            io.submit(self._flush_quietly).result()
        except BaseException as second:  # the first error wins; this one is noted on it
            if second is not exc:
                exc.add_note(f"while saving the completed chunks: {type(second).__name__}: {second}")

    def _flush_quietly(self) -> None:
        # No checkpoint here: the failed chunk may have half-updated the state, so the
        # last periodic checkpoint is the one a resume starts from.
        if not self.writer.closed:
            self.writer.flush()


def check_finite_frames(x: torch.Tensor, t0: int) -> None:
    """Raise ``FloatingPointError`` naming the first input frame that holds NaN or infinity."""
    bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
    if bool(bad.any()):
        t = t0 + int(bad.nonzero()[0, 0])
        msg = (
            f"check_finite=True: input frame {t} holds a non-finite value (NaN or infinity); "
            "recursive filters would spread it to every later frame. Clean or mask the input first."
        )
        raise FloatingPointError(msg)


def check_output(y: Any, n: int, t0: int) -> None:
    """A layer must map a chunk of ``n`` frames to ``n`` frames."""
    if not isinstance(y, torch.Tensor) or y.ndim == 0 or y.shape[0] != n:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        msg = (
            f"layer output for frames [{t0}, {t0 + n}) must be a tensor (T, *frame_out) "
            f"with T = {n} frames; got {got}."
        )
        raise ChunkShapeError(msg)

