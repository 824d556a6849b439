"""streamreg's temporal filters against what a user would write with scipy instead.

Data: ``(T, 256)`` float32 (default T = 200000), the same array on both sides, one thread on
both sides (``torch.set_num_threads(1)``; scipy's filters are single-threaded, and
``scipy.fft`` is called with ``workers=1``). Each figure is frames/s, best of ``--repeats`` (≥ 3),
timed in CPU seconds of the process (user + system, page faults included): with one thread on
each side that is the cost of the work, and it does not swing with other load on a shared
machine as wall time does (``--wall`` times wall-clock seconds instead).

Workloads, each against every scipy variant listed:

* ``TemporalFIR`` with one shared kernel of 50 and 1000 taps, streamreg ``run(x, dt=1000)`` and
  ``run(x)``; scipy: ``lfilter(b, [1], zi=...)`` in chunks of dt, ``fftconvolve`` and
  ``oaconvolve`` one-shot, and ``fftconvolve`` / ``oaconvolve`` chunked with overlap-add of the
  ``K - 1`` tail. ``lfilter`` costs K multiply-adds a frame whatever T, so at 1000 taps it is
  timed on the first 20000 frames (its rate does not depend on T; it is the slowest by far).
* ``LowPass(tau=10, n_stages)`` for 1 and 3 stages; scipy: ``lfilter([1-a], [1, -a], zi=...)``
  per stage (a cascade) and one order-n ``lfilter`` with the expanded polynomial, one-shot and
  chunked.
* ``HighPass(tau=10, n_stages, weight=1)`` likewise: ``x - cascade`` and one order-n
  ``lfilter`` of ``(1 - a z⁻¹)ⁿ - w (1-a)ⁿ`` over ``(1 - a z⁻¹)ⁿ``.

Accuracy: max |y - y_ref| / max |y_ref| against a float64 reference (scipy ``fftconvolve`` in
float64 for the FIR, a float64 ``lfilter`` cascade for the recursive filters), printed for
streamreg and for every scipy variant. Chunk invariance: ``run(x, dt=1000)`` against ``run(x)``,
bitwise where the layer declares ``chunk_exact``.

Baseline: the fastest scipy variant of each row, measured in the same run.
Goal: streamreg (``dt=1000``) / fastest scipy ≥ 1.0 on every row, with an error no worse than
4× the least accurate float32 scipy variant's and not above 1e-5; ``run(x)`` (``dt=None``) no
slower than 0.9× ``dt=1000``.

Run:  python benchmarks/bench_vs_scipy.py [--quick] [--frames T] [--channels C] [--repeats N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import scipy.fft
import torch
from _util import print_result, result_row
from scipy.signal import fftconvolve, lfilter, oaconvolve

from streamreg.filters import HighPass, LowPass, TemporalFIR

DT = 1000
TAU = 10.0


CLOCK = time.process_time  # CPU seconds (user + system) of this single-threaded process


def best_rate(fn: Callable[[], np.ndarray], n: int, repeats: int) -> tuple[float, np.ndarray]:
    """Frames/s of ``fn()`` over ``n`` frames, best of ``repeats``, and its last output."""
    best, y = float("inf"), None
    for _ in range(repeats):
        y = None
        t0 = CLOCK()
        y = fn()
        best = min(best, CLOCK() - t0)
    return n / best, y


def chunks(x: np.ndarray, dt: int):
    return (x[s : s + dt] for s in range(0, len(x), dt))


# -- scipy variants -----------------------------------------------------------------
def lfilter_chunked(b: np.ndarray, a: np.ndarray, x: np.ndarray, dt: int) -> np.ndarray:
    zi = np.zeros((max(len(a), len(b)) - 1, x.shape[1]), dtype=x.dtype)
    out = []
    for c in chunks(x, dt):
        y, zi = lfilter(b, a, c, axis=0, zi=zi)
        out.append(y)
    return np.concatenate(out)


def cascade(x: np.ndarray, a: float, n_stages: int, dt: int | None) -> np.ndarray:
    b1, a1 = np.array([1 - a], x.dtype), np.array([1, -a], x.dtype)
    if dt is None:
        for _ in range(n_stages):
            x = lfilter(b1, a1, x, axis=0)
        return x
    zis = [np.zeros((1, x.shape[1]), x.dtype) for _ in range(n_stages)]
    out = []
    for c in chunks(x, dt):
        for i in range(n_stages):
            c, zis[i] = lfilter(b1, a1, c, axis=0, zi=zis[i])
        out.append(c)
    return np.concatenate(out)


def overlap_add(conv: Callable, x: np.ndarray, k: np.ndarray, dt: int) -> np.ndarray:
    kk = k[:, None]
    tail = np.zeros((len(k) - 1, x.shape[1]), x.dtype)
    out = []
    for c in chunks(x, dt):
        y = conv(c, kk, axes=0)
        y[: len(tail)] += tail[: len(y)]
        n = len(c)
        rest = tail[n:]
        tail = y[n:].copy()
        tail[: len(rest)] += rest
        out.append(y[:n])
    return np.concatenate(out)


def order_n(a: float, n_stages: int, weight: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(b, a) of n cascaded first-order low-passes, or of ``x - weight · that`` (high-pass)."""
    den = np.poly1d([1.0])
    for _ in range(n_stages):
        den = den * np.poly1d([1.0, -a])
    den_c = den.coeffs
    num = np.zeros_like(den_c)
    num[0] = (1 - a) ** n_stages
    if weight is not None:
        num = den_c - weight * num
    return num, den_c


