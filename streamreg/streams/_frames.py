"""Frame checks shared by the streams: arrays with a time axis, frame shapes, ``get_into`` buffers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from streamreg._validation import check_nonnegative_int, shape_text
from streamreg.exceptions import ChunkShapeError

__all__ = ["as_frames", "check_frame_shape", "check_out", "numpy_dtype"]


def as_frames(frames: Any, name: str) -> np.ndarray:
    """``frames`` (numpy array or tensor) as a numpy array with a time axis."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if not isinstance(frames, np.ndarray):
        msg = f"{name} must be a numpy array or a torch tensor of shape (n, *frame); got {type(frames).__name__}."
        raise TypeError(msg)
    if frames.ndim == 0:
        msg = f"{name} must have shape (n, *frame) with time on axis 0; got a 0-d array."
        raise ChunkShapeError(msg)
    return frames


def numpy_dtype(dtype: Any) -> np.dtype | None:
    """``dtype`` (numpy or torch) as a numpy dtype; ``None`` when unknown."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        return torch.empty((), dtype=dtype).numpy().dtype
    return np.dtype(dtype)


def check_frame_shape(frame_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(check_nonnegative_int(s, "frame_shape") for s in frame_shape)
    except TypeError:
        msg = f"frame_shape must be a sequence of non-negative integers; got {frame_shape!r}."
        raise TypeError(msg) from None
    return shape


def check_out(out: Any, frame_shape: tuple[int, ...] | None, dtype: Any, owner: str) -> None:
    """Refuse a ``get_into`` buffer that is not a writable C-contiguous ``(m, *frame)`` array holding ``dtype``."""
    if not isinstance(out, np.ndarray) or out.ndim == 0:
        msg = f"out must be a numpy array of shape (m, *frame); got {type(out).__name__}."
        raise TypeError(msg)
    if frame_shape is not None and tuple(out.shape[1:]) != frame_shape:
        msg = (
            f"out must have shape {shape_text(('m', *frame_shape))} to take frames of this "
            f"{owner}; got {tuple(out.shape)}."
        )
        raise ChunkShapeError(msg)
    if not (out.flags.c_contiguous and out.flags.writeable):
        msg = "out must be a writable, C-contiguous numpy array."
        raise ValueError(msg)
    src = numpy_dtype(dtype)
    if src is not None and not np.can_cast(src, out.dtype, casting="safe"):
        msg = f"out has dtype {out.dtype}, which cannot hold {src} frames of this stream without loss."
        raise TypeError(msg)
