"""Run a model over an HDF5 recording in the background, watch it, stop it, and resume it.

The output is identical to an uninterrupted run. Run with ``python examples/background_runner.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from streamreg import Runner
from streamreg.models import Retina


def main() -> None:
    """Write a stimulus, start a Runner, stop it half way, resume with run(), compare."""
    folder = Path(tempfile.mkdtemp(prefix="streamreg-runner-"))
    stimulus = 128 + 60 * np.random.default_rng(0).random((3000, 16, 16)).astype(np.float32)
    with h5py.File(folder / "stimulus.h5", "w") as f:
        f["x"] = stimulus
    src, out = f"{folder / 'stimulus.h5'}:/x", f"{folder / 'response.h5'}:/y"

    runner = Runner(Retina(), src, out, dt=100, checkpoint_every=1)
    runner.start()
    while runner.frames_done < 1000 and not runner.done:
        time.sleep(0.01)
    with h5py.File(folder / "response.h5", "r", libver="latest", swmr=True) as f:
        print(f"another reader sees {f['y'].shape[0]} frames while the Runner works")
    runner.stop()
    print(f"stopped after {runner.frames_done} of {len(stimulus)} frames")

    Retina().run(src, 100, output=out, resume=True)  # returns the string out; the file is closed
    whole = Retina().run(stimulus, 100)
    with h5py.File(folder / "response.h5", "r") as f:
        resumed = f["y"][()]
    same = np.array_equal(resumed, whole)
    print(f"resumed to {resumed.shape[0]} frames; identical to an uninterrupted run: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
