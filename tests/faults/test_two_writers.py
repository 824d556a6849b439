"""Fault 7: a second writer to an output dataset that a live run is writing is refused in the same process,
and overwrite=True never deletes the dataset under the first writer.

Each scenario runs in a child process (both writers in that one process), so that a crash of HDF5 under a
deleted dataset fails the test instead of the test session.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.faults.common import DT, leftovers, read, recording, reference, run_script, script, write_input

_CHILD = """
import json
from streamreg import Runner
from tests.runner_models import model, wait_for

REFUSED = (BlockingIOError, FileExistsError, ValueError, RuntimeError)
src, out, second, overwrite, k, started = {src!r}, {out!r}, {second!r}, {overwrite!r}, {k!r}, {started!r}
first = Runner(model(0.01), src, out, dt={dt}, checkpoint_every=k)
if started:
    first.start()
    wait_for(lambda: first.frames_done >= {dt})
try:
    if second == "Runner":
        Runner(model(), src, out, dt={dt}, overwrite=overwrite, checkpoint_every=k)
    else:
        model().run(src, {dt}, output=out, overwrite=overwrite, checkpoint_every=k)
except REFUSED as exc:
    refused = f"{{type(exc).__name__}}: {{exc}}"
else:
    refused = None
if not started:
    first.start()
first.join()
print(json.dumps({{"refused": refused}}))
"""


def _scenario(tmp_path, second: str, overwrite: bool, k: int | None, started: bool) -> np.ndarray:
    x = recording(200)
    src = write_input(tmp_path, x)
    out = f"{tmp_path / 'out.h5'}:/y"
    child = script(tmp_path, _CHILD.format(src=src, out=out, second=second, overwrite=overwrite, k=k,
                                           started=started, dt=DT))
    done = run_script(child, timeout=25)
    assert done.returncode == 0, f"the child failed (status {done.returncode}): {done.stderr[-3000:]}"
    refused = json.loads(done.stdout.strip().splitlines()[-1])["refused"]
    assert refused is not None, f"the second writer ({second}, overwrite={overwrite}) was accepted"
    return x


@pytest.mark.timeout(40)
@pytest.mark.parametrize(("second", "overwrite", "checkpoint_every"),
                         [("Runner", True, None), ("run", True, 2), ("Runner", False, 2)])
def test_a_second_writer_is_refused(tmp_path, second, overwrite, checkpoint_every):
    """While a Runner writes "out.h5:/y", a second Runner (at construction) or run() onto the same dataset in the
    same process is refused (BlockingIOError, FileExistsError, ValueError or RuntimeError), with or without
    overwrite=True and checkpoints; the first run then finishes to the reference, leaving no lock or temp file."""
    x = _scenario(tmp_path, second, overwrite, checkpoint_every, started=True)
    np.testing.assert_array_equal(read(tmp_path / "out.h5"), reference(x))
    assert leftovers(tmp_path) == []


@pytest.mark.timeout(40)
def test_a_second_writer_is_refused_before_the_first_starts(tmp_path):
    """Two Runners constructed onto one dataset: the second constructor (overwrite=True) raises even before the
    first started,
    and the first, started afterwards, writes the reference output."""
    x = _scenario(tmp_path, "Runner", True, 1, started=False)
    np.testing.assert_array_equal(read(tmp_path / "out.h5"), reference(x))
