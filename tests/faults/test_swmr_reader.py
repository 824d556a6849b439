"""Fault 9: a SWMR reader in another process never sees a chunk before its data is written."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from streamreg import Runner
from tests.faults.common import read, recording, reference, release, script, write_input
from tests.runner_models import model

SWMR_DT = 50  # 12 chunks of 50 frames, 20 ms each

_READER = """
import json, time
import h5py
import numpy as np

ref = np.load({ref!r})
print("ready", flush=True)
seen, polls, partial, bad = 0, 0, 0, None
deadline = time.monotonic() + 25
f = None
while time.monotonic() < deadline and seen < len(ref) and bad is None:
    try:
        if f is None:
            f = h5py.File({path!r}, "r", libver="latest", swmr=True)
        if "y" not in f:
            f.close()
            f = None
            continue
        ds = f["y"]
        ds.refresh()
        n = ds.shape[0]
        frames = ds[:n]
    except (OSError, KeyError):
        if f is not None:
            f.close()
        f = None
        time.sleep(0.001)
        continue
    polls += 1
    wrong = np.flatnonzero((frames != ref[:n]).reshape(n, -1).any(axis=1))
    if len(wrong):
        bad = [int(wrong[0]), n, frames[wrong[0]].tolist()]
    seen = max(seen, n)
    partial += 0 < n < len(ref)
print(json.dumps({{"seen": seen, "polls": polls, "partial": partial, "bad": bad}}), flush=True)
"""


def _watch(tmp_path, entry: str, src: str, ref: np.ndarray, name: str) -> dict:
    """Start a reader on ``name``, run the model into it while the reader polls; return the reader's report."""
    out = tmp_path / name
    reader = subprocess.Popen([sys.executable, str(script(tmp_path, _READER.format(
        ref=str(tmp_path / "ref.npy"), path=str(out))))], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reader:
        assert reader.stdout.readline().strip() == "ready"
        if entry == "Runner":
            with Runner(model(0.02), src, f"{out}:/y", dt=SWMR_DT) as runner:
                runner.join()
        else:
            release(model(0.02).run(src, SWMR_DT, output=f"{out}:/y"))
        stdout, stderr = reader.communicate(timeout=30)
    assert reader.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.timeout(40)
@pytest.mark.parametrize("entry", ["Runner", "run"])
def test_a_swmr_reader_sees_only_written_frames(tmp_path, entry):
    """A reader process polling out.h5:/y (SWMR) while a run writes non-zero frames sees, at every poll, only
    frames equal to the reference (never a zero-filled chunk), some polls see the output part-way (it grows
    while the run goes), and in the end it sees all of them. Two runs each, since the race is in the first
    chunk. The output (2.5 MB, 4 KiB frames) spans several HDF5 chunks of up to 1 MiB."""
    x = recording(600, (1024,))
    src = write_input(tmp_path, x)
    ref = reference(x, SWMR_DT)
    np.save(tmp_path / "ref.npy", ref)
    for i in range(2):
        report = _watch(tmp_path, entry, src, ref, f"out{i}.h5")
        assert report["bad"] is None, (
            f"run {i}: frame {report['bad'][0]} of the {report['bad'][1]} seen was {report['bad'][2]}")
        assert report["seen"] == len(ref) and report["partial"] >= 1, report


@pytest.mark.parametrize("entry", ["Runner", "run"])
def test_swmr_mode_is_switched_on_only_after_the_data_is_in_place(tmp_path, entry, monkeypatch):
    """The race above does not show on every machine, so this checks its cause deterministically: at the
    moment the writer switches the file to SWMR mode (which publishes the dataset's extent to readers),
    every frame inside that extent already holds its data, not the fill value. (Putting the switch back
    before the first write makes this test fail.)"""
    import h5py

    x = recording(600, (1024,))
    src = write_input(tmp_path, x)
    ref = reference(x, SWMR_DT)
    switch = h5py.File.swmr_mode
    seen = []

    def snapshot(file, value):
        if value and "y" in file:
            ds = file["y"]
            seen.append(np.array(ds[: ds.shape[0]]))
        else:
            seen.append(None)
        switch.fset(file, value)

    monkeypatch.setattr(h5py.File, "swmr_mode", property(switch.fget, snapshot))
    out = f"{tmp_path}/out.h5:/y"
    if entry == "Runner":
        with Runner(model(0.0), src, out, dt=SWMR_DT) as runner:
            runner.join()
    else:
        release(model(0.0).run(src, SWMR_DT, output=out, swmr=True))
    assert len(seen) == 1 and seen[0] is not None, "the writer switched SWMR mode on exactly once, with y created"
    n = len(seen[0])
    assert n > 0
    np.testing.assert_array_equal(seen[0], ref[:n])


_EARLY_READER = """
import sys, time
import h5py
try:
    f = h5py.File(sys.argv[1], "r", libver="latest", swmr=True)
except OSError:
    print("refused", flush=True)  # the writer holds the file: a live reader retries later
else:
    print("open", flush=True)
    sys.stdin.readline()  # hold the file open until the test says so
"""


def test_a_reader_that_opens_the_new_file_at_once_does_not_fail_the_writer(tmp_path, monkeypatch):
    """A live reader may open the output the instant it appears. The writer must not lose its file to that
    reader: it keeps the handle it created the file with instead of closing and reopening it (the reopen
    failed with "unable to lock file" when a reader got in between)."""
    import os
    import subprocess
    import sys

    from streamreg import _hdf5

    x = recording(100, (8,))
    src = write_input(tmp_path, x)
    out = tmp_path / "out.h5"
    readers = []
    real_link = os.link

    def link_then_read(a, b):
        real_link(a, b)
        if str(b) == str(out):
            reader = subprocess.Popen([sys.executable, "-c", _EARLY_READER, str(out)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
            readers.append((reader, reader.stdout.readline().strip()))

    monkeypatch.setattr(_hdf5.os, "link", link_then_read)
    try:
        with Runner(model(0.0), src, f"{out}:/y", dt=10) as runner:
            runner.join()
    finally:
        for reader, _ in readers:
            reader.communicate("\n", timeout=20)
    assert [said for _, said in readers] == ["refused"]
    np.testing.assert_array_equal(read(out), reference(x, 10))
