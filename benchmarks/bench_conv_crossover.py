"""Direct versus FFT convolution: where FFT starts to win, one thread, ``run(dt=1000)``.

Measures frames/s (best of ``--repeats``) of ``method="direct"`` and ``method="fft"`` for

  * ``TemporalFIR`` with one shared K-tap kernel on ``(T, 256)``, K in 16 ... 1024;
  * ``Conv3d`` on ``(T, 32, 32)`` and ``(T, 64, 64)`` with kernels (5,5,5), (10,5,5),
    (10,9,9), (20,10,10), plus (3,3,3) and (5,3,3) to locate the crossover below 125,

with ``torch.set_num_threads(1)``. T is set per configuration from a short probe so each
timed run lasts about ``--target`` seconds. It also prints max|y_direct - y_fft| / max|y_direct|
(on the frames both runs cover; the filters are causal, so a prefix gives a prefix).

Baseline: ``method="direct"`` in the same run. It reports where FFT starts to win and
whether the package's ``method="auto"`` thresholds agree:
``streamreg.filters.temporal.FIR_FFT_MIN_TAPS`` and ``streamreg.filters.conv.CONV3D_FFT_MIN_VOLUME``.

Goal: ``method="auto"`` picks the faster method (a ratio within 10 % is a tie), except that
``TemporalFIR`` may keep direct convolution, which is bitwise chunk invariant, where FFT
would be faster; those rows print ``exact`` and the summary reports what that costs.
(``Conv3d`` is tolerance-exact with either method, so it gets no such allowance.)

Run:  python benchmarks/bench_conv_crossover.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch
from _util import print_result

from streamreg.filters import Conv3d, TemporalFIR
from streamreg.filters import conv as conv_mod
from streamreg.filters import temporal as temporal_mod

TIE = 0.10  # within 10 %: a tie (timings on a shared 2-core machine are not more precise)


def timed_run(make, x: np.ndarray, dt: int, target: float, repeats: int, t_min: int) -> tuple[float, np.ndarray]:
    """Frames/s of ``make().run(x[:T], dt)`` with T sized from a probe to last about ``target`` s."""
    model = make()
    probe = min(len(x), t_min)
    model.run(x[:probe], dt=dt)  # warm-up
    t0 = time.perf_counter()
    model.run(x[:probe], dt=dt)
    rate = probe / (time.perf_counter() - t0)
    n = int(min(len(x), max(t_min, rate * target)))
    best, y = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        y = model.run(x[:n], dt=dt)
        best = min(best, time.perf_counter() - t0)
    return n / best, y


def compare(label: str, size, make, x, args) -> dict:
    r_d, y_d = timed_run(lambda: make("direct"), x, args.dt, args.target, args.repeats, args.t_min)
    r_f, y_f = timed_run(lambda: make("fft"), x, args.dt, args.target, args.repeats, args.t_min)
    m = min(len(y_d), len(y_f))
    rel = float(np.max(np.abs(y_d[:m] - y_f[:m])) / max(np.max(np.abs(y_d[:m])), 1e-30))
    auto = make("auto")._method()
    return {"label": label, "size": size, "T": (len(y_d), len(y_f)), "direct": r_d, "fft": r_f,
            "rel": rel, "auto": auto, "win": winner(r_f / r_d)}


def winner(ratio: float) -> str:
    """'fft' or 'direct' when one is more than TIE faster than the other, else 'tie'."""
    return "fft" if ratio > 1 + TIE else ("direct" if ratio < 1 / (1 + TIE) else "tie")


def report(title: str, rows: list[dict], threshold_text: str, direct_is_exact: bool) -> None:
    print(f"\n{title}  (auto: {threshold_text})")
    head = (f"{'case':<22} {'size':>6} {'T direct/fft':>14} {'direct f/s':>11} {'fft f/s':>10} "
            f"{'fft/direct':>10} {'rel diff':>9} {'winner':>7} {'auto':>7} ok")
    print(head)
    print("-" * len(head))
    for r in rows:
        t = f"{r['T'][0]}/{r['T'][1]}"
        print(f"{r['label']:<22} {r['size']:>6} {t:>14} {r['direct']:>11,.0f} {r['fft']:>10,.0f} "
              f"{r['fft'] / r['direct']:>10.2f} {r['rel']:>9.1e} {r['win']:>7} {r['auto']:>7} "
              f"{_verdict(r, direct_is_exact)}")
    last_direct = max((r["size"] for r in rows if r["win"] == "direct"), default=0)
    fft_after = [r["size"] for r in rows if r["size"] > last_direct and r["win"] == "fft"]
    ties = [r["size"] for r in rows if r["win"] == "tie"]
    if not fft_after:
        print(f"FFT never wins clearly for good in the measured range: threshold should be > {last_direct}")
    else:
        first = min(fft_after)
        note = " -- the smallest size measured" if first == rows[0]["size"] else ""
        print(f"FFT wins (> {TIE:.0%}) from size {first} on{note}; ties (within {TIE:.0%}) at {ties or 'none'}")
    agree = all(_verdict(r, direct_is_exact) != "NO" for r in rows)
    kept = [r["fft"] / r["direct"] for r in rows if _verdict(r, direct_is_exact) == "exact"]
    cost = f"; exactness kept below the threshold costs up to {max(kept):.2f}x" if kept else ""
    print(f"auto threshold ({threshold_text}) picks the faster method, or bitwise direct on purpose: "
          f"{'YES -> goal met' if agree else 'NO -> goal missed'}{cost}")


def _verdict(r: dict, direct_is_exact: bool) -> str:
    """'yes': auto picks the winner or a tie; 'exact': it keeps bitwise direct on purpose; else 'NO'."""
    if r["win"] in (r["auto"], "tie"):
        return "yes"
    return "exact" if r["auto"] == "direct" and direct_is_exact else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (< 20 s)")
    parser.add_argument("--dt", type=int, default=1000)
    parser.add_argument("--target", type=float, default=0.6, help="seconds per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--t-min", type=int, default=1000, help="probe length and minimum T")
    args = parser.parse_args()
    taps, frames = (16, 64, 128, 256, 512, 1024), (32, 64)
    kernels = ((2, 2, 2), (2, 3, 3), (3, 3, 3), (5, 3, 3), (5, 5, 5), (10, 5, 5), (10, 9, 9), (20, 10, 10))
    if args.quick:
        args.target, args.repeats, args.t_min, frames = 0.1, 1, 100, (32,)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, 1 thread, dt={args.dt}, best of {args.repeats}, "
          f"load avg {os.getloadavg()[0]:.2f}")

    x = rng.standard_normal((40000, 256), dtype=np.float32)
    kernels_1d = {k: rng.standard_normal(k).astype(np.float32) / math.sqrt(k) for k in taps}
    rows = [compare("TemporalFIR (T,256)", k,
                    lambda m, k=k: TemporalFIR(kernels_1d[k], method=m), x, args) for k in taps]
    report("TemporalFIR, size = K taps", rows, f"fft when K >= {temporal_mod.FIR_FFT_MIN_TAPS}", True)

    for hw in frames:
        x = rng.standard_normal((20000, hw, hw), dtype=np.float32)
        rows = []
        for ks in kernels:
            torch.manual_seed(1)
            weight = Conv3d(ks).weight.detach().clone()

            def make(m, ks=ks, weight=weight):
                c = Conv3d(ks, method=m)
                c.set_weight(weight)
                return c

            rows.append(compare(f"Conv3d {ks}", math.prod(ks), make, x, args))
        report(f"Conv3d on (T,{hw},{hw}), size = kt*kh*kw", rows,
               f"fft when volume >= {conv_mod.CONV3D_FFT_MIN_VOLUME}", False)
    print_result("bench_conv_crossover", [])  # no single ratio: the tables above say where "auto" picks right


if __name__ == "__main__":
    main()