# -- workloads -------------------------------------------------------------------------
def fir_rows(x: np.ndarray, taps: int, args) -> list[dict]:
    k = np.random.default_rng(taps).normal(size=taps).astype(np.float32) / np.sqrt(taps)
    ref = fftconvolve(x.astype(np.float64), k.astype(np.float64)[:, None], axes=0)[: len(x)]
    layer = TemporalFIR(torch.from_numpy(k))
    sr = {f"TemporalFIR dt={DT}": lambda: layer.run(x, dt=DT), "TemporalFIR dt=None": lambda: layer.run(x)}
    sp = {
        "fftconvolve one-shot": lambda: fftconvolve(x, k[:, None], axes=0)[: len(x)],
        "oaconvolve one-shot": lambda: oaconvolve(x, k[:, None], axes=0)[: len(x)],
        "fftconvolve chunked OLA": lambda: overlap_add(fftconvolve, x, k, DT),
        "oaconvolve chunked OLA": lambda: overlap_add(oaconvolve, x, k, DT),
    }
    # Direct lfilter costs K multiply-adds a frame whatever T: at 1000 taps it is timed on a prefix.
    n = min(len(x), 20_000) if taps > 100 else len(x)
    label = "lfilter zi chunked" + (f" ({n // 1000}k frames)" if n < len(x) else "")
    xp = np.ascontiguousarray(x[:n])
    sp[label] = lambda: lfilter_chunked(k, np.ones(1, np.float32), xp, DT)
    return measure(f"TemporalFIR K={taps}", layer, sr, sp, ref, x, args, prefix={label: n})


def iir_rows(x: np.ndarray, n_stages: int, high: bool, args) -> list[dict]:
    a = float(np.exp(np.float32(-1.0 / TAU)))  # the float32 decay streamreg uses
    weight = 1.0 if high else None
    x64 = x.astype(np.float64)
    ref = cascade(x64, a, n_stages, None)
    if high:
        ref = x64 - ref
    layer = HighPass(TAU, n_stages, weight=1.0) if high else LowPass(TAU, n_stages)
    name = type(layer).__name__
    b_n, a_n = (c.astype(np.float32) for c in order_n(a, n_stages, weight))

    def casc(dt):
        y = cascade(x, a, n_stages, dt)
        return x - y if high else y

    sr = {f"{name} dt={DT}": lambda: layer.run(x, dt=DT), f"{name} dt=None": lambda: layer.run(x)}
    sp = {"lfilter cascade one-shot": lambda: casc(None), "lfilter cascade zi chunked": lambda: casc(DT)}
    if n_stages > 1 or high:
        sp["lfilter order-n one-shot"] = lambda: lfilter(b_n, a_n, x, axis=0)
        sp["lfilter order-n zi chunked"] = lambda: lfilter_chunked(b_n, a_n, x, DT)
    return measure(f"{name} stages={n_stages}", layer, sr, sp, ref, x, args)


