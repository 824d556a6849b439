"""@experiment and @parameter: CLI parsing, defaults, run folders, seeding, resume folders, cleanup."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest
import torch

from streamreg.experiment import (
    current_params,
    experiment,
    find_checkpoint,
    is_running,
    output_dir,
    parameter,
    random_seed,
    resolve_device,
    run_device,
)

DEFAULTS = {
    "checkpoint": None, "cuda": None, "distributed": False, "node_rank": 0, "nproc_per_node": 1, "nnodes": 1,
    "master_addr": "127.0.0.1", "master_port": 29500, "debug": False,
}


@experiment
@parameter("kill_at", type=int, default=0, help="Epoch to stop at.")
@parameter("lr", type=float, default=0.1)
def echo(params):
    """Return the parameters and the run folder as main saw them."""
    logging.getLogger("user.code").info("hello from main")
    return {"params": params, "folder": output_dir(), "current": current_params(), "seed": random_seed()}


@parameter("shuffle", type=bool, default=True)
@parameter("mode", allowed_values=["fast", "slow"], default="fast")
@parameter("sizes", type=int, multiple=True, default=[1])
@parameter("verbose", is_flag=True, default=False)
@experiment
def options(params):
    """Return the parameters."""
    return params


@experiment
def draws(params):
    """Draw from python, numpy and torch's global generators."""
    return random.random(), float(np.random.rand()), torch.rand(3), run_device()  # noqa: NPY002 - the global one


@experiment
def fails(params):
    """Raise inside main."""
    msg = "boom in main"
    raise ValueError(msg)


@experiment
def nested(params):
    """Try to start another run inside a run."""
    return echo.run({"output_dir": params["output_dir"]})


def test_flag_is_the_name_in_kebab_case(tmp_path):
    """kill_at is given as --kill-at and parsed with its type."""
    out = echo.cli(["--kill-at", "3", "--lr", "0.5", "--output-dir", str(tmp_path)])

    assert (out["params"]["kill_at"], out["params"]["lr"]) == (3, 0.5)


def test_help_lists_every_default_parameter_with_its_default(capsys):
    """--help shows each default parameter's flag and default, the device default as auto."""
    with pytest.raises(SystemExit) as info:
        echo.cli(["--help"])
    text = " ".join(capsys.readouterr().out.split())

    assert info.value.code == 0
    for flag in ["--kill-at", "--checkpoint", "--cuda", "--distributed", "--node-rank", "--nproc-per-node",
                 "--nnodes", "--master-addr", "--master-port", "--output-dir", "--random-seed", "--debug"]:
        assert flag in text
    for shown in ["Epoch to stop at. (default: 0)", "(default: auto)", "(default: 29500)", "(default: '127.0.0.1')",
                  "(default: random)"]:
        assert shown in text


def test_every_experiment_gets_the_default_parameters(tmp_path):
    """run({}) fills in the seed's defaults, the device default being None (auto)."""
    params = echo.run({"output_dir": tmp_path})["params"]

    assert {key: params[key] for key in DEFAULTS} == DEFAULTS
    assert (params["kill_at"], params["lr"]) == (0, 0.1)


def test_unknown_parameter_is_refused_by_name(tmp_path):
    """A typo in run(params) raises ValueError naming the key."""
    with pytest.raises(ValueError, match="'kil_at' is not a parameter"):
        echo.run({"kil_at": 3, "output_dir": tmp_path})


def test_parameters_are_not_read_from_environment_variables(tmp_path, monkeypatch):
    """LR, CUDA, RANDOM_SEED and LOCAL_RANK in the environment change nothing."""
    for name, value in {"LR": "0.7", "CUDA": "no", "RANDOM_SEED": "42", "LOCAL_RANK": "1", "KILL_AT": "9"}.items():
        monkeypatch.setenv(name, value)
    out = echo.cli(["--output-dir", str(tmp_path)])

    assert (out["params"]["lr"], out["params"]["cuda"], out["params"]["kill_at"]) == (0.1, None, 0)
    assert sorted(p.name for p in out["folder"].glob("log*")) == ["log.txt"]


