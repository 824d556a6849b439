"""The chunk loop behind :meth:`streamreg.Layer.run`."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from streamreg._hdf5 import H5Files
from streamreg._io import DatasetSink, open_input, prepare_output, to_tensor
from streamreg._validation import check_bool, check_dt
from streamreg.exceptions import ChunkShapeError
from streamreg.layer import module_device
from streamreg.planning import parse_bytes, plan_dt

__all__ = ["run_layer"]

_PROGRESS_MIN_CHUNKS = 4


def run_layer(
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
) -> Any:
    """Run ``layer`` over ``input`` in chunks; see :meth:`streamreg.Layer.run`."""
    dt = check_dt(dt)
    budget = parse_bytes(max_memory) if max_memory is not None else None
    for name, flag in (("reset", reset), ("overwrite", overwrite)):
        check_bool(flag, name)
    if progress is not None:
        check_bool(progress, "progress")
    files = H5Files()
    sink = None
    try:
        make_sink = prepare_output(output, files, overwrite=overwrite)  # before input: shared files
        source = open_input(input, files)
        if device is not None:
            layer.to(device)
        else:
            device = module_device(layer)
        if reset:
            layer.reset_state()
        dtype = layer.compute_dtype(source.data.dtype)
        n = source.n_frames
        if dt is None:
            dt = plan_dt(layer, source.frame_shape, budget, dtype, device) if budget else max(n, 1)
        show = _show_progress(progress, n, dt)
        with torch.no_grad(), tqdm(total=n, unit="frame", disable=not show, desc=type(layer).__name__) as bar:
            for t0 in range(0, n, dt):
                t1 = min(t0 + dt, n)
                y = layer(to_tensor(source.read(t0, t1), dtype, device))
                _check_output(y, t1 - t0, t0)
                y_np = y.detach().cpu().numpy()
                if sink is None:
                    sink = make_sink(n, tuple(y_np.shape[1:]), y_np.dtype, dt)
                sink.write(t0, y_np)
                bar.update(t1 - t0)
            if sink is None:  # T == 0: find the output frame from one probe frame
                frame, out_dtype = _probe_frame(layer, source.frame_shape, dtype, device)
                sink = make_sink(0, frame, out_dtype, 1)
        result = sink.result()
    except BaseException:
        if isinstance(sink, DatasetSink):
            sink.discard()
        files.close(failed=True)
        raise
    files.close(keep=result.file if isinstance(sink, DatasetSink) else None)
    return result


def _show_progress(progress: bool | None, n: int, dt: int) -> bool:
    if progress is not None:
        return bool(progress)
    n_chunks = -(-n // dt)
    return n_chunks >= _PROGRESS_MIN_CHUNKS and sys.stderr.isatty()


def _check_output(y: Any, n: int, t0: int) -> None:
    if not isinstance(y, torch.Tensor) or y.ndim == 0 or y.shape[0] != n:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        msg = (
            f"layer output for frames [{t0}, {t0 + n}) must be a tensor (T, *frame_out) "
            f"with T = {n} frames; got {got}."
        )
        raise ChunkShapeError(msg)


def _probe_frame(
    layer: Any, frame: tuple[int, ...], dtype: torch.dtype, device: Any
) -> tuple[tuple[int, ...], np.dtype]:
    state = layer.get_state()
    try:
        with torch.no_grad():
            y = layer(torch.zeros((1, *frame), dtype=dtype, device=device))
    finally:
        layer.set_state(state)
    return tuple(y.shape[1:]), np.dtype(y.detach().cpu().numpy().dtype)
