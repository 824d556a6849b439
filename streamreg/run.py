"""Preparing a chunked run: checks, streams, positions, checkpoints. Shared by ``run()`` and ``Runner``."""

from __future__ import annotations

import os
import sys
from typing import Any

import h5py
import torch

from streamreg._checkpoint import CheckpointFile, input_fingerprint, model_fingerprint
from streamreg._endpoints import ArrayWriter, open_reader, open_writer
from streamreg._h5repair import clear_status_flags, superblock_version
from streamreg._hdf5 import H5Files, parse_h5_path
from streamreg._loop import Job
from streamreg._validation import check_bool, check_dt, check_nonnegative_int, check_positive_int
from streamreg.exceptions import ChunkShapeError, OutputExistsError
from streamreg.layer import module_device
from streamreg.planning import parse_bytes, plan_dt
from streamreg.streams.base import Stream
from streamreg.streams.hdf5 import HDF5Stream

__all__ = ["finish_job", "prepare_job", "run_layer"]

_PROGRESS_MIN_CHUNKS = 4


def run_layer(layer: Any, input: Any, dt: int | None = None, **options: Any) -> Any:  # noqa: A002
    """Run ``layer`` over ``input`` in chunks; see :meth:`streamreg.Layer.run`."""
    job = prepare_job(layer, input, dt, **options)
    try:
        job.execute()
    except BaseException:
        finish_job(job, failed=True)
        raise
    return finish_job(job, keep_open=True)


def prepare_job(
    layer: Any,
    input: Any,  # noqa: A002
    dt: int | None = None,
    *,
    output: Any = None,
    reset: bool = True,
    progress: bool | None = None,
    device: Any = None,
    max_memory: Any = None,
    overwrite: bool = False,
    n_frames: int | None = None,
    start: int = 0,
    stop: int | None = None,
    warmup: int | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    swmr: bool | None = None,
    endless: bool = False,
) -> Job:
    """Check everything and open every file; return a :class:`~streamreg._loop.Job` ready to execute.

    ``endless`` allows an infinite input without ``n_frames`` (a Runner runs until stopped).
    Nothing is computed yet; on an error every file this call created is removed.
    """
    opts = _check_options(dt, max_memory, reset, overwrite, progress, n_frames, start, stop, warmup,
                          checkpoint_every, resume, swmr)
    files = H5Files()
    ckpt: CheckpointFile | None = None
    record = None
    try:
        ckpt, record, swmr = _reserve_output(output, files, opts)
        reader = open_reader(input, files)
        if device is not None:
            layer.to(device)
        device = torch.device(device) if device is not None else module_device(layer)
        if opts["reset"]:
            layer.reset_state()
        first, start, end = _frame_range(layer, reader, opts, endless)
        dtype = layer.compute_dtype(reader.dtype)
        dt = _plan(layer, reader, opts, dtype, device, first, end)
        job = _make_job(layer, reader, output, files, ckpt, record, opts, swmr, dt, device, dtype, first, start, end)
    except BaseException:
        if ckpt is not None:
            if record is None:  # this call made the first checkpoint, if any: nothing ran
                ckpt.remove()
            ckpt.unlock(remove=True)
        files.close(failed=True)
        raise
    return job


def finish_job(job: Job, *, failed: bool = False, keep_open: bool = False) -> Any:
    """Release a job's files and lock; return the output (array, dataset or stream)."""
    writer = job.output.writer
    result: Any = None
    keep = None
    try:
        if not failed:
            result = _result(job, keep_open)
            keep = result.file if isinstance(result, h5py.Dataset) and keep_open and job.output.owned else None
    finally:
        if job.checkpoint is not None:
            if failed and job.out_pos == 0 and not job.resumed:
                job.checkpoint.remove()  # nothing was written: no run to resume
            job.checkpoint.unlock(remove=job.finished or (failed and job.out_pos == 0))
        if isinstance(writer, HDF5Stream) and not job.output.given_stream:
            writer.close()
        job.files.close(keep=keep, failed=failed)
    return result


def _result(job: Job, keep_open: bool) -> Any:
    writer = job.output.writer
    if isinstance(writer, ArrayWriter):
        return writer.result(complete=job.finished)
    if job.output.given_stream:
        return writer
    assert isinstance(writer, HDF5Stream)
    ds = writer.dataset
    if job.finished and not writer.resizable and len(writer) != writer.frames_written:
        msg = (
            f"output dataset {ds.name!r} holds {len(writer)} frames and cannot be resized; "
            f"the input gave {writer.frames_written}."
        )
        raise ChunkShapeError(msg)
    if job.output.owned and not keep_open:
        return f"{job.output.filename}:{job.output.dataset}"
    return ds


