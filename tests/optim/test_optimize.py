"""layer.optimize(): chunked gradients equal one-shot gradients; chunked L-BFGS follows one-shot L-BFGS."""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamreg import ChunkShapeError, Layer, Sequential
from streamreg._hdf5 import H5Files
from streamreg.filters import BernoulliSpikes, Conv3d, HighPass, LowPass, TemporalFIR
from streamreg.models import LN, Retina
from streamreg.optim.objective import FitData, SpanObjective, whole_spans
from streamreg.optim.recording import open_recording


def _ChunkedObjective(layer, source, target, dt, loss_fn, reduction, truncate):
    """The objective of one whole recording."""
    data = FitData([source], [target])
    return SpanObjective(layer, data, whole_spans(data.lengths()), dt, loss_fn, reduction, truncate)


def _recordings(x, target):
    """Input and target as the objective reads them (through run()'s readers)."""
    files = H5Files()
    return open_recording(x, files, "input"), open_recording(target, files, "target")


def _one_shot_grad(layer, x, target):
    """Reference: plain autograd through one forward call on the whole recording."""
    layer = copy.deepcopy(layer)
    layer.reset_state()
    layer.zero_grad()
    loss = F.mse_loss(layer(x), target)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in layer.parameters()]


def _chunked_grad(layer, x, target, dt):
    layer.zero_grad()
    objective = _ChunkedObjective(layer, *_recordings(x, target), dt, F.mse_loss, "mean",
                                  False)
    loss = objective()
    return loss.item(), [p.grad.clone() for p in layer.parameters()]


MODELS = {
    "fir": (lambda: TemporalFIR(torch.randn(6, 3)), (3,)),
    "recursive": (lambda: Sequential(LowPass(torch.tensor([2.0, 5.0, 9.0]), 2, learn_tau=True),
                                     HighPass(4.0, weight=0.6, learn_tau=True), TemporalFIR(torch.randn(3))), (3,)),
    "ln": (lambda: LN((4, 3, 3), "softplus"), (6, 5)),
    "retina": (lambda: Retina(), (6, 6)),
}


@pytest.mark.parametrize("dt", [1, 3, 7, 40])
@pytest.mark.parametrize("name", list(MODELS))
def test_chunked_gradient_equals_one_shot_gradient(name, dt):
    """For FIR, recursive and Retina models, every dt (ragged tails included) gives the one-shot gradient."""
    torch.manual_seed(0)
    build, frame = MODELS[name]
    layer = build().double()
    x = torch.rand((41, *frame), dtype=torch.float64)
    with torch.no_grad():
        target = layer(x) * 1.1 + 0.05 * torch.randn_like(layer(x))
    ref_loss, ref_grads = _one_shot_grad(layer, x, target)
    loss, grads = _chunked_grad(layer, x, target, dt)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert len(grads) == len(ref_grads) > 0
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)
    assert all(v is None for v in layer.get_state().values() if not isinstance(v, dict))


def test_float32_gradient_within_float_tolerance():
    """In float32 the chunked gradient matches to single-precision rounding."""
    torch.manual_seed(1)
    layer = Sequential(LowPass(3.0, learn_tau=True), TemporalFIR(torch.randn(5)))
    x = torch.randn(200, 4)
    target = torch.randn(200, 4)
    _, ref = _one_shot_grad(layer, x, target)
    _, got = _chunked_grad(layer, x, target, 9)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_truncation_is_biased_for_recursive_state_and_exact_without_it():
    """truncate=True cuts the gradient through state: wrong for a learnable recursion, right for FIR state."""
    torch.manual_seed(2)
    x, target = torch.randn(60, 2, dtype=torch.float64), torch.randn(60, 2, dtype=torch.float64)

    def grads(layer, truncate):
        layer.zero_grad()
        _ChunkedObjective(layer, *_recordings(x, target), 5, F.mse_loss, "mean", truncate)()
        return [p.grad.clone() for p in layer.parameters()]

    recursive = LowPass(6.0, learn_tau=True).double()
    assert not torch.allclose(grads(recursive, True)[0], grads(recursive, False)[0])
    fir = TemporalFIR(torch.randn(7)).double()
    torch.testing.assert_close(grads(fir, True)[0], grads(fir, False)[0])


