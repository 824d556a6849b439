"""optimize() on real recordings: no silent failure, many recordings, segments, validation, metrics."""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamreg import Layer, Sequential
from streamreg.filters import Conv3d, LowPass, TemporalFIR
from streamreg.metrics import correlation, explained_variance

RNG = np.random.default_rng(0)


def _fir(seed=0):
    torch.manual_seed(seed)
    return Sequential(TemporalFIR(torch.randn(4, 2)), TemporalFIR(torch.randn(3, 2))).double()


def _grads(layer):
    return [p.grad.clone() for p in layer.parameters()]


def _reference(layer, xs, ts, masks=None):
    """One-shot autograd on each recording with a fresh state, frame-weighted (element-weighted with masks)."""
    layer = copy.deepcopy(layer)
    layer.zero_grad()
    parts, n = [], 0
    for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
        layer.reset_state()
        y = layer(torch.as_tensor(x))
        t = torch.as_tensor(t)
        m = ~torch.isnan(t) if masks is None else torch.as_tensor(masks[i])
        parts.append(((y - t)[m] ** 2).sum())
        n += int(m.sum())
    loss = sum(parts) / n
    loss.backward()
    return float(loss.detach()), _grads(layer)


def _sgd_grad(layer, *args, **kw):
    layer.set_optimizer.SGD(lr=0.0)
    log = layer.optimize(*args, **kw)
    return log, _grads(layer)


def test_non_finite_loss_names_step_and_chunk_and_restores_parameters():
    """A NaN target frame stops the fit at its chunk; the parameters stay as before that step (L-BFGS too)."""
    layer = _fir()
    x, t = RNG.random((30, 2,)), RNG.random((30, 2,))
    t[17, 1] = np.nan
    layer.set_optimizer.LBFGS(lr=1, max_iter=4)
    before = [p.detach().clone() for p in layer.parameters()]
    with pytest.raises(FloatingPointError, match=r"step 0: the loss of chunk frames \[15, 20\) of recording 0 is nan"):
        layer.optimize(x, t, 5)
    for p, b in zip(layer.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), b, rtol=0, atol=0)


def test_check_finite_names_first_bad_input_frame():
    layer = _fir()
    x, t = RNG.random((30, 2,)), RNG.random((30, 2,))
    x[23, 0] = np.inf
    layer.set_optimizer.SGD(lr=0.1)
    with pytest.raises(FloatingPointError, match="input frame 23 of recording 0 is not finite"):
        layer.optimize(x, t, 7, check_finite=True)


@pytest.mark.parametrize("dt", [None, 4, 7])
def test_mask_nan_and_explicit_masks_match_masked_one_shot_loss(dt):
    layer = _fir()
    x, t = RNG.random((30, 2,)), RNG.random((30, 2,))
    t[[3, 11, 12], 0] = np.nan
    ref_loss, ref = _reference(layer, [x], [t])
    log, got = _sgd_grad(layer, x, t, dt, mask="nan")
    assert log.loss[0] == pytest.approx(ref_loss, rel=1e-10)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r)
    frames = np.ones(30, bool)
    frames[[5, 6]] = False
    ref_loss, ref = _reference(layer, [x], [np.nan_to_num(t)], [np.repeat(frames[:, None], 2, 1)])
    log, got = _sgd_grad(layer, x, np.nan_to_num(t), dt, mask=frames)
    assert log.loss[0] == pytest.approx(ref_loss, rel=1e-10)


