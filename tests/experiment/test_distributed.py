"""Distributed helpers without a process group, and through a one-rank gloo group in this process."""

from __future__ import annotations

import datetime

import pytest
import torch
import torch.distributed as dist

from streamreg.experiment import (
    all_reduce_mean,
    backend_for,
    broadcast_from_master,
    distributed_barrier,
    gather,
    get_local_rank,
    get_num_processes,
    get_rank,
    is_distributed,
    is_master,
)


@pytest.fixture
def one_rank_group(tmp_path):
    """A gloo process group of world size 1, destroyed afterwards."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_rank_functions_without_a_process_group():
    """One process is rank 0 of 1, the master, and not distributed."""
    assert (is_distributed(), get_rank(), get_num_processes(), is_master(), get_local_rank()) == (False, 0, 1, True, 0)


def test_broadcast_returns_its_input_unchanged_when_not_distributed():
    """The very object comes back: a number stays a number, a tensor the same tensor."""
    value, tensor = {"a": [1, 2]}, torch.arange(3)

    assert broadcast_from_master(value) is value
    assert broadcast_from_master(tensor) is tensor
    assert broadcast_from_master(5) == 5
    assert type(broadcast_from_master(5)) is int


def test_reductions_without_a_process_group():
    """gather gives [value]; all_reduce_mean gives a float or a floating tensor; barrier is a no-op."""
    assert gather("x") == ["x"]
    assert all_reduce_mean(3) == 3.0
    assert isinstance(all_reduce_mean(3), float)
    mean = all_reduce_mean(torch.tensor([1, 2]))
    assert mean.dtype == torch.get_default_dtype()
    assert torch.equal(mean, torch.tensor([1.0, 2.0]))
    distributed_barrier(timeout=1)
    distributed_barrier(timeout=datetime.timedelta(seconds=1))


def test_bad_arguments_are_refused_by_name():
    """A non-positive timeout and a non-numeric value name the argument."""
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        distributed_barrier(timeout=0)
    with pytest.raises(TypeError, match="value must be a tensor or a real number; got 'a'"):
        all_reduce_mean("a")


def test_backend_follows_the_device():
    """gloo on the CPU, nccl on CUDA."""
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda", 0)) == "nccl"


def test_helpers_through_a_gloo_group(one_rank_group):
    """With a process group, objects and tensors travel through the collectives."""
    tensor = torch.arange(6.0).reshape(2, 3)

    assert (is_distributed(), get_rank(), get_num_processes(), is_master()) == (True, 0, 1, True)
    assert broadcast_from_master({"lr": 0.1, "name": "abc"}) == {"lr": 0.1, "name": "abc"}
    sent = broadcast_from_master(tensor)
    assert torch.equal(sent, tensor)
    assert sent is not tensor
    assert gather(torch.tensor([1, 2]))[0].tolist() == [1, 2]
    assert gather({"r": 0}) == [{"r": 0}]
    assert all_reduce_mean(2) == 2.0
    assert torch.equal(all_reduce_mean(tensor), tensor)
    distributed_barrier(timeout=5)
