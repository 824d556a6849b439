"""How well ``run(max_memory=...)`` keeps a run's transient memory inside the budget.

For each model and budget a fresh subprocess allocates the input and the output
array, warms the libraries up on 50 frames, records its peak RSS, runs ``model.run(x, max_memory=budget, output=y)``
and reports the growth of peak RSS: the memory the chunked run itself used.
Goal: growth ≤ budget (the planner's estimate is honest). The baseline in the
same run is the one-shot run of the same model (``dt=None``), whose growth
scales with T.
"""

from __future__ import annotations

import argparse
import json
import resource

from _util import print_result, result_row, run_child

MODELS = {
    "LN (10,5,5) fft": ("streamreg.models:LN", {"kernel_size": [10, 5, 5]}, [64, 64]),
    "LN (4,3,3) direct": ("streamreg.models:LN", {"kernel_size": [4, 3, 3], "method": "direct"}, [64, 64]),
    "Retina": ("streamreg.models:Retina", {}, [64, 64]),
    "LowPass n=3": ("streamreg.filters:LowPass", {"tau": 10.0, "n_stages": 3}, [64, 64]),
    "TemporalFIR 50 taps": ("streamreg.filters:TemporalFIR", {"kernel": [0.02] * 50}, [1024]),
}


def child(spec: dict) -> None:
    import importlib

    import numpy as np
    import torch

    torch.set_num_threads(1)
    module, name = spec["factory"].split(":")
    model = getattr(importlib.import_module(module), name)(**spec["kwargs"])
    x = np.random.default_rng(0).random((spec["frames"], *spec["frame"]), dtype=np.float32)
    y = np.ones((spec["frames"], *spec["frame_out"]), dtype=np.float32)
    model.run(x[:50], dt=7)  # warm up: library initialisation is a fixed cost, not the run's
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.run(x, max_memory=spec["budget"], output=y)
    r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from streamreg.planning import plan_dt

    dt = plan_dt(model, spec["frame"], spec["budget"]) if spec["budget"] else spec["frames"]
    print(json.dumps({"growth_mb": (r1 - r0) / 1024, "dt": dt}))


def measure(label: str, budget: str | None, frames: int) -> dict:
    factory, kwargs, frame = MODELS[label]
    frame_out = [2, *frame] if "Retina" in label else frame
    spec = {"factory": factory, "kwargs": kwargs, "frame": frame, "frame_out": frame_out, "frames": frames,
            "budget": budget}
    return run_child(__file__, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer models, frames and budgets")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    frames = 3000 if args.quick else 8000
    budgets = ["64MB"] if args.quick else ["16MB", "64MB", "256MB"]
    labels = list(MODELS)[:2] if args.quick else list(MODELS)
    print(f"{'model':22} {'budget':>8} {'planned dt':>10} {'growth MB':>10} {'within':>7}")
    worst = 0.0
    for label in labels:
        for budget in budgets:
            r = measure(label, budget, frames)
            from streamreg.planning import parse_bytes

            ratio = r["growth_mb"] * 2**20 / parse_bytes(budget)
            worst = max(worst, ratio)
            print(f"{label:22} {budget:>8} {r['dt']:>10} {r['growth_mb']:>10.1f} {ratio <= 1.0!s:>7}")
        one = measure(label, None, frames)
        print(f"{label:22} {'one-shot':>8} {frames:>10} {one['growth_mb']:>10.1f}      (baseline)")
    verdict = "MET" if worst <= 1.0 else "MISSED"
    print(f"worst growth / budget = {worst:.2f} -> goal (growth <= budget) {verdict}")
    print_result("bench_max_memory", [result_row("max_memory worst growth / budget", worst, None, "<= 1")])


if __name__ == "__main__":
    main()
