"""Fault 1: a SIGKILL at any moment leaves a run that can be resumed, or rerun with overwrite=True."""

from __future__ import annotations

import random
import signal

import pytest

from tests.faults.kill import kill_trial

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize(("window", "after_first_chunk"), [((0.0, 0.3), False), ((0.0, 0.5), True)],
                         ids=["early", "mid-run"])
def test_a_killed_run_recovers_bit_identically(tmp_path, k, window, after_first_chunk):
    """A child killed (SIGKILL) at a random moment, early (in the first 0.3 s of run(), before the first chunk
    is on disk) or mid-run (up to 0.5 s after the first chunk reached the file), then resumed if a checkpoint
    exists or else rerun with overwrite=True (a plain run if no file exists), ends bit-identical to an
    uninterrupted run, with no *.tmp*, lock or checkpoint file left."""
    delay = round(random.uniform(*window), 3)
    trial = kill_trial(tmp_path, k, delay, after_first_chunk)
    moment = f"{delay} s after the first chunk" if after_first_chunk else f"{delay} s"
    assert not trial.failure, f"k={k}, killed {moment}, {trial.outcome or 'recovery'}: {trial.failure}"