def _lbfgs_fit(dt, n_steps=4):
    torch.manual_seed(3)
    truth = LN((3, 3, 3), "identity", dtype=torch.float64)
    model = LN((3, 3, 3), "identity", dtype=torch.float64)
    model.conv.set_weight(np.full((3, 3, 3), 1 / 27))
    x = torch.randn(120, 6, 6, dtype=torch.float64)
    target = torch.from_numpy(truth.run(x))
    model.set_optimizer.LBFGS(lr=1, max_iter=5, history_size=10)
    log = model.optimize(x, target, dt=dt, n_steps=n_steps)
    return model, truth, log


def test_chunked_lbfgs_follows_the_one_shot_trajectory():
    """L-BFGS over chunks of 7 frames ends where one-shot L-BFGS ends, step for step."""
    one_model, truth, one_log = _lbfgs_fit(None)
    chunk_model, _, chunk_log = _lbfgs_fit(7)
    np.testing.assert_allclose(chunk_log.loss, one_log.loss, rtol=1e-8)
    torch.testing.assert_close(chunk_model.conv.weight, one_model.conv.weight, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(chunk_model.conv.weight, truth.conv.weight, rtol=0, atol=1e-4)
    assert chunk_log.loss[-1] < 1e-3 * chunk_log.loss[0]
    assert chunk_log.time.shape == (4,) and (chunk_log.time > 0).all()


def test_optimize_reads_hdf5_and_resets_state(tmp_path):
    """Input and target can be HDF5 locations; the state is fresh after optimize and parameters moved."""
    torch.manual_seed(4)
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    target = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    with h5py.File(tmp_path / "rec.h5", "w") as f:
        f["x"], f["y"] = x, target
    fir = TemporalFIR(np.zeros(4, dtype=np.float32))
    fir.set_optimizer.Adam(lr=0.05)
    log = fir.optimize(f"{tmp_path / 'rec.h5'}:/x", f"{tmp_path / 'rec.h5'}:/y", dt=16, n_steps=5)
    assert log.loss.shape == (5,)
    assert fir.past_input is None
    assert fir.kernel.abs().sum() > 0


def test_learning_rate_schedule_is_applied_per_step():
    """A schedule sets every group's learning rate before each step and is logged."""
    fir = TemporalFIR(np.zeros(3, dtype=np.float32))
    fir.set_optimizer.SGD(lr=1.0)
    x = torch.randn(30, 2)
    log = fir.optimize(x, x, dt=10, n_steps=5, learning_rates=[(0, 0.1), (3, 0.01)])
    np.testing.assert_allclose(log.learning_rate, [0.1, 0.1, 0.1, 0.01, 0.01])
    assert fir.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)


def test_sum_reduction_and_custom_loss():
    """reduction='sum' adds chunk losses, which matches a summed one-shot loss."""
    torch.manual_seed(5)
    layer = TemporalFIR(torch.randn(4)).double()
    x, target = torch.randn(33, 2, dtype=torch.float64), torch.randn(33, 2, dtype=torch.float64)

    def sse(y, t):
        return ((y - t) ** 2).sum()

    layer.zero_grad()
    loss = _ChunkedObjective(layer, *_recordings(x, target), 5, sse, "sum", False)()
    assert loss.item() == pytest.approx(sse(layer(x), target).item(), rel=1e-12)


