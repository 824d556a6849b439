"""An experiment that fits an LN model to an HDF5 recording on 2 CPU ranks, is killed, and resumes exactly.

Run with arguments, it is an ordinary experiment (``--help`` lists them)::

    python examples/experiment_fit.py --data rec.h5 --distributed --nproc-per-node 2

Run with no arguments, it checks its own promise: it writes a small synthetic
recording, fits it once without interruption (2 CPU ranks, gloo), then starts
the same fit as a separate command, SIGKILLs the launcher's whole process
group mid-way, resumes with ``--checkpoint <run folder>``, and asserts that the
resumed run's final weights equal the uninterrupted run's, bit for bit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from streamreg.experiment import (
    Context,
    HDF5ChunkDataset,
    Recorder,
    SmartDataLoader,
    experiment,
    is_master,
    output_dir,
    parameter,
    save_checkpoint,
)
from streamreg.models import LN

KERNEL = (5, 3, 3)
CHUNK = 50  # frames per training item
EVERY = 3  # steps between checkpoints


@experiment
@parameter("data", type=Path, required=True, help="HDF5 file with 'stimulus' (T, H, W) and 'response' (T, H, W).")
@parameter("epochs", type=int, default=2, help="Passes over the recording.")
@parameter("lr", type=float, default=0.05, help="Adam's learning rate.")
@parameter("stop_after", type=int, default=0, help="Rank 0 stalls after this step (0: never), to be killed.")
def experiment_fit(params):
    """Fit an LN model to chunks of a recording, checkpointing every few steps."""
    ctx = Context()
    torch.manual_seed(0)  # the same initial weights on every rank and in every run
    ctx.model = LN(KERNEL, "softplus")
    ctx.optimizer = torch.optim.Adam(ctx.model.parameters(), lr=params["lr"])
    data = HDF5ChunkDataset(params["data"], "stimulus", chunk_frames=CHUNK, target="response")
    ctx.loader = SmartDataLoader(data, batch_size=1, shuffle=True, loading_bar=False)
    ctx.recorder = Recorder(tensorboard=False)
    ctx.epoch = 0
    ctx.step = 0
    ctx.autotransform()  # --checkpoint, then the device, then DDP on --distributed
    while ctx.epoch < params["epochs"]:
        for x, y in ctx.loader:  # (1, CHUNK, H, W) each; a resumed loader yields only the unseen chunks
            loss = torch.nn.functional.mse_loss(ctx.model(x[0]), y[0])
            ctx.optimizer.zero_grad()
            loss.backward()
            ctx.optimizer.step()
            ctx.model.reset_state()  # chunks come shuffled: no history carries over between them
            ctx.recorder.scalar("loss", loss.detach(), reduce="mean")
            ctx.recorder.step()
            ctx.step += 1
            if ctx.step % EVERY == 0:
                save_checkpoint(ctx.state_dict(), ctx.step, keep=2)
            if ctx.step == params["stop_after"] and is_master():
                (output_dir() / "stalled").write_text(str(ctx.step))
                time.sleep(600)  # waits here for the SIGKILL
        ctx.epoch += 1
    ctx.recorder.close()
    return {name: value.detach().cpu().clone() for name, value in ctx.state_dict()["model"]["parameters"].items()}


def write_recording(path: Path, n_frames: int = 1200, size: int = 8) -> None:
    """Write a stimulus and the response of a known LN model to it."""
    torch.manual_seed(1)
    truth = LN(KERNEL, "softplus")
    stimulus = torch.from_numpy(np.random.default_rng(0).normal(size=(n_frames, size, size)).astype(np.float32))
    with torch.no_grad():
        response = truth(stimulus)
    with h5py.File(path, "w") as f:
        f.create_dataset("stimulus", data=stimulus.numpy())
        f.create_dataset("response", data=response.numpy())


def kill_mid_way(args: list[str], parent: Path) -> Path:
    """Run the experiment as a command, SIGKILL its process group once rank 0 stalls; return its folder."""
    command = [sys.executable, os.path.abspath(__file__), *args, "--output-dir", str(parent), "--stop-after", "7"]
    child = subprocess.Popen(command, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(parent.glob("*/*/stalled")):
        if child.poll() is not None or time.monotonic() > deadline:
            msg = f"the run to be killed ended or stalled too late (exit code {child.poll()})"
            raise RuntimeError(msg)
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)  # the launcher and both ranks
    child.wait()
    return next(parent.glob("*/*/stalled")).parent


def main() -> None:
    """Check that a killed and resumed 2-rank fit ends with the weights of an uninterrupted one."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_recording(root / "rec.h5")
        args = ["--data", str(root / "rec.h5"), "--distributed", "--nproc-per-node", "2", "--no-cuda",
                "--random-seed", "5"]
        straight = experiment_fit.cli([*args, "--output-dir", str(root / "straight")])
        print(f"uninterrupted run done ({time.monotonic() - start:.1f} s)")
        folder = kill_mid_way(args, root / "killed")
        checkpoints = sorted(p.name for p in folder.glob("checkpoint-*.pt"))
        print(f"killed run stopped ({time.monotonic() - start:.1f} s)")
        resumed = experiment_fit.cli([*args, "--output-dir", str(root / "unused"), "--checkpoint", str(folder)])
        rows = len((folder / "scalars.csv").read_text().splitlines()) - 1
    print(f"killed at step 7 with {checkpoints} on disk; resumed in {folder.name}; {rows} loss rows recorded")
    for name, value in straight.items():
        assert torch.equal(value, resumed[name]), f"{name} differs after the resume"
    print(f"resumed weights equal the uninterrupted run's, bit for bit ({time.monotonic() - start:.1f} s)")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        experiment_fit.cli()
    else:
        main()