def test_parameter_types_choices_lists_and_flags(tmp_path):
    """bool parses yes/no, allowed_values limits, multiple gives a list, is_flag has --no-."""
    out = options.cli(["--shuffle", "no", "--mode", "slow", "--sizes", "2", "3", "--verbose",
                       "--output-dir", str(tmp_path)])

    assert (out["shuffle"], out["mode"], out["sizes"], out["verbose"]) == (False, "slow", [2, 3], True)
    assert options.cli(["--no-verbose", "--output-dir", str(tmp_path)])["verbose"] is False
    with pytest.raises(SystemExit):
        options.cli(["--mode", "medium"])
    with pytest.raises(ValueError, match="'mode' must be one of"):
        options.run({"mode": "medium"})


def test_run_folder_holds_parameters_seed_and_log(tmp_path):
    """Each run gets a new folder under output_dir/<name>/ with parameters.json, seed and log.txt."""
    first = echo.run({"output_dir": tmp_path, "random_seed": 7, "kill_at": 2})
    second = echo.run({"output_dir": tmp_path, "random_seed": 7})
    folder = first["folder"]

    assert folder.parent == (tmp_path / "echo").resolve()
    assert folder != second["folder"]
    assert sorted(p.name for p in folder.iterdir()) == ["log.txt", "parameters.json", "seed"]
    saved = json.loads((folder / "parameters.json").read_text())
    assert (saved["kill_at"], saved["random_seed"], saved["output_dir"]) == (2, 7, str(tmp_path))
    assert (folder / "seed").read_text().strip() == "7"
    assert "hello from main" in (folder / "log.txt").read_text()
    assert first["current"] == first["params"]


def test_seed_applies_to_python_numpy_and_torch(tmp_path):
    """random_seed=5 gives the draws of generators seeded with 5 independently."""
    py, npy, tch, device = draws.run({"output_dir": tmp_path, "random_seed": 5})

    assert py == random.Random(5).random()
    assert npy == np.random.RandomState(5).rand()
    assert torch.equal(tch, torch.rand(3, generator=torch.Generator().manual_seed(5)))
    assert device == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))


def test_seed_is_drawn_and_recorded_when_not_given(tmp_path):
    """Without random_seed a seed is drawn, passed to main and written to the folder."""
    out = echo.run({"output_dir": tmp_path})

    assert out["params"]["random_seed"] == out["seed"] == int((out["folder"] / "seed").read_text())


def test_run_functions_raise_outside_an_experiment():
    """output_dir(), current_params() and random_seed() name the problem outside a run."""
    assert not is_running()
    for function in (output_dir, current_params, random_seed, run_device):
        with pytest.raises(RuntimeError, match="No streamreg experiment is running"):
            function()


def test_latest_checkpoint_of_a_folder(tmp_path):
    """A folder resolves through its latest pointer, else to the highest numeric id."""
    for name in ["checkpoint-1.pt", "checkpoint-10.pt", "checkpoint-2.pt", "checkpoint-best.pt"]:
        (tmp_path / name).write_bytes(b"")

    assert find_checkpoint(tmp_path) == tmp_path / "checkpoint-10.pt"
    (tmp_path / "latest").write_text("checkpoint-2.pt")
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoint-2.pt"
    assert find_checkpoint(tmp_path / "checkpoint-1.pt") == tmp_path / "checkpoint-1.pt"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_checkpoint(tmp_path / "echo")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        find_checkpoint(tmp_path / "empty")


def test_resumed_run_continues_in_the_folder_it_resumes(tmp_path):
    """--checkpoint <folder> runs in that folder with its seed, the checkpoint resolved to a file."""
    first = echo.run({"output_dir": tmp_path / "a", "random_seed": 11})
    folder = first["folder"]
    (folder / "checkpoint-3.pt").write_bytes(b"")
    original = (folder / "parameters.json").read_text()
    resumed = echo.cli(["--checkpoint", str(folder), "--output-dir", str(tmp_path / "b"), "--kill-at", "4"])

    assert resumed["folder"] == folder
    assert resumed["params"]["checkpoint"] == folder / "checkpoint-3.pt"
    assert resumed["seed"] == 11
    assert (folder / "parameters.json").read_text() == original
    assert json.loads((folder / "parameters.resume-1.json").read_text())["kill_at"] == 4
    assert not (tmp_path / "b").exists()


