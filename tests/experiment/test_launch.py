"""Distributed runs through the elastic launcher on 2 CPU ranks: DDP gradients, shared folder, fail-fast."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from streamreg.experiment import (
    LaunchError,
    all_reduce_mean,
    broadcast_from_master,
    experiment,
    gather,
    get_num_processes,
    get_rank,
    output_dir,
    parameter,
    run_device,
)

ROOT = Path(__file__).resolve().parents[2]


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(8, 3, generator=generator), torch.randn(8, 1, generator=generator)


def _model() -> torch.nn.Linear:
    with torch.random.fork_rng():
        torch.manual_seed(1)
        return torch.nn.Linear(3, 1)


@experiment
def ddp_gradient(params):
    """Each rank takes its half of the batch; DDP averages the gradients."""
    x, y = _data()
    rank, world = get_rank(), get_num_processes()
    model = DistributedDataParallel(_model())  # CPU, gloo: no device_ids
    loss = torch.nn.functional.mse_loss(model(x[rank::world]), y[rank::world])
    loss.backward()
    return {
        "grads": [p.grad.clone() for p in model.module.parameters()],
        "world": world,
        "backend": dist.get_backend(),
        "device": str(run_device()),
        "folders": gather(str(output_dir())),
        "seeds": gather(torch.initial_seed()),
        "mean": all_reduce_mean(float(rank)),
        "sent": broadcast_from_master(f"from rank {rank}"),
        "tensor": broadcast_from_master(torch.full((2,), float(rank))),
    }


@experiment
@parameter("how", default="sigkill")
def dies(params):
    """Rank 1 dies while rank 0 waits in a barrier that has no timeout of its own."""
    if get_rank() == 1:
        time.sleep(0.5)
        (output_dir() / "died_at").write_text(repr(time.time()))
        if params["how"] == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        msg = "rank one gave up"
        raise RuntimeError(msg)
    dist.barrier()
    time.sleep(120)  # never reached on a healthy launcher: it stops rank 0 first


def test_two_cpu_ranks_give_the_full_batch_gradient(tmp_path):
    """2 gloo ranks through the launcher: DDP gradients equal one process's full-batch gradient."""
    out = ddp_gradient.cli(["--distributed", "--nproc-per-node", "2", "--random-seed", "10",
                            "--output-dir", str(tmp_path)])
    x, y = _data()
    model = _model()
    torch.nn.functional.mse_loss(model(x), y).backward()

    assert (out["world"], out["backend"], out["device"]) == (2, "gloo", "cpu")
    for got, want in zip(out["grads"], [p.grad for p in model.parameters()]):
        torch.testing.assert_close(got, want)
    assert out["folders"][0] == out["folders"][1]
    assert sorted(p.name for p in Path(out["folders"][0]).iterdir()) == [
        "log.rank-1.txt", "log.txt", "parameters.json", "seed"]
    assert out["seeds"] == [10, 11]
    assert out["mean"] == 0.5
    assert out["sent"] == "from rank 0"
    assert torch.equal(out["tensor"], torch.zeros(2))


@pytest.mark.parametrize(("how", "expected"), [("sigkill", "rank 1 .* was killed by SIGKILL"),
                                               ("raise", "rank 1 .* exited with code 1: .*rank one gave up")])
def test_a_dead_rank_stops_the_run_within_seconds(tmp_path, how, expected):
    """A rank killed by SIGKILL, or raising, makes the launch fail fast with an error naming it."""
    with pytest.raises(LaunchError, match=expected):
        dies.run({"distributed": True, "nproc_per_node": 2, "how": how, "output_dir": tmp_path})
    stopped = time.time()
    died = float(next(tmp_path.glob("dies/*/died_at")).read_text())

    assert stopped - died < 10  # the launcher polls every 0.1 s; rank 0 was blocked in a barrier


def test_bad_launch_parameters_are_refused_by_name(tmp_path):
    """nproc_per_node=0 and node_rank ≥ nnodes raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match="nproc_per_node must be a positive integer; got 0"):
        dies.run({"distributed": True, "nproc_per_node": 0, "output_dir": tmp_path})
    with pytest.raises(ValueError, match="node_rank must be below nnodes=2; got 2"):
        dies.run({"distributed": True, "nnodes": 2, "node_rank": 2, "output_dir": tmp_path})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_through_the_static_rendezvous(tmp_path):
    """Two launchers (nnodes=2, node ranks 0 and 1) form one 2-rank run: this process and a child."""
    port = _free_port()
    common = ["--distributed", "--nnodes", "2", "--master-port", str(port), "--random-seed", "3",
              "--output-dir", str(tmp_path)]
    code = "import sys; from tests.experiment.test_launch import ddp_gradient; ddp_gradient.cli(sys.argv[1:])"
    node1 = subprocess.Popen([sys.executable, "-c", code, *common, "--node-rank", "1"], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
    try:
        out = ddp_gradient.cli([*common, "--node-rank", "0"])
    finally:
        node1.wait(timeout=60)
    x, y = _data()
    model = _model()
    torch.nn.functional.mse_loss(model(x), y).backward()

    assert node1.returncode == 0
    assert (out["world"], out["seeds"], out["folders"][0] == out["folders"][1]) == (2, [3, 4], True)
    for got, want in zip(out["grads"], [p.grad for p in model.parameters()]):
        torch.testing.assert_close(got, want)
