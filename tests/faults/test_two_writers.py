"""Fault 7: a second writer to an output dataset that a live run is writing is refused in the same process,
and overwrite=True never deletes the dataset under the first writer.

The scenarios run in one child process (both writers of a scenario in that one process), so that a crash of
HDF5 under a deleted dataset fails the scenario's test instead of the test session; after a crash the
remaining scenarios run in a new child (as they do after any failed scenario).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.faults.common import DT, leftovers, read, recording, reference, run_script, script, write_input

#: name -> (second writer, overwrite, checkpoint_every, first already started)
SCENARIOS = {
    "Runner-overwrite-no-checkpoint": ("Runner", True, None, True),
    "run-overwrite-checkpoint": ("run", True, 2, True),
    "Runner-checkpoint": ("Runner", False, 2, True),
    "Runner-overwrite-before-first-starts": ("Runner", True, 1, False),
}

_CHILD = """
import json, sys
from streamreg import Runner
from tests.runner_models import model, wait_for

REFUSED = (BlockingIOError, FileExistsError, ValueError, RuntimeError)
for name, src, out, second, overwrite, k, started in json.loads(sys.argv[1]):
    print(json.dumps([name, "started"]), flush=True)
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
        outcome = "ok"
    else:
        outcome = f"the second writer ({{second}}, overwrite={{overwrite}}) was accepted"
    if not started:
        first.start()
    try:
        first.join()
    except Exception as exc:
        outcome = f"the first writer failed: {{type(exc).__name__}}: {{exc}}"
    print(json.dumps([name, outcome]), flush=True)
    if outcome != "ok":
        sys.exit(3)  # HDF5 may be left in a bad state: the next scenarios get a fresh process
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Run every scenario; return name -> (outcome, folder, input recording)."""
    folders = {name: tmp_path_factory.mktemp(name) for name in SCENARIOS}
    x = recording(200)
    jobs = []
    for name, (second, overwrite, k, started) in SCENARIOS.items():
        src = write_input(folders[name], x)
        jobs.append([name, src, f"{folders[name] / 'out.h5'}:/y", second, overwrite, k, started])
    child = script(tmp_path_factory.mktemp("child"), _CHILD.format(dt=DT))
    results: dict[str, str] = {}
    while len(results) < len(jobs):
        todo = [job for job in jobs if job[0] not in results]
        before = len(results)
        done = run_script(child, timeout=40, args=(json.dumps(todo),))
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
        for name, outcome in lines:
            results[name] = outcome
        crashed = [name for name, outcome in results.items() if outcome == "started"]
        for name in crashed:
            results[name] = f"the process died (status {done.returncode}): {done.stderr[-2000:]}"
        if len(results) == before:  # no progress: report the rest instead of looping
            results.update({job[0]: f"not run: {done.stderr[-2000:]}" for job in todo if job[0] not in results})
    return {name: (results[name], folders[name], x) for name in SCENARIOS}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_second_writer_is_refused(outcomes, scenario):
    """While a Runner writes "out.h5:/y" (or has been constructed onto it), a second Runner (at construction) or
    run() onto the same dataset in the same process is refused (BlockingIOError, FileExistsError, ValueError
    or RuntimeError), with or without overwrite=True and checkpoints; the first run then finishes to the
    reference output, leaving no lock or temporary file."""
    outcome, folder, x = outcomes[scenario]
    assert outcome == "ok", outcome
    np.testing.assert_array_equal(read(folder / "out.h5"), reference(x))
    assert leftovers(folder) == []


