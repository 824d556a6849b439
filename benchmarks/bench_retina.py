"""Frames/s of the VirtualRetina-style ``Retina`` model, one thread, against convis 0.6.3, and chunking exactness.

Measures ``Retina(spikes=...).run(x, dt=dt)`` in frames per CPU second (best of
``--repeats``, after a warm-up; CPU time, since other jobs share the machine) on random
luminance ``(T, H, W)`` float32 at 20x20 and 64x64, for rates and spikes output and dt in
(100, 1000), with ``torch.set_num_threads(1)``. For every configuration it also runs a
shorter input chunked and one-shot and checks the outputs are bitwise equal
(``Retina.chunk_exact`` promises bitwise chunk invariance, spikes included).

Baselines:
  * convis 0.6.3's ``Retina`` (rates: ``spikes=False``; spikes: the default), measured in the
    same run when ``--convis-python PATH`` (or the environment variable ``CONVIS_PYTHON``)
    names the interpreter of a venv where convis is installed: ``benchmarks/_convis_retina.py``
    runs there as a child (``torch.no_grad()``, dt=100, one thread, CPU time). Otherwise the
    reference document's published figure, ~1,300 frames/s at 20x20 (autograd on, wall time;
    it has no 64x64 figure). The script prints which one it used;
  * in-run naive baseline: the model applied one frame at a time, ``run(x, dt=1)``.

Install convis beside (never into) the project's venv::

    python3 -m venv /work/convis-venv
    /work/convis-venv/bin/pip install torch==2.13.0 convis==0.6.3

Goals: >= 13,000 frames/s at 20x20 (10x the reference figure), and at 64x64 >= 10x
convis measured in the same run (rates and spikes, best dt).

Run:  python benchmarks/bench_retina.py [--quick] [--convis-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

import numpy as np
import torch
from _util import print_result, result_row

from streamreg.models import Retina

CONVIS_REFERENCE_FPS = 1300.0  # from the reference document, not measured here
GOAL_FPS = 13000.0
GOAL_VS_CONVIS = 10.0
CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_convis_retina.py")


def convis_fps(python: str, sizes: list[tuple[int, int]], repeats: int) -> dict[str, float]:
    """convis 0.6.3's Retina frames per CPU second, measured by ``python`` (a venv with convis)."""
    spec = json.dumps({"sizes": sizes, "dt": 100, "repeats": repeats})
    out = subprocess.run([python, CHILD, spec], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["fps"]


def fps(model: Retina, x: np.ndarray, dt: int, repeats: int) -> float:
    model.run(x[: min(len(x), 2 * dt)], dt=dt)  # warm-up: blur matrices, allocator
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        model.run(x, dt=dt)
        best = min(best, time.process_time() - t0)
    return len(x) / best


def exactness(spikes: bool, x: np.ndarray, dt: int) -> tuple[bool, float]:
    y_chunk = Retina(spikes=spikes).run(x, dt=dt)
    y_one = Retina(spikes=spikes).run(x)
    return bool(np.array_equal(y_chunk, y_one)), float(np.max(np.abs(y_chunk - y_one)))


def goal_mark(frame: str, dt: str, rate: float) -> str:
    if frame != "20x20" or dt.startswith("1 "):
        return ""
    return "met" if rate >= GOAL_FPS else "below"


def measure(args: argparse.Namespace) -> list[tuple]:
    rng = np.random.default_rng(0)
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
    return rows


def baseline(args: argparse.Namespace) -> tuple[dict[str, float], str]:
    """convis frames/s by ``'20x20 rates'`` etc., measured if an interpreter is given, else the reference's."""
    if args.convis_python:
        sizes = [(20, args.convis_frames), (64, max(args.convis_frames // 2, 100))]
        got = convis_fps(args.convis_python, sizes, args.convis_repeats)
        return got, f"convis 0.6.3 measured in this run ({args.convis_python}, no_grad, dt=100, CPU time)"
    ref = {"20x20 rates": CONVIS_REFERENCE_FPS, "20x20 spikes": CONVIS_REFERENCE_FPS}
    return ref, (f"convis 0.6.3 reference figure ~{CONVIS_REFERENCE_FPS:,.0f} frames/s at 20x20 (published, not "
                 "measured here: no --convis-python or $CONVIS_PYTHON given; the reference has no 64x64 figure)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (< 20 s)")
    parser.add_argument("--frames", type=int, default=10000, help="frames timed at 20x20")
    parser.add_argument("--frames-64", type=int, default=3000, help="frames timed at 64x64")
    parser.add_argument("--exact-frames", type=int, default=2500, help="frames of the exactness check")
    parser.add_argument("--naive-frames", type=int, default=1000, help="frames of the dt=1 baseline")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--convis-python", default=os.environ.get("CONVIS_PYTHON") or None,
                        help="interpreter of a venv with convis 0.6.3 (default: $CONVIS_PYTHON)")
    parser.add_argument("--convis-frames", type=int, default=600, help="convis frames at 20x20 (half at 64x64)")
    parser.add_argument("--convis-repeats", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.frames, args.frames_64, args.exact_frames, args.naive_frames, args.repeats = 1000, 300, 1050, 100, 1
        args.convis_frames, args.convis_repeats = 150, 1
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, best of {args.repeats}, frames per CPU "
          f"second, load avg {os.getloadavg()[0]:.2f}")
    rows = measure(args)
    convis, source = baseline(args)
    report(rows, convis, source)


def report(rows: list[tuple], convis: dict[str, float], source: str) -> None:
    head = (f"{'frame':<6} {'output':<7} {'dt':>9} {'T':>6} {'frames/s':>10} {'vs convis':>10} "
            f"{'vs dt=1':>8}  {'bitwise':<7} {'max diff':>8}  goal")
    print(head)
    print("-" * len(head))
    naive = {r[0]: r[4] for r in rows if r[2].startswith("1 ")}
    for frame, out, dt, n, rate, equal, diff in rows:
        ex = "-" if equal is None else ("yes" if equal else "NO")
        df = "-" if diff is None else f"{diff:.3g}"
        base = convis.get(f"{frame} {out}")
        vs = f"{rate / base:.1f}x" if base else "-"
        print(f"{frame:<6} {out:<7} {dt:>9} {n:>6} {rate:>10,.0f} {vs:>10} "
              f"{rate / naive[frame]:>7.1f}x  {ex:<7} {df:>8}  {goal_mark(frame, dt, rate)}")
    print(f"\nbaseline: {source}")
    print("convis frames/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in convis.items()))
    results = []
    for out in ("rates", "spikes"):
        got = [r[4] for r in rows if r[0] == "20x20" and r[1] == out and not r[2].startswith("1 ")]
        ok = "MET for every dt" if min(got) >= GOAL_FPS else ("MET for some dt" if max(got) >= GOAL_FPS else "MISSED")
        print(f"goal 20x20 {out:<6} >= {GOAL_FPS:,.0f} frames/s: best {max(got):,.0f}, worst {min(got):,.0f} -> {ok}")
        results.append(result_row(f"retina 20x20 {out} frames/s", max(got), None, f">= {GOAL_FPS:g}"))
        best64 = max(r[4] for r in rows if r[0] == "64x64" and r[1] == out and not r[2].startswith("1 "))
        base = convis.get(f"64x64 {out}")
        if base:
            ratio = best64 / base
            print(f"goal 64x64 {out:<6} >= {GOAL_VS_CONVIS:g}x convis: {best64:,.0f} vs {base:,.0f} frames/s = "
                  f"{ratio:.1f}x -> {'MET' if ratio >= GOAL_VS_CONVIS else 'MISSED'}")
            results.append(result_row(f"retina 64x64 {out} vs convis", best64, base, f">= {GOAL_VS_CONVIS:g}"))
        else:
            print(f"goal 64x64 {out:<6} >= {GOAL_VS_CONVIS:g}x convis: no convis figure at 64x64 "
                  "(pass --convis-python)")
    exact = all(r[5] for r in rows if r[5] is not None)
    print(f"bitwise chunked == one-shot in all configurations: {exact}")
    results.append(result_row("retina bitwise chunked == one-shot", float(exact), None, ">= 1"))
    print_result("bench_retina", results)


if __name__ == "__main__":
    main()
