"""The log :func:`streamreg.optim.optimize` returns, and its plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["OptimizeLog"]


def _empty(*shape: int) -> np.ndarray:
    return np.empty((0, *shape))


@dataclass
class OptimizeLog:
    """What :func:`optimize` returns: one entry per optimizer step, one per validation.

    Attributes
    ----------
    loss : numpy.ndarray
        ``(n_steps,)``, the training loss at the start of each step (of the whole training
        data for a full-pass fit, of the step's segments for ``segment=``).
    time : numpy.ndarray
        ``(n_steps,)``, wall time of each step in seconds.
    learning_rate : numpy.ndarray
        ``(n_steps,)``, the learning rate of the first parameter group during each step.
    validation_step : numpy.ndarray
        ``(n_validations,)``, int: the number of steps done when each validation ran.
    validation_loss : numpy.ndarray
        ``(n_validations,)``, the exact loss of the validation data.
    validation_correlation, validation_explained_variance : numpy.ndarray
        ``(n_validations, C + 1)``: per output channel (the output frame flattened,
        ``C`` elements), then pooled in the last column (see :mod:`streamreg.metrics`).
    best_step : int or None
        With ``patience=``: the validation step whose parameters were restored.
    """

    loss: np.ndarray
    time: np.ndarray
    learning_rate: np.ndarray
    validation_step: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    validation_loss: np.ndarray = field(default_factory=lambda: _empty())
    validation_correlation: np.ndarray = field(default_factory=lambda: _empty(0))
    validation_explained_variance: np.ndarray = field(default_factory=lambda: _empty(0))
    best_step: int | None = None

    def plot(self) -> Any:
        """Train and validation loss against step and against wall time.

        Returns
        -------
        matplotlib.figure.Figure
            Two axes: loss against step, loss against cumulative wall time (s).
            Nothing is shown or saved; call ``fig.savefig(path)``.
        """
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.5), layout="constrained")
        by_step, by_time = fig.subplots(1, 2)
        steps = np.arange(len(self.loss))
        ends = np.cumsum(self.time)
        starts = ends - self.time
        by_step.plot(steps, self.loss, label="train")
        by_time.plot(starts, self.loss, label="train")
        if len(self.validation_step):
            at = np.clip(self.validation_step - 1, 0, max(len(ends) - 1, 0))
            when = ends[at] if len(ends) else np.zeros(len(at))
            by_step.plot(self.validation_step, self.validation_loss, "o-", label="validation")
            by_time.plot(when, self.validation_loss, "o-", label="validation")
        for ax, xlabel in ((by_step, "step"), (by_time, "wall time (s)")):
            ax.set_xlabel(xlabel)
            ax.set_ylabel("loss")
            ax.legend()
        if self.best_step is not None:
            by_step.axvline(self.best_step, color="gray", linestyle=":")
        return fig
