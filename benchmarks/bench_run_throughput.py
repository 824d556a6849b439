"""Throughput of chunked ``Layer.run(x, dt=1000)`` versus one-shot ``Layer.run(x)``.

Measures frames/s (best of ``--repeats``) of the same model on the same in-memory
input, run once in chunks of ``dt`` frames and once as a single chunk, for

  (a) ``LN((10, 5, 5))`` on ``(T, 20, 20)`` float32 (default T = 20000),
  (b) ``TemporalFIR`` with one shared 50-tap kernel on ``(T, 1024)`` float32
      (default T = 200000, i.e. 800 MB of input).

The one-shot run is the baseline, measured in the same process. It also prints the
maximum absolute difference between the two outputs (expected 0: both paths are direct).

Goal: chunked / one-shot frames/s ratio >= 1.0, i.e. chunking costs no throughput.

Run:  python benchmarks/bench_run_throughput.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import gc
import os
import time

import numpy as np
import torch
from _util import print_result, result_row

from streamreg.filters import TemporalFIR
from streamreg.models import LN

GOAL_RATIO = 1.0


def best_time(fn, repeats: int) -> tuple[float, np.ndarray]:
    """Best wall time of ``repeats`` calls of ``fn`` and the output of the last call."""
    best, out = float("inf"), None
    for _ in range(repeats):
        out = None
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_case(name: str, model, x: np.ndarray, dt: int, repeats: int) -> dict:
    model.run(x[: min(len(x), 2 * dt)], dt=dt)  # warm-up (allocator, kernels)
    t_chunk, y_chunk = best_time(lambda: model.run(x, dt=dt), repeats)
    t_one, y_one = best_time(lambda: model.run(x), repeats)
    diff = float(np.max(np.abs(y_chunk - y_one))) if y_one.size else 0.0
    n = len(x)
    return {"case": name, "T": n, "chunk": n / t_chunk, "one": n / t_one, "diff": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (< 20 s)")
    parser.add_argument("--t-ln", type=int, default=20000, help="frames for the LN case")
    parser.add_argument("--t-fir", type=int, default=200000, help="frames for the TemporalFIR case")
    parser.add_argument("--dt", type=int, default=1000, help="chunk length of the chunked run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()
    if args.quick:
        args.t_ln, args.t_fir, args.repeats = 3000, 20000, 2
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), dt={args.dt}, "
          f"best of {args.repeats}, load avg {os.getloadavg()[0]:.2f}")
    rows = []
    x = rng.random((args.t_ln, 20, 20), dtype=np.float32)
    rows.append(bench_case("LN((10,5,5)) on (T,20,20)", LN((10, 5, 5)), x, args.dt, args.repeats))
    del x
    gc.collect()
    x = rng.standard_normal((args.t_fir, 1024), dtype=np.float32)
    fir = TemporalFIR(rng.standard_normal(50).astype(np.float32))
    rows.append(bench_case("TemporalFIR(50 taps) on (T,1024)", fir, x, args.dt, args.repeats))
    del x
    gc.collect()

    head = f"{'case':<34} {'T':>8} {'chunked f/s':>13} {'one-shot f/s':>13} {'ratio':>7} {'max|diff|':>10}  goal"
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = r["chunk"] / r["one"]
        ok = "MET" if ratio >= GOAL_RATIO else "MISSED"
        print(f"{r['case']:<34} {r['T']:>8} {r['chunk']:>13,.0f} {r['one']:>13,.0f} "
              f"{ratio:>7.2f} {r['diff']:>10.3g}  {ok} (ratio >= {GOAL_RATIO})")
    print_result("bench_run_throughput", [result_row(f"{r['case']} chunked/one-shot f/s", r["chunk"], r["one"],
                                                     f">= {GOAL_RATIO}") for r in rows])


if __name__ == "__main__":
    main()