def test_stale_or_foreign_optimizer_is_refused_by_name():
    """An optimizer left from before a parameter was replaced, or missing one, is a ValueError naming it."""
    fir = TemporalFIR(torch.randn(4))
    opt = torch.optim.SGD([fir.kernel], lr=0.1)
    fir.kernel = torch.nn.Parameter(torch.randn(6))  # replaced, as set_weight with a new shape does
    x = RNG.random((20,)).astype(np.float32)
    with pytest.raises(ValueError, match="not this TemporalFIR's"):
        fir.optimize(x, x, optimizer=opt)
    with pytest.raises(ValueError, match="not this TemporalFIR's"):
        fir.optimize(x, x, optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1))
    two = Sequential(TemporalFIR(torch.randn(3)), TemporalFIR(torch.randn(2)))
    with pytest.raises(ValueError, match=r"misses trainable parameter\(s\) \['1.kernel'\]"):
        two.optimize(x, x, optimizer=torch.optim.SGD(two[0].parameters(), lr=1))
    conv = Conv3d((2, 3, 3))
    opt = conv.set_optimizer.SGD(lr=0.1)
    kept = conv.weight
    conv.set_weight(torch.randn(2, 3, 3))
    assert conv.weight is kept and opt.param_groups[0]["params"][0] is kept
    conv.set_weight(torch.randn(3, 3, 3))
    with pytest.raises(ValueError, match="not this Conv3d's"):
        conv.optimize(np.zeros((5, 4, 4), np.float32), np.zeros((3, 2, 2), np.float32))


def test_stateful_layer_without_own_history_is_unbounded():
    class Counter(Layer):
        def __init__(self):
            super().__init__()
            self.register_state("n")

        def forward(self, x):
            self.n = torch.tensor(len(x))
            return x

    assert Counter().own_history is None and Counter().history is None
    assert TemporalFIR(torch.ones(3)).history == 2 and Layer().own_history == 0


def test_non_scalar_loss_fn_is_named():
    layer = _fir()
    x = RNG.random((10, 2,))
    layer.set_optimizer.SGD(lr=0.1)
    with pytest.raises(ValueError, match="loss_fn must return a scalar"):
        layer.optimize(x, x, loss_fn=lambda y, t: (y - t) ** 2)


def test_fresh_resets_state_on_entry_and_exit():
    fir = TemporalFIR(torch.ones(3))
    fir(torch.ones(4))
    with fir.fresh():
        assert fir.past_input is None
        fir(torch.ones(2))
    assert fir.past_input is None


def test_many_recordings_and_trials_give_the_one_shot_gradient(tmp_path):
    """Lists of recordings of different lengths (array, dataset, string) equal a reset-between one-shot reference."""
    layer = _fir()
    lengths = (13, 30, 7)
    xs = [RNG.random((n, 2,)) for n in lengths]
    ts = [RNG.random((n, 2,)) for n in lengths]
    path = tmp_path / "r.h5"
    with h5py.File(path, "w") as f:
        f["x1"], f["t1"] = xs[1], ts[1]
    ref_loss, ref = _reference(layer, xs, ts)
    with h5py.File(path, "r") as f:
        log, got = _sgd_grad(layer, [xs[0], f["x1"], xs[2]], [ts[0], f"{path}:/t1", ts[2]], 4)
    assert log.loss[0] == pytest.approx(ref_loss, rel=1e-10)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r)
    block_x, block_t = RNG.random((3, 9, 2,)), RNG.random((3, 9, 2,))
    ref_loss, ref = _reference(layer, list(block_x), list(block_t))
    log, got = _sgd_grad(layer, block_x, block_t, 4, trials=True)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r)


def test_segments_tiling_the_recordings_sum_to_the_full_gradient():
    """With B=1, the frame-weighted sum of one epoch's segment gradients is the exact full gradient."""
    layer = _fir()
    xs = [RNG.random((n, 2,)) for n in (23, 17)]
    ts = [RNG.random((n, 2,)) for n in (23, 17)]
    _, ref = _reference(layer, xs, ts)
    total = [torch.zeros_like(p) for p in layer.parameters()]
    tiles = [(0, s, min(s + 5, 23)) for s in range(0, 23, 5)] + [(1, s, min(s + 5, 17)) for s in range(0, 17, 5)]
    order = iter(np.random.default_rng(1).permutation(len(tiles)))  # the sampler's documented order

    class Spy(torch.optim.SGD):
        def step(self, closure):
            loss = closure()
            _, s0, s1 = tiles[next(order)]
            for acc, p in zip(total, self.param_groups[0]["params"], strict=True):
                acc += (s1 - s0) / 40 * p.grad
            return loss

    log = layer.optimize(xs, ts, 3, optimizer=Spy(list(layer.parameters()), lr=0.0), segment=5, seed=1)
    assert len(log.loss) == len(tiles) == 9
    for g, r in zip(total, ref, strict=True):
        torch.testing.assert_close(g, r)


