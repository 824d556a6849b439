"""Torch devices and memory reports, and torch modules as numpy functions (janelia_core's ``ml.utils`` names).

Examples
--------
>>> import torch
>>> f = torch_mod_to_fcn(torch.nn.Softplus())
>>> f([0.0, 1.0]).round(4)
array([0.6931, 1.3133])
"""

from __future__ import annotations

import math
import os
import resource
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["list_torch_devices", "summarize_memory_stats", "torch_devices_memory_usage", "torch_mod_to_fcn"]

GB = 1e9
"""Bytes per GB in memory summaries (decimal gigabytes)."""

_CUDA_READERS: dict[str, Callable[[torch.device], int]] = {
    "memory_allocated": torch.cuda.memory_allocated,
    "max_memory_allocated": torch.cuda.max_memory_allocated,
}


def list_torch_devices(verbose: bool = True) -> list:
    """The usable torch devices: every CUDA GPU, or the CPU when there is none.

    Parameters
    ----------
    verbose : bool
        Print ``Found N GPUs.`` or ``No GPUs found.``.

    Returns
    -------
    [devices, cuda_is_available] : list
        ``devices`` is a list of :class:`torch.device` (``cuda:0 … cuda:N-1``, or
        ``[cpu]``); ``cuda_is_available`` is True when they are GPUs. The CPU is never
        listed together with GPUs.

    Examples
    --------
    >>> devices, on_gpu = list_torch_devices(verbose=False)
    >>> on_gpu == torch.cuda.is_available()
    True
    """
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        if verbose:
            print(f"Found {n} GPUs.")
        return [[torch.device("cuda", i) for i in range(n)], True]
    if verbose:
        print("No GPUs found.")
    return [[torch.device("cpu")], False]


def torch_devices_memory_usage(devices: Sequence[torch.device], type: str = "memory_allocated") -> list:  # noqa: A002
    """Memory allocated by torch on each device, in bytes; NaN for a CPU.

    Parameters
    ----------
    devices : sequence of torch.device
        Devices (or strings such as ``"cuda:0"``).
    type : {"memory_allocated", "max_memory_allocated"}
        The current allocation or its peak since the start (or the last
        ``torch.cuda.reset_peak_memory_stats``).

    Returns
    -------
    mem_usage : list of float
        One value per device: bytes for CUDA devices, ``nan`` for any other device.

    Raises
    ------
    ValueError
        If ``type`` is not one of the two names above.

    Examples
    --------
    >>> torch_devices_memory_usage([torch.device("cpu")], type="max_memory_allocated")
    [nan]
    """
    if type not in _CUDA_READERS:
        msg = f"type must be one of {sorted(_CUDA_READERS)}; got {type!r}."
        raise ValueError(msg)
    read = _CUDA_READERS[type]
    out = []
    for dev in (torch.device(d) for d in devices):
        out.append(float(read(dev)) if dev.type == "cuda" else math.nan)
    return out


def _process_rss_bytes() -> float:
    """Resident memory of this process in bytes (``/proc/self/statm``); NaN without ``/proc``."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
    except FileNotFoundError:
        return math.nan
    return float(resident_pages * os.sysconf("SC_PAGE_SIZE"))


def _process_peak_rss_bytes() -> float:
    """Peak resident memory of this process in bytes (``getrusage``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak if sys.platform == "darwin" else peak * 1024)


def summarize_memory_stats(devices: Sequence[torch.device]) -> list[dict]:
    """Current and peak memory per device, in GB (10**9 bytes).

    Parameters
    ----------
    devices : sequence of torch.device
        Devices (or strings).

    Returns
    -------
    memory_usage : list of dict
        ``memory_usage[i]`` for ``devices[i]``, with keys ``type`` (``"cpu"``,
        ``"cuda"``, ...), ``current`` and ``max``, both in GB:

        * CUDA: ``torch.cuda.memory_allocated`` and ``torch.cuda.max_memory_allocated``;
        * CPU: the resident memory of this process (``/proc/self/statm``; NaN where
          there is no ``/proc``) and its peak (``resource.getrusage``, and never below
          ``current``);
        * any other device type: NaN for both.

    Examples
    --------
    >>> stats = summarize_memory_stats([torch.device("cpu")])
    >>> stats[0]["type"], 0 < stats[0]["current"] <= stats[0]["max"]
    ('cpu', True)
    """
    out = []
    for dev in (torch.device(d) for d in devices):
        if dev.type == "cuda":
            current, peak = torch.cuda.memory_allocated(dev), torch.cuda.max_memory_allocated(dev)
        elif dev.type == "cpu":
            current = _process_rss_bytes()
            peak = max(_process_peak_rss_bytes(), current)  # the kernel updates its peak lazily
        else:
            current = peak = math.nan
        out.append({"type": dev.type, "current": current / GB, "max": peak / GB})
    return out


def _module_dtype_device(m: Callable) -> tuple[torch.dtype | None, torch.device]:
    """The dtype and device of a module's first floating-point parameter or buffer (None, cpu otherwise)."""
    if isinstance(m, torch.nn.Module):
        for t in (*m.parameters(), *m.buffers()):
            if t.is_floating_point():
                return t.dtype, t.device
        for t in (*m.parameters(), *m.buffers()):
            return None, t.device
    return None, torch.device("cpu")


def _as_input(x: Any, dtype: torch.dtype | None, device: torch.device) -> Tensor:
    """``x`` (array, list, scalar or tensor) as a tensor of ``dtype`` on ``device``; a scalar stays a 0-d value."""
    t = x.detach() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    if dtype is None and not (t.is_floating_point() or t.is_complex()):
        dtype = torch.get_default_dtype()
    return t.to(device=device, dtype=dtype if dtype is not None else t.dtype)


def _to_numpy(y: Any) -> Any:
    """Tensors (also inside a tuple or list) as host numpy arrays; anything else through ``np.asarray``."""
    if isinstance(y, Tensor):
        return y.detach().cpu().numpy()
    if isinstance(y, (tuple, list)):
        return type(y)(_to_numpy(v) for v in y)
    return np.asarray(y)


def torch_mod_to_fcn(m: Callable) -> Callable[[Any], Any]:
    """A numpy function that calls a torch module (or any torch function) under ``no_grad``.

    Parameters
    ----------
    m : callable
        A :class:`torch.nn.Module` or a function of one tensor (``torch.exp``).

    Returns
    -------
    fcn : callable
        ``fcn(x)`` converts ``x`` (numpy array, list, Python scalar or tensor) to a
        tensor, moves it to the module's device and dtype (those of its first
        floating-point parameter or buffer), calls ``m`` under ``torch.no_grad()`` and
        returns host numpy (a tuple or list of tensors gives a tuple or list of arrays).
        For a module without floating-point parameters or a plain function the input
        keeps its floating dtype, integers and bools become the default float dtype,
        and the call runs on the CPU (or where the module's other tensors are). A
        Python int is a value, never a size: ``fcn(3)`` evaluates ``m`` at 3.

    Raises
    ------
    TypeError
        If ``m`` is not callable.

    Examples
    --------
    >>> torch_mod_to_fcn(torch.exp)(0)
    array(1., dtype=float32)
    """
    if not callable(m):
        msg = f"m must be a torch.nn.Module or a callable; got {type(m).__name__}."
        raise TypeError(msg)

    def fcn(x: Any) -> Any:
        dtype, device = _module_dtype_device(m)
        with torch.no_grad():
            return _to_numpy(m(_as_input(x, dtype, device)))

    return fcn
