"""Random-delay SIGKILL trials of ``Layer.run(..., checkpoint_every=k)``: the long form of tests/faults/test_sigkill.py.

Each trial starts a child process that runs ``tests.runner_models.model`` (FIR -> low-pass -> 25 ms sleep per
chunk; 400 frames in 40 chunks, about 1 s) from ``in.h5:/x`` to ``out.h5:/y`` with ``checkpoint_every=k``,
kills it with SIGKILL after a random delay: a third of the trials within 0.3 s of the moment it is about to call
``run()`` (before the first chunk reaches disk), a third up to 2.5 s from that moment, and a third up to 0.8 s
after the output file first grew past its initial metadata (a chunk reached it, so mid-run even on a loaded
machine). Then it recovers
as a user would: ``resume=True`` if a checkpoint file exists beside the output, else ``overwrite=True`` if the
output file exists, else a plain run. A trial passes when the output is bit-identical to an uninterrupted run
and no ``*.tmp*``, lock or checkpoint file is left. Every window is tried with k = 1, 2 and 5 in turn.

Goal (issue 8, fault 1): every trial passes, with at least 30 trials.

    python benchmarks/kill_trials.py --trials 30 [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(os.path.abspath(__file__)).parents[1]))

from tests.faults.kill import Trial, kill_trial

KS = (1, 2, 5)


def delays(n: int, seed: int) -> list[tuple[float, bool]]:
    """``n`` kill moments (seconds, counted after the first chunk): by turns [0, 0.3), [0.3, 2.5), [0, 0.8) after."""
    rng = random.Random(seed)
    windows = [((0.0, 0.3), False), ((0.3, 2.5), False), ((0.0, 0.8), True)]
    return [(round(rng.uniform(*windows[i % 3][0]), 3), windows[i % 3][1]) for i in range(n)]


def tally(trials: list[Trial]) -> str:
    """A summary: trials, outcomes and every failure with its reason."""
    counts = Counter(t.outcome or "no recovery" for t in trials)
    failures = [t for t in trials if t.failure]
    lines = [f"trials: {len(trials)}  " + "  ".join(f"{name}: {n}" for name, n in sorted(counts.items())),
             f"failures: {len(failures)}"]
    lines += [f"  k={t.k} delay={t.delay:.3f}s{'+chunk' * t.after_first_chunk} {t.outcome or '-'}: {t.failure}"
              for t in failures]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30, help="number of trials (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays (default 0)")
    args = parser.parse_args()
    trials = []
    for i, (delay, after) in enumerate(delays(args.trials, args.seed)):
        with tempfile.TemporaryDirectory() as folder:
            trial = kill_trial(Path(folder), KS[(i // 3) % len(KS)], delay, after)
        trials.append(trial)
        print(f"{i + 1:3d} k={trial.k} delay={delay:.3f}s{'+chunk' * after:6s} {trial.outcome or '-':8s} "
              f"{'FAIL ' + trial.failure if trial.failure else 'ok'}", flush=True)
    print(tally(trials))
    return 1 if any(t.failure for t in trials) else 0


if __name__ == "__main__":
    sys.exit(main())
