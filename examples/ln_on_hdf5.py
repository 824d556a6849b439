"""Run an LN model over an HDF5 stimulus in chunks, straight into an HDF5 output.

The chunked result equals the one-shot result (bitwise with direct convolution;
to float32 rounding when the kernel is large enough for ``method="auto"`` to pick
FFT convolution), and memory stays at one chunk whatever the recording length.
"""

import tempfile
from pathlib import Path

import h5py
import numpy as np

from streamreg.models import LN

T, H, W = 20_000, 32, 32

with tempfile.TemporaryDirectory() as tmp:
    stim = Path(tmp) / "stimulus.h5"
    rng = np.random.default_rng(0)
    with h5py.File(stim, "w") as f:  # write the stimulus chunk by chunk, as a recording would arrive
        ds = f.create_dataset("stimulus", shape=(T, H, W), dtype="f4", chunks=(1000, H, W))
        for t0 in range(0, T, 1000):
            ds[t0 : t0 + 1000] = rng.random((1000, H, W), dtype=np.float32)

    model = LN(kernel_size=(20, 5, 5))
    out = model.run(f"{stim}:/stimulus", dt=1000, output=f"{Path(tmp) / 'response.h5'}:/response")
    with h5py.File(Path(tmp) / "response.h5", "r") as f:  # run() closed the file; it returned "file:/dataset"
        response = f["response"][()]
    print(f"wrote {response.shape} {response.dtype} to {out}")

    with h5py.File(stim, "r") as f:
        one_shot = model.run(f["stimulus"][()])  # the whole recording in one chunk, for comparison
    diff = float(np.abs(response - one_shot).max())
    print(f"convolution method: {model.conv._method()}; max |chunked - one-shot| = {diff:.3g}")
