"""Private: the optimizer steps of :func:`streamreg.optim.optimize`.

Learning-rate schedule, a restore of the parameters (and optimizer state) when a step
meets a non-finite loss or gradient, validation, early stopping, the progress bar and
the recorder.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from streamreg.layer import Layer
from streamreg.optim.log import OptimizeLog
from streamreg.optim.objective import SpanObjective

__all__ = ["FitLoop", "LoopOptions"]


@dataclass(frozen=True)
class LoopOptions:
    n_steps: int
    schedule: tuple[np.ndarray, np.ndarray] | None
    progress: bool | None
    recorder: Any
    validate_every: int | None
    patience: int | None


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


class FitLoop:
    """Run one optimizer step per objective and collect the :class:`OptimizeLog`."""

    def __init__(self, layer: Layer, optimizer: torch.optim.Optimizer, opts: LoopOptions, validator: Any) -> None:
        self.layer, self.optimizer, self.opts, self.validator = layer, optimizer, opts, validator
        self.table = _group_rates(opts.schedule, optimizer) if opts.schedule is not None else None
        self.n_steps, self.every = opts.n_steps, opts.validate_every or 1
        self.val: dict[str, list[Any]] = {"step": [], "loss": [], "corr": [], "ev": []}
        self.best: tuple[float, int, list[Tensor]] | None = None

    def set_length(self, n_steps: int, steps_per_epoch: int) -> None:
        """Stochastic fits: the number of steps, and validation once per epoch unless validate_every says."""
        self.n_steps, self.every = n_steps, self.opts.validate_every or steps_per_epoch

    def _set_rate(self, i: int) -> float:
        if self.table is not None:
            row = self.table[int(np.searchsorted(self.opts.schedule[0], i, side="right")) - 1]
            for j, group in enumerate(self.optimizer.param_groups):
                group["lr"] = float(row[j % len(row)])
        return float(self.optimizer.param_groups[0]["lr"])

    def _step(self, objective: SpanObjective, i: int) -> float:
        """One optimizer step; on a non-finite loss or gradient, restore and re-raise."""
        objective.step = i
        params = [p.detach().clone() for p in self.layer.parameters()]
        saved = copy.deepcopy(self.optimizer.state_dict())

        def closure() -> Tensor:
            self.optimizer.zero_grad()
            return objective()

        try:
            return float(self.optimizer.step(closure))
        except (FloatingPointError, ValueError):
            with torch.no_grad():
                for p, old in zip(self.layer.parameters(), params, strict=True):
                    p.copy_(old)
            self.optimizer.load_state_dict(saved)
            self.optimizer.zero_grad()
            raise

    def _validate(self, done: int) -> bool:
        """Validate after ``done`` steps; True when early stopping says stop."""
        loss, corr, ev = self.validator()
        for key, value in zip(("step", "loss", "corr", "ev"), (done, loss, corr, ev), strict=True):
            self.val[key].append(value)
        if self.opts.recorder is not None:
            self.opts.recorder.scalar("optimize/validation_loss", loss)
        if self.best is None or loss < self.best[0]:
            self.best = (loss, done, [p.detach().clone() for p in self.layer.parameters()])
            return False
        bad = len(self.val["loss"]) - 1 - self.val["step"].index(self.best[1])
        return self.opts.patience is not None and bad >= self.opts.patience

    def run(self, objectives: Iterable[SpanObjective]) -> OptimizeLog:
        """Step through ``objectives`` (one per step); return the log."""
        losses, times, rates = [], [], []
        show = self.opts.progress if self.opts.progress is not None else (self.n_steps > 1 and sys.stderr.isatty())
        with tqdm(total=self.n_steps, unit="step", disable=not show, desc="optimize") as bar:
            for i, objective in enumerate(objectives):
                rates.append(self._set_rate(i))
                start = time.perf_counter()
                losses.append(self._step(objective, i))
                times.append(time.perf_counter() - start)
                if self.opts.recorder is not None:
                    self.opts.recorder.scalar("optimize/loss", losses[-1])
                    self.opts.recorder.scalar("optimize/learning_rate", rates[-1])
                    self.opts.recorder.step()
                bar.set_postfix(loss=f"{losses[-1]:.4g}")
                bar.update(1)
                due = (i + 1) % self.every == 0 or i + 1 == self.n_steps
                if self.validator is not None and due and self._validate(i + 1):
                    break
        return self._log(losses, times, rates)

    def _log(self, losses: list[float], times: list[float], rates: list[float]) -> OptimizeLog:
        best_step = None
        if self.opts.patience is not None and self.best is not None:
            best_step = self.best[1]
            with torch.no_grad():
                for p, v in zip(self.layer.parameters(), self.best[2], strict=True):
                    p.copy_(v)
        return OptimizeLog(np.array(losses, dtype=np.float64), np.array(times, dtype=np.float64),
                           np.array(rates, dtype=np.float64), np.array(self.val["step"], dtype=np.int64),
                           np.array(self.val["loss"], dtype=np.float64),
                           _rows(self.val["corr"]), _rows(self.val["ev"]), best_step)


def _rows(scores: list[np.ndarray]) -> np.ndarray:
    return np.array(scores, dtype=np.float64) if scores else np.empty((0, 0))
