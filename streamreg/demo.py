"""``streamreg demo``: a synthetic stimulus in HDF5, a chunked Retina run, a plot."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from streamreg._validation import check_positive_int
from streamreg.exceptions import OutputExistsError
from streamreg.models import Retina

__all__ = ["DemoResult", "moving_bars", "run_demo", "write_stimulus"]

STIMULUS = "stimulus.h5"
RESPONSE = "response.h5"
FIGURE = "retina_demo.png"


def moving_bars(t0: int, t1: int, size: int, period: int = 16, speed: float = 0.05) -> np.ndarray:
    """Frames ``[t0, t1)`` of a drifting square-wave grating, ``(t1 - t0, size, size)`` float32 in [0, 1].

    The bars are ``period / 2`` pixels wide and drift by ``speed`` pixels per
    frame; every 2000 frames the contrast flips, to show ON and OFF responses.
    """
    t = np.arange(t0, t1, dtype=np.float64)[:, None, None]
    x = np.arange(size, dtype=np.float64)[None, None, :]
    bars = ((x - speed * t) % period) < period / 2
    flip = (np.arange(t0, t1) // 2000) % 2 == 1
    frames = np.where(flip[:, None, None], ~bars, bars).astype(np.float32)
    return np.broadcast_to(frames, (t1 - t0, size, size)).copy()


def write_stimulus(path: str | os.PathLike[str], n_frames: int, size: int, dt: int = 1000) -> str:
    """Write the moving-bars stimulus chunk by chunk; return ``"path:/stimulus"``."""
    with h5py.File(path, "w-") as f:
        ds = f.create_dataset("stimulus", shape=(n_frames, size, size), dtype="float32",
                              chunks=(max(1, min(dt, n_frames)), size, size))
        for t0 in range(0, n_frames, dt):
            t1 = min(t0 + dt, n_frames)
            ds[t0:t1] = moving_bars(t0, t1, size)
    return f"{path}:/stimulus"


@dataclass
class DemoResult:
    """Where the demo wrote its files."""

    directory: Path
    stimulus: Path
    response: Path
    figure: Path


def run_demo(out_dir: str | os.PathLike[str] | None = None, *, n_frames: int = 5000, size: int = 64,
             dt: int = 200, overwrite: bool = False, progress: bool = True) -> DemoResult:
    """Make the stimulus, run :class:`~streamreg.models.Retina` over it in chunks, plot.

    Parameters
    ----------
    out_dir : path, optional
        Folder for the three files; default a new temporary folder. Existing
        files are refused unless ``overwrite``.
    n_frames, size, dt : int
        Stimulus length (1 frame = 1 ms), frame size in pixels, chunk length.
    """
    n_frames = check_positive_int(n_frames, "n_frames")
    size = check_positive_int(size, "size")
    dt = check_positive_int(dt, "dt")
    directory = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="streamreg-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    paths = DemoResult(directory, directory / STIMULUS, directory / RESPONSE, directory / FIGURE)
    existing = [p.name for p in (paths.stimulus, paths.response, paths.figure) if p.exists()]
    if existing and not overwrite:
        msg = f"{directory} already holds {existing}; pass --overwrite to replace them, or choose another --out."
        raise OutputExistsError(msg)
    for p in (paths.stimulus, paths.response):
        p.unlink(missing_ok=True)

    stimulus = write_stimulus(paths.stimulus, n_frames, size, dt)
    response = Retina().run(stimulus, dt=dt, output=f"{paths.response}:/retina/rates", progress=progress)
    with h5py.File(paths.response, "r") as f:
        _plot(stimulus, f[response.rpartition(":")[2]], paths.figure)
    return paths


def _plot(stimulus: str, rates: h5py.Dataset, figure: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path, _, name = stimulus.rpartition(":")
    n, _, h, w = rates.shape
    with h5py.File(path, "r") as f:
        frame = f[name][min(n - 1, 1000)]
    cy, cx = h // 2, w // 2
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 2.4]})
    ax0.imshow(frame, cmap="gray", vmin=0, vmax=1)
    ax0.plot([cx], [cy], "r+", ms=12)
    ax0.set_title(f"stimulus, frame {min(n - 1, 1000)}")
    t = np.arange(n)
    ax1.plot(t, rates[:, 0, cy, cx], label="ON (centre pixel)", lw=1)
    ax1.plot(t, rates[:, 1, cy, cx], label="OFF (centre pixel)", lw=1)
    ax1.set_xlabel("frame (1 ms)")
    ax1.set_ylabel("firing rate (Hz)")
    ax1.set_title("Retina ganglion responses")
    ax1.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(figure, dpi=100)
    plt.close(fig)
