"""Fault 8: checkpoints of different datasets never collide, and a symlink planted at a temporary name beside
a checkpoint is never followed."""

from __future__ import annotations

import os

import numpy as np
import pytest

from streamreg import Runner
from tests.faults.common import DT, checkpoints, read, recording, reference, release, write_input
from tests.runner_models import model, wait_for


def _stop_part_way(src: str, out: str, frames: int) -> int:
    """Run a checkpointed Runner into ``out`` and stop it after about ``frames`` frames; return frames done."""
    runner = Runner(model(0.005), src, out, dt=DT, checkpoint_every=1)
    runner.start()
    wait_for(lambda: runner.frames_done >= frames)
    runner.stop()
    return runner.frames_done


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("first", "second"), [("/a/b", "/a.b"), ("/a.b", "/a/b"), ("/a_b", "/a/b")])
def test_datasets_with_similar_names_keep_separate_checkpoints(tmp_path, first, second):
    """Two stopped runs into datasets of one file whose names differ only by '/' against '.' or '_' keep two
    checkpoints, and each resumes to its own reference output."""
    x1, x2 = recording(200, seed=1), recording(200, seed=2)
    src1 = write_input(tmp_path, x1, "in1.h5")
    src2 = write_input(tmp_path, x2, "in2.h5")
    path = tmp_path / "out.h5"
    done1 = _stop_part_way(src1, f"{path}:{first}", 60)
    done2 = _stop_part_way(src2, f"{path}:{second}", 120)
    assert 0 < done1 < 200 and 0 < done2 < 200, "both runs must stop part-way"
    assert len(checkpoints(tmp_path)) == 2
    release(model().run(src1, DT, output=f"{path}:{first}", checkpoint_every=1, resume=True))
    release(model().run(src2, DT, output=f"{path}:{second}", checkpoint_every=1, resume=True))
    np.testing.assert_array_equal(read(path, first), reference(x1))
    np.testing.assert_array_equal(read(path, second), reference(x2))


@pytest.mark.timeout(30)
def test_a_planted_symlink_at_the_temporary_name_is_not_followed(tmp_path):
    """Symlinks planted beside a stopped run's checkpoint at every likely temporary name (<ckpt>.tmp,
    <ckpt>.tmp<pid>, <ckpt>.tmp.<pid>, ...) pointing at a victim file: resuming (which writes new checkpoints)
    leaves the victim unchanged, and finishes to the reference (or refuses with an OSError)."""
    x = recording(200)
    src = write_input(tmp_path, x)
    out = f"{tmp_path / 'out.h5'}:/y"
    _stop_part_way(src, out, 60)
    (ckpt,) = checkpoints(tmp_path)
    victim_dir = tmp_path / "elsewhere"
    victim_dir.mkdir()
    victim = victim_dir / "precious.txt"
    victim.write_bytes(b"do not touch\n")
    pid = os.getpid()
    for suffix in (".tmp", f".tmp{pid}", f".tmp.{pid}", f".tmp-{pid}", f".{pid}.tmp"):
        os.symlink(victim, f"{ckpt}{suffix}")
    try:
        release(model().run(src, DT, output=out, checkpoint_every=1, resume=True))
    except OSError:
        resumed = False
    else:
        resumed = True
    assert victim.read_bytes() == b"do not touch\n"
    assert victim.is_file() and not victim.is_symlink()
    if resumed:
        np.testing.assert_array_equal(read(tmp_path / "out.h5"), reference(x))
