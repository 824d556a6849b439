"""``Layer.optimize``: fit a layer to recordings, chunk by chunk, with the exact gradient.

A full-pass fit evaluates the exact chunked objective of every training recording at
every step (:mod:`streamreg.optim.objective`); ``segment=`` instead draws random
mini-batches of segments, each warmed up by the layer's ``history``
(:mod:`streamreg.optim.segments`). Validation data is evaluated exactly
(:mod:`streamreg.optim.validation`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from streamreg._hdf5 import H5Files
from streamreg._validation import (
    check_bool,
    check_choice,
    check_device,
    check_dt,
    check_nonnegative_int,
    check_positive_int,
)
from streamreg.exceptions import ChunkShapeError
from streamreg.layer import Layer
from streamreg.optim.checks import check_optimizer_params
from streamreg.optim.log import OptimizeLog
from streamreg.optim.loop import FitLoop, LoopOptions
from streamreg.optim.objective import FitData, LossFn, Span, SpanObjective
from streamreg.optim.recording import open_recordings
from streamreg.optim.schedules import format_and_check_learning_rates
from streamreg.optim.segments import SegmentSampler, segment_spans, tile
from streamreg.optim.validation import Validator, check_fraction, split

__all__ = ["OptimizeLog", "optimize"]


def _open_data(input: Any, target: Any, mask: Any, files: H5Files, trials: bool) -> FitData:  # noqa: A002
    sources = open_recordings(input, files, "input", trials=trials)
    targets = open_recordings(target, files, "target", trials=trials)
    if len(sources) != len(targets):
        msg = f"target must hold as many recordings as input; got {len(targets)} and {len(sources)}."
        raise ValueError(msg)
    masks = mask if mask is None or isinstance(mask, str) else open_recordings(mask, files, "mask", trials=trials)
    for r, (s, t) in enumerate(zip(sources, targets, strict=True)):
        m = masks[r].n_frames if isinstance(masks, list) and r < len(masks) else t.n_frames
        if not s.n_frames == t.n_frames == m:
            extra = f", {m} mask frames" if m != t.n_frames else ""
            msg = (
                f"recording {r}: target must have as many frames as input (and mask); got {t.n_frames} "
                f"target frames{extra} and {s.n_frames} input frames."
            )
            raise ChunkShapeError(msg)
        if s.n_frames == 0:
            msg = f"recording {r} of input must hold at least one frame to fit; got T = 0."
            raise ValueError(msg)
    if isinstance(masks, list) and len(masks) != len(sources):
        msg = f"mask must hold one mask per recording ({len(sources)}); got {len(masks)}."
        raise ValueError(msg)
    return FitData(sources, targets, masks)


def _check_optimizer(layer: Layer, optimizer: Any) -> torch.optim.Optimizer:
    optimizer = optimizer if optimizer is not None else getattr(layer, "optimizer", None)
    if not isinstance(optimizer, torch.optim.Optimizer):
        msg = (
            "optimize needs an optimizer: call layer.set_optimizer.<Name>(...) first "
            f"(available: dir(layer.set_optimizer)) or pass optimizer=; got {optimizer!r}."
        )
        raise ValueError(msg)
    check_optimizer_params(layer, optimizer)
    return optimizer


def _check_callables(loss_fn: Any, recorder: Any, mask: Any) -> None:
    if recorder is not None and not all(callable(getattr(recorder, m, None)) for m in ("scalar", "step")):
        msg = f"recorder must have scalar(tag, value) and step(), as streamreg.experiment.Recorder; got {recorder!r}."
        raise TypeError(msg)
    if loss_fn is not None and not callable(loss_fn):
        msg = f"loss_fn must be callable as loss_fn(output, target); got {loss_fn!r}."
        raise TypeError(msg)
    if isinstance(mask, str) and mask != "nan":
        msg = f"mask must be None, 'nan', or boolean masks of shape (T,) or the target's; got {mask!r}."
        raise ValueError(msg)


def _warm(layer: Layer, warmup: int | None, segment: int | None) -> int | None:
    """Warm-up frames before a segment or validation block (None: from the recording's start)."""
    if layer.history is not None:
        return layer.history
    if warmup is None and segment is not None:
        msg = (
            f"{type(layer).__name__} has unbounded history (a recursive filter, or a Layer with state that "
            "does not declare own_history), so a segment's gradient cannot be exact; pass warmup= (frames "
            "of warm-up before each segment: the gradient is then biased by the state those frames miss)."
        )
        raise ValueError(msg)
    return warmup


def _validator(layer: Layer, data: FitData, validation: Any, split_by: str, files: H5Files, trials: bool,
               warm: int | None, dt: int | None, loss_fn: LossFn) -> tuple[list[tuple[int, int, int]], Any]:
    """Training ranges and a :class:`Validator` (or None)."""
    if isinstance(validation, tuple) and len(validation) == 2:
        held = _open_data(*validation, "nan" if data.masks == "nan" else None, files, trials)
        ranges, _ = split(data.lengths(), None, split_by)
        return ranges, Validator(layer, held, [(r, 0, n) for r, n in enumerate(held.lengths())], warm, dt, loss_fn)
    fraction = None if validation is None else check_fraction(validation)
    train, held_out = split(data.lengths(), fraction, split_by)
    return train, (Validator(layer, data, held_out, warm, dt, loss_fn) if held_out else None)


def optimize(
    layer: Layer,
    input: Any,  # noqa: A002
    target: Any,
    dt: int | None = None,
    *,
    loss_fn: LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    n_steps: int | None = None,
    learning_rates: Any = None,
    progress: bool | None = None,
    reduction: str = "mean",
    truncate: bool = False,
    device: Any = None,
    recorder: Any = None,
    check_finite: bool = False,
    mask: Any = None,
    trials: bool = False,
    segment: int | None = None,
    batch_segments: int = 1,
    epochs: int | None = None,
    seed: int | None = None,
    warmup: int | None = None,
    validation: Any = None,
    validation_split: str = "time",
    validate_every: int | None = None,
    patience: int | None = None,
) -> OptimizeLog:
    """Fit ``layer`` to ``target``; see :meth:`streamreg.Layer.optimize`."""
    dt, device = check_dt(dt), check_device(device)
    reduction = check_choice(reduction, "reduction", ("mean", "sum"))
    validation_split = check_choice(validation_split, "validation_split", ("time", "recording"))
    check_finite, trials = check_bool(check_finite, "check_finite"), check_bool(trials, "trials")
    _check_callables(loss_fn, recorder, mask)
    if segment is None and epochs is not None:
        msg = f"epochs= needs segment= (a full-pass fit counts n_steps); got epochs={epochs!r}."
        raise ValueError(msg)
    if segment is not None and n_steps is not None:
        msg = f"with segment= the fit runs epochs= (default 1), not n_steps; got n_steps={n_steps!r}."
        raise ValueError(msg)
    if patience is not None and validation is None:
        msg = f"patience= needs validation= (the data whose loss decides when to stop); got patience={patience!r}."
        raise ValueError(msg)
    opts = LoopOptions(
        n_steps=check_positive_int(1 if n_steps is None else n_steps, "n_steps"),
        schedule=format_and_check_learning_rates(learning_rates) if learning_rates is not None else None,
        progress=progress, recorder=recorder,
        validate_every=None if validate_every is None else check_positive_int(validate_every, "validate_every"),
        patience=None if patience is None else check_positive_int(patience, "patience"))
    optimizer = _check_optimizer(layer, optimizer)
    if device is not None:
        layer.to(device)
    files = H5Files()
    try:
        data = _open_data(input, target, mask, files, trials)
        warm = _warm(layer, None if warmup is None else check_nonnegative_int(warmup, "warmup"), segment)
        loss_fn = loss_fn or F.mse_loss
        train, validator = _validator(layer, data, validation, validation_split, files, trials, warm, dt, loss_fn)

        def objective(spans: list[Span]) -> SpanObjective:
            return SpanObjective(layer, data, spans, dt, loss_fn, reduction, truncate, check_finite)

        loop = FitLoop(layer, optimizer, opts, validator)
        if segment is None:
            full = objective([Span(r, a, a, b) for r, a, b in train])
            return loop.run(full for _ in range(opts.n_steps))
        sampler = SegmentSampler(tile(train, check_positive_int(segment, "segment")),
                                 check_positive_int(batch_segments, "batch_segments"), seed)
        n_epochs = check_positive_int(1 if epochs is None else epochs, "epochs")
        loop.set_length(n_epochs * sampler.steps_per_epoch, sampler.steps_per_epoch)
        return loop.run(objective(segment_spans(batch, warm or 0)) for batch in sampler.batches(n_epochs))
    finally:
        files.close()
