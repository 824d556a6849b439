"""Fault 10: what Runners do at interpreter exit, each checked in a child process."""

from __future__ import annotations

import subprocess

import pytest

from tests.faults.common import recording, run_script, script, write_input

_BLOCKED = """
import time
import numpy as np
from streamreg import Runner
from streamreg.streams import QueueStream
from tests.runner_models import model

queue = QueueStream((3,), maxsize=5)
runner = Runner(model(), np.ones((200, 3), dtype=np.float32), queue, dt=10)
runner.start()
time.sleep(0.5)
print("leaving", flush=True)
"""

_FAILED = """
import time
import numpy as np
import torch
from streamreg import Layer, Runner


class Boom(Layer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom-4711 from the model")


runner = Runner(Boom(), np.ones((100, 3), dtype=np.float32), None, dt=10)
runner.start()
time.sleep(0.5)
"""

_NEVER_STARTED = """
from streamreg import Runner
from tests.runner_models import model

runner = Runner(model(), {src!r}, {out!r}, dt=10, checkpoint_every=1)
print("constructed", flush=True)
"""


@pytest.mark.timeout(45)
def test_a_runner_blocked_on_a_full_queue_does_not_hang_the_exit(tmp_path):
    """A Runner blocked in put() on a full QueueStream nobody drains: the interpreter still exits within 30 s,
    and says on stderr why the Runner's output is incomplete."""
    try:
        done = run_script(script(tmp_path, _BLOCKED), timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the child did not exit within 30 s: a blocked Runner hangs interpreter exit")
    assert "leaving" in done.stdout
    assert "Runner" in done.stderr, f"no message on stderr: {done.stderr!r}"


@pytest.mark.timeout(30)
def test_a_failed_runner_nobody_joined_reports_at_exit(tmp_path):
    """A Runner whose model raised, never joined: at exit its error is printed on stderr and the exit status
    is non-zero."""
    done = run_script(script(tmp_path, _FAILED), timeout=25)
    assert "boom-4711" in done.stderr, f"the error was not reported: {done.stderr!r}"
    assert done.returncode != 0


@pytest.mark.timeout(30)
def test_a_runner_never_started_leaves_no_files(tmp_path):
    """A checkpointed Runner into a new file that is constructed but never started leaves, after exit, no
    output file, lock file or checkpoint: the folder holds only what was there before."""
    src = write_input(tmp_path, recording(100))
    child = script(tmp_path, _NEVER_STARTED.format(src=src, out=f"{tmp_path / 'out.h5'}:/y"))
    before = sorted(p.name for p in tmp_path.iterdir())
    done = run_script(child, timeout=25)
    assert done.returncode == 0 and "constructed" in done.stdout, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
