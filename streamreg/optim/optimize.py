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
from torch import Tensor, nn
from tqdm.auto import tqdm

from streamreg._hdf5 import H5Files
from streamreg._io import Source, open_input, to_tensor
from streamreg._validation import check_choice, check_dt, check_positive_int
from streamreg.exceptions import ChunkShapeError
from streamreg.layer import Layer, module_device
from streamreg.optim.schedules import format_and_check_learning_rates

__all__ = ["OptimizeLog", "optimize"]

LossFn = Callable[[Tensor, Tensor], Tensor]
Slot = tuple[nn.Module, str]


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


def _state_slots(layer: nn.Module) -> list[Slot]:
    return [(m, name) for m in layer.modules() if isinstance(m, Layer) for name in m.state_names]


def _read(slots: list[Slot]) -> list[Tensor | None]:
    return [getattr(m, name) for m, name in slots]


def _write(slots: list[Slot], values: list[Tensor | None]) -> None:
    for (m, name), value in zip(slots, values, strict=True):
        setattr(m, name, value)


def _snapshot(values: list[Tensor | None]) -> list[Tensor | None]:
    return [None if v is None else v.detach().clone() for v in values]


class _StateBank:
    """The streaming state at every chunk boundary, one preallocated block per state tensor.

    Keeping the snapshots in one allocation each (rather than one small tensor per
    chunk, allocated between chunk-sized buffers) stops the C allocator from
    fragmenting its heap, which otherwise grows the process by about one chunk's
    worth of memory every few chunks. A state whose shape or dtype changes between
    chunks (a history that fills up, say) falls back to one copy per chunk.
    """

    def __init__(self, n_slots: int, n_chunks: int) -> None:
        self.n_chunks = n_chunks
        self.blocks: list[Tensor | None] = [None] * n_slots
        self.loose: list[dict[int, Tensor] | None] = [None] * n_slots  # per-chunk copies, after a change
        self.fresh: list[set[int]] = [set() for _ in range(n_slots)]  # chunks whose state was None

    def store(self, k: int, values: list[Tensor | None]) -> None:
        for i, v in enumerate(values):
            if v is None:
                self.fresh[i].add(k)
                continue
            v = v.detach()
            block, loose = self.blocks[i], self.loose[i]
            if loose is None and block is None:
                block = self.blocks[i] = v.new_empty((self.n_chunks, *v.shape))
            if loose is None and (block.shape[1:] != v.shape or block.dtype != v.dtype):
                loose = self.loose[i] = {j: block[j].clone() for j in range(k) if j not in self.fresh[i]}
                self.blocks[i] = None
            if loose is not None:
                loose[k] = v.clone()
            else:
                block[k].copy_(v)

    def load(self, k: int) -> list[Tensor | None]:
        """Copies of the states at the start of chunk ``k`` (the layer may change them in place)."""
        out: list[Tensor | None] = []
        for i, (block, loose) in enumerate(zip(self.blocks, self.loose, strict=True)):
            if k in self.fresh[i]:
                out.append(None)
            else:
                out.append(loose[k].clone() if loose is not None else block[k].clone())
        return out


def _leaf(value: Tensor | None) -> Tensor | None:
    if value is None or not value.is_floating_point():
        return value
    return value.detach().requires_grad_()


class _ChunkedObjective:
    """The loss of the whole recording and its exact gradient, evaluated chunk by chunk."""

    def __init__(self, layer: Layer, source: Source, target: Source, dt: int, loss_fn: LossFn,
                 reduction: str, truncate: bool) -> None:
        self.layer, self.source, self.target = layer, source, target
        self.loss_fn, self.truncate = loss_fn, truncate
        n = source.n_frames
        self.bounds = [(t0, min(t0 + dt, n)) for t0 in range(0, n, dt)]
        self.weights = [(t1 - t0) / n if reduction == "mean" else 1.0 for t0, t1 in self.bounds]
        self.slots = _state_slots(layer)
        self.dtype = layer.compute_dtype(source.data.dtype)
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
        bank = _StateBank(len(self.slots), len(self.bounds))
        total = 0.0
        last = len(self.bounds) - 1
        with torch.no_grad():
            for k in range(last + 1):
                bank.store(k, _read(self.slots))
                if k < last:  # the last chunk is computed (with autograd) first in the reverse pass
                    total += float(self._loss(k, *self._chunk(k)))
        grads: list[Tensor | None] = [None] * len(self.slots)
        for k in range(last, -1, -1):
            leaves = [_leaf(v) for v in bank.load(k)]
            # The layer gets differentiable copies, so it may update its state in place.
            _write(self.slots, [v.clone() if v is not None and v.requires_grad else v for v in leaves])
            with torch.enable_grad():
                loss = self._loss(k, *self._chunk(k))
                surrogate = loss + sum(
                    (end * g).sum() for end, g in zip(_read(self.slots), grads, strict=True)
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
            _write(self.slots, _snapshot(_read(self.slots)))  # cut the graph at the chunk boundary
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
) -> OptimizeLog:
    """Fit ``layer`` to ``target``; see :meth:`streamreg.Layer.optimize`."""
    dt = check_dt(dt)
    n_steps = check_positive_int(n_steps, "n_steps")
    reduction = check_choice(reduction, "reduction", ("mean", "sum"))
    optimizer = optimizer if optimizer is not None else getattr(layer, "optimizer", None)
    if not isinstance(optimizer, torch.optim.Optimizer):
        msg = (
            "optimize needs an optimizer: call layer.set_optimizer.<Name>(...) first "
            f"(available: dir(layer.set_optimizer)) or pass optimizer=; got {optimizer!r}."
        )
        raise ValueError(msg)
    if loss_fn is not None and not callable(loss_fn):
        msg = f"loss_fn must be callable as loss_fn(output, target); got {loss_fn!r}."
        raise TypeError(msg)
    schedule = format_and_check_learning_rates(learning_rates) if learning_rates is not None else None
    files = H5Files()
    try:
        source = open_input(input, files, "input")
        goal = open_input(target, files, "target")
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
        return _steps(objective, optimizer, n_steps, schedule, progress)
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
           schedule: tuple[np.ndarray, np.ndarray] | None, progress: bool | None) -> OptimizeLog:
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
            bar.set_postfix(loss=f"{losses[i]:.4g}")
            bar.update(1)
    return OptimizeLog(losses, times, rates)
