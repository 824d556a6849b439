"""Private: the loss of spans of recordings and its exact gradient, evaluated chunk by chunk.

A *span* is frames ``[start, stop)`` of one recording, of which ``[start, loss_start)``
is warm-up: the layer runs over it (so its state is right when the loss starts) but
it carries no loss. The state is reset before every span. The loss is combined over
all spans with frame weights (element weights when a mask is given), so it equals the
one-shot loss of the concatenated loss frames for any loss that averages over them.

Each evaluation of a span starts with one pass with autograd that back-propagates
every chunk's loss at once, which is exact as long as no state a chunk leaves depends
on a parameter (an FIR or Conv3d applied to the input: its state is past input). At
the first chunk that leaves a parameter-dependent state the pass keeps that chunk's
graph and goes on without autograd, keeping the streaming state at every later chunk
boundary; a reverse pass then visits those chunks from last to first, restores each
chunk's starting state as leaf tensors, recomputes it with autograd and
back-propagates the chunk's loss plus the gradient the later chunks sent back into
the state it left, ending with the kept graph.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from streamreg._modules import module_device
from streamreg.exceptions import ChunkShapeError
from streamreg.layer import Layer
from streamreg.optim._state_bank import StateBank, leaf, read_slots, snapshot, state_slots, write_slots
from streamreg.optim.recording import to_tensor

__all__ = ["Chunk", "FitData", "Span", "SpanObjective", "whole_spans"]

LossFn = Callable[[Tensor, Tensor], Tensor]
Observer = Callable[[Tensor, Tensor, "Tensor | None"], None]


@dataclass(frozen=True)
class Span:
    """Frames ``[start, stop)`` of recording ``recording``; loss from ``loss_start`` on."""

    recording: int
    start: int
    loss_start: int
    stop: int


@dataclass(frozen=True)
class Chunk:
    """Frames ``[t0, t1)`` of recording ``recording``; ``loss`` is False for warm-up frames."""

    recording: int
    t0: int
    t1: int
    loss: bool

    def where(self) -> str:
        return f"frames [{self.t0}, {self.t1}) of recording {self.recording}"


@dataclass
class FitData:
    """Inputs, targets and masks (``None``, ``"nan"`` or one boolean recording each), index-aligned."""

    sources: list[Any]
    targets: list[Any]
    masks: Any = None

    def lengths(self) -> list[int]:
        return [s.n_frames for s in self.sources]

    def valid(self, chunk: Chunk, target: Tensor) -> Tensor | None:
        """Boolean ``(n, *frame_out)`` (or ``(n,)``) of the target elements in the loss, or None (all)."""
        if self.masks is None:
            return None
        if isinstance(self.masks, str):
            return ~torch.isnan(target)
        m = torch.as_tensor(self.masks[chunk.recording].read(chunk.t0, chunk.t1), device=target.device)
        if m.dtype != torch.bool or m.shape not in (target.shape[:1], target.shape):
            msg = (
                f"mask must be boolean of shape (T,) or the target's shape; got {m.dtype} of shape "
                f"{tuple(m.shape)} for target {tuple(target.shape)} ({chunk.where()})."
            )
            raise ValueError(msg)
        return m


def whole_spans(lengths: list[int]) -> list[Span]:
    """One span per recording, the whole of it in the loss."""
    return [Span(r, 0, 0, n) for r, n in enumerate(lengths)]


def _chunks(span: Span, dt: int) -> list[Chunk]:
    edges = sorted({*range(span.start, span.stop, dt), span.loss_start, span.stop})
    return [Chunk(span.recording, a, b, a >= span.loss_start) for a, b in itertools.pairwise(edges) if b > a]


class SpanObjective:
    """The loss of ``spans`` and its exact gradient, left in the parameters' ``.grad``.

    ``step`` is the optimizer step, used only in messages.
    """

    def __init__(self, layer: Layer, data: FitData, spans: list[Span], dt: int | None, loss_fn: LossFn,
                 reduction: str, truncate: bool, check_finite: bool = False) -> None:
        self.layer, self.data, self.loss_fn = layer, data, loss_fn
        self.truncate, self.check_finite, self.step = truncate, check_finite, 0
        self.spans = [_chunks(s, dt or max(s.stop - s.start, 1)) for s in spans]
        self.slots = state_slots(layer)
        self.dtype = layer.compute_dtype(data.sources[0].dtype)
        self.device = module_device(layer)
        self.names = {id(p): n for n, p in layer.named_parameters()}
        counts = [[self._count(c) for c in chunks] for chunks in self.spans]
        total = sum(sum(c) for c in counts)
        if reduction == "mean" and total == 0:
            msg = "the loss has no frames: every target frame in it is masked out (or the spans hold no loss frames)."
            raise ValueError(msg)
        self.weights = [[(n / total if reduction == "mean" else 1.0) if n else 0.0 for n in c] for c in counts]
        self.n_loss_units = total

    # -- reading -----------------------------------------------------------
    def _count(self, chunk: Chunk) -> int:
        if not chunk.loss:
            return 0
        if self.data.masks is None:
            return chunk.t1 - chunk.t0
        target = torch.as_tensor(self.data.targets[chunk.recording].read(chunk.t0, chunk.t1))
        valid = self.data.valid(chunk, target)
        per_frame = 1 if valid.ndim > 1 else max(int(target[0].numel()), 1) if len(target) else 1
        return int(valid.sum()) * per_frame

    def _read(self, chunk: Chunk) -> tuple[Tensor, Tensor | None]:
        x = to_tensor(self.data.sources[chunk.recording].read(chunk.t0, chunk.t1), self.dtype, self.device)
        if self.check_finite:
            bad = (~torch.isfinite(x.reshape(len(x), -1))).any(1).nonzero()
            if len(bad):
                msg = (
                    f"input frame {chunk.t0 + int(bad[0])} of recording {chunk.recording} is not finite "
                    "(check_finite=True; the first non-finite input frame)."
                )
                raise FloatingPointError(msg)
        if not chunk.loss:
            return x, None
        return x, to_tensor(self.data.targets[chunk.recording].read(chunk.t0, chunk.t1), self.dtype, self.device)

    # -- one chunk -----------------------------------------------------------
    def _loss(self, chunk: Chunk, weight: float, observe: Observer | None = None) -> Tensor:
        x, target = self._read(chunk)
        y = self.layer(x)
        if target is None:
            return y.new_zeros(())
        if y.shape != target.shape:
            msg = (
                f"target {chunk.where()} have shape {tuple(target.shape)} but the layer output has "
                f"{tuple(y.shape)}; target must be (T, *frame_out)."
            )
            raise ChunkShapeError(msg)
        valid = self.data.valid(chunk, target)
        if observe is not None:
            observe(y.detach(), target, valid)
        if weight == 0.0:
            return y.new_zeros(())
        loss = self.loss_fn(y, target) if valid is None else self.loss_fn(y[valid], target[valid])
        if not isinstance(loss, Tensor) or loss.ndim != 0:
            what = f"shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else type(loss).__name__
            msg = (
                f"loss_fn must return a scalar (0-d tensor), such as mse_loss with reduction='mean'; "
                f"loss_fn={self.loss_fn!r} returned {what}."
            )
            raise ValueError(msg)
        return weight * loss

    def _finite_loss(self, chunk: Chunk, loss: Tensor) -> float:
        value = float(loss.detach())
        if not torch.isfinite(loss.detach()):
            hint = " (a NaN target frame? pass mask='nan')" if self.data.masks is None else ""
            msg = f"step {self.step}: the loss of chunk {chunk.where()} is {value}{hint}."
            raise FloatingPointError(msg)
        return value

    def _finite_grads(self, chunk: Chunk) -> None:
        bad = [self.names.get(id(p), "?") for p in self.layer.parameters()
               if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        if bad:
            msg = f"step {self.step}: the gradient of {bad} is not finite after chunk {chunk.where()}."
            raise FloatingPointError(msg)

    # -- whole objective -------------------------------------------------------
    def __call__(self) -> Tensor:
        """Loss of all spans; leaves the exact (or truncated) gradient in ``.grad``."""
        total = 0.0
        try:
            for chunks, weights in zip(self.spans, self.weights, strict=True):
                self.layer.reset_state()
                total += self._truncated(chunks, weights) if self.truncate else self._exact(chunks, weights)
        finally:
            self.layer.reset_state()
        return torch.tensor(total, dtype=torch.float64)

    def evaluate(self, observe: Observer | None = None) -> float:
        """Loss of all spans without autograd; ``observe(y, target, valid)`` sees every loss chunk."""
        total = 0.0
        try:
            with torch.no_grad():
                for chunks, weights in zip(self.spans, self.weights, strict=True):
                    self.layer.reset_state()
                    for c, w in zip(chunks, weights, strict=True):
                        total += self._finite_loss(c, self._loss(c, w, observe))
        finally:
            self.layer.reset_state()
        return total

    def _exact(self, chunks: list[Chunk], weights: list[float]) -> float:
        total, first, kept = self._forward_backward(chunks, weights, stop_when_dependent=True)
        if kept is None:
            return total
        last = len(chunks) - 1
        bank = StateBank(len(self.slots), len(chunks))
        with torch.no_grad():
            for k in range(first + 1, last + 1):
                bank.store(k, read_slots(self.slots))
                if k < last:  # the last chunk is computed (with autograd) first in the reverse pass
                    total += self._finite_loss(chunks[k], self._loss(chunks[k], weights[k]))
        grads: list[Tensor | None] = [None] * len(self.slots)
        for k in range(last, first, -1):
            leaves = [leaf(v) for v in bank.view(k)]
            # The layer gets copies (differentiable ones of the leaves), so it may update its state in place.
            write_slots(self.slots, [None if v is None else v.clone() for v in leaves])
            with torch.enable_grad():
                loss = self._loss(chunks[k], weights[k])
                if k == last:
                    total += self._finite_loss(chunks[k], loss)
                _backward(loss, read_slots(self.slots), grads)
            self._finite_grads(chunks[k])
            grads = [None if v is None or not v.requires_grad else v.grad for v in leaves]
        _backward(*kept, grads)
        self._finite_grads(chunks[first])
        return total

    def _forward_backward(self, chunks: list[Chunk], weights: list[float], stop_when_dependent: bool,
                          ) -> tuple[float, int, tuple[Tensor, list[Tensor | None]] | None]:
        """One pass with autograd, back-propagating each chunk's loss at once.

        Exact while no state a chunk leaves depends on a parameter (no later loss
        then reaches the parameters through the state); otherwise the truncated
        gradient. With ``stop_when_dependent`` it stops at the first chunk (not the
        last) that leaves a parameter-dependent state, without back-propagating it,
        and returns ``(loss so far, its index, (its loss, its end states))``, graph
        attached; the layer holds detached copies of those states. Otherwise it
        returns ``(loss, len(chunks), None)``.
        """
        total, last = 0.0, len(chunks) - 1
        for k, (c, w) in enumerate(zip(chunks, weights, strict=True)):
            with torch.enable_grad():
                loss = self._loss(c, w)
                total += self._finite_loss(c, loss)
                ends = read_slots(self.slots)
                dependent = any(e is not None and e.requires_grad for e in ends)
                if stop_when_dependent and dependent and k < last:
                    write_slots(self.slots, snapshot(ends))
                    return total, k, (loss, ends)
                if loss.requires_grad:
                    loss.backward()
            self._finite_grads(c)
            if dependent:
                write_slots(self.slots, snapshot(ends))  # cut the graph at the chunk boundary
        return total, len(chunks), None

    def _truncated(self, chunks: list[Chunk], weights: list[float]) -> float:
        return self._forward_backward(chunks, weights, stop_when_dependent=False)[0]


def _backward(loss: Tensor, ends: list[Tensor | None], grads: list[Tensor | None]) -> None:
    """Back-propagate ``loss`` plus the gradients ``grads`` that later chunks sent into the end states ``ends``."""
    tensors, seeds = ([loss], [None]) if loss.requires_grad else ([], [])
    for end, g in zip(ends, grads, strict=True):
        if g is not None and end is not None and end.requires_grad:
            tensors.append(end)
            seeds.append(g)
    if tensors:
        torch.autograd.backward(tensors, seeds)
