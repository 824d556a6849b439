"""Fault 1: a SIGKILL at any moment leaves a run that can be resumed, or rerun with overwrite=True."""

from __future__ import annotations

import random
import signal

import pytest

from tests.faults.kill import kill_trial

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("window", [(0.0, 0.3), (0.3, 0.9)], ids=["before-first-chunk", "mid-run"])
def test_a_killed_run_recovers_bit_identically(tmp_path, k, window):
    """A child killed (SIGKILL) at a random moment, early (the first 0.3 s, before the first chunk is on disk)
    or mid-run, then resumed if a checkpoint exists or else rerun with overwrite=True (a plain run if no file
    exists), ends bit-identical to an uninterrupted run, with no *.tmp*, lock or checkpoint file left."""
    delay = round(random.uniform(*window), 3)
    trial = kill_trial(tmp_path, k, delay)
    assert not trial.failure, f"k={k}, kill after {delay} s, {trial.outcome or 'recovery'}: {trial.failure}"
