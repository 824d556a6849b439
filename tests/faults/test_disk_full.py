"""Fault 3: a full disk raises an error naming the file, keeps only whole correct chunks, closes every file
descriptor, keeps the last good checkpoint, and resume finishes bit-identically once space is freed."""

from __future__ import annotations

import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from tests.faults.common import DT, checkpoints, leftovers, open_fds_to, read, recording, recover, write_input
from tests.runner_models import model

N_FRAMES, FRAME = 200, (8192,)  # 32 KiB per float32 frame, 320 KiB per chunk of DT frames, 6.5 MB in all
FREE = 3 << 20  # bytes left free on the small disk: the run fails about half-way


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs mounted under tmp_path (skipped where mounting is not allowed), unmounted afterwards."""
    if shutil.which("mount") is None:
        pytest.skip("needs mount")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    yield mnt
    if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


def _fill(folder, keep: int):
    """Write a filler file so that about ``keep`` bytes stay free in ``folder``; return its path."""
    st = os.statvfs(folder)
    filler = folder / "filler.bin"
    filler.write_bytes(b"\0" * max(st.f_bavail * st.f_frsize - keep, 0))
    return filler


def _message(exc: BaseException) -> str:
    return " ".join([str(exc), *getattr(exc, "__notes__", [])])


def _frames_on_disk(path) -> np.ndarray | None:
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        return f["y"][()] if "y" in f else None


@pytest.mark.timeout(40)
@pytest.mark.parametrize("checkpoint_every", [None, 2])
def test_disk_full_loses_nothing(tmp_path, small_disk, checkpoint_every):
    """On a full tmpfs the run raises OSError naming the output file, with no descriptor of the file left open;
    the dataset holds a whole number of chunks, each equal to the reference; with checkpoint_every a checkpoint
    survives; after the filler file is deleted, resume=True (overwrite=True without checkpoints) finishes to
    the reference output, bit for bit, leaving no temporary or lock file."""
    x = recording(N_FRAMES, FRAME)
    src = write_input(tmp_path, x)
    ref = model().run(x, DT)
    out = small_disk / "out.h5"
    filler = _fill(small_disk, FREE)
    with pytest.raises(OSError) as info:  # noqa: PT011 - disk full is an OSError of whatever errno
        model().run(src, DT, output=f"{out}:/y", checkpoint_every=checkpoint_every)
    assert "out.h5" in _message(info.value), _message(info.value)
    assert open_fds_to(out) == [], "a file descriptor to the output is still open"
    del info
    if out.exists():
        y = _frames_on_disk(out)
        n = 0 if y is None else len(y)
        assert n % DT == 0, f"the dataset holds {n} frames, not a whole number of {DT}-frame chunks"
        np.testing.assert_array_equal(y[:n] if n else ref[:0], ref[:n])
    if checkpoint_every is not None:
        assert checkpoints(small_disk), "the last good checkpoint was lost"
    filler.unlink()
    plan = recover(small_disk, src, out, checkpoint_every)
    assert plan in (("rerun", "fresh") if checkpoint_every is None else ("resumed",))
    np.testing.assert_array_equal(read(out), ref)
    assert leftovers(small_disk) == []
