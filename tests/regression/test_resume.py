"""Checkpoint files and exact resume: 10 + 10 epochs equal 20 straight, also after SIGKILL of a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from streamreg.exceptions import OutputExistsError
from tests.regression.problem import build_fitter, parameters_of, seed_all

SCHEDULE = [(0, 0.02), (14, 0.002)]  # in epochs, so a run split at 10 sees the same rates


def straight(n_epochs: int):
    """Parameters and log after an uninterrupted fit."""
    fitter, _ = build_fitter()
    seed_all(7)
    log, _ = fitter.fit(n_epochs, 3, SCHEDULE, update_int=100)
    return parameters_of(fitter), log


def assert_bitwise(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_resume_is_bitwise(tmp_path):
    """Fitting 10 epochs, then resuming to 20 from the file, gives the parameters of 20 straight epochs."""
    want, want_log = straight(20)
    first, _ = build_fitter()
    seed_all(7)
    first.fit(10, 3, SCHEDULE, update_int=100, cp_epochs=[9], checkpoint_dir=tmp_path)
    path = tmp_path / "epoch_000009.pt"
    record = torch.load(path, weights_only=True)
    assert record["epochs_done"] == 10 and "data" not in str(list(record))
    second, _ = build_fitter()
    seed_all(123)  # the file's RNG state, not this one, drives the batches
    log, _ = second.fit(20, 3, SCHEDULE, update_int=100, resume_from=path)
    assert_bitwise(parameters_of(second), want)
    assert log["obj"].tolist() == want_log["obj"].tolist()


def test_checkpoint_holds_no_training_data(tmp_path):
    """The file is small: models, predictors, optimizer, RNG; not the samples."""
    fitter, _ = build_fitter(n_train=5000)
    fitter.fit(1, 2, update_int=100, cp_epochs=[0], checkpoint_dir=tmp_path)
    data_bytes = sum(d.numel() * 4 for c in fitter.s_collections for d in c.data.data)
    assert (tmp_path / "epoch_000000.pt").stat().st_size < data_bytes / 20


def test_existing_checkpoint_not_overwritten(tmp_path):
    """A checkpoint file already in checkpoint_dir is refused by name before fitting starts."""
    (tmp_path / "epoch_000000.pt").write_bytes(b"keep")
    fitter, _ = build_fitter()
    with pytest.raises(OutputExistsError, match="epoch_000000.pt"):
        fitter.fit(1, 2, cp_epochs=[0], checkpoint_dir=tmp_path)
    assert (tmp_path / "epoch_000000.pt").read_bytes() == b"keep"


def test_resume_from_other_setup_refused(tmp_path):
    """A checkpoint made with other n_batches is refused, naming both setups."""
    fitter, _ = build_fitter()
    fitter.fit(1, 2, update_int=100, cp_epochs=[0], checkpoint_dir=tmp_path)
    other, _ = build_fitter()
    with pytest.raises(ValueError, match="n_batches"):
        other.fit(3, 3, resume_from=tmp_path / "epoch_000000.pt")


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from tests.regression.problem import build_fitter, seed_all
    from tests.regression.test_resume import SCHEDULE

    class KillAfter:
        def __init__(self, n):
            self.n = n
        def scalar(self, tag, value):
            pass
        def step(self):
            self.n -= 1
            if self.n == 0:
                os.kill(os.getpid(), signal.SIGKILL)

    fitter, _ = build_fitter()
    seed_all(7)
    fitter.fit(20, 3, SCHEDULE, update_int=100, cp_epochs=range(20), checkpoint_dir=sys.argv[1],
               recorder=KillAfter(13))
    """
)


def test_resume_after_sigkill_is_bitwise(tmp_path):
    """A child killed with SIGKILL after epoch 12 leaves a complete checkpoint; resuming gives 20 straight epochs."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], env=env, cwd=root, capture_output=True,
                          timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files[-1] == "epoch_000012.pt" and not [f for f in files if "tmp" in f]
    fitter, _ = build_fitter()
    fitter.fit(20, 3, SCHEDULE, update_int=100, resume_from=tmp_path / files[-1])
    want, _ = straight(20)
    assert_bitwise(parameters_of(fitter), want)
