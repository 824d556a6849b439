"""Cost of one ``Recorder.scalar`` + ``step`` per backend, vs a pystematic-style recorder in the same run.

The baseline does what pystematic-torch's Recorder does per call (reference
``pystematic_torch.md`` §5): open ``scalars.csv``, append an unquoted
``"{count}, {tag}, {value}"`` line and close it, and ``add_scalar`` on a
``SummaryWriter`` that is never flushed. pystematic-torch measured +466-481 µs
per scalar+step (TensorBoard + CSV, its default) on this kind of machine.

Variants (each: warm-up, then best of ``--repeats`` rounds of ``--calls`` calls,
in a fresh temporary folder):

  * streamreg CSV, default: flushed at every step (the rows survive the death of the
    process), fsynced at most once a second (power loss);
  * streamreg CSV with ``fsync_interval=0`` (fsync at every step);
  * streamreg TensorBoard only (events flushed at every step);
  * streamreg default when tensorboard is installed (TensorBoard + CSV);
  * the pystematic-style baseline (CSV + unflushed TensorBoard).

Goal: the streamreg default costs less than pystematic-torch's ~470 µs per scalar+step
(and less than the baseline measured here).

Run:  python benchmarks/bench_recorder.py [--quick] [--calls N] [--repeats N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _util import print_result, result_row

from streamreg.experiment import Recorder

REFERENCE_US = 470.0


class PystematicStyle:
    """pystematic-torch's per-call behaviour: reopen the CSV per scalar, an unflushed SummaryWriter."""

    def __init__(self, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.path = folder / "scalars.csv"
        self.path.write_text("step, tag, value\n")
        self.writer = SummaryWriter(log_dir=str(folder))
        self.count = 0

    def scalar(self, tag: str, value: float) -> None:
        self.writer.add_scalar(tag, value, self.count)
        with open(self.path, "a") as f:
            f.write(f"{self.count}, {tag}, {value}\n")

    def step(self) -> None:
        self.count += 1

    def close(self) -> None:
        self.writer.close()


def time_per_call(make, calls: int, repeats: int) -> float:
    """Best µs per scalar+step over ``repeats`` rounds, each in a fresh recorder and folder."""
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            rec = make(Path(folder))
            for _ in range(20):
                rec.scalar("loss", 0.5)
                rec.step()
            start = time.perf_counter()
            for _ in range(calls):
                rec.scalar("loss", 0.5)
                rec.step()
            best = min(best, (time.perf_counter() - start) / calls * 1e6)
            rec.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    calls, repeats = (200, 2) if args.quick else (args.calls, args.repeats)
    variants = {
        "streamreg CSV (default: fsync <= 1/s)": lambda d: Recorder(d, tensorboard=False),
        "streamreg CSV (fsync every step)": lambda d: Recorder(d, tensorboard=False, fsync_interval=0),
        "streamreg TensorBoard only": lambda d: Recorder(d, tensorboard=True, file=False),
        "streamreg default (TB + CSV)": lambda d: Recorder(d, tensorboard=True),
        "baseline: pystematic-style (TB + CSV)": PystematicStyle,
    }
    results = {name: time_per_call(make, calls, repeats) for name, make in variants.items()}
    print(f"{'variant':40s} {'µs per scalar+step':>20s}")
    for name, us in results.items():
        print(f"{name:40s} {us:20.1f}")
    default = results["streamreg default (TB + CSV)"]
    baseline = results["baseline: pystematic-style (TB + CSV)"]
    print(f"\nstreamreg default / baseline = {default / baseline:.2f}; "
          f"pystematic-torch reference ~{REFERENCE_US:.0f} µs")
    met = default < REFERENCE_US and default < baseline
    print(f"goal (default < {REFERENCE_US:.0f} µs and < baseline): {'met' if met else 'MISSED'}")
    print_result("bench_recorder", [result_row("recorder default / pystematic-style, µs", default, baseline, "<= 1"),
                                    result_row("recorder default, µs per call", default, None, f"<= {REFERENCE_US:g}")])


if __name__ == "__main__":
    main()
