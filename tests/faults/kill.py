"""One random-delay SIGKILL trial: kill a child mid-run, recover as a user would, compare with the reference.

Shared by ``tests/faults/test_sigkill.py`` (a few trials in CI) and ``benchmarks/kill_trials.py`` (the long form).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.faults.common import (
    DT,
    checkpoints,
    leftovers,
    read,
    recording,
    recover,
    recovery_plan,
    reference,
    script,
    write_input,
)

#: Seconds the child's model sleeps per chunk: 40 chunks of 10 frames take about 1 s.
SLEEP = 0.025

_CHILD = """
from tests.runner_models import model
m = model({sleep})
print("ready", flush=True)
m.run({src!r}, {dt}, output={out!r}, checkpoint_every={k})
print("finished", flush=True)
"""


@dataclass
class Trial:
    """What one trial did: ``outcome`` is finished, resumed, rerun or fresh; ``failure`` says what broke."""

    k: int
    delay: float
    after_first_chunk: bool = False
    outcome: str = ""
    failure: str = ""


def kill_trial(folder: Path, k: int, delay: float, after_first_chunk: bool = False) -> Trial:
    """Run the standard model from ``in.h5:/x`` to ``out.h5:/y`` in a child, SIGKILL it ``delay`` s after it is
    about to call ``run()`` (or, with ``after_first_chunk``, after the output file first holds a chunk's worth of
    bytes), recover (resume if a checkpoint exists, else overwrite or a plain run) and check the result."""
    trial = Trial(k, delay, after_first_chunk)
    x = recording()
    src = write_input(folder, x)
    out = folder / "out.h5"
    child = subprocess.Popen([sys.executable, str(script(folder, _CHILD.format(
        sleep=SLEEP, src=src, dt=DT, out=f"{out}:/y", k=k)))], cwd=folder, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    with child:
        try:
            ready = child.stdout.readline().strip() == "ready"
            if after_first_chunk:
                _wait_for_data(out, child)
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=20)
        finally:
            child.kill()
        if not ready:
            trial.failure = f"the child did not start: {child.stderr.read()[-2000:]}"
            return trial
    finished = child.returncode == 0
    try:
        trial.outcome = "finished" if finished else recover(folder, src, out, k)
    except Exception as exc:  # a trial reports every failure instead of stopping the tally
        trial.failure = f"recovery ({recovery_plan(folder, out)}) raised {type(exc).__name__}: {exc}"
        return trial
    trial.failure = _check(folder, out, x)
    return trial


def _wait_for_data(out: Path, child: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until ``out`` has grown past 2 KiB, the size of its first metadata: a chunk reached it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        if out.exists() and out.stat().st_size > 2048:
            return
        time.sleep(0.005)


def _check(folder: Path, out: Path, x: np.ndarray) -> str:
    try:
        y = read(out)
    except Exception as exc:  # reported as the trial failure
        return f"the output cannot be read: {type(exc).__name__}: {exc}"
    ref = reference(x)
    if y.shape != ref.shape:
        return f"output has shape {y.shape}, the reference {ref.shape}"
    if not np.array_equal(y, ref):
        bad = np.flatnonzero((y != ref).reshape(len(y), -1).any(axis=1))
        return f"{len(bad)} frames differ from the reference, first {bad[:5].tolist()}"
    left = leftovers(folder) + [p.name for p in checkpoints(folder)]
    return f"files left behind: {left}" if left else ""
