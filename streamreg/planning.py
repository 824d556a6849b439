"""Chunk planning: memory budgets in bytes and the chunk length they allow."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from streamreg._modules import preserved_state

__all__ = ["frame_cost", "parse_bytes", "plan_dt"]

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30,
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_PROBE_FRAMES = 8
#: Multiplier on the hooked per-frame outputs: intermediates inside a layer, the input
#: chunk and the allocator's retained blocks. Calibrated with benchmarks/bench_max_memory.py.
_SAFETY = 4.0


def parse_bytes(value: Any, name: str = "max_memory") -> int:
    """Parse a byte count: an int, or a string such as ``"512MB"``, ``"1.5 GiB"``.

    Decimal units (kB, MB, GB) are powers of 1000, binary units (KiB, MiB, GiB)
    and the bare letters K, M, G powers of 1024.

    Examples
    --------
    >>> parse_bytes("512MB"), parse_bytes("2KiB"), parse_bytes(4096)
    (512000000, 2048, 4096)
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number, unit = float(value), ""
    elif isinstance(value, str) and (match := _PATTERN.match(value)):
        number, unit = float(match.group(1)), match.group(2).lower()
    else:
        number, unit = -1.0, "?"
    if unit not in _UNITS or number <= 0 or int(number * _UNITS.get(unit, 0)) < 1:
        msg = (
            f"{name} must be a positive number of bytes or a string such as '512MB' or '2GiB' "
            f"(units: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB); got {value!r}."
        )
        raise ValueError(msg)
    return int(number * _UNITS[unit])


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    return []


def frame_cost(
    layer: nn.Module, frame_shape: Sequence[int], dtype: torch.dtype, device: Any = None
) -> int:
    """Estimate the bytes one frame costs in a chunked run of ``layer``.

    The layer runs once on a few zero frames with forward hooks on every
    sub-module; the cost is the input frame plus every intermediate output per
    frame, times a safety factor for intermediates inside layers, plus what
    layers declare through ``workspace_bytes(x)`` (library workspace that never
    shows as an output, such as oneDNN's blocked copies in ``Conv3d``). The
    layer's state is restored after.
    """
    total = 0.0
    workspace = 0.0

    def hook(module: nn.Module, args: Any, out: Any) -> None:
        nonlocal total, workspace
        total += sum(t.numel() * t.element_size() for t in _tensors(out))
        if hasattr(module, "workspace_bytes") and args and isinstance(args[0], torch.Tensor):
            workspace += module.workspace_bytes(args[0])

    handles = [m.register_forward_hook(hook) for m in layer.modules()]
    probe = torch.zeros((_PROBE_FRAMES, *frame_shape), dtype=dtype, device=device)
    try:
        with preserved_state(layer), torch.no_grad():
            layer(probe)
    finally:
        for h in handles:
            h.remove()
    per_frame = _SAFETY * (probe[0].numel() * probe.element_size() + total / _PROBE_FRAMES)
    return max(1, math.ceil(per_frame + workspace / _PROBE_FRAMES))


def plan_dt(
    layer: nn.Module,
    frame_shape: Sequence[int],
    max_memory: Any,
    dtype: torch.dtype = torch.float32,
    device: Any = None,
) -> int:
    """Largest chunk length (≥ 1 frame) whose estimated cost fits in ``max_memory``."""
    budget = parse_bytes(max_memory)
    return max(1, budget // frame_cost(layer, frame_shape, dtype, device))
