"""LowPass / HighPass in blocks of fixed-shape matrix products, against scipy and the per-frame recursion."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from streamreg import functional as F
from streamreg.filters import HighPass, LowPass
from streamreg.testing import assert_chunk_invariant


def _cascade64(x, tau, n_stages):
    a = np.exp(-1.0 / tau)
    y = np.asarray(x, dtype=np.float64)
    for _ in range(n_stages):
        y = lfilter([1 - a], [1, -a], y, axis=0)
    return y


def _per_frame(x, tau, n_stages):
    """The per-frame recursion (F.exp_lowpass), the algorithm the blocks replace."""
    a = torch.exp(-1.0 / torch.as_tensor(tau, dtype=x.dtype))
    for _ in range(n_stages):
        x, _ = F.exp_lowpass(x, a, x.new_zeros(x.shape[1:]))
    return x


@pytest.mark.parametrize("n_stages", [1, 3])
@pytest.mark.parametrize("tau", [0.3, 10.0, 500.0])
def test_blocks_match_lfilter_in_float64(tau, n_stages):
    """The block cascade equals scipy's first-order cascade to float64 precision, chunked too."""
    x = np.random.default_rng(0).normal(size=(333, 7))
    out = LowPass(tau, n_stages, dtype=torch.float64).run(x, dt=45)
    np.testing.assert_allclose(out, _cascade64(x, tau, n_stages), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("n_stages", [1, 3])
def test_blocks_match_the_per_frame_recursion_in_float32(n_stages):
    """Float32 outputs agree with the per-frame addcmul recursion to float32 rounding."""
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(1))
    out = LowPass(10.0, n_stages).run(x, dt=100)
    torch.testing.assert_close(torch.from_numpy(out), _per_frame(x, 10.0, n_stages), rtol=0, atol=2e-6)


@pytest.mark.parametrize("n_stages", [1, 2])
def test_highpass_blocks_equal_input_minus_weighted_lowpass(n_stages):
    """The weight folded into the block matrix gives x - w·LowPass(x)."""
    x = np.random.default_rng(2).normal(size=(260, 5))
    out = HighPass(4.0, n_stages, weight=0.7, dtype=torch.float64).run(x, dt=33)
    np.testing.assert_allclose(out, x - 0.7 * _cascade64(x, 4.0, n_stages), rtol=1e-11, atol=1e-12)


def test_block_matrix_is_causal_with_exact_zeros():
    """No future frame has a weight: the block part of the matrix is exactly lower triangular."""
    b = F.LOWPASS_BLOCK
    m = F.exp_cascade_matrix(torch.tensor(0.9), 3, b)
    assert m.shape == (b + 3, b + 3)
    assert torch.count_nonzero(torch.triu(m[:b, :b], diagonal=1)) == 0


@pytest.mark.parametrize("layer", [LowPass(10.0), LowPass(3.0, n_stages=3), HighPass(6.0, 2, weight=0.8)], ids=repr)
def test_wide_frames_are_bitwise_chunk_invariant(layer):
    """256-pixel frames, chunks inside, on and across block boundaries, and ragged partitions: bitwise."""
    b = F.LOWPASS_BLOCK
    x = torch.randn(5 * b + 7, 16, 16, generator=torch.Generator().manual_seed(3))
    assert_chunk_invariant(layer, x, dts=(1, 5, b - 1, b, b + 1, 2 * b + 3, 1000),
                           partitions=[(b - 1, 1, b + 2, 3 * b + 5), (7, 2 * b, b + 7, 2 * b - 7)])


def test_state_saved_inside_a_block_continues_bitwise():
    """A state saved mid-block, through torch.save, lets a fresh layer continue with the same bits."""
    b = F.LOWPASS_BLOCK
    x = torch.randn(4 * b, 9, generator=torch.Generator().manual_seed(4))
    layer = LowPass(7.0, n_stages=2)
    expected = layer.run(x)
    layer.reset_state()
    with torch.no_grad():
        layer(x[: b + 5])
    assert int(layer.block_fill) == 5
    buffer = io.BytesIO()
    torch.save(layer.get_state(), buffer)
    buffer.seek(0)
    fresh = LowPass(7.0, n_stages=2)
    fresh.set_state(torch.load(buffer, weights_only=True))
    np.testing.assert_array_equal(fresh.run(x[b + 5 :], dt=11, reset=False), expected[b + 5 :])


@pytest.mark.parametrize("make", [lambda: LowPass(5.0, 2, learn_tau=True), lambda: HighPass(5.0, weight=0.6)],
                         ids=["LowPass-learn-tau", "HighPass"])
def test_autograd_forward_has_the_same_bits(make):
    """With autograd (per-block products of fresh operands) the output bits equal the no-grad path."""
    x = torch.randn(3 * F.LOWPASS_BLOCK + 9, 4, generator=torch.Generator().manual_seed(5))
    layer = make()
    with torch.no_grad():
        expected = layer(x)
    layer.reset_state()
    chunks = [layer(c) for c in x.split(13)]
    assert chunks[0].requires_grad
    torch.testing.assert_close(torch.cat(chunks), expected, rtol=0, atol=0)


def test_learnable_tau_gradient_matches_the_per_frame_recursion():
    """d loss / d tau through the blocks equals the gradient through the per-frame recursion."""
    x = torch.randn(150, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    layer = LowPass(6.0, n_stages=2, learn_tau=True, dtype=torch.float64)
    (layer(x) ** 2).sum().backward()
    tau = torch.tensor(6.0, dtype=torch.float64, requires_grad=True)
    (_per_frame(x, tau, 2) ** 2).sum().backward()
    torch.testing.assert_close(layer.tau.grad, tau.grad, rtol=1e-10, atol=0)


@pytest.mark.parametrize("dt", [None, 7, 40])
def test_non_finite_input_leaves_earlier_outputs_unchanged(dt):
    """inf or nan at frame t makes that channel's outputs non-finite from t on, and only from t on."""
    b = F.LOWPASS_BLOCK
    x = torch.randn(4 * b, 4, generator=torch.Generator().manual_seed(7))
    clean = LowPass(5.0, n_stages=2).run(x)
    x[b + 20, 1] = float("inf")
    x[2 * b + 3, 2] = float("nan")
    out = LowPass(5.0, n_stages=2).run(x, dt=dt)
    np.testing.assert_array_equal(out[:, [0, 3]], clean[:, [0, 3]])
    np.testing.assert_array_equal(out[: b + 20, 1], clean[: b + 20, 1])
    np.testing.assert_array_equal(out[: 2 * b + 3, 2], clean[: 2 * b + 3, 2])
    assert not np.isfinite(out[b + 20 :, 1]).any()
    assert not np.isfinite(out[2 * b + 3 :, 2]).any()


def test_per_channel_tau_keeps_the_per_frame_recursion():
    """One tau per channel runs frame by frame and leaves the block state empty."""
    layer = LowPass(np.array([2.0, 5.0]))
    out = layer.run(np.ones((10, 2), dtype=np.float32), dt=3, reset=True)
    assert layer.block_input is None and layer.block_fill is None
    ref = np.stack([_cascade64(np.ones(10), tau, 1) for tau in (2.0, 5.0)], 1)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
