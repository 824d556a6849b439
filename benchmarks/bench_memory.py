"""Peak resident memory of an HDF5 -> HDF5 ``Layer.run`` at T and 10·T frames.

An input dataset ``(T, 64, 64)`` float32 is written into a temporary HDF5 file slab
by slab (the writer never holds more than one slab). Then, in a fresh subprocess
per measurement, streamreg is imported and ``LN((10, 5, 5))`` is built; the peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) is recorded, the model runs
``model.run("in.h5:/x", dt=1000, output="out.h5:/y")``, and the growth of the peak
RSS over the run is reported.

Baseline (same run, at T only): the naive way, reading the whole dataset into
memory with h5py and running one-shot (``dt=None``), which grows with T.

Goal: growth of peak RSS from T to 10·T frames <= 32 MB (memory bounded by dt, not T).

Default T = 10000 (10·T = 100000 frames, 1.6 GB of input), not 20000: LN((10,5,5)) runs at
only ~1,500-2,000 frames/s on 64x64 frames on a 2-core machine, so 200000 frames alone would
take ~2 minutes. Use ``--frames 20000`` for the full-size measurement.

Run:  python benchmarks/bench_memory.py [--quick] [--frames T] [--dt 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from _util import print_result, result_row

GOAL_MB = 32.0
FRAME = (64, 64)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def child(args: argparse.Namespace) -> None:
    """Runs in a fresh interpreter; prints one JSON line."""
    import h5py
    import torch

    from streamreg.models import LN

    torch.manual_seed(0)
    model = LN((10, 5, 5))
    before = maxrss_mb()
    t0 = time.perf_counter()
    if args.naive:
        with h5py.File(args.input, "r") as f:
            x = f["x"][...]  # the whole recording in memory
        model.run(x, output=f"{args.output}:/y", overwrite=True)
    else:
        model.run(f"{args.input}:/x", dt=args.dt, output=f"{args.output}:/y", overwrite=True)
    with h5py.File(args.output, "r") as f:
        n = f["y"].shape[0]
    elapsed = time.perf_counter() - t0
    print(json.dumps({"before": before, "after": maxrss_mb(), "seconds": elapsed, "frames": n}))


def write_input(path: str, n: int, slab: int = 1000) -> None:
    import h5py
    import numpy as np

    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", shape=(n, *FRAME), dtype="float32")
        for t0 in range(0, n, slab):
            t1 = min(t0 + slab, n)
            ds[t0:t1] = rng.random((t1 - t0, *FRAME), dtype=np.float32)


def measure(workdir: str, n: int, dt: int, naive: bool = False) -> dict:
    src, dst = os.path.join(workdir, "in.h5"), os.path.join(workdir, "out.h5")
    t0 = time.perf_counter()
    write_input(src, n)
    t_write = time.perf_counter() - t0
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--input", src, "--output", dst,
           "--dt", str(dt)] + (["--naive"] if naive else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for p in (src, dst):
        if os.path.exists(p):
            os.remove(p)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(write_s=t_write, growth=res["after"] - res["before"], naive=naive, n=n)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (< 20 s)")
    parser.add_argument("--frames", type=int, default=10000, help="T; the large run uses 10·T")
    parser.add_argument("--dt", type=int, default=1000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.frames, args.dt = 1000, 250
    n = args.frames
    frame_mb = FRAME[0] * FRAME[1] * 4 / 2**20
    workdir = tempfile.mkdtemp(prefix="streamreg_bench_mem_")
    try:
        print(f"input (T, 64, 64) float32, {frame_mb * 1024:.0f} KiB/frame, dt={args.dt}, tmp={workdir}, "
              f"load avg {os.getloadavg()[0]:.2f}")
        rows = [("streamreg run, dt=%d" % args.dt, measure(workdir, n, args.dt)),
                ("streamreg run, dt=%d" % args.dt, measure(workdir, 10 * n, args.dt)),
                ("naive: read all + one-shot", measure(workdir, n, args.dt, naive=True))]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    head = (f"{'method':<28} {'frames':>8} {'input MB':>9} {'RSS before MB':>14} {'peak MB':>9} "
            f"{'growth MB':>10} {'run s':>7} {'frames/s':>9}")
    print(head)
    print("-" * len(head))
    for name, r in rows:
        print(f"{name:<28} {r['n']:>8} {r['n'] * frame_mb:>9.0f} {r['before']:>14.1f} {r['after']:>9.1f} "
              f"{r['growth']:>10.1f} {r['seconds']:>7.1f} {r['n'] / r['seconds']:>9,.0f}")
    delta = rows[1][1]["growth"] - rows[0][1]["growth"]
    print(f"\ngrowth of peak RSS from T={n} to 10T={10 * n}: {delta:+.1f} MB "
          f"-> goal (<= {GOAL_MB:.0f} MB) {'MET' if delta <= GOAL_MB else 'MISSED'}")
    naive = rows[2][1]["growth"]
    print(f"baseline: naive one-shot at T grows peak RSS by {naive:.1f} MB "
          f"({naive / max(rows[0][1]['growth'], 0.1):.1f}x the chunked run at T)")
    print_result("bench_memory", [result_row("memory peak-RSS growth T -> 10T, MB", delta, None, f"<= {GOAL_MB:g}")])


if __name__ == "__main__":
    main()
