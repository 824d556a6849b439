"""Shared pieces of the fault tests: a recording on disk, the reference output, leftovers, child processes.

Everything here goes through the public API (``Layer.run``, ``streamreg.Runner``, the CLI) and plain
h5py/numpy, so the tests do not depend on how the run layer is built.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tests.runner_models import model

ROOT = Path(os.path.abspath(__file__)).parents[2]  # not resolve(): a symlinked copy of tests/faults runs its own tree
T, FRAME, DT = 400, (3,), 10


def recording(n_frames: int = T, frame: tuple[int, ...] = FRAME, seed: int = 7) -> np.ndarray:
    """A float32 recording ``(n_frames, *frame)``, offset so that no output frame is zero."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n_frames, *frame)) + 3.0).astype(np.float32)


def write_input(folder: Path, x: np.ndarray, name: str = "in.h5", dataset: str = "x") -> str:
    """Write ``x`` to ``folder/name:/dataset`` and return that location string."""
    path = folder / name
    with h5py.File(path, "a") as f:
        f[dataset] = x
    return f"{path}:/{dataset}"


def reference(x: np.ndarray, dt: int = DT) -> np.ndarray:
    """The uninterrupted in-memory run of the standard model (``tests.runner_models.model``)."""
    return np.asarray(model().run(x, dt))


def release(result: Any) -> None:
    """Close whatever a run handed back that may hold a file open (a dataset, a stream)."""
    if isinstance(result, h5py.Dataset):
        if result.id.valid:
            result.file.close()
    elif hasattr(result, "close") and not isinstance(result, np.ndarray):
        result.close()


def read(path: Path | str, dataset: str = "y") -> np.ndarray:
    """Read a whole dataset from disk with a fresh read-only handle (SWMR-written files included)."""
    try:
        with h5py.File(path, "r") as f:
            return f[dataset][()]
    except OSError:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return f[dataset][()]


def digest(path: Path | str, dataset: str) -> str:
    """sha256 of a dataset's shape, dtype and bytes."""
    with h5py.File(path, "r") as f:
        data = f[dataset][()]
    return hashlib.sha256(repr((data.shape, data.dtype.str)).encode() + data.tobytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Names in ``folder`` that a finished run must not leave: temporary files and lock files."""
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name or p.name.endswith(".lock"))


def checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files in ``folder`` (``*.ckpt*``, but not their temporary or lock files)."""
    return sorted(p for p in folder.glob("*ckpt*") if ".tmp" not in p.name and not p.name.endswith(".lock"))


def open_fds_to(path: Path) -> list[str]:
    """File descriptors of this process that point at ``path``."""
    target = os.path.realpath(path)
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                found.append(fd)
        except OSError:
            continue
    return found


def script(folder: Path, body: str, name: str = "child.py") -> Path:
    """Write a child script to ``folder`` that can import ``streamreg`` and ``tests`` from the source tree."""
    path = folder / name
    head = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
    path.write_text(head + textwrap.dedent(body))
    return path


def run_script(path: Path, timeout: float, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run a child script to the end (killed after ``timeout`` seconds: ``subprocess.TimeoutExpired``)."""
    return subprocess.run([sys.executable, str(path), *args], cwd=path.parent, capture_output=True, text=True,
                          timeout=timeout, check=False)


def recovery_plan(folder: Path, out: Path) -> str:
    """What a user does after a failed or killed run: resume from a checkpoint, else overwrite, else run."""
    if checkpoints(folder):
        return "resumed"
    return "rerun" if out.exists() else "fresh"


def recover(folder: Path, src: str, out: Path, checkpoint_every: int | None, dt: int = DT) -> str:
    """Finish the standard model's run from ``src`` into ``out:/y`` the way a user would; return the plan used."""
    plan = recovery_plan(folder, out)
    options = {"resumed": {"resume": True}, "rerun": {"overwrite": True}, "fresh": {}}[plan]
    release(model().run(src, dt, output=f"{out}:/y", checkpoint_every=checkpoint_every, **options))
    return plan
