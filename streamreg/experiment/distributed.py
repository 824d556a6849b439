"""Rank functions and small collectives over ``torch.distributed``, no-ops in one process.

Every function works without a process group: then there is one process of
rank 0, ``broadcast_from_master`` returns its input unchanged, ``gather``
returns ``[value]`` and ``all_reduce_mean`` returns the value itself. Inside a
distributed run they use the default process group that the experiment set up
(gloo on CPU, nccl on CUDA, see :func:`backend_for`).
"""

from __future__ import annotations

import datetime
import numbers
import os
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce_mean",
    "backend_for",
    "broadcast_from_master",
    "distributed_barrier",
    "gather",
    "get_local_rank",
    "get_num_processes",
    "get_rank",
    "is_distributed",
    "is_master",
]

T = TypeVar("T")


def is_distributed() -> bool:
    """Return True when a default process group is initialised in this process."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Return the global rank of this process (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def get_num_processes() -> int:
    """Return the world size (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def get_local_rank() -> int:
    """Return this process's rank on its node (0 when not distributed), as the launcher set it."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_master() -> bool:
    """Return True on global rank 0, and always when not distributed."""
    return get_rank() == 0


def backend_for(device: torch.device) -> str:
    """Return the process-group backend for ``device``: ``"nccl"`` on CUDA, ``"gloo"`` otherwise.

    Examples
    --------
    >>> backend_for(torch.device("cpu"))
    'gloo'
    """
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def _comm_device() -> torch.device:
    """The device collectives run on: the current CUDA device for nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_from_master(value: T) -> T:
    """Return rank 0's ``value`` on every rank.

    Parameters
    ----------
    value : Tensor or picklable object
        A tensor keeps its dtype and shape (those of rank 0) and comes back on
        this rank's input device; any other object is pickled.

    Returns
    -------
    The input itself when not distributed.

    Examples
    --------
    >>> broadcast_from_master({"lr": 0.1})
    {'lr': 0.1}
    """
    if not is_distributed():
        return value
    if isinstance(value, torch.Tensor):
        meta = [(tuple(value.shape), value.dtype)]
        dist.broadcast_object_list(meta, src=0, device=_comm_device())
        shape, dtype = meta[0]
        buffer = value.detach().to(_comm_device(), copy=True) if get_rank() == 0 else None
        if buffer is None or tuple(buffer.shape) != shape:
            buffer = torch.empty(shape, dtype=dtype, device=_comm_device())
        dist.broadcast(buffer, src=0)
        return buffer.to(value.device)  # type: ignore[return-value]
    box = [value]
    dist.broadcast_object_list(box, src=0, device=_comm_device())
    return box[0]


def _as_timedelta(timeout: float | datetime.timedelta | None) -> datetime.timedelta | None:
    if timeout is None or isinstance(timeout, datetime.timedelta):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout <= 0:
        msg = f"timeout must be a positive number of seconds, a timedelta or None; got {timeout!r}."
        raise ValueError(msg)
    return datetime.timedelta(seconds=float(timeout))


def distributed_barrier(timeout: float | datetime.timedelta | None = None) -> None:
    """Wait until every rank reaches this point; a no-op when not distributed.

    Parameters
    ----------
    timeout : float, timedelta or None
        Seconds to wait at most (``None``: the process group's timeout). On gloo
        this is ``monitored_barrier``, whose error names the rank that did not
        arrive; on nccl the barrier's work is waited on with the timeout.

    Raises
    ------
    RuntimeError
        When a rank does not arrive in time.
    """
    delta = _as_timedelta(timeout)
    if not is_distributed():
        return
    if dist.get_backend() == "gloo":
        dist.monitored_barrier(timeout=delta, wait_all_ranks=True)
    elif delta is None:
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        work = dist.barrier(async_op=True, device_ids=[torch.cuda.current_device()])
        work.wait(timeout=delta)


def all_reduce_mean(value: torch.Tensor | float) -> torch.Tensor | float:
    """Return the mean of ``value`` over all ranks, on every rank.

    Parameters
    ----------
    value : Tensor or number
        A tensor (any shape, the same on every rank) is averaged elementwise and
        returned as a floating tensor on its own device; a number comes back as
        a float.

    Examples
    --------
    >>> all_reduce_mean(3)
    3.0
    """
    if isinstance(value, torch.Tensor):
        dtype = value.dtype if value.is_floating_point() else torch.get_default_dtype()
        if not is_distributed():
            return value.detach().to(dtype)
        buffer = value.detach().to(_comm_device(), dtype, copy=True)
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        return (buffer / get_num_processes()).to(value.device)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"value must be a tensor or a real number; got {value!r} of type {type(value).__name__}."
        raise TypeError(msg)
    if not is_distributed():
        return float(value)
    return float(all_reduce_mean(torch.tensor(float(value), dtype=torch.float64)))


def gather(value: T) -> list[T]:
    """Return the list of every rank's ``value``, ordered by rank, on every rank.

    Tensors may differ in shape between ranks; each comes back on this rank's
    input device. Other values are pickled.

    Examples
    --------
    >>> gather(1.5)
    [1.5]
    """
    if not is_distributed():
        return [value]
    items: list[Any] = [None] * get_num_processes()
    payload = value.detach().cpu() if isinstance(value, torch.Tensor) else value
    dist.all_gather_object(items, payload)
    if isinstance(value, torch.Tensor):
        return [item.to(value.device) for item in items]
    return items
