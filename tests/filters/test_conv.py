"""Conv3d against scipy.signal.convolve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import convolve

from streamreg import ChunkShapeError
from streamreg.filters import Conv3d


def _reference(x, w, mode="constant"):
    """Causal-in-time, same-size-in-space convolution of (T, H, W) x with (kt, kh, kw) w, float64."""
    kt, kh, kw = w.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x.astype(np.float64), ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw)), mode=mode)
    xp = np.pad(xp, ((kt - 1, 0), (0, 0), (0, 0)))  # zero history in time, whatever the spatial mode
    return convolve(xp, w.astype(np.float64), mode="valid")


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("size", [(1, 1, 1), (5, 3, 3), (4, 2, 5), (12, 7, 7)])
def test_conv3d_matches_scipy(method, size):
    """Zero padding in space, zero history in time, chunks shorter than the kernel."""
    rng = np.random.default_rng(sum(size))
    w = rng.normal(size=size)
    x = rng.normal(size=(40, 9, 8))
    conv = Conv3d(size, method=method, dtype=torch.float64)
    conv.set_weight(w)
    np.testing.assert_allclose(conv.run(x, dt=3), _reference(x, w), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("mode", "np_mode"), [("replicate", "edge"), ("reflect", "reflect"), ("circular", "wrap")])
def test_conv3d_padding_modes(mode, np_mode):
    """Spatial padding modes match numpy.pad's edge, reflect and wrap."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 5))
    x = rng.normal(size=(20, 6, 7))
    conv = Conv3d((3, 3, 5), padding_mode=mode, dtype=torch.float64)
    conv.set_weight(w)
    np.testing.assert_allclose(conv.run(x, dt=4), _reference(x, w, np_mode), rtol=1e-10, atol=1e-10)


def test_conv3d_channels_and_bias():
    """out[o] = sum_i conv(x[i], w[o, i]) + bias[o]."""
    rng = np.random.default_rng(1)
    conv = Conv3d((3, 3, 3), in_channels=2, out_channels=3, bias=True, dtype=torch.float64)
    w = conv.weight.detach().numpy()
    b = conv.bias.detach().numpy()
    x = rng.normal(size=(15, 2, 5, 5))
    ref = np.stack([sum(_reference(x[:, i], w[o, i]) for i in range(2)) + b[o] for o in range(3)], 1)
    np.testing.assert_allclose(conv.run(x, dt=2), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_conv3d_impulse_reproduces_the_kernel_in_place(method):
    """An impulse at (t, y, x) yields the kernel starting at frame t, centred on (y, x): no flip, no shift."""
    w = np.arange(1.0, 1 + 3 * 3 * 3).reshape(3, 3, 3)
    x = np.zeros((6, 9, 9))
    x[1, 4, 4] = 1
    conv = Conv3d((3, 3, 3), method=method)
    conv.set_weight(w)
    out = conv.run(x, dt=1)
    expected = np.zeros_like(out)
    expected[1:4, 3:6, 3:6] = w
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_set_weight_normalize_and_reshape():
    """normalize divides by the sum; a new shape replaces the kernel and resets the state."""
    conv = Conv3d((2, 1, 1))
    conv.set_weight(np.ones((2, 1, 1)), normalize=True)
    np.testing.assert_allclose(conv.weight.detach().numpy().ravel(), [0.5, 0.5])
    conv.run(np.ones((3, 2, 2)))
    conv.set_weight(np.ones((4, 3, 3)))
    assert conv.kernel_size == (4, 3, 3)
    assert conv.past_input is None
    assert conv.history == 3
    with pytest.raises(ValueError, match="sums to 0"):
        conv.set_weight(np.zeros((4, 3, 3)), normalize=True)
    with pytest.raises(ValueError, match=r"weight must have shape \(kt, kh, kw\)"):
        conv.set_weight(np.ones((2, 2)))


def test_conv3d_frame_checks():
    """A channel input needs (T, C, H, W); a bad kernel_size is named."""
    with pytest.raises(ChunkShapeError, match=r"\(T, 2, H, W\)"):
        Conv3d((2, 2, 2), in_channels=2).run(np.zeros((4, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="kernel_size must be an int or"):
        Conv3d((2, 2))
    with pytest.raises(ValueError, match="kernel_size must be a positive integer; got 0"):
        Conv3d((0, 2, 2))


def test_fft_kernel_spectra_follow_weight_changes():
    """The cached kernel spectrum is dropped when the weight changes in place or is replaced."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 8, 8)).astype(np.float32)
    conv = Conv3d((4, 3, 3), method="fft")
    conv.run(x, dt=7)
    with torch.no_grad():
        conv.weight.mul_(2.0)
    w = conv.weight.detach().numpy()[0, 0].astype(np.float64)
    np.testing.assert_allclose(conv.run(x, dt=7), _reference(x, w), rtol=1e-4, atol=1e-4)
    new = rng.normal(size=(4, 3, 3))
    conv.set_weight(new)
    np.testing.assert_allclose(conv.run(x, dt=7), _reference(x, new), rtol=1e-4, atol=1e-4)
    conv.set_weight(rng.normal(size=(2, 3, 3)))  # a new shape replaces the Parameter
    w = conv.weight.detach().numpy()[0, 0].astype(np.float64)
    np.testing.assert_allclose(conv.run(x, dt=7), _reference(x, w), rtol=1e-4, atol=1e-4)
