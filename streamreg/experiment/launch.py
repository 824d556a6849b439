"""Distributed launch through torch's elastic launcher, the engine ``torchrun`` runs.

``--distributed --nproc-per-node N`` starts N ranks on this node with
:func:`torch.distributed.launcher.api.elastic_launch`: spawned processes that
import the experiment's module, with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` set by the launcher (the env:// protocol of
torchrun; no experiment parameter is read from them). A single node rendezvous
on a free local port, as ``torchrun --standalone``; several nodes use the static
rendezvous at ``master_addr:master_port`` with ``node_rank``, as
``torchrun --nnodes --node-rank --master-addr --master-port``.

When a rank dies, the launcher (polling every 0.1 s) stops the others and
:class:`LaunchError` names the failed rank, its exit code or signal and the
first line of its error. A script already started by ``torchrun`` with
``--distributed`` runs as that rank instead of launching again.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from streamreg._validation import check_nonnegative_int, check_positive_int
from streamreg.experiment import distributed, runtime

if TYPE_CHECKING:
    from streamreg.experiment.experiment import Experiment

__all__ = ["LaunchError", "inside_launcher", "launch", "process_group"]

#: How long a collective may wait for a rank before it fails (a dead rank is caught sooner by the launcher).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)
#: How long node 0 waits for the other nodes to join.
RENDEZVOUS_TIMEOUT_S = 300
#: Seconds the launcher gives the surviving ranks after SIGTERM before SIGKILL.
SHUTDOWN_TIMEOUT_S = 5
#: Seconds a rank that lost a peer waits before failing itself (the launcher polls every 0.1 s).
LOST_PEER_GRACE_S = 3.0

_LOST_PEER = ("Connection closed by peer", "Connection reset by peer", "remote worker crashing",
              "failed to pass monitoredBarrier", "Broken pipe", "NCCL communicator was aborted")


class LaunchError(RuntimeError):
    """A rank of a distributed run failed; the message names the rank and how it ended."""


def inside_launcher() -> bool:
    """Return True in a process that torchrun or the elastic launcher started as a rank."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ


def _config(params: dict[str, Any]) -> LaunchConfig:
    nnodes = check_positive_int(params["nnodes"], "nnodes")
    nproc = check_positive_int(params["nproc_per_node"], "nproc_per_node")
    node_rank = check_nonnegative_int(params["node_rank"], "node_rank")
    port = check_nonnegative_int(params["master_port"], "master_port")
    if node_rank >= nnodes:
        msg = f"node_rank must be below nnodes={nnodes}; got {node_rank}."
        raise ValueError(msg)
    common = {"min_nodes": nnodes, "max_nodes": nnodes, "nproc_per_node": nproc, "max_restarts": 0,
              "monitor_interval": 0.1, "start_method": "spawn", "shutdown_timeout": SHUTDOWN_TIMEOUT_S}
    if nnodes == 1:
        return LaunchConfig(**common, run_id=f"streamreg-{uuid.uuid4().hex}", rdzv_backend="c10d",
                            rdzv_endpoint="127.0.0.1:0", rdzv_configs={"timeout": RENDEZVOUS_TIMEOUT_S})
    return LaunchConfig(**common, run_id=f"streamreg-{port}", rdzv_backend="static",
                        rdzv_endpoint=f"{params['master_addr']}:{port}",
                        rdzv_configs={"rank": node_rank, "timeout": RENDEZVOUS_TIMEOUT_S})


def _describe(rank: int, failure: ProcessFailure) -> str:
    how = (f"was killed by {failure.signal_name()}" if failure.exitcode < 0
           else f"exited with code {failure.exitcode}")
    message: Any = failure.message
    if isinstance(message, dict):  # an error file written by the rank: {"message": ..., "extraInfo": ...}
        message = message.get("message", "")
    lines = str(message).strip().splitlines()
    detail = f": {lines[0]}" if lines and "To enable traceback" not in lines[0] else ""
    return f"rank {rank} (local rank {failure.local_rank}, pid {failure.pid}) {how}{detail}"


def launch(experiment: Experiment, params: dict[str, Any]) -> tuple[Any, Path | None]:
    """Run ``experiment`` on ``nproc_per_node`` ranks of this node; return rank 0's (result, folder).

    Raises
    ------
    LaunchError
        When a rank fails; the other ranks are stopped first.
    """
    config = _config(params)
    try:
        results = elastic_launch(config, _worker)(experiment, params)
    except ChildFailedError as exc:
        failures = sorted(exc.failures.items())
        lines = "; ".join(_describe(rank, failure) for rank, failure in failures)
        msg = (f"distributed run of experiment {experiment.name!r} failed: {lines}. "
               "The other ranks were stopped.")
        raise LaunchError(msg) from exc
    return results[min(results)]


def _lost_a_peer(exc: BaseException) -> bool:
    """True for the error a collective raises on a rank whose peer died (the symptom, not the cause)."""
    return isinstance(exc, RuntimeError) and any(marker in str(exc) for marker in _LOST_PEER)


def _worker(experiment: Experiment, params: dict[str, Any]) -> tuple[Any, Path | None]:
    """Entry point of each launched rank.

    A rank whose collective failed because another rank died waits
    ``LOST_PEER_GRACE_S`` before it fails, so the launcher observes, stops and
    names the rank that died first.
    """
    try:
        return experiment._execute(params)
    except RuntimeError as exc:
        if _lost_a_peer(exc):
            time.sleep(LOST_PEER_GRACE_S)
        raise


@contextlib.contextmanager
def process_group(params: dict[str, Any]) -> Iterator[torch.device]:
    """Join the launcher's process group (gloo on CPU, nccl on CUDA) for the duration of a rank's run."""
    if not inside_launcher():
        msg = "distributed=True needs the elastic launcher's environment; run through exp.run() or exp.cli()."
        raise RuntimeError(msg)
    local_rank = int(os.environ["LOCAL_RANK"])
    device = runtime._resolve(runtime._spec_from_cuda(params["cuda"]), local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(distributed.backend_for(device), timeout=COLLECTIVE_TIMEOUT)
    try:
        yield device
    finally:
        dist.destroy_process_group()
