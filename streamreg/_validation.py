"""Private argument checks with uniform messages: name, bad value, what is allowed."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from streamreg.exceptions import ChunkShapeError

_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integer, floating point


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an int if it is an integer ≥ 1 (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{name} must be a positive integer; got {value!r} of type {type(value).__name__}."
        raise TypeError(msg)
    if value < 1:
        msg = f"{name} must be a positive integer; got {value!r}."
        raise ValueError(msg)
    return int(value)


def check_count(value: Any, name: str, high: int | None = None, high_text: str = "") -> int:
    """Return ``value`` as an int in ``[1, high]``; every failure is a ``ValueError`` naming the value.

    The messages are :func:`check_positive_int`'s, plus ``"{name} must be at most {high}
    ({high_text}); got ..."``; used where a contract asks for ``ValueError`` on non-integers too.
    """
    try:
        count = check_positive_int(value, name)
    except TypeError as err:
        raise ValueError(str(err)) from err
    if high is not None and count > high:
        msg = f"{name} must be at most {high} ({high_text}); got {value!r}."
        raise ValueError(msg)
    return count


def check_nonnegative_int(value: Any, name: str) -> int:
    """Return ``value`` as an int if it is an integer ≥ 0 (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{name} must be a non-negative integer; got {value!r} of type {type(value).__name__}."
        raise TypeError(msg)
    if value < 0:
        msg = f"{name} must be a non-negative integer; got {value!r}."
        raise ValueError(msg)
    return int(value)


def check_dt(dt: Any, name: str = "dt") -> int | None:
    """Validate a chunk length in frames: ``None`` or an integer ≥ 1."""
    if dt is None:
        return None
    if isinstance(dt, bool) or not isinstance(dt, numbers.Integral):
        msg = (
            f"{name} must be a positive integer number of frames or None; "
            f"got {dt!r} of type {type(dt).__name__}."
        )
        raise TypeError(msg)
    if dt < 1:
        msg = f"{name} must be a positive integer number of frames or None; got {dt!r}."
        raise ValueError(msg)
    return int(dt)


def check_bool(value: Any, name: str) -> bool:
    """Refuse anything but ``True`` or ``False``."""
    if not isinstance(value, (bool, np.bool_)):
        msg = f"{name} must be True or False; got {value!r}."
        raise TypeError(msg)
    return bool(value)


def check_positive_float(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a positive number; got {value!r} of type {type(value).__name__}."
        raise TypeError(msg)
    if not np.isfinite(value) or value <= 0:
        msg = f"{name} must be a positive finite number; got {value!r}."
        raise ValueError(msg)
    return float(value)


def check_real(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        msg = f"{name} must be a finite real number; got {value!r}."
        raise TypeError(msg) if not isinstance(value, numbers.Real) else ValueError(msg)
    return float(value)


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    allowed = list(choices)
    if value not in allowed:
        msg = f"{name} must be one of {allowed}; got {value!r}."
        raise ValueError(msg)
    return str(value)


def check_numeric_dtype(dtype: Any, name: str) -> np.dtype | torch.dtype:
    """Refuse dtypes that are not bool, integer or real floating point."""
    if isinstance(dtype, torch.dtype):
        if dtype.is_complex or not (dtype.is_floating_point or dtype == torch.bool or _is_torch_int(dtype)):
            msg = f"{name} must have a numeric dtype (bool, integer or real floating point); got {dtype}."
            raise TypeError(msg)
        return dtype
    np_dtype = np.dtype(dtype)
    if np_dtype.kind not in _NUMERIC_KINDS:
        msg = f"{name} must have a numeric dtype (bool, integer or real floating point); got {np_dtype}."
        raise TypeError(msg)
    return np_dtype


def _is_torch_int(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def check_recording(data: Any, name: str) -> tuple[int, ...]:
    """A time-first recording (array, tensor, h5py dataset) must have a time axis and numbers; return its shape."""
    shape = tuple(data.shape)
    if len(shape) == 0:
        msg = f"{name} must have shape (T, *frame) with time on axis 0; got a 0-d array."
        raise ChunkShapeError(msg)
    check_numeric_dtype(data.dtype, name)
    return shape


def shape_text(shape: Sequence[Any]) -> str:
    """Format a shape such as ``("T", 20, 20)`` as ``(T, 20, 20)``."""
    inner = ", ".join(str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def check_time_series(
    x: torch.Tensor,
    name: str,
    *,
    frame: Sequence[Any] | None = None,
) -> torch.Tensor:
    """Check that ``x`` is ``(T, *frame)``.

    ``frame`` lists the expected frame axes: an int demands that size, a string
    (such as ``"H"``) accepts any size. ``None`` accepts any frame.
    """
    if x.ndim == 0:
        msg = f"{name} must have shape (T, *frame) with time on axis 0; got a 0-d tensor."
        raise ChunkShapeError(msg)
    if frame is None:
        return x
    got = tuple(x.shape[1:])
    ok = len(got) == len(frame) and all(isinstance(f, str) or f == g for f, g in zip(frame, got, strict=True))
    if not ok:
        msg = (
            f"{name} must have shape {shape_text(('T', *frame))} with time on axis 0; "
            f"got {tuple(x.shape)}."
        )
        raise ChunkShapeError(msg)
    return x


def check_state_shape(state: torch.Tensor | None, expected: Sequence[int], owner: str, name: str) -> None:
    """Check a streaming-state tensor against the shape the current input needs."""
    if state is not None and tuple(state.shape) != tuple(expected):
        msg = (
            f"{owner}.{name} has shape {tuple(state.shape)} but this input needs {tuple(expected)}; "
            "call reset_state() before changing the frame shape, or set_state() a matching state."
        )
        raise ChunkShapeError(msg)


def check_device(device: Any, name: str = "device") -> torch.device | None:
    """``None``, or a torch device that exists on this machine (``"cpu"``, ``"cuda"``, ``"cuda:1"``)."""
    if device is None:
        return None
    if not isinstance(device, (str, torch.device)):
        msg = f"{name} must be a torch device or a string such as 'cpu', 'cuda' or 'cuda:1'; got {device!r}."
        raise TypeError(msg)
    try:
        dev = torch.device(device)
    except RuntimeError:
        msg = f"{name} must be a torch device such as 'cpu', 'cuda' or 'cuda:1'; got {device!r}."
        raise ValueError(msg) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        msg = f"{name}={device!r}: this machine has no CUDA device (torch.cuda.is_available() is False); use 'cpu'."
        raise ValueError(msg)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        msg = f"{name}={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)."
        raise ValueError(msg)
    return dev
