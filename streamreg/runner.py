"""The :class:`Runner`: a model over a stream in a background thread, with the same loop as ``run()``."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import traceback
from typing import Any

import torch

from streamreg._keywords import suggest_keywords
from streamreg._run import Job, RunOptions, prepare_job
from streamreg._run.job import finish_job
from streamreg._validation import check_positive_int
from streamreg.exceptions import RunnerError
from streamreg.layer import Layer

__all__ = ["Runner"]

_live: set[Runner] = set()
_live_lock = threading.Lock()


class Runner(threading.Thread):
    """Run ``model`` over ``input`` into ``output`` in a background thread.

    Parameters
    ----------
    model : streamreg.Layer
        The model; it is used by the thread while the Runner runs, so do not call it meanwhile.
    input : array, tensor, h5py.Dataset, "file.h5:/dataset" or Stream
        Any form :meth:`streamreg.Layer.run` accepts. An infinite stream runs until :meth:`stop`.
    output : None, array, h5py.Dataset or Group, "file.h5:/dataset" or Stream
        Any form ``run()`` accepts; ``None`` collects the output in memory (see :attr:`result`).
    dt : int
        Chunk length in frames.
    device : str or torch.device, optional
        Move the model there; chunks travel through pinned host buffers with
        non-blocking copies on CUDA.
    reset, overwrite, n_frames, checkpoint_every, resume, swmr, progress, max_memory, record
        As in :meth:`streamreg.Layer.run` (``progress`` defaults to off; with ``record``,
        :attr:`result` is ``(output, recorded)`` as ``run()`` returns it). A range of frames
        (``start``, ``stop``, ``warmup``) is ``run()``'s alone.

    Notes
    -----
    Everything is checked and every file opened in the constructor, so bad input
    raises there, in the caller's thread. The input ending is a clean finish. An
    exception in the model or a stream stops the thread, leaves every completed
    chunk written and flushed, and is re-raised (the same exception object, with a
    note saying where) by :meth:`join` or :meth:`stop` in the caller's thread;
    nothing goes only to stderr. A Runner is not a daemon: at interpreter exit a
    running one is asked to stop, so its output is flushed and its checkpoint saved.

    Examples
    --------
    >>> import numpy as np
    >>> from streamreg.filters import LowPass
    >>> with Runner(LowPass(5.0), np.ones((100, 3), dtype=np.float32), None, dt=10) as r:
    ...     r.join()
    >>> r.done, r.frames_done, r.result.shape
    (True, 100, (100, 3))
    """

    @suggest_keywords("Runner()")
    def __init__(
        self,
        model: Any,
        input: Any,  # noqa: A002
        output: Any = None,
        *,
        dt: int,
        device: str | torch.device | None = None,
        reset: bool = True,
        overwrite: bool = False,
        n_frames: int | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        swmr: bool | None = None,
        progress: bool = False,
        max_memory: int | str | None = None,
        record: Any = None,
    ) -> None:
        if not isinstance(model, Layer):
            msg = (
                f"model must be a streamreg.Layer (wrap plain torch modules in streamreg.Sequential); "
                f"got {type(model).__name__}."
            )
            raise TypeError(msg)
        super().__init__(name=f"Runner({type(model).__name__})", daemon=False)
        opts = RunOptions(dt=check_positive_int(dt, "dt"), max_memory=max_memory, reset=reset, progress=progress,
                          device=device, overwrite=overwrite, n_frames=n_frames, checkpoint_every=checkpoint_every,
                          resume=resume, swmr=swmr, endless=True)
        self._job: Job = prepare_job(model, input, output, opts, record)
        self._stop_event = threading.Event()
        self._error: BaseException | None = None
        self._raised = False
        self._result: Any = None
        self._finished = threading.Event()
        with _live_lock:
            _live.add(self)  # from here: an unstarted Runner is released at interpreter exit

    # -- state -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True from :meth:`start` until the thread ends."""
        return self.is_alive() and not self._finished.is_set()

    @property
    def done(self) -> bool:
        """True once the thread has ended: input finished, stopped, or failed (see :attr:`error`)."""
        return self._finished.is_set()

    @property
    def frames_done(self) -> int:
        """Output frames written so far."""
        return self._job.progress.frames_done

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the run, if any."""
        return self._error

    @property
    def result(self) -> Any:
        """After the end: the output array (``output=None`` or an array), the output stream or
        dataset given, or ``"file.h5:/dataset"`` for a string output (its file is closed); with
        ``record``, ``(output, recorded)`` as :meth:`streamreg.Layer.run` returns it."""
        if not self.done:
            msg = f"{self.name} has not finished; join() it first."
            raise RunnerError(msg)
        return self._result

    # -- thread ------------------------------------------------------------------
    def start(self) -> None:
        """Start the background thread (once)."""
        if self._started.is_set() or self._finished.is_set():  # type: ignore[attr-defined]
            msg = f"{self.name} was already started or released; a Runner runs once."
            raise RunnerError(msg)
        super().start()

    def run(self) -> None:
        """The thread's body: the shared chunk loop (not called directly)."""
        failed = True
        try:
            self._job.execute(self._stop_event)
            failed = False
        except BaseException as exc:  # stored, and re-raised in the caller by join() or stop()
            exc.add_note(
                f"raised in {self.name} after {self._job.progress.frames_done} output frames "
                f"(input frame {self._job.progress.in_pos}); completed chunks were written"
            )
            self._error = exc
        finally:
            try:
                self._result = finish_job(self._job, failed=failed)
            except BaseException as exc:  # same path as an error in the loop
                if self._error is None:
                    self._error = exc
                else:
                    self._error.add_note(f"while closing the run's files: {type(exc).__name__}: {exc}")
            self._finished.set()
            if self._error is None:  # a failed Runner stays listed until its error is raised in a caller
                with _live_lock:
                    _live.discard(self)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end; re-raise its exception (once) in the caller's thread.

        On a Runner that was never started, release its files and lock: it will not run.
        """
        if self._started.is_set():  # type: ignore[attr-defined]
            super().join(timeout)
        elif not self._finished.is_set():
            self._release_unstarted()
        self._raise()

    def _release_unstarted(self) -> None:
        try:
            self._result = finish_job(self._job, failed=True)
        finally:
            self._finished.set()
            with _live_lock:
                _live.discard(self)

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop after the current chunk, then :meth:`join` it.

        Completed chunks are written; with ``checkpoint_every`` a checkpoint at the stop
        point lets ``resume=True`` continue later.
        """
        self._stop_event.set()
        if threading.current_thread() is not self:
            self.join(timeout)

    def _raise(self) -> None:
        if self._error is not None and self._finished.is_set() and not self._raised:
            self._raised = True
            with _live_lock:
                _live.discard(self)
            raise self._error

    def __enter__(self) -> Runner:
        if not self._started.is_set():  # type: ignore[attr-defined]
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else ("failed" if self._error else ("done" if self.done else "ready"))
        return f"<{self.name}: {state}, {self.frames_done} frames done>"