def test_bad_arguments_are_named():
    """Missing optimizer, length mismatch, frame mismatch and bad counts raise clear errors."""
    fir = TemporalFIR(np.ones(3, dtype=np.float32))
    x = np.zeros((10, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"call layer.set_optimizer.<Name>\(...\) first"):
        fir.optimize(x, x)
    fir.set_optimizer.SGD(lr=0.1)
    with pytest.raises(ChunkShapeError, match="got 9 target frames and 10 input frames"):
        fir.optimize(x, x[:9])
    with pytest.raises(ChunkShapeError, match=r"target frames \[0, 10\) of recording 0 have shape \(10, 3\)"):
        fir.optimize(x, np.zeros((10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="n_steps must be a positive integer; got 0"):
        fir.optimize(x, x, n_steps=0)
    with pytest.raises(ValueError, match=r"reduction must be one of \['mean', 'sum'\]; got 'avg'"):
        fir.optimize(x, x, reduction="avg")
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        fir.optimize(x, x, loss_fn=3)


def test_conv3d_gradient_with_channels():
    """A multi-channel Conv3d with bias gets the one-shot gradient through chunks shorter than its kernel."""
    torch.manual_seed(6)
    conv = Conv3d((5, 3, 3), 2, 2, bias=True, dtype=torch.float64)
    x = torch.randn(23, 2, 5, 5, dtype=torch.float64)
    target = torch.randn(23, 2, 5, 5, dtype=torch.float64)
    _, ref = _one_shot_grad(conv, x, target)
    _, got = _chunked_grad(conv, x, target, 3)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)


def test_spiking_models_fit_in_chunks():
    """Integer RNG state restored from the boundary bank works (it crashed torch as a view)."""
    torch.manual_seed(7)
    model = Sequential(TemporalFIR(torch.randn(3)), BernoulliSpikes(seed=1), TemporalFIR(torch.randn(2)))
    x = torch.rand(20, 4)
    target = torch.rand(20, 4)
    model.set_optimizer.SGD(lr=0.0)
    one = model.optimize(x, target, n_steps=1).loss[0]
    chunked = model.optimize(x, target, dt=3, n_steps=1).loss[0]
    assert chunked == pytest.approx(one, rel=1e-6)


class _Counter(Layer):
    """Scales by a learnable gain times the frame index; keeps a float counter updated in place."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))
        self.register_state("n")

    @property
    def own_history(self):
        return None

    def forward(self, x):
        if self.n is None:
            self.n = x.new_zeros(())
        t = self.n + torch.arange(1, len(x) + 1, dtype=x.dtype)
        self.n += len(x)
        return self.gain * x * t.reshape(-1, *([1] * (x.ndim - 1)))


class _GrowingHistory(Layer):
    """A 3-tap FIR whose history holds up to 2 frames: fewer at the start, so the state changes shape."""

    def __init__(self):
        super().__init__()
        self.kernel = torch.nn.Parameter(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
        self.register_state("past")

    @property
    def own_history(self):
        return 2

    def forward(self, x):
        past = self.past if self.past is not None else x[:0]
        xin = torch.cat([past, x])
        pad = torch.cat([x.new_zeros((2 - len(past), *x.shape[1:])), xin])
        y = sum(self.kernel[k] * pad[2 - k : len(pad) - k] for k in range(3))
        self.past = xin[-2:]
        return y


@pytest.mark.parametrize("layer_cls", [_Counter, _GrowingHistory])
def test_in_place_and_shape_changing_state(layer_cls):
    """A state updated in place, or one that grows, still gives the one-shot gradient at dt=1."""
    torch.manual_seed(8)
    layer = layer_cls()
    x, target = torch.randn(9, 2, dtype=torch.float64), torch.randn(9, 2, dtype=torch.float64)
    _, ref = _one_shot_grad(layer, x, target)
    for dt in (1, 4):
        _, got = _chunked_grad(layer, x, target, dt)
        torch.testing.assert_close(got[0], ref[0], rtol=1e-10, atol=1e-12)


def test_schedule_per_parameter_group_and_saved_state():
    """One column per group sets each group's rate; the optimizer state still loads with weights_only."""
    import io

    fir = Sequential(TemporalFIR(np.zeros(3, dtype=np.float32)), TemporalFIR(np.ones(2, dtype=np.float32)))
    opt = torch.optim.SGD([{"params": fir[0].parameters()}, {"params": fir[1].parameters()}], lr=1.0)
    x = torch.randn(12, 2)
    log = fir.optimize(x, x, dt=5, n_steps=3, optimizer=opt, learning_rates=[(0, 0.1, 0.2), (2, 0.01, 0.02)])
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.02]
    np.testing.assert_allclose(log.learning_rate, [0.1, 0.1, 0.01])
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    torch.load(buffer, weights_only=True)
    with pytest.raises(ValueError, match=r"1 rate \(for every parameter group\) or 2 \(one per group\); got 3"):
        fir.optimize(x, x, optimizer=opt, learning_rates=[(0, 0.1, 0.2, 0.3)])
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        fir.optimize(x, x, optimizer=opt, learning_rates=-0.1)
    with pytest.raises(ValueError, match="must be numbers for optimize"):
        fir.optimize(x, x, optimizer=opt, learning_rates=[(0, {"a": 1})])


def test_log_records_the_learning_rate_without_a_schedule():
    """Without a schedule the log holds the optimizer's own learning rate."""
    fir = TemporalFIR(np.zeros(3, dtype=np.float32))
    fir.set_optimizer.SGD(lr=0.3)
    log = fir.optimize(torch.randn(10, 2), torch.randn(10, 2), n_steps=2)
    np.testing.assert_allclose(log.learning_rate, [0.3, 0.3])


def test_a_recorder_gets_the_loss_and_rate_of_every_step(tmp_path):
    """optimize(recorder=) writes one scalars.csv row per step and tag, equal to the returned log."""
    import csv

    from streamreg.experiment import Recorder

    x = torch.randn(60, 3)
    layer = LowPass(3.0, learn_tau=True)
    target = LowPass(5.0).run(x)
    layer.set_optimizer.SGD(lr=0.5)
    with Recorder(tmp_path, tensorboard=False) as recorder:
        log = layer.optimize(x, target, dt=7, n_steps=3, recorder=recorder)
    with open(tmp_path / "scalars.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh)]
    losses = [float(r["value"]) for r in rows if r["tag"] == "optimize/loss"]
    rates = [float(r["value"]) for r in rows if r["tag"] == "optimize/learning_rate"]
    np.testing.assert_allclose(losses, log.loss, rtol=1e-12)
    np.testing.assert_allclose(rates, log.learning_rate, rtol=1e-12)
    with pytest.raises(TypeError, match="recorder must have scalar"):
        layer.optimize(x, target, dt=7, recorder=object())


def test_optimize_reads_streams_through_runs_readers(tmp_path):
    """A seekable stream (from its position) gives the same fit as the array; a stream that cannot seek is refused."""
    from streamreg.streams import ArrayStream, GeneratorStream

    x = torch.randn(50, 2)
    target = LowPass(4.0).run(x)
    losses = []
    for source in (x.numpy(), ArrayStream(torch.cat([torch.zeros(5, 2), x]))):
        if isinstance(source, ArrayStream):
            source.seek(5)
        layer = LowPass(2.0, learn_tau=True)
        layer.set_optimizer.SGD(lr=0.1)
        losses.append(layer.optimize(source, target, dt=6, n_steps=2, device="cpu").loss)
    np.testing.assert_array_equal(losses[0], losses[1])
    layer = LowPass(2.0, learn_tau=True)
    layer.set_optimizer.SGD(lr=0.1)
    with pytest.raises(ValueError, match="cannot seek"):
        layer.optimize(GeneratorStream(iter([x.numpy()])), target, dt=6)
    with pytest.raises(ValueError, match="device"):
        layer.optimize(x, target, device="gpu")
