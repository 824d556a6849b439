"""Frames/s of the VirtualRetina-style ``Retina`` model, one thread, and chunking exactness.

Measures ``Retina(spikes=...).run(x, dt=dt)`` (best of ``--repeats``, after a warm-up) on
random luminance ``(T, H, W)`` float32 at 20x20 and 64x64, for rates and spikes output and
dt in (100, 1000), with ``torch.set_num_threads(1)``. For every configuration it also
runs a shorter input chunked and one-shot and checks the outputs are bitwise equal
(``Retina.chunk_exact`` promises bitwise chunk invariance, spikes included).

Baselines:
  * reference figure (NOT measured here): convis 0.6.3's published ~1,300 frames/s for its
    retina model at 20x20, taken from the project's reference document;
  * in-run naive baseline: the model applied one frame at a time, ``run(x, dt=1)``.

Goal: >= 13,000 frames/s at 20x20 (10x the convis figure).

Run:  python benchmarks/bench_retina.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from streamreg.models import Retina

CONVIS_REFERENCE_FPS = 1300.0  # from the reference document, not measured here
GOAL_FPS = 13000.0


def fps(model: Retina, x: np.ndarray, dt: int, repeats: int) -> float:
    model.run(x[: min(len(x), 2 * dt)], dt=dt)  # warm-up: blur matrices, allocator
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.run(x, dt=dt)
        best = min(best, time.perf_counter() - t0)
    return len(x) / best


def exactness(spikes: bool, x: np.ndarray, dt: int) -> tuple[bool, float]:
    y_chunk = Retina(spikes=spikes).run(x, dt=dt)
    y_one = Retina(spikes=spikes).run(x)
    return bool(np.array_equal(y_chunk, y_one)), float(np.max(np.abs(y_chunk - y_one)))


def goal_mark(frame: str, dt: str, rate: float) -> str:
    if frame != "20x20" or dt.startswith("1 "):
        return ""
    return "met" if rate >= GOAL_FPS else "below"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (< 20 s)")
    parser.add_argument("--frames", type=int, default=10000, help="frames timed at 20x20")
    parser.add_argument("--frames-64", type=int, default=3000, help="frames timed at 64x64")
    parser.add_argument("--exact-frames", type=int, default=2500, help="frames of the exactness check")
    parser.add_argument("--naive-frames", type=int, default=1000, help="frames of the dt=1 baseline")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.frames, args.frames_64, args.exact_frames, args.naive_frames, args.repeats = 2000, 500, 1100, 200, 1
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, best of {args.repeats}, "
          f"load avg {os.getloadavg()[0]:.2f}")

    rows = []
    for hw, n in ((20, args.frames), (64, args.frames_64)):
        x = rng.random((n, hw, hw), dtype=np.float32)
        xe = x[: args.exact_frames]
        if len(xe) < args.exact_frames:
            xe = rng.random((args.exact_frames, hw, hw), dtype=np.float32)
        for spikes in (False, True):
            for dt in (100, 1000):
                rate = fps(Retina(spikes=spikes), x, dt, args.repeats)
                equal, diff = exactness(spikes, xe, dt)
                rows.append((f"{hw}x{hw}", "spikes" if spikes else "rates", str(dt), n, rate, equal, diff))
        nn_ = min(n, args.naive_frames)
        rows.append((f"{hw}x{hw}", "rates", "1 (naive)", nn_, fps(Retina(), x[:nn_], 1, 1), None, None))

    head = (f"{'frame':<6} {'output':<7} {'dt':>9} {'T':>6} {'frames/s':>10} {'vs convis':>10} "
            f"{'vs dt=1':>8}  {'bitwise':<7} {'max diff':>8}  goal")
    print(head)
    print("-" * len(head))
    naive = {r[0]: r[4] for r in rows if r[2].startswith("1 ")}
    for frame, out, dt, n, rate, equal, diff in rows:
        ex = "-" if equal is None else ("yes" if equal else "NO")
        df = "-" if diff is None else f"{diff:.3g}"
        vs = f"{rate / CONVIS_REFERENCE_FPS:.1f}x" if frame == "20x20" else "-"  # reference is 20x20 only
        print(f"{frame:<6} {out:<7} {dt:>9} {n:>6} {rate:>10,.0f} {vs:>10} "
              f"{rate / naive[frame]:>7.1f}x  {ex:<7} {df:>8}  {goal_mark(frame, dt, rate)}")
    print(f"\nreference: convis 0.6.3 ~{CONVIS_REFERENCE_FPS:,.0f} frames/s at 20x20 "
          "(published figure from the reference document, not measured here)")
    for out in ("rates", "spikes"):
        got = [r[4] for r in rows if r[0] == "20x20" and r[1] == out and not r[2].startswith("1 ")]
        ok = "MET for every dt" if min(got) >= GOAL_FPS else ("MET for some dt" if max(got) >= GOAL_FPS else "MISSED")
        print(f"goal 20x20 {out:<6} >= {GOAL_FPS:,.0f} frames/s: best {max(got):,.0f}, worst {min(got):,.0f} -> {ok}")
    print(f"bitwise chunked == one-shot in all configurations: {all(r[5] for r in rows if r[5] is not None)}")


if __name__ == "__main__":
    main()
