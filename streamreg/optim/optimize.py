"""``Layer.optimize``: fit a layer to a recording, chunk by chunk, with the one-shot gradient.

Each objective evaluation makes two passes over the recording. The forward
pass runs without autograd and keeps only the streaming state at every chunk
boundary. The reverse pass visits the chunks from last to first: it restores
the chunk's starting state as leaf tensors, recomputes the chunk with
autograd, and back-propagates the chunk's loss plus the gradient that the
later chunks sent back into the state it left behind. Parameter gradients
accumulate to exactly the one-shot gradient (to floating-point rounding),
with memory for one chunk's graph plus one state per chunk boundary.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from streamreg._hdf5 import H5Files
from streamreg._modules import module_device
from streamreg._validation import check_choice, check_device, check_dt, check_positive_int
from streamreg.exceptions import ChunkShapeError
from streamreg.layer import Layer
from streamreg.optim._state_bank import StateBank, leaf, read_slots, snapshot, state_slots, write_slots
from streamreg.optim.recording import Recording, open_recording, to_tensor
from streamreg.optim.schedules import format_and_check_learning_rates

__all__ = ["OptimizeLog", "optimize"]

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class OptimizeLog:
    """What :func:`optimize` returns: one entry per optimizer step.

    Attributes
    ----------
    loss : numpy.ndarray
        ``(n_steps,)``, the loss of the whole recording at the start of each step.
    time : numpy.ndarray
        ``(n_steps,)``, wall time of each step in seconds.
    learning_rate : numpy.ndarray
        ``(n_steps,)``, the learning rate of the first parameter group during each step.
    """

    loss: np.ndarray
    time: np.ndarray
    learning_rate: np.ndarray


class _ChunkedObjective:
    """The loss of the whole recording and its exact gradient, evaluated chunk by chunk."""

    def __init__(self, layer: Layer, source: Recording, target: Recording, dt: int, loss_fn: LossFn,
                 reduction: str, truncate: bool) -> None:
        self.layer, self.source, self.target = layer, source, target
        self.loss_fn, self.truncate = loss_fn, truncate
        n = source.n_frames
        self.bounds = [(t0, min(t0 + dt, n)) for t0 in range(0, n, dt)]
        self.weights = [(t1 - t0) / n if reduction == "mean" else 1.0 for t0, t1 in self.bounds]
        self.slots = state_slots(layer)
        self.dtype = layer.compute_dtype(source.dtype)
        self.device = module_device(layer)

    def _chunk(self, k: int) -> tuple[Tensor, Tensor]:
        t0, t1 = self.bounds[k]
        x = to_tensor(self.source.read(t0, t1), self.dtype, self.device)
        return x, to_tensor(self.target.read(t0, t1), self.dtype, self.device)

    def _loss(self, k: int, x: Tensor, target: Tensor) -> Tensor:
        y = self.layer(x)
        if y.shape != target.shape:
            t0, t1 = self.bounds[k]
            msg = (
                f"target frames [{t0}, {t1}) have shape {tuple(target.shape)} but the layer output has "
                f"{tuple(y.shape)}; target must be (T, *frame_out)."
            )
            raise ChunkShapeError(msg)
        return self.weights[k] * self.loss_fn(y, target)

    def __call__(self) -> Tensor:
        """Loss of the recording; leaves the exact gradient in the parameters' ``.grad``."""
        self.layer.reset_state()
        try:
            return self._truncated() if self.truncate else self._exact()
        finally:
            self.layer.reset_state()

    def _exact(self) -> Tensor:
        bank = StateBank(len(self.slots), len(self.bounds))
        total = 0.0
        last = len(self.bounds) - 1
        with torch.no_grad():
            for k in range(last + 1):
                bank.store(k, read_slots(self.slots))
                if k < last:  # the last chunk is computed (with autograd) first in the reverse pass
                    total += float(self._loss(k, *self._chunk(k)))
        grads: list[Tensor | None] = [None] * len(self.slots)
        for k in range(last, -1, -1):
            leaves = [leaf(v) for v in bank.load(k)]
            # The layer gets differentiable copies, so it may update its state in place.
            write_slots(self.slots, [v.clone() if v is not None and v.requires_grad else v for v in leaves])
            with torch.enable_grad():
                loss = self._loss(k, *self._chunk(k))
                surrogate = loss + sum(
                    (end * g).sum() for end, g in zip(read_slots(self.slots), grads, strict=True)
                    if g is not None and end is not None and end.requires_grad)
                if surrogate.requires_grad:
                    surrogate.backward()
            if k == last:
                total += float(loss.detach())
            grads = [None if v is None or not v.requires_grad else v.grad for v in leaves]
        return torch.tensor(total, dtype=torch.float64)

    def _truncated(self) -> Tensor:
        total = 0.0
        for k in range(len(self.bounds)):
            with torch.enable_grad():
                loss = self._loss(k, *self._chunk(k))
                if loss.requires_grad:
                    loss.backward()
            total += float(loss.detach())
            write_slots(self.slots, snapshot(read_slots(self.slots)))  # cut the graph at the chunk boundary
        return torch.tensor(total, dtype=torch.float64)


