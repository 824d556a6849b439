"""Exact resume: 2 epochs + checkpoint + 2 more equals 4 straight, in process and after a SIGKILL."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from streamreg.experiment import load_checkpoint, save_checkpoint
from tests.experiment import resume_script

SCRIPT = Path(resume_script.__file__)
ROOT = SCRIPT.parents[2]


def _straight(folder: Path, epochs: int = 4) -> dict[str, torch.Tensor]:
    ctx = resume_script.build(folder)
    resume_script.train(ctx, epochs)
    ctx.recorder.close()
    return ctx.model.state_dict()


def _assert_bitwise(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert list(expected) == list(actual)
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def _resume_in_process(folder: Path, restore_rng: bool) -> dict[str, torch.Tensor]:
    ctx = resume_script.build(folder)
    resume_script.train(ctx, 2)
    path = save_checkpoint(ctx.state_dict(), "epoch-2", directory=folder)
    ctx.recorder.close()
    resumed = resume_script.build(folder, seed=99)  # fresh objects, other seeds: all must come from the file
    resumed.load_state_dict(load_checkpoint(path, restore_rng=restore_rng))
    resume_script.train(resumed, 4)
    resumed.recorder.close()
    return resumed.model.state_dict()


def test_two_plus_two_epochs_equal_four_bitwise(tmp_path):
    """Shuffling, dropout, numpy/python noise, Adam, StepLR and a LowPass's state all resume exactly."""
    expected = _straight(tmp_path / "straight")

    actual = _resume_in_process(tmp_path / "resumed", restore_rng=True)

    _assert_bitwise(expected, actual)


def test_resume_without_rng_states_differs(tmp_path):
    """The test above is sensitive: leaving the RNG states out of the resume changes the result."""
    expected = _straight(tmp_path / "straight")

    actual = _resume_in_process(tmp_path / "resumed", restore_rng=False)

    assert not all(torch.equal(expected[k], actual[k]) for k in expected)


def _child(folder: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(SCRIPT), str(folder), "4", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _loss_rows(folder: Path) -> list[tuple[str, str]]:
    with open(folder / "scalars.csv", newline="") as f:
        return [(row[0], row[2]) for row in list(csv.reader(f))[1:]]


def test_sigkill_mid_epoch_then_resume_gives_the_straight_result(tmp_path):
    """A child killed mid-epoch (3 steps after its last checkpoint) resumes to the uninterrupted weights and log."""
    straight = tmp_path / "straight"
    expected = _straight(straight)
    run = tmp_path / "run"
    run.mkdir()
    child = _child(run, "--kill-at", "28")  # 12 batches per epoch: step 28 is in epoch 2; checkpoint at 25
    deadline = time.monotonic() + 60
    while not (run / "ready").exists():
        assert child.poll() is None, child.communicate()[0].decode()
        assert time.monotonic() < deadline, "the child never reached the kill point"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert sorted(p.name for p in run.glob("checkpoint-*.pt")) == ["checkpoint-20.pt", "checkpoint-25.pt"]

    resumed = _child(run, "--resume")
    output = resumed.communicate(timeout=120)[0].decode()
    assert resumed.returncode == 0, output

    _assert_bitwise(expected, torch.load(run / "final.pt", weights_only=True))
    assert _loss_rows(straight) == _loss_rows(run)  # steps 25-27 written twice are dropped on resume


@pytest.mark.gpu
def test_cuda_rng_state_round_trips(tmp_path):
    """On CUDA the checkpoint restores the CUDA generators too."""
    save_checkpoint({}, 0, directory=tmp_path)
    expected = torch.rand(4, device="cuda")

    load_checkpoint(tmp_path)

    assert torch.equal(expected, torch.rand(4, device="cuda"))