def test_stochastic_fit_is_reproducible_and_refuses_unbounded_history():
    xs = [RNG.random((n, 2,)) for n in (50, 31)]
    ts = [RNG.random((n, 2,)) for n in (50, 31)]
    weights = []
    for _ in range(2):
        layer = _fir()
        layer.set_optimizer.Adam(lr=0.05)
        log = layer.optimize(xs, ts, segment=8, batch_segments=2, epochs=2, seed=3)
        weights.append([p.detach().clone() for p in layer.parameters()])
    assert len(log.loss) == 2 * 6
    for a, b in zip(*weights, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    lp = LowPass(3.0, learn_tau=True).double()
    lp.set_optimizer.SGD(lr=0.1)
    with pytest.raises(ValueError, match="unbounded history"):
        lp.optimize(xs, ts, segment=8)
    lp.optimize(xs, ts, segment=8, warmup=20)


def test_validation_split_and_early_stopping_restore_best():
    from streamreg.optim.validation import split

    train, held = split([100, 40], 0.25, "time")
    assert train == [(0, 0, 75), (1, 0, 30)] and held == [(0, 75, 100), (1, 30, 40)]
    train, held = split([100, 40, 20], 0.3, "recording")
    assert train == [(0, 0, 100), (1, 0, 40)] and held == [(2, 0, 20)]
    layer = _fir()
    xs = [RNG.random((60, 2,)) for _ in range(2)]
    ts = [RNG.random((60, 2,)) for _ in range(2)]
    layer.set_optimizer.SGD(lr=5.0)  # too large: the validation loss rises after the first steps
    log = layer.optimize(xs, ts, 16, n_steps=8, validation=0.25, patience=2)
    best = int(np.argmin(log.validation_loss))
    assert log.best_step == log.validation_step[best]
    assert log.validation_correlation.shape == (len(log.validation_step), 3)
    fig = log.plot()
    assert type(fig).__name__ == "Figure"
    layer.reset_state()
    # the restored parameters give the best validation loss
    from streamreg._hdf5 import H5Files
    from streamreg.optim.objective import FitData, Span, SpanObjective
    from streamreg.optim.recording import open_recordings

    data = FitData(open_recordings(xs, H5Files(), "x"), open_recordings(ts, H5Files(), "t"))
    spans = [Span(r, 0, 45, 60) for r in range(2)]
    again = SpanObjective(layer, data, spans, None, F.mse_loss, "mean", False).evaluate()
    assert again == pytest.approx(log.validation_loss[best], rel=1e-10)


def test_metrics_match_numpy(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.normal(size=(500, 3))
    p = t * [1.0, 0.5, -1.0] + rng.normal(size=(500, 3))
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["p"] = p
        corr = correlation(f["p"], t, dt=37)
    ref = [np.corrcoef(p[:, c], t[:, c])[0, 1] for c in range(3)]
    np.testing.assert_allclose(corr.per_channel, ref, rtol=1e-10)
    assert corr.pooled == pytest.approx(np.corrcoef(p.ravel(), t.ravel())[0, 1], rel=1e-10)
    ev = explained_variance(p, t, dt=64)
    sse, sst = ((p - t) ** 2).sum(0), ((t - t.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(ev.per_channel, 1 - sse / sst, rtol=1e-10)
    assert ev.pooled == pytest.approx(1 - sse.sum() / sst.sum(), rel=1e-10)
