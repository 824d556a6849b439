"""Checkpoints: file names, latest pointer, retention, atomic writes, weights_only payloads, RNG states."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from streamreg.experiment import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint


def test_save_writes_checkpoint_id_and_latest_pointer(tmp_path):
    """checkpoint-{id}.pt as pystematic names it, and a latest pointer a folder load follows."""
    save_checkpoint({"step": 1}, 1, directory=tmp_path)
    path = save_checkpoint({"step": 2}, "two", directory=tmp_path)

    assert path == tmp_path / "checkpoint-two.pt"
    assert (tmp_path / "latest").read_text() == "checkpoint-two.pt"
    assert load_checkpoint(tmp_path) == {"step": 2}
    assert load_checkpoint(tmp_path / "checkpoint-1.pt") == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1.pt", "checkpoint-two.pt", "latest"]


def test_payload_loads_with_plain_weights_only_torch_load(tmp_path):
    """The file holds only what torch.load(weights_only=True) accepts, numpy arrays included."""
    path = save_checkpoint({"a": np.arange(3), "t": torch.ones(2)}, 0, directory=tmp_path)

    payload = torch.load(path, weights_only=True)

    assert sorted(payload) == ["format", "rng", "state"]


@pytest.mark.parametrize("value", [
    np.arange(6, dtype=np.uint32).reshape(2, 3), np.array([True, False]), np.zeros((0, 4), np.float16),
    np.array(3.5 + 1j), np.arange(4.0)[::2], np.int64(7), np.float32(0.1),
])
def test_numpy_values_keep_dtype_shape_and_bits(tmp_path, value):
    """Arrays and numpy scalars come back with their dtype, shape and exact values."""
    save_checkpoint({"x": value}, 0, directory=tmp_path)

    back = load_checkpoint(tmp_path)["x"]

    assert type(back) is type(value)
    assert np.asarray(back).dtype == np.asarray(value).dtype
    assert np.asarray(back).shape == np.asarray(value).shape
    assert np.array_equal(back, value)


def test_existing_id_is_refused_unless_overwrite(tmp_path):
    """Files are never overwritten unless asked."""
    save_checkpoint({"v": 1}, 5, directory=tmp_path)
    with pytest.raises(FileExistsError, match="checkpoint-5.pt.*overwrite=True"):
        save_checkpoint({"v": 2}, 5, directory=tmp_path)

    save_checkpoint({"v": 2}, 5, directory=tmp_path, overwrite=True)

    assert load_checkpoint(tmp_path) == {"v": 2}


def test_keep_retains_only_the_newest(tmp_path):
    """keep=2 deletes older checkpoints and never the one just written."""
    for step in range(5):
        save_checkpoint({"step": step}, step, directory=tmp_path, keep=2)

    assert sorted(p.name for p in tmp_path.glob("checkpoint-*.pt")) == ["checkpoint-3.pt", "checkpoint-4.pt"]


def test_failed_write_leaves_previous_checkpoint_and_no_temp_file(tmp_path):
    """A save that fails while writing keeps the last good checkpoint, its pointer, and no partial file."""
    save_checkpoint({"v": 1}, 1, directory=tmp_path)

    with pytest.raises(Exception, match="pickle"):
        save_checkpoint({"v": lambda: 0}, 2, directory=tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1.pt", "latest"]
    assert load_checkpoint(tmp_path) == {"v": 1}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"id": "a/b"}, "id must be an int or a str without path separators; got 'a/b'"),
    ({"id": 1.5}, "id must be"),
    ({"id": 1, "keep": 0}, "keep must be a positive int or None"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, match):
    """Bad ids and retention counts raise ValueError naming the argument and value."""
    with pytest.raises(ValueError, match=match):
        save_checkpoint({}, directory=tmp_path, **kwargs)


def test_missing_and_foreign_files_are_refused(tmp_path):
    """A folder without checkpoints and a file not written by save_checkpoint raise clear errors."""
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path)
    torch.save({"weight": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a streamreg checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def _draws() -> tuple[float, float, torch.Tensor]:
    return random.random(), np.random.random(), torch.rand(3)  # noqa: NPY002 (the global generators)


def test_load_restores_python_numpy_and_torch_rng_states(tmp_path):
    """The draws after a load equal the draws right after the save."""
    save_checkpoint({}, 0, directory=tmp_path)
    expected = _draws()
    _draws()

    load_checkpoint(tmp_path)
    actual = _draws()

    assert actual[:2] == expected[:2]
    assert torch.equal(actual[2], expected[2])


def test_restore_rng_false_leaves_generators_alone(tmp_path):
    """restore_rng=False reads the state without touching the global generators."""
    save_checkpoint({}, 0, directory=tmp_path)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)

    load_checkpoint(tmp_path, restore_rng=False)

    assert torch.equal(torch.rand(3), expected)


def test_capture_and_restore_rng_state_round_trip():
    """capture_rng_state / restore_rng_state replay the same draws."""
    state = capture_rng_state()
    expected = _draws()

    restore_rng_state(state)

    actual = _draws()
    assert actual[:2] == expected[:2]
    assert torch.equal(actual[2], expected[2])


def test_default_folder_is_the_running_experiments(tmp_path):
    """Inside an experiment, save_checkpoint writes to output_dir()."""
    from streamreg.experiment import experiment, output_dir

    @experiment
    def run(params):
        return save_checkpoint({"x": 1}, 1), output_dir()

    path, folder = run.run({"output_dir": tmp_path, "cuda": False})

    assert path == folder / "checkpoint-1.pt"
    assert path.is_file()


def test_outside_an_experiment_a_folder_is_required():
    """Without a running experiment and without directory=, the error says what to do."""
    with pytest.raises(RuntimeError, match="No streamreg experiment is running"):
        save_checkpoint({}, 1)


def _rank(rank: int, folder: str, store: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        torch.manual_seed(100 + rank)
        save_checkpoint({"rank0": rank == 0}, 1, directory=folder)
        expected = torch.rand(3)
        torch.manual_seed(0)
        assert load_checkpoint(folder) == {"rank0": True}  # rank 0 wrote it
        assert torch.equal(torch.rand(3), expected), f"rank {rank} did not get its own RNG state back"
        error, match = (FileExistsError, "exists") if rank == 0 else (RuntimeError, "rank 0 failed .*FileExistsError")
        with pytest.raises(error, match=match):
            save_checkpoint({}, 1, directory=folder)  # the id exists: rank 0 fails, rank 1 hears of it
    finally:
        dist.destroy_process_group()


def test_two_ranks_save_per_rank_rng_and_share_a_failure(tmp_path):
    """On 2 gloo ranks each gets its own RNG state back; a save failing on rank 0 raises on both ranks."""
    torch.multiprocessing.start_processes(_rank, args=(str(tmp_path / "run"), str(tmp_path / "store")), nprocs=2,
                                          start_method="fork")

    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint-1.pt", "latest"]
