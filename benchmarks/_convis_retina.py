"""Child of bench_retina.py, run by the interpreter of a venv with convis 0.6.3: its Retina's CPU frames/s.

It imports numpy, torch and convis only (not streamreg). convis 0.6.3 passes a float ``num``
to ``numpy.linspace``, which numpy >= 1.18 refuses, so ``numpy.linspace`` is wrapped to cast
``num`` to int before convis is imported (the fix convis merged upstream but never released).

Usage: ``PYTHON benchmarks/_convis_retina.py '{"sizes": [[20, 300], [64, 200]], "dt": 100, "repeats": 2}'``;
prints one JSON line ``{"convis": VERSION, "fps": {"20x20 rates": ..., "20x20 spikes": ..., ...}}``
with frames per CPU second (one torch thread, ``torch.no_grad()``, best of ``repeats``).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np

_linspace = np.linspace


def _int_linspace(start, stop, num=50, *args, **kwargs):
    return _linspace(start, stop, int(num), *args, **kwargs)


def main() -> None:
    spec = json.loads(sys.argv[1])
    np.linspace = _int_linspace
    warnings.simplefilter("ignore")  # convis imports distutils' LooseVersion
    import convis
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    fps = {}
    for hw, frames in spec["sizes"]:
        x = (128 + 100 * rng.random((frames, hw, hw))).astype(np.float32)
        for spikes in (False, True):
            model = convis.models.Retina() if spikes else convis.models.Retina(spikes=False)
            best = float("inf")
            with torch.no_grad():
                model.run(x[: spec["dt"]], dt=spec["dt"])  # warm-up
                for _ in range(spec["repeats"]):
                    model.clear_state()
                    start = time.process_time()
                    model.run(x, dt=spec["dt"])
                    best = min(best, time.process_time() - start)
            fps[f"{hw}x{hw} {'spikes' if spikes else 'rates'}"] = frames / best
    print(json.dumps({"convis": convis.__version__, "fps": fps}))


if __name__ == "__main__":
    main()
