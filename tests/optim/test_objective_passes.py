"""The chunked objective's passes: one autograd pass while no state depends on a parameter, a reverse pass after.

Every gradient is compared with plain autograd through one call per span on the whole input.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from streamreg import Layer, Sequential
from streamreg._hdf5 import H5Files
from streamreg.filters import LowPass, TemporalFIR
from streamreg.models import LN
from streamreg.optim.objective import FitData, Span, SpanObjective, whole_spans
from streamreg.optim.recording import open_recording


class _LateLeak(Layer):
    """A leaky sum of the input whose state starts to depend on the gain ``w`` at frame ``switch``.

    Before ``switch`` the state is past input only, so the objective's first pass is exact there;
    from ``switch`` on the state carries ``w`` and later losses reach ``w`` through it.
    """

    def __init__(self, switch: int) -> None:
        super().__init__()
        self.switch = switch
        self.w = torch.nn.Parameter(torch.tensor(0.7, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
        self.register_state("acc")
        self.register_state("t")
        self.calls = 0

    @property
    def own_history(self) -> int | None:
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        acc = self.acc if self.acc is not None else x.new_zeros(x.shape[1:])
        t = int(self.t) if self.t is not None else 0
        ys = []
        for i, frame in enumerate(x.unbind(0)):
            acc = 0.9 * acc + (frame if t + i < self.switch else self.w * frame)
            ys.append(acc + self.b * frame)
        self.acc, self.t = acc, torch.tensor(t + len(x))
        return torch.stack(ys)


def _objective(layer, x, target, dt, spans=None, mask=None):
    files = H5Files()
    data = FitData([open_recording(x, files, "input")], [open_recording(target, files, "target")], mask)
    return SpanObjective(layer, data, spans or whole_spans(data.lengths()), dt, F.mse_loss, "mean", False)


def _reference(layer, x, target, spans):
    """One call per span on its whole input; MSE over the loss frames of all spans together."""
    layer.zero_grad()
    ys, ts = [], []
    for s in spans:
        with layer.fresh():
            y = layer(x[s.start : s.stop])
        ys.append(y[s.loss_start - s.start :])
        ts.append(target[s.loss_start : s.stop])
    y, t = torch.cat(ys), torch.cat(ts)
    valid = ~torch.isnan(t)
    loss = F.mse_loss(y[valid], t[valid])
    loss.backward()
    return loss.item(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in layer.parameters()]


def _chunked(layer, x, target, dt, spans=None, mask=None):
    layer.zero_grad()
    loss = _objective(layer, x, target, dt, spans, mask)().item()
    return loss, [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in layer.parameters()]


@pytest.mark.parametrize("dt", [1, 4, 9, 13, 40])
@pytest.mark.parametrize("switch", [0, 10, 27, 100])
def test_state_that_starts_depending_on_a_parameter_mid_span(switch, dt):
    """Chunks before, at and after the switch (and a switch never reached) all give the one-shot gradient."""
    torch.manual_seed(0)
    layer = _LateLeak(switch)
    x = torch.randn(40, 3, dtype=torch.float64)
    target = torch.randn(40, 3, dtype=torch.float64)
    spans = whole_spans([40])
    ref_loss, ref = _reference(layer, x, target, spans)
    loss, got = _chunked(layer, x, target, dt)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
    assert layer.acc is None and layer.t is None


@pytest.mark.parametrize("dt", [3, 8])
def test_warm_up_spans_and_a_nan_mask(dt):
    """Spans with warm-up frames, several spans and NaN-masked targets give the one-shot gradient."""
    torch.manual_seed(1)
    layer = _LateLeak(12)
    x = torch.randn(50, 2, dtype=torch.float64)
    target = torch.randn(50, 2, dtype=torch.float64)
    target[[14, 30, 31], 0] = float("nan")
    spans = [Span(0, 2, 9, 41), Span(0, 20, 20, 50), Span(0, 5, 18, 19)]
    ref_loss, ref = _reference(layer, x, target, spans)
    loss, got = _chunked(layer, x, target, dt, spans, "nan")
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def _count_calls(layer, module, x, target, dt):
    calls = []
    handle = module.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    try:
        _chunked(layer, x, target, dt)
    finally:
        handle.remove()
    return calls


def test_input_history_state_costs_one_pass():
    """An LN model (its state is past input) runs each chunk once, with autograd, and gets the one-shot gradient."""
    torch.manual_seed(2)
    layer = LN((4, 3, 3), "softplus").double()
    x = torch.rand(50, 6, 6, dtype=torch.float64)
    target = torch.rand(50, 6, 6, dtype=torch.float64)
    assert _count_calls(layer, layer, x, target, 10) == [True] * 5
    _, ref = _reference(layer, x, target, whole_spans([50]))
    _, got = _chunked(layer, x, target, 7)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)


def test_parameter_dependent_state_recomputes_all_but_the_first_and_last_chunk():
    """A learnable recursion from the first chunk on: chunk 0 and the last run once, the others twice."""
    torch.manual_seed(3)
    layer = Sequential(TemporalFIR(torch.randn(3)), LowPass(4.0, learn_tau=True)).double()
    x = torch.randn(50, 2, dtype=torch.float64)
    target = torch.randn(50, 2, dtype=torch.float64)
    calls = _count_calls(layer, layer, x, target, 10)  # 5 chunks
    assert calls == [True, False, False, False, True, True, True, True]
    _, ref = _reference(layer, x, target, whole_spans([50]))
    _, got = _chunked(layer, x, target, 10)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_switch_chunk_keeps_its_graph():
    """At the switch the first pass keeps the chunk's graph: no chunk before the switch is run twice."""
    layer = _LateLeak(25)
    x = torch.randn(50, 2, dtype=torch.float64)
    _chunked(layer, x, torch.randn(50, 2, dtype=torch.float64), 10)
    # chunks 0, 1 (independent) and 2 (the switch, kept) once; 3 without autograd, then again; 4 once.
    assert layer.calls == 6
