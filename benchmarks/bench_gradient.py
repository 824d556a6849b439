"""Exact chunked gradient: time against one-shot forward+backward, and memory at T and 10·T.

Time: for each model, one evaluation of the chunked objective (forward pass
keeping boundary states, reverse pass recomputing each chunk with autograd)
against plain autograd on the whole recording in memory (the baseline), in CPU
seconds (one thread; other jobs share the machine), best of 3, the two interleaved.
Goal: chunked / one-shot ≤ 1.5× for every model. The gradients are compared too.

The chunked evaluation first runs every chunk once with autograd, back-propagating
each chunk's loss at once, while no state depends on a parameter (LN: the state is
past input, so this one pass is all); from the first chunk that leaves a
parameter-dependent state on (a learnable recursion, the Retina) it goes on without
autograd, keeping one state per boundary, and recomputes those chunks in reverse.

Memory: in fresh subprocesses, input and target are read from HDF5 and the
growth of peak RSS (VmHWM, reset just before) over the resident size of one
chunked evaluation is measured at T and 10·T.
Goal: the growth grows by far less than the 10× more data (it is O(dt) plus one
state per chunk boundary).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from _util import print_result, reset_peak_rss, result_row, run_child, status_kb

from streamreg import Sequential
from streamreg._hdf5 import H5Files
from streamreg.filters import LowPass, TemporalFIR
from streamreg.models import LN, Retina
from streamreg.optim.objective import FitData, SpanObjective, whole_spans
from streamreg.optim.recording import open_recording


def _ChunkedObjective(model, source, target, dt, loss_fn, reduction, truncate):
    """The objective of one whole recording."""
    data = FitData([source], [target])
    return SpanObjective(model, data, whole_spans(data.lengths()), dt, loss_fn, reduction, truncate)

MODELS = {
    "LN (10,5,5) on 20x20": (lambda: LN((10, 5, 5), "softplus"), (20, 20)),
    "LowPass(learn tau)+FIR on (T,64)": (lambda: Sequential(LowPass(torch.full((64,), 5.0), learn_tau=True),
                                                            TemporalFIR(torch.randn(20))), (64,)),
    "Retina on 16x16": (lambda: Retina(), (16, 16)),
}


def one_shot(model, x, y):
    model.zero_grad()
    model.reset_state()
    F.mse_loss(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


def chunked(model, x, y, dt):
    model.zero_grad()
    _ChunkedObjective(model, open_recording(x, H5Files(), "input"),
                      open_recording(y, H5Files(), "target"), dt, F.mse_loss, "mean", False)()
    return [p.grad.clone() for p in model.parameters()]


def best_of(fns, repeats=3):
    """Best CPU seconds of each function, the functions interleaved; and each one's last result."""
    times, outs = [float("inf")] * len(fns), [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.process_time()
            outs[i] = fn()
            times[i] = min(times[i], time.process_time() - start)
    return times, outs


GOAL = 1.5


def timing(frames, dt):
    print(f"{'model':34} {'T':>7} {'dt':>6} {'one-shot s':>10} {'chunked s':>10} {'ratio':>6} {'max rel grad err':>17}")
    rows = []
    for label, (build, frame) in MODELS.items():
        torch.manual_seed(0)
        model = build()
        x = torch.rand((frames, *frame))
        with torch.no_grad():
            y = model(x) + 0.1 * torch.randn_like(model(x))
        (t_one, t_chunk), (g_one, g_chunk) = best_of([lambda: one_shot(model, x, y), lambda: chunked(model, x, y, dt)])
        err = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) for a, b in zip(g_chunk, g_one))
        rows.append(result_row(f"gradient {label.split(' on ')[0]}: chunked/one-shot", t_chunk, t_one, f"<= {GOAL}"))
        print(f"{label:34} {frames:>7} {dt:>6} {t_one:>10.3f} {t_chunk:>10.3f} {t_chunk / t_one:>6.2f} {err:>17.1e}")
    worst = max(r["ratio"] for r in rows)
    verdict = "MET" if worst <= GOAL else "MISSED"
    print(f"worst chunked/one-shot CPU time ratio {worst:.2f} -> goal (<= {GOAL}) {verdict}")
    return rows


def child(spec):
    torch.set_num_threads(1)
    model = LN((10, 5, 5), "softplus")
    f = h5py.File(spec["path"], "r")
    src, tgt = open_recording(f["x"], H5Files(), "input"), open_recording(f["y"], H5Files(), "target")
    r0 = reset_peak_rss()  # imports peaked higher than the evaluation will
    start = time.perf_counter()
    _ChunkedObjective(model, src, tgt, spec["dt"], F.mse_loss, "mean", False)()
    seconds = time.perf_counter() - start
    print(json.dumps({"growth_mb": (status_kb("VmHWM") - r0) / 1024, "s": seconds}))


def memory(frames, dt):
    print(f"\n{'T':>8} {'data MB':>8} {'dt':>6} {'peak growth MB':>15} {'seconds':>8}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (frames, 10 * frames):
            path = os.path.join(tmp, f"rec{n}.h5")
            with h5py.File(path, "w") as f:
                for name in ("x", "y"):
                    ds = f.create_dataset(name, shape=(n, 20, 20), dtype="f4", chunks=(min(n, 1000), 20, 20))
                    for t0 in range(0, n, 10000):
                        ds[t0 : t0 + 10000] = np.random.default_rng(t0).random((min(10000, n - t0), 20, 20))
            r = run_child(__file__, {"path": path, "dt": dt})
            rows.append(r["growth_mb"])
            print(f"{n:>8} {2 * n * 1600 / 2**20:>8.0f} {dt:>6} {r['growth_mb']:>15.1f} {r['s']:>8.1f}")
    print(f"growth from T to 10T: {rows[1] - rows[0]:+.1f} MB for {9 * 2 * frames * 1600 / 2**20:.0f} MB more data "
          f"-> {'bounded' if rows[1] - rows[0] < 32 else 'NOT bounded'}")
    return [result_row("gradient LN peak-RSS growth T -> 10T, MB", rows[1] - rows[0], None, "<= 32")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    torch.set_num_threads(1)
    rows = timing(3000, 500) if args.quick else timing(20000, 1000)
    rows += memory(2000 if args.quick else 20000, 1000)
    print_result("bench_gradient", rows)


if __name__ == "__main__":
    main()
