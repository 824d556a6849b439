"""A small training script for the exact-resume tests: run in-process, or as a child that gets SIGKILLed.

Usage as a child: ``python resume_script.py FOLDER EPOCHS [--resume] [--kill-at STEP]``. It checkpoints
every ``EVERY`` steps into FOLDER, records the loss of each step with a Recorder there, and writes
``FOLDER/final.pt`` (the model's parameters) when done. With ``--kill-at`` it writes ``FOLDER/ready``
after that step and waits to be killed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamreg.experiment import Context, Recorder, SmartDataLoader, load_checkpoint, save_checkpoint
from streamreg.filters import LowPass

EVERY = 5  # steps between checkpoints; 12 batches per epoch, so most checkpoints fall mid-epoch


def build(folder: Path, seed: int = 0) -> Context:
    """A Context with a stateful LowPass + dropout model, Adam, a StepLR, a shuffling loader and a Recorder."""
    torch.set_num_threads(1)  # tiny model: threads only contend
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the global generator is what a checkpoint must restore)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(123)
    x, y = torch.randn(48, 6, 3, generator=g), torch.randn(48, 6, 2, generator=g)
    ctx = Context()
    ctx.model = nn.Sequential(LowPass(tau=3.0), nn.Linear(3, 8), nn.Dropout(0.3), nn.Linear(8, 2))
    ctx.optimizer = torch.optim.Adam(ctx.model.parameters(), lr=0.01)
    ctx.scheduler = torch.optim.lr_scheduler.StepLR(ctx.optimizer, step_size=7, gamma=0.9)
    ctx.loader = SmartDataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4, shuffle=True,
                                 random_seed=7, loading_bar=False, rank=0, num_replicas=1)
    ctx.recorder = Recorder(folder, tensorboard=False, fsync_interval=None)  # a flush survives SIGKILL
    ctx.epoch = 0
    ctx.step = 0
    return ctx


def train(ctx: Context, epochs: int, folder: Path | None = None, kill_at: int | None = None) -> None:
    """Train until ``ctx.epoch == epochs``; python, numpy and torch RNGs are all drawn from."""
    while ctx.epoch < epochs:
        for x, y in ctx.loader:
            noise = torch.from_numpy(np.random.standard_normal(x.shape).astype(np.float32))  # noqa: NPY002
            scale = 1.0 + 0.1 * random.random()
            out = ctx.model(x + 0.01 * noise)   # the LowPass runs along the batch axis and keeps state
            if ctx.step % 9 == 0:
                ctx.model[0].reset_state()
            loss = scale * ((out - y) ** 2).mean()
            ctx.optimizer.zero_grad()
            loss.backward()
            ctx.optimizer.step()
            ctx.scheduler.step()
            _detach_state(ctx.model[0])
            ctx.recorder.scalar("loss", loss.detach())
            ctx.recorder.step()
            ctx.step += 1
            if folder is not None and ctx.step % EVERY == 0:
                save_checkpoint(ctx.state_dict(), ctx.step, directory=folder, keep=2)
            if kill_at is not None and ctx.step == kill_at:
                (folder / "ready").write_text("ready")
                time.sleep(600)
        ctx.epoch += 1


def _detach_state(layer: LowPass) -> None:
    if layer.y_last is not None:
        layer.y_last = layer.y_last.detach()


def main(argv: list[str]) -> int:
    """Run as a child process (see the module docstring)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("epochs", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-at", type=int)
    args = parser.parse_args(argv)
    ctx = build(args.folder, seed=1 if args.resume else 0)  # a resumed run must not depend on its own seed
    if args.resume:
        ctx.load_state_dict(load_checkpoint(args.folder))
    train(ctx, args.epochs, args.folder, args.kill_at)
    ctx.recorder.close()
    torch.save(ctx.model.state_dict(), args.folder / "final.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