#: Seconds the interpreter waits at exit for each Runner to stop before giving up on it.
EXIT_TIMEOUT_S = 10.0


def _stop_all() -> None:
    """At interpreter exit: stop every live Runner and wait for it, so its output is flushed and
    its checkpoint saved before the I/O threads are shut down. A Runner that was never started
    is released (no file, lock or checkpoint stays). One that does not stop within
    :data:`EXIT_TIMEOUT_S` (its output queue is full and nobody reads it) is abandoned with a
    message. An error nobody joined is printed to stderr and makes the exit status non-zero."""
    with _live_lock:
        runners = list(_live)
    for runner in runners:
        runner._stop_event.set()
    unreported = False
    for runner in runners:
        if not runner._started.is_set():  # type: ignore[attr-defined]
            if not runner._finished.is_set():
                runner._release_unstarted()
            continue
        _wait_at_exit(runner)
        if runner.error is not None and not runner._raised:
            print(f"streamreg: {runner.name} failed and was never joined:", file=sys.stderr)
            traceback.print_exception(runner.error, file=sys.stderr)
            unreported = True
    if unreported:
        atexit.register(_exit_nonzero)  # runs first among the exit handlers, and runs the others


def _wait_at_exit(runner: Runner) -> None:
    threading.Thread.join(runner, EXIT_TIMEOUT_S)
    if runner.is_alive():
        print(f"streamreg: {runner.name} did not stop within {EXIT_TIMEOUT_S:g} s at exit (is its output "
              "queue full with nobody reading it?); giving up on its undelivered frames.", file=sys.stderr)
        runner._job.abandoned.set()
        threading.Thread.join(runner, EXIT_TIMEOUT_S)


_exiting = False


def _exit_nonzero() -> None:
    """Run the remaining exit handlers, then end the process with status 1."""
    global _exiting
    if _exiting:
        return
    _exiting = True
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(ValueError, OSError):
            stream.flush()
    os._exit(1)


# Runs before non-daemon threads are joined at interpreter exit (atexit runs after, too late).
# concurrent.futures registers its own hook (shutting down executors) when it is imported,
# before this module; hooks run last-registered first, so the Runners stop while their
# I/O threads still work.
threading._register_atexit(_stop_all)
