"""Fault 11: friendlier edges, and typo'd options named with the nearest valid one."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from streamreg import Layer, OutputExistsError, Runner
from tests.faults.common import DT, ROOT, checkpoints, read, recording, release, write_input
from tests.runner_models import model, one_shot, wait_for


@pytest.fixture
def x():
    """A small float32 recording (100, 3)."""
    return recording(100)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("form", ["dataset", "string"])
def test_a_scalar_dataset_as_output_is_a_clear_error(tmp_path, x, form):
    """A scalar dataset as output (an h5py.Dataset, or its path with overwrite=True) raises ValueError or
    TypeError saying it is a scalar, and the scalar is kept."""
    path = tmp_path / "out.h5"
    with h5py.File(path, "w") as f:
        f["s"] = 3.0
    with h5py.File(path, "r+") as f, pytest.raises((ValueError, TypeError), match="scalar"):
        release(model().run(x, DT, output=f["s"] if form == "dataset" else f"{path}:/s", overwrite=True))
    with h5py.File(path, "r") as f:
        assert f["s"][()] == 3.0


@pytest.mark.timeout(10)
@pytest.mark.parametrize("device", ["gpu", pytest.param("cuda", marks=pytest.mark.skipif(
    torch.cuda.is_available(), reason="needs a machine without CUDA"))])
@pytest.mark.parametrize("entry", ["run", "Runner"])
def test_a_bad_device_is_a_value_error_naming_device(x, device, entry):
    """device="gpu" (not a torch device) and device="cuda" without CUDA raise ValueError naming `device`."""
    call = model().run if entry == "run" else (lambda x, dt, device: Runner(model(), x, None, dt=dt, device=device))
    with pytest.raises(ValueError, match="device"):
        call(x, DT, device=device)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("bad", [None, 3, "model", torch.nn.Linear(3, 3)])
def test_runner_without_a_layer_names_the_model_argument(x, bad):
    """Runner(None, ...) and other non-Layers raise TypeError naming the argument `model`."""
    with pytest.raises(TypeError, match="model"):
        Runner(bad, x, None, dt=DT)


@pytest.mark.timeout(40)
def test_a_corrupt_checkpoint_on_cli_resume_is_one_line_and_exit_2(tmp_path):
    """`streamreg run ... --resume` with a corrupt checkpoint file prints one line on stderr, no traceback, and
    exits with status 2."""
    src = write_input(tmp_path, recording(200))
    out = f"{tmp_path / 'out.h5'}:/y"
    runner = Runner(model(0.005), src, out, dt=DT, checkpoint_every=1)
    runner.start()
    wait_for(lambda: runner.frames_done >= 40)
    runner.stop()
    (ckpt,) = checkpoints(tmp_path)
    ckpt.write_bytes(b"this is not a checkpoint" * 10)
    done = subprocess.run([sys.executable, "-m", "streamreg", "run", "tests.runner_models:model", src, out,
                           "--dt", str(DT), "--checkpoint-every", "1", "--resume", "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.timeout(20)
@pytest.mark.parametrize("entry", ["run", "Runner"])
def test_a_bfloat16_model_is_refused_up_front_or_runs_correctly(tmp_path, x, entry):
    """A bfloat16 model into "out.h5:/y": either the run()/Runner call raises TypeError or ValueError naming
    bfloat16 before any file is created, or the run finishes with the model's output (to bfloat16 accuracy)."""
    bf16 = model().to(torch.bfloat16)
    out = tmp_path / "out.h5"
    refusal = _prepare_bf16(entry, bf16, x, out)
    if refusal is not None:
        assert "bfloat16" in refusal, refusal
        assert not out.exists(), "the refused run created its output file"
        return
    expected = one_shot(model(), x)  # upcast model or bfloat16 arithmetic: equal to a few bfloat16 ulps
    np.testing.assert_allclose(read(out), expected, rtol=5e-2, atol=5e-2 * np.abs(expected).max())


def _prepare_bf16(entry: str, bf16: Layer, x: np.ndarray, out) -> str | None:
    """Run the bfloat16 model; the message of a TypeError/ValueError raised by the call itself, else None.
    An error from the Runner's thread (join) propagates: that is the failure the promise rules out."""
    try:
        if entry == "run":
            release(bf16.run(x, DT, output=f"{out}:/y"))
            return None
        runner = Runner(bf16, x, f"{out}:/y", dt=DT)
    except (TypeError, ValueError) as exc:
        return str(exc)
    runner.start()
    runner.join()
    return None


def _named_options(message: str) -> set[str]:
    """Option-like names in an error message: ``name=`` and the word ``mode``."""
    return set(re.findall(r"\b([a-z_]+)=", message)) | set(re.findall(r"\b(mode)\b", message))


@pytest.mark.timeout(20)
def test_the_output_exists_messages_name_real_options(tmp_path, x):
    """The "output exists" errors (an existing dataset, a stale checkpoint) name only options that run() and
    Runner really take."""
    run_options = set(inspect.signature(Layer.run).parameters)
    runner_options = set(inspect.signature(Runner).parameters)
    path = tmp_path / "out.h5"
    release(model().run(x, DT, output=f"{path}:/y"))
    with pytest.raises(OutputExistsError) as info:
        release(model().run(x, DT, output=f"{path}:/y"))
    assert _named_options(str(info.value)) <= run_options, str(info.value)
    src = write_input(tmp_path, x)
    with Runner(model(0.005), src, f"{path}:/z", dt=DT, checkpoint_every=1) as runner:
        runner.stop()
    for call in (lambda: model().run(src, DT, output=f"{path}:/z"),
                 lambda: Runner(model(), src, f"{path}:/z", dt=DT)):
        with pytest.raises(OutputExistsError) as info:
            release(call())
        names = _named_options(str(info.value))
        assert names and names <= run_options & runner_options, str(info.value)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("typo", "meant"), [("dtt", "dt"), ("chekpoint_every", "checkpoint_every"),
                                             ("overwirte", "overwrite"), ("resum", "resume")])
def test_a_typo_in_run_names_run_and_the_nearest_option(x, typo, meant):
    """layer.run(x, dtt=5) raises TypeError naming run() and the nearest valid option, not a private function."""
    with pytest.raises(TypeError) as info:
        model().run(x, **{typo: 5})
    message = str(info.value)
    assert "run()" in message and re.search(rf"\b{meant}\b", message), message
    assert not re.search(r"\b_\w+\(\)|prepare_job|run_layer", message), message


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("typo", "meant"), [("chekpoint_every", "checkpoint_every"), ("devise", "device")])
def test_a_typo_in_runner_names_runner_and_the_nearest_option(x, typo, meant):
    """Runner(..., chekpoint_every=2) raises TypeError naming Runner and the nearest valid option."""
    with pytest.raises(TypeError) as info:
        Runner(model(), x, None, dt=DT, **{typo: 2})
    message = str(info.value)
    assert "Runner" in message and re.search(rf"\b{meant}\b", message), message
    assert not re.search(r"prepare_job|run_layer", message), message
