"""Experiments: a CLI around ``main(params)``, run folders, seeds, distributed launch and sweeps.

The layer pystematic-torch gave, on ``torch.distributed`` and its elastic
launcher (what ``torchrun`` runs).
"""

from streamreg.experiment.distributed import (
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
from streamreg.experiment.experiment import Experiment, experiment, find_checkpoint
from streamreg.experiment.launch import LaunchError
from streamreg.experiment.parameters import Parameter, parameter
from streamreg.experiment.runtime import (
    current_params,
    is_running,
    output_dir,
    random_seed,
    resolve_device,
    run_device,
)
from streamreg.experiment.sweep import SweepResult, run_parameter_sweep

__all__ = [
    "Experiment",
    "LaunchError",
    "Parameter",
    "SweepResult",
    "all_reduce_mean",
    "backend_for",
    "broadcast_from_master",
    "current_params",
    "distributed_barrier",
    "experiment",
    "find_checkpoint",
    "gather",
    "get_local_rank",
    "get_num_processes",
    "get_rank",
    "is_distributed",
    "is_master",
    "is_running",
    "output_dir",
    "parameter",
    "random_seed",
    "resolve_device",
    "run_device",
    "run_parameter_sweep",
]

# Context, checkpoints, Recorder, loader
from streamreg.experiment.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from streamreg.experiment.context import Context, LoadResult, move_to_device
from streamreg.experiment.loader import HDF5ChunkDataset, ShardedSampler, SmartDataLoader
from streamreg.experiment.recorder import Recorder

__all__ += [
    "Context",
    "HDF5ChunkDataset",
    "LoadResult",
    "Recorder",
    "ShardedSampler",
    "SmartDataLoader",
    "capture_rng_state",
    "load_checkpoint",
    "move_to_device",
    "restore_rng_state",
    "save_checkpoint",
]