def test_failed_setup_and_failed_main_clean_up(tmp_path):
    """A missing checkpoint or an exception in main leaves no run behind, and the traceback is logged."""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        echo.run({"output_dir": tmp_path, "checkpoint": tmp_path / "nope.pt"})
    assert not is_running()
    with pytest.raises(ValueError, match="boom in main"):
        fails.run({"output_dir": tmp_path})
    assert not is_running()
    log = next((tmp_path / "fails").glob("*/log.txt")).read_text()
    assert "boom in main" in log
    assert "Traceback" in log
    assert echo.run({"output_dir": tmp_path})["params"]["kill_at"] == 0


def test_runs_cannot_nest(tmp_path):
    """Starting a run inside a run raises RuntimeError."""
    with pytest.raises(RuntimeError, match="already running"):
        nested.run({"output_dir": tmp_path})


def test_user_log_handlers_and_level_are_kept(tmp_path):
    """The run's log file is added beside the user's handlers and removed afterwards."""
    root = logging.getLogger()
    mine = logging.NullHandler()
    root.addHandler(mine)
    before = (list(root.handlers), root.level)
    try:
        echo.run({"output_dir": tmp_path})
        assert (list(root.handlers), root.level) == before
    finally:
        root.removeHandler(mine)


def test_experiment_name_and_duplicate_parameters():
    """The name is the function name in kebab-case; a parameter cannot be declared twice."""
    assert echo.name == "echo"
    assert experiment(name="custom")(lambda params: None).name == "custom"
    with pytest.raises(ValueError, match="already declared"):
        parameter("cuda", type=int)(echo)
    with pytest.raises(ValueError, match="must be a Python identifier"):
        parameter("kill-at")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_cuda_without_cuda_fails_by_name(tmp_path):
    """cuda=True on a CPU-only machine raises ValueError naming CUDA; auto runs on the CPU."""
    with pytest.raises(ValueError, match="CUDA is not available"):
        draws.run({"output_dir": tmp_path, "cuda": True})
    assert draws.run({"output_dir": tmp_path})[3] == torch.device("cpu")
    assert draws.run({"output_dir": tmp_path, "cuda": False})[3] == torch.device("cpu")


def test_resolve_device_names():
    """cpu and auto resolve without CUDA; unknown names are refused."""
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda' or 'cuda:N'; got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(TypeError, match="device must be a str"):
        resolve_device(0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_resolve_cuda_without_cuda_raises():
    """'cuda' on a machine without CUDA raises ValueError naming it."""
    with pytest.raises(ValueError, match="device 'cuda' asks for CUDA"):
        resolve_device("cuda")


@pytest.mark.gpu
def test_auto_picks_cuda_when_available(tmp_path):
    """With CUDA, auto resolves to cuda:0 and the run's device is CUDA."""
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert draws.run({"output_dir": tmp_path})[3].type == "cuda"


def test_experiment_names_are_exported():
    """The experiment, run, launch, sweep and rank names are in streamreg.experiment.__all__."""
    import streamreg.experiment as package

    mine = ["Experiment", "LaunchError", "Parameter", "SweepResult", "all_reduce_mean", "backend_for",
            "broadcast_from_master", "current_params", "distributed_barrier", "experiment", "find_checkpoint",
            "gather", "get_local_rank", "get_num_processes", "get_rank", "is_distributed", "is_master", "is_running",
            "output_dir", "parameter", "random_seed", "resolve_device", "run_device", "run_parameter_sweep"]

    assert sorted(set(mine) - set(package.__all__)) == []
    assert all(hasattr(package, name) for name in package.__all__)
