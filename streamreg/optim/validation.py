"""Private: hold out validation data and evaluate it exactly, chunk by chunk."""

from __future__ import annotations

from typing import Any

import numpy as np

from streamreg.layer import Layer
from streamreg.metrics import Moments
from streamreg.optim.objective import FitData, LossFn, Span, SpanObjective
from streamreg.optim.segments import Tile

__all__ = ["Validator", "split"]


def split(lengths: list[int], fraction: float | None, by: str) -> tuple[list[Tile], list[Tile]]:
    """Training and validation ranges ``(r, a, b)``; they never overlap.

    ``by="time"``: the last ``fraction`` of every recording is held out (one block each).
    ``by="recording"``: the last ``round(fraction * n)`` recordings (at least one) are.
    """
    whole = [(r, 0, n) for r, n in enumerate(lengths)]
    if fraction is None:
        return whole, []
    if by == "recording":
        n_val = max(1, round(fraction * len(lengths)))
        if n_val >= len(lengths):
            msg = (
                f"validation={fraction} with validation_split='recording' holds out {n_val} of "
                f"{len(lengths)} recordings and leaves none to train on; give more recordings or use 'time'."
            )
            raise ValueError(msg)
        return whole[:-n_val], whole[-n_val:]
    cuts = [n - max(1, round(fraction * n)) for n in lengths]
    if min(cuts) < 1:
        msg = f"validation={fraction} leaves no training frames in a recording of {lengths[cuts.index(min(cuts))]}."
        raise ValueError(msg)
    held = [(r, c, n) for r, (c, n) in enumerate(zip(cuts, lengths, strict=True))]
    return [(r, 0, c) for r, c in enumerate(cuts)], held


class Validator:
    """The exact validation loss, correlation and explained variance of ``ranges`` of ``data``.

    Each range is preceded by ``warm`` frames of warm-up without loss (from the
    recording's start when ``warm`` is None, which is exact for any layer).
    """

    def __init__(self, layer: Layer, data: FitData, ranges: list[Tile], warm: int | None, dt: int | None,
                 loss_fn: LossFn) -> None:
        spans = [Span(r, 0 if warm is None else max(0, a - warm), a, b) for r, a, b in ranges]
        self.objective = SpanObjective(layer, data, spans, dt, loss_fn, "mean", truncate=False)

    def __call__(self) -> tuple[float, np.ndarray, np.ndarray]:
        """``(loss, correlation, explained variance)``, the scores ``(C + 1,)`` with pooled last."""
        moments = Moments()
        loss = self.objective.evaluate(moments.add)
        corr, ev = moments.correlation(), moments.explained_variance()
        return loss, np.append(corr.per_channel, corr.pooled), np.append(ev.per_channel, ev.pooled)


def check_fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        msg = f"validation must be a fraction in (0, 1) or an (inputs, targets) pair; got {value!r}."
        raise ValueError(msg)
    return float(value)
