"""A run from start to end: prepare it (every check, every file), execute it, release it."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from streamreg._h5repair import superblock_version
from streamreg._hdf5 import H5Files
from streamreg._run.checkpoint import OutputGuard
from streamreg._run.endpoints import Output, check_not_input, hdf5_location, open_reader, open_writer
from streamreg._run.fingerprint import input_fingerprint, model_fingerprint
from streamreg._run.loop import ChunkLoop
from streamreg._run.options import RunOptions
from streamreg._run.plan import Plan, make_plan
from streamreg._run.progress import Progress
from streamreg._run.record import Recording
from streamreg.exceptions import ChunkShapeError
from streamreg.streams.base import Stream

__all__ = ["Job", "finish_job", "prepare_job", "run_layer"]

_PROGRESS_MIN_CHUNKS = 4
_RESUME_KEYS = (("model", "model (class, weights, buffers or settings)"), ("input", "input (kind, shape, dtype, "
                "length, source or frames)"), ("dt", "dt"), ("start", "start"), ("end", "stop/n_frames"),
                ("record", "record= (module names or destinations)"))


@dataclass
class Job:
    """A prepared run: every input was checked and every file opened; no frame computed yet."""

    layer: Any
    reader: Stream
    output: Output
    files: H5Files
    plan: Plan
    progress: Progress
    guard: OutputGuard | None = None
    checkpoint_every: int | None = None
    show_progress: bool = False
    check_finite: bool = False
    base: dict[str, Any] = field(default_factory=dict)  # what every checkpoint of this run records
    abandoned: threading.Event = field(default_factory=threading.Event)  # interpreter exit gave up waiting

    def execute(self, stop: threading.Event | None = None) -> None:
        """Run the chunk loop (see :class:`~streamreg._run.loop.ChunkLoop`)."""
        ChunkLoop(self, stop).execute()

    def record(self) -> dict[str, Any]:
        """A checkpoint of where the run stands now."""
        p = self.progress
        state = _to_cpu(self.layer.get_state()) if hasattr(self.layer, "get_state") else {}
        return {**self.base, "in_pos": p.in_pos, "out_pos": p.out_pos, "chunks": p.chunks_done, "state": state}


def run_layer(layer: Any, input: Any, output: Any, opts: RunOptions, record: Any = None) -> Any:  # noqa: A002
    """Run ``layer`` over ``input`` in chunks; see :meth:`streamreg.Layer.run`."""
    job = prepare_job(layer, input, output, opts, record)
    try:
        job.execute()
    except BaseException:
        finish_job(job, failed=True)
        raise
    return finish_job(job)


def prepare_job(layer: Any, input: Any, output: Any, opts: RunOptions, record: Any = None) -> Job:  # noqa: A002
    """Check everything and open every file; return a :class:`Job` ready to execute.

    ``record``: the ``record=`` of ``run()`` (:mod:`.record`). On an error every file, lock and
    checkpoint this call created is removed.
    """
    files = H5Files()
    location = hdf5_location(output)
    guard = None if location is None else OutputGuard(*location, opts)
    if guard is None and opts.wants_checkpoint:
        msg = (
            "checkpoint_every and resume need an HDF5 output ('file.h5:/dataset', an h5py dataset "
            f"or group, or an HDF5Stream), where the checkpoint is kept; got output of type {type(output).__name__}."
        )
        raise ValueError(msg)
    recording = None if record is None else Recording(layer, record, output, opts)
    job = None
    try:
        if guard is not None:
            guard.reserve(repair=isinstance(output, str))
        if recording is not None:
            recording.reserve(files, None if guard is None else guard.filename)
        job = _open(layer, input, output, files, guard, opts, recording)
        _position(job, opts)
    except BaseException:
        if job is not None:
            finish_job(job, failed=True)
        else:
            if recording is not None:
                recording.release()
            if guard is not None:
                guard.release()
            files.close(failed=True)
        raise
    return job


def _open(layer: Any, input: Any, output: Any, files: H5Files, guard: OutputGuard | None,  # noqa: A002
          opts: RunOptions, recording: Recording | None = None) -> Job:
    swmr = _swmr(output, guard, opts)
    if isinstance(output, str):
        files.open(hdf5_location(output)[0], write=True, name="output", swmr=swmr)  # first: it may hold the input
    reader = open_reader(input, files)
    check_not_input(reader, output, files)
    if opts.device is not None:
        layer.to(opts.device)
    if opts.reset:
        layer.reset_state()
    plan = make_plan(layer, reader, opts)
    resumed = guard is not None and guard.record is not None
    out = open_writer(output, files, n=plan.total, overwrite=opts.overwrite, append=resumed, swmr=swmr,
                      dtype=plan.dtype)
    job = Job(layer, reader, out, files, plan, Progress(in_pos=plan.first), guard, check_finite=opts.check_finite)
    if guard is not None:
        guard.replaced()
    if guard is not None and guard.keeps:
        if not out.writer.resizable:
            msg = "checkpoint_every and resume need an output dataset resizable along time (maxshape (None, ...))."
            raise ValueError(msg)
        job.checkpoint_every = opts.checkpoint_every or (guard.record or {}).get("every")
        job.base = {"model": model_fingerprint(layer), "input": input_fingerprint(reader, plan), "dt": plan.dt,
                    "start": plan.start, "end": plan.end, "first": plan.first, "swmr": swmr,
                    "every": job.checkpoint_every}
    if recording is not None:
        recording.attach(job, swmr)  # after the plan: its max_memory probe must not feed the record hooks
    return job


def _swmr(output: Any, guard: OutputGuard | None, opts: RunOptions) -> bool:
    """Live output: on when asked, or by default for a file the run creates or one made for SWMR."""
    if opts.swmr is not None:
        return opts.swmr
    if guard is not None and guard.record is not None:
        return bool(guard.record.get("swmr"))
    if not isinstance(output, str):
        return False
    path = hdf5_location(output)[0]
    return not os.path.exists(path) or superblock_version(path) >= 3


def _position(job: Job, opts: RunOptions) -> None:
    """Restore a checkpoint or seek to the first frame; save the first checkpoint of a new run."""
    guard = job.guard
    if guard is not None and guard.record is not None:
        _restore(job, guard.record)
    elif job.plan.first != job.reader.position:
        job.reader.seek(job.plan.first)
    if guard is not None and guard.keeps and guard.record is None:
        guard.save(job.record())
    job.show_progress = _show_progress(opts.progress, job.plan, job.progress.in_pos)


def _restore(job: Job, record: dict[str, Any]) -> None:
    """Continue from ``record``, refusing anything that would make the output differ."""
    where = job.guard.checkpoint.path
    for key, what in _RESUME_KEYS:
        if record.get(key) != job.base.get(key):
            msg = (
                f"resume=True: the checkpoint {where} was written with a different {what}: "
                f"{record.get(key)!r} there, {job.base.get(key)!r} now. Resume with the same model, "
                "input and options, or start again with overwrite=True."
            )
            raise ValueError(msg)
    in_pos, out_pos = int(record["in_pos"]), int(record["out_pos"])
    held = job.output.writer.length or 0
    if held < out_pos:
        msg = (
            f"resume=True: {job.guard.checkpoint.location} holds {held} frames, fewer than the {out_pos} "
            "the checkpoint counts; the output was changed or damaged. Start again with overwrite=True."
        )
        raise ValueError(msg)
    job.layer.set_state(record["state"])
    job.progress = Progress(in_pos=in_pos, out_pos=out_pos, frames_done=out_pos, chunks_done=int(record["chunks"]))
    job.reader.seek(in_pos)
    if held:
        job.output.writer.truncate(out_pos)


def finish_job(job: Job, *, failed: bool = False) -> Any:
    """Release a job's files and lock; return the output (array, location string, dataset or stream)."""
    writer = job.output.writer
    result: Any = None
    try:
        if not failed:
            result = _result(job)
    finally:
        try:
            if job.output.owned:
                writer.close()
        finally:
            if job.guard is not None:
                job.guard.finish(finished=job.progress.finished and not failed,
                                 wrote_nothing=job.progress.frames_done == 0)
            job.files.close(failed=failed)
    return result


def _result(job: Job) -> Any:
    writer = job.output.writer
    if hasattr(writer, "complete"):
        writer.complete = job.progress.finished
    written = getattr(writer, "frames_written", None)  # a fixed-size dataset must end exactly full
    if job.progress.finished and not writer.resizable and written is not None and writer.length != written:
        msg = f"output {writer!r} holds {writer.length} frames and cannot be resized; the input gave {written}."
        raise ChunkShapeError(msg)
    return job.output.result()


def _show_progress(progress: bool | None, plan: Plan, first: int) -> bool:
    if progress is not None:
        return progress
    if plan.end is None:
        return False
    return -(-(plan.end - first) // plan.dt) >= _PROGRESS_MIN_CHUNKS and sys.stderr.isatty()


def _to_cpu(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    return state