def rel_err(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(y - ref)) / max(np.max(np.abs(ref)), 1e-30))


def measure(title: str, layer, sr: dict, sp: dict, ref: np.ndarray, x: np.ndarray, args,
            prefix: dict[str, int] | None = None) -> list[dict]:
    """Rate and error of every variant; those in ``prefix`` run on ``x[:prefix[label]]`` only."""
    res = {}
    outs = {}
    for label, fn in [*sr.items(), *sp.items()]:
        n = (prefix or {}).get(label, len(x))
        rate, y = best_rate(fn, n, args.repeats)
        res[label] = (rate, rel_err(y, ref[:n]))
        if label in sr:
            outs[label] = y
        del y
    chunked, one_shot = outs.values()
    same = bool(np.array_equal(chunked, one_shot))
    diff = rel_err(chunked, one_shot)
    return [{"title": title, "res": res, "sr": list(sr), "sp": list(sp), "bitwise": same, "diff": diff,
             "exact": layer.chunk_exact}]


def report(rows: list[dict]) -> bool:
    all_ok = True
    for r in rows:
        res = r["res"]
        sr_dt, sr_none = r["sr"]
        best_sp = max(r["sp"], key=lambda s: res[s][0])
        worst_err = max(res[s][1] for s in r["sp"])
        law = "bitwise" if r["bitwise"] else f"rel {r['diff']:.1e}"
        print(f"\n{r['title']}   (chunked vs one-shot: {law}; declared {'bitwise' if r['exact'] else 'tolerance'})")
        print(f"  {'variant':<30} {'frames/s':>11} {'max rel err':>12} {'streamreg/this':>15}")
        for label in [*r["sr"], *r["sp"]]:
            rate, err = res[label]
            ratio = "" if label in r["sr"] else f"{res[sr_dt][0] / rate:15.2f}"
            print(f"  {label:<30} {rate:11,.0f} {err:12.2e} {ratio}")
        ratio = res[sr_dt][0] / res[best_sp][0]
        acc_ok = res[sr_dt][1] <= max(4 * worst_err, 1e-7) and res[sr_dt][1] <= 1e-5
        exact_ok = r["bitwise"] or not r["exact"]
        none_ok = res[sr_none][0] >= 0.9 * res[sr_dt][0]
        ok = ratio >= 1.0 and acc_ok and exact_ok
        all_ok &= ok and none_ok
        print(f"  -> vs fastest scipy ({best_sp}): {ratio:.2f}  accuracy {'ok' if acc_ok else 'WORSE'}  "
              f"chunk law {'ok' if exact_ok else 'BROKEN'}  goal {'met' if ok else 'MISSED'};  "
              f"dt=None / dt={DT}: {res[sr_none][0] / res[sr_dt][0]:.2f} ({'ok' if none_ok else 'MISSED'})")
    return all_ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 20000 frames, 3 repeats")
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", choices=["fir", "iir"], default=None, help="run one family only")
    p.add_argument("--wall", action="store_true", help="time wall-clock seconds instead of CPU seconds")
    args = p.parse_args()
    if args.wall:
        global CLOCK
        CLOCK = time.perf_counter
    if args.quick:
        args.frames = min(args.frames, 20_000)
    args.repeats = max(3, args.repeats)
    torch.set_num_threads(1)
    x = np.random.default_rng(0).standard_normal((args.frames, args.channels), dtype=np.float32)
    clock = "wall" if args.wall else "CPU"
    print(f"data ({args.frames}, {args.channels}) float32, 1 thread, best of {args.repeats} ({clock} time), dt={DT}")
    rows = []
    with scipy.fft.set_workers(1):
        if args.only != "iir":
            for taps in (50, 1000):
                rows += fir_rows(x, taps, args)
        if args.only != "fir":
            for high in (False, True):
                for n_stages in (1, 3):
                    rows += iir_rows(x, n_stages, high, args)
    ok = report(rows)
    print(f"\nall goals {'met' if ok else 'NOT met'}")
    print_result("bench_vs_scipy", [result_row("vs_scipy all goals met", float(ok), None, ">= 1")])


if __name__ == "__main__":
    main()