def optimize(
    layer: Layer,
    input: Any,  # noqa: A002
    target: Any,
    dt: int | None = None,
    *,
    loss_fn: LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    n_steps: int = 1,
    learning_rates: Any = None,
    progress: bool | None = None,
    reduction: str = "mean",
    truncate: bool = False,
    device: Any = None,
    recorder: Any = None,
) -> OptimizeLog:
    """Fit ``layer`` to ``target``; see :meth:`streamreg.Layer.optimize`."""
    dt = check_dt(dt)
    device = check_device(device)
    n_steps = check_positive_int(n_steps, "n_steps")
    reduction = check_choice(reduction, "reduction", ("mean", "sum"))
    optimizer = optimizer if optimizer is not None else getattr(layer, "optimizer", None)
    if not isinstance(optimizer, torch.optim.Optimizer):
        msg = (
            "optimize needs an optimizer: call layer.set_optimizer.<Name>(...) first "
            f"(available: dir(layer.set_optimizer)) or pass optimizer=; got {optimizer!r}."
        )
        raise ValueError(msg)
    if recorder is not None and not all(callable(getattr(recorder, m, None)) for m in ("scalar", "step")):
        msg = f"recorder must have scalar(tag, value) and step(), as streamreg.experiment.Recorder; got {recorder!r}."
        raise TypeError(msg)
    if loss_fn is not None and not callable(loss_fn):
        msg = f"loss_fn must be callable as loss_fn(output, target); got {loss_fn!r}."
        raise TypeError(msg)
    schedule = format_and_check_learning_rates(learning_rates) if learning_rates is not None else None
    if device is not None:
        layer.to(device)
    files = H5Files()
    try:
        source = open_recording(input, files, "input")
        goal = open_recording(target, files, "target")
        if goal.n_frames != source.n_frames:
            msg = (
                f"target must have as many frames as input; got {goal.n_frames} target frames "
                f"and {source.n_frames} input frames."
            )
            raise ChunkShapeError(msg)
        if source.n_frames == 0:
            msg = "input must hold at least one frame to fit; got T = 0."
            raise ValueError(msg)
        objective = _ChunkedObjective(layer, source, goal, dt or source.n_frames, loss_fn or F.mse_loss,
                                      reduction, truncate)
        return _steps(objective, optimizer, n_steps, schedule, progress, recorder)
    finally:
        files.close()


def _group_rates(schedule: tuple[np.ndarray, np.ndarray], optimizer: torch.optim.Optimizer) -> np.ndarray:
    """Check a schedule's values against the optimizer: one column for all groups, or one per group."""
    _, values = schedule
    n_groups = len(optimizer.param_groups)
    if values.shape[1] not in (1, n_groups):
        msg = (
            f"learning_rates entries must give 1 rate (for every parameter group) or {n_groups} "
            f"(one per group); got {values.shape[1]}."
        )
        raise ValueError(msg)
    try:
        rates = values.astype(np.float64)
    except (TypeError, ValueError) as exc:
        msg = f"learning_rates values must be numbers for optimize; got {values.tolist()!r}."
        raise ValueError(msg) from exc
    if not np.all(np.isfinite(rates) & (rates >= 0)):
        msg = f"learning_rates values must be finite and >= 0; got {rates.tolist()!r}."
        raise ValueError(msg)
    return rates


def _steps(objective: _ChunkedObjective, optimizer: torch.optim.Optimizer, n_steps: int,
           schedule: tuple[np.ndarray, np.ndarray] | None, progress: bool | None, recorder: Any) -> OptimizeLog:
    losses, times, rates = np.empty(n_steps), np.empty(n_steps), np.empty(n_steps)
    table = _group_rates(schedule, optimizer) if schedule is not None else None

    def closure() -> Tensor:
        optimizer.zero_grad()
        return objective()

    show = progress if progress is not None else (n_steps > 1 and sys.stderr.isatty())
    with tqdm(total=n_steps, unit="step", disable=not show, desc="optimize") as bar:
        for i in range(n_steps):
            if table is not None:
                row = table[int(np.searchsorted(schedule[0], i, side="right")) - 1]
                for j, group in enumerate(optimizer.param_groups):
                    group["lr"] = float(row[j % len(row)])
            rates[i] = float(optimizer.param_groups[0]["lr"])
            start = time.perf_counter()
            losses[i] = float(optimizer.step(closure))
            times[i] = time.perf_counter() - start
            if recorder is not None:
                recorder.scalar("optimize/loss", losses[i])
                recorder.scalar("optimize/learning_rate", rates[i])
                recorder.step()
            bar.set_postfix(loss=f"{losses[i]:.4g}")
            bar.update(1)
    return OptimizeLog(losses, times, rates)
