"""Fault: a run with ``record=`` killed (SIGKILL) at a random moment resumes its records bit-identically too."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.faults.common import DT, checkpoints, leftovers, recording, recovery_plan, script, write_input
from tests.runner_models import model

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

NAMES = ["0", "1"]
SLEEP = 0.025  # per chunk: 40 chunks of 10 frames take about 1 s

_CHILD = """
from tests.runner_models import model
m = model({sleep})
print("ready", flush=True)
m.run({src!r}, {dt}, output={out!r}, checkpoint_every={k}, record={names!r})
print("finished", flush=True)
"""


def record_kill_trial(folder: Path, k: int, delay: float) -> tuple[str, str]:
    """Kill a child running with ``record=NAMES`` ``delay`` s after it starts run(), recover as a user would
    (resume, else overwrite, else a plain run, always with the same record=), and return the recovery used
    (finished, resumed, rerun, fresh) and what differs from an uninterrupted run ("" when the output and every
    record are bit-identical and no file is left behind)."""
    x = recording()
    src = write_input(folder, x)
    out = folder / "out.h5"
    body = _CHILD.format(sleep=SLEEP, src=src, dt=DT, out=f"{out}:/y", k=k, names=NAMES)
    child = subprocess.Popen([sys.executable, str(script(folder, body))], cwd=folder, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    with child:
        try:
            if child.stdout.readline().strip() != "ready":
                return "", f"the child did not start: {child.stderr.read()[-2000:]}"
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=20)
        finally:
            child.kill()
    plan = "finished" if child.returncode == 0 else recovery_plan(folder, out)
    options = {"finished": None, "resumed": {"resume": True}, "rerun": {"overwrite": True}, "fresh": {}}[plan]
    try:
        if options is not None:
            model().run(src, DT, output=f"{out}:/y", checkpoint_every=k, record=NAMES, **options)
    except Exception as exc:  # a trial reports every failure instead of stopping the tally
        return plan, f"recovery raised {type(exc).__name__}: {exc}"
    return plan, _compare(folder, out, x)


def _compare(folder: Path, out: Path, x: np.ndarray) -> str:
    want_y, want = model().run(x, DT, record=NAMES)
    with h5py.File(out, "r", libver="latest", swmr=True) as f:
        got = {"y": f["y"][()], **{n: f[f"y_record/{n}"][()] for n in NAMES}}
    for name, ref in {"y": want_y, **want}.items():
        if got[name].shape != ref.shape or not np.array_equal(got[name], ref):
            return f"{name} differs from the uninterrupted run ({got[name].shape} vs {ref.shape})"
    left = leftovers(folder) + [p.name for p in checkpoints(folder)]
    return f"files left behind: {left}" if left else ""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("k", "window"), [(1, (0.0, 0.3)), (3, (0.3, 0.9))], ids=["early-k1", "mid-run-k3"])
def test_a_killed_recording_run_recovers_bit_identically(tmp_path, k, window):
    """Killed at a random moment (early: around the first chunk; mid-run), then resumed from its checkpoint (or
    rerun), the output and every record dataset equal an uninterrupted run bit for bit, with nothing left over."""
    delay = round(random.uniform(*window), 3)
    plan, failure = record_kill_trial(tmp_path, k, delay)
    assert not failure, f"k={k}, killed after {delay} s, {plan or 'start'}: {failure}"