# -- checks ----------------------------------------------------------------------
def _check_options(
    dt: Any, max_memory: Any, reset: Any, overwrite: Any, progress: Any, n_frames: Any, start: Any,
    stop: Any, warmup: Any, every: Any, resume: Any, swmr: Any,
) -> dict[str, Any]:
    opts: dict[str, Any] = {"dt": check_dt(dt)}
    opts["budget"] = parse_bytes(max_memory) if max_memory is not None else None
    for name, flag in (("reset", reset), ("overwrite", overwrite), ("resume", resume)):
        opts[name] = check_bool(flag, name)
    for name, flag in (("progress", progress), ("swmr", swmr)):
        opts[name] = None if flag is None else check_bool(flag, name)
    opts["start"] = check_nonnegative_int(start, "start")
    for name, value in (("n_frames", n_frames), ("stop", stop), ("warmup", warmup)):
        opts[name] = None if value is None else check_nonnegative_int(value, name)
    opts["every"] = None if every is None else check_positive_int(every, "checkpoint_every")
    if opts["stop"] is not None and opts["n_frames"] is not None:
        msg = f"give stop or n_frames, not both; got stop={stop} and n_frames={n_frames}."
        raise ValueError(msg)
    if opts["stop"] is not None and opts["stop"] < opts["start"]:
        msg = f"stop must be at least start={start}; got stop={stop}."
        raise ValueError(msg)
    if resume and overwrite:
        msg = "resume=True continues an output and overwrite=True replaces it; give one of them."
        raise ValueError(msg)
    if not reset and (resume or opts["start"] > 0):
        what = "resume=True" if resume else f"start={start}"
        msg = f"{what} sets the model's state itself; it cannot be combined with reset=False."
        raise ValueError(msg)
    return opts


def _reserve_output(output: Any, files: H5Files, opts: dict[str, Any]) -> tuple[Any, Any, bool]:
    """Open the output file first (it may also hold the input) and handle its checkpoint."""
    location = _hdf5_location(output)
    wants_ckpt = opts["every"] is not None or opts["resume"]
    if wants_ckpt and location is None:
        msg = (
            "checkpoint_every and resume need an HDF5 output ('file.h5:/dataset', an h5py dataset "
            f"or group, or an HDF5Stream), where the checkpoint is kept; got output of type {type(output).__name__}."
        )
        raise ValueError(msg)
    swmr = bool(opts["swmr"])
    if location is None:
        return None, None, swmr
    path, dataset = location
    ckpt: CheckpointFile | None = CheckpointFile(path, dataset)
    stale = ckpt.exists()  # a run into this output was stopped or killed
    if not (wants_ckpt or stale):
        return None, None, _open_output_file(output, path, files, None, opts, swmr)
    record = None
    try:
        ckpt.lock()
        record = _load_or_refuse(ckpt, opts)
        if record is not None and isinstance(output, str) and os.path.exists(path):
            clear_status_flags(path)  # resume: a killed SWMR writer leaves them set; we hold the file's lock
        swmr = _open_output_file(output, path, files, record, opts, swmr)
    except BaseException:
        ckpt.unlock(remove=True)
        raise
    if not wants_ckpt:  # overwrite=True replaced a stale checkpoint; this run keeps none
        ckpt.unlock(remove=True)
        ckpt = None
    return ckpt, record, swmr


def _open_output_file(output: Any, path: str, files: H5Files, record: Any, opts: dict[str, Any], swmr: bool) -> bool:
    if isinstance(output, str):
        exists = os.path.exists(path)
        if record is not None:
            swmr = bool(record["swmr"]) if opts["swmr"] is None else swmr
        elif opts["swmr"] is None:
            swmr = not exists or superblock_version(path) >= 3
        files.open(path, write=True, name="output", swmr=swmr)
    return swmr


def _hdf5_location(output: Any) -> tuple[str, str] | None:
    if isinstance(output, str):
        return parse_h5_path(output, "output")
    if isinstance(output, h5py.Dataset):
        return output.file.filename, output.name
    if isinstance(output, h5py.Group):
        return output.file.filename, f"{output.name.rstrip('/')}/output"
    if isinstance(output, HDF5Stream) and output.file is not None:
        return output.file.filename, output.dataset.name if output.dataset is not None else output._name
    return None


def _load_or_refuse(ckpt: CheckpointFile, opts: dict[str, Any]) -> dict[str, Any] | None:
    if opts["resume"]:
        if not ckpt.exists():
            msg = (
                f"resume=True, but there is no checkpoint for {ckpt.location} ({ckpt.path} is missing); "
                "run with checkpoint_every=k to make one, or without resume to start again."
            )
            raise FileNotFoundError(msg)
        return ckpt.load()
    if ckpt.exists():
        if not opts["overwrite"]:
            msg = (
                f"a checkpoint of an earlier run into {ckpt.location} exists ({ckpt.path}); pass "
                "resume=True to continue that run or overwrite=True to start again."
            )
            raise OutputExistsError(msg)
        ckpt.remove()
    return None


