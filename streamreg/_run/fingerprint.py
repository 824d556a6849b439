"""What identifies a model and an input, so that a resume can refuse anything that would change the output.

A model is identified by its class, every parameter and buffer (streaming state
excluded) and every setting that is not a tensor (a threshold, a nonlinearity,
``n_stages``, an FIR method), module by module. An input is identified by its
kind, shape, dtype, length and source, and by a CRC-32 of every frame of its
range (:func:`frames_crc`), computed when the run starts and again on resume.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import numpy as np
import torch
from torch import nn

from streamreg._run.plan import Plan
from streamreg.streams.base import Stream

__all__ = ["frames_crc", "input_fingerprint", "model_fingerprint"]

_SETTING_TYPES = (bool, int, float, str, type(None), torch.dtype)


def model_fingerprint(model: nn.Module) -> dict[str, Any]:
    """Class name and a SHA-256 of every module's tensors and settings."""
    digest = hashlib.sha256()
    for path, module in model.named_modules():
        digest.update(f"<{path}:{type(module).__module__}.{type(module).__qualname__}>".encode())
        digest.update(_settings(module).encode())
        state = set(getattr(module, "_state_names", ()))
        tensors = [*module._parameters.items(), *((n, b) for n, b in module._buffers.items() if n not in state)]
        for name, tensor in tensors:
            digest.update(f"{name}:".encode())
            if tensor is not None:
                t = tensor.detach().cpu().contiguous().reshape(-1)
                digest.update(f"{t.dtype}{tuple(tensor.shape)};".encode())
                digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return {"class": type(model).__qualname__, "sha256": digest.hexdigest()}


def _settings(module: nn.Module) -> str:
    """``extra_repr`` plus every public non-tensor attribute, in a stable text form."""
    items = [f"repr={module.extra_repr()}"]
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or name == "training":
            continue
        items.append(f"{name}={_setting_text(value)}")
    return ";".join(items)


def _setting_text(value: Any) -> str:
    if isinstance(value, _SETTING_TYPES):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_setting_text(v) for v in value) + ")"
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__qualname__)}"
    return type(value).__qualname__


def input_fingerprint(stream: Stream, plan: Plan) -> dict[str, Any]:
    """Kind, frame shape, dtype, length and source of an input, and a CRC-32 of every frame the plan reads.

    The frames are read once more for the CRC (a seekable input; the position is kept), so a
    resume refuses an input changed anywhere, not only in the part already computed.
    """
    end = plan.end if plan.end is not None else stream.length
    return {
        "type": type(stream).__name__,
        "frame_shape": list(stream.frame_shape or ()),
        "dtype": str(stream.dtype),
        "frames": stream.length,
        "source": None if stream.location is None else ":".join(stream.location),
        "crc32": None if end is None else frames_crc(stream, plan.first, end, plan.dt),
    }


def frames_crc(stream: Stream, first: int, end: int, dt: int) -> int:
    """CRC-32 of frames ``[first, end)`` of a seekable stream, read in chunks; the position is kept."""
    position = stream.position
    crc = 0
    stream.seek(first)
    try:
        pos = first
        while pos < end:
            chunk = stream.get(min(dt, end - pos))
            if len(chunk) == 0:
                break
            crc = _update_crc(crc, chunk)
            pos += len(chunk)
    finally:
        stream.seek(position)
    return crc


def _update_crc(crc: int, frames: np.ndarray | torch.Tensor) -> int:
    """The running CRC-32 after ``frames`` (native byte order, C order)."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    arr = np.ascontiguousarray(frames, dtype=frames.dtype.newbyteorder("="))
    return zlib.crc32(memoryview(arr).cast("B"), crc)