def _frame_range(layer: Any, reader: Stream, opts: dict[str, Any], endless: bool) -> tuple[int, int, int | None]:
    """Absolute input frames ``[first, end)`` to read and the first output frame ``start``.

    ``start``/``stop``/``n_frames`` count from the reader's current position.
    """
    origin = reader.position
    start, stop, n_frames = opts["start"], opts["stop"], opts["n_frames"]
    # a queue's len() is what it holds now, not its total
    total = None if reader.infinite or reader.blocking else reader._length()
    length = None if total is None else total - origin
    if length is not None and start > length:
        msg = f"start={start} is past the end of the input, which has {length} frames."
        raise ValueError(msg)
    if stop is not None:
        end: int | None = stop
    elif n_frames is not None:
        end = start + n_frames
    elif length is not None:
        end = length
    elif reader.infinite and not endless:
        msg = f"input {reader!r} is infinite; pass n_frames= to say how many frames to run."
        raise ValueError(msg)
    else:
        end = None  # until the input ends (or the Runner is stopped)
    if length is not None and end is not None and end > length:
        what = f"stop={stop}" if stop is not None else f"start + n_frames = {end}"
        msg = f"{what} is past the end of the input, which has {length} frames."
        raise ValueError(msg)
    first = start - _lead(layer, start, opts["warmup"])
    for needed, what in ((first > 0, f"start={start}"), (opts["every"] is not None, "checkpoint_every"),
                         (opts["resume"], "resume=True")):
        if needed and not reader.seekable():
            msg = f"{what} needs an input that can seek; {type(reader).__name__} cannot."
            raise ValueError(msg)
    return origin + first, origin + start, None if end is None else origin + end


def _lead(layer: Any, start: int, warmup: int | None) -> int:
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


def _plan(
    layer: Any, reader: Stream, opts: dict[str, Any], dtype: torch.dtype, device: Any, first: int, end: int | None
) -> int:
    if opts["dt"] is not None:
        return opts["dt"]
    if opts["budget"] is not None:
        return plan_dt(layer, reader.frame_shape, opts["budget"], dtype, device)
    if end is None:
        msg = "dt=None means one chunk, which needs the input's length; pass dt= for this input."
        raise ValueError(msg)
    return max(end - first, 1)


def _make_job(
    layer: Any, reader: Stream, output: Any, files: H5Files, ckpt: CheckpointFile | None, record: Any,
    opts: dict[str, Any], swmr: bool, dt: int, device: Any, dtype: torch.dtype, first: int, start: int,
    end: int | None,
) -> Job:
    base = {}
    if ckpt is not None:
        base = {"model": model_fingerprint(layer), "input": input_fingerprint(reader), "output": ckpt.location,
                "dt": dt, "start": start, "end": end, "first": first, "swmr": swmr}
    total = None if end is None else end - start
    spec = open_writer(output, files, n=total, overwrite=opts["overwrite"], append=record is not None, swmr=swmr)
    if ckpt is not None and isinstance(spec.writer, HDF5Stream) and not spec.writer.resizable:
        msg = "checkpoint_every and resume need an output dataset resizable along time (maxshape (None, ...))."
        raise ValueError(msg)
    job = Job(layer, reader, spec, files, dt, device, dtype, start, end, first, progress=False,
              checkpoint=ckpt, checkpoint_every=opts["every"] or (record or {}).get("every"), checkpoint_base=base)
    job.checkpoint_base["every"] = job.checkpoint_every
    if record is not None:
        _restore(job, record, base)
    elif first > 0:
        reader.seek(first)
    if ckpt is not None and record is None:
        ckpt.save(job._record())
    job.progress = _show_progress(opts["progress"], end, job.in_pos, dt)
    return job


def _restore(job: Job, record: dict[str, Any], base: dict[str, Any]) -> None:
    for key, what in (("model", "model (class or weights)"), ("input", "input"), ("dt", "dt"),
                      ("start", "start"), ("end", "stop/n_frames")):
        if record.get(key) != base.get(key):
            msg = (
                f"resume=True: the checkpoint {job.checkpoint.path if job.checkpoint else ''} was written "
                f"with a different {what}: {record.get(key)!r} there, {base.get(key)!r} now. "
                "Resume with the same model, input and options, or start again with overwrite=True."
            )
            raise ValueError(msg)
    job.resumed = True
    job.layer.set_state(record["state"])
    job.in_pos, job.out_pos = int(record["in_pos"]), int(record["out_pos"])
    job.frames_done, job.chunks_done = job.out_pos, int(record["chunks"])
    job.reader.seek(job.in_pos)
    writer = job.output.writer
    held = len(writer)
    if held < job.out_pos:
        msg = (
            f"resume=True: {job.checkpoint.location if job.checkpoint else 'the output'} holds {held} frames, "
            f"fewer than the {job.out_pos} the checkpoint counts; the output was changed or damaged."
        )
        raise ValueError(msg)
    if held:
        writer.truncate(job.out_pos)


def _show_progress(progress: bool | None, end: int | None, first: int, dt: int) -> bool:
    if progress is not None:
        return bool(progress)
    if end is None:
        return False
    n_chunks = -(-(end - first) // dt)
    return n_chunks >= _PROGRESS_MIN_CHUNKS and sys.stderr.isatty()
