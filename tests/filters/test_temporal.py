"""Temporal filters against scipy.signal.lfilter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from streamreg.filters import HighPass, LowPass, TemporalFIR


def _lowpass_reference(x, tau, n_stages):
    a = np.exp(-1.0 / np.asarray(tau, dtype=np.float64))
    y = x.astype(np.float64)
    for _ in range(n_stages):
        if np.ndim(a) == 0:
            y = lfilter([1 - a], [1, -a], y, axis=0)
        else:
            y = np.stack([lfilter([1 - ai], [1, -ai], y[:, i]) for i, ai in enumerate(a)], 1)
    return y


@pytest.mark.parametrize(("tau", "n_stages"), [(1.0, 1), (7.5, 1), (3.0, 3)])
def test_lowpass_matches_lfilter(tau, n_stages):
    """LowPass equals a cascade of first-order scipy IIR filters, in chunks too."""
    x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float64)
    out = LowPass(tau, n_stages, dtype=torch.float64).run(x, dt=17)
    np.testing.assert_allclose(out, _lowpass_reference(x, tau, n_stages), rtol=1e-12, atol=1e-12)


def test_lowpass_per_channel_tau():
    """An array tau gives each channel its own time constant."""
    tau = np.array([1.0, 4.0, 20.0])
    x = np.random.default_rng(1).normal(size=(200, 3))
    out = LowPass(tau, dtype=torch.float64).run(x, dt=9)
    np.testing.assert_allclose(out, _lowpass_reference(x, tau, 1), rtol=1e-12, atol=1e-12)


def test_lowpass_step_response_has_time_constant_tau():
    """A unit step reaches 1 - exp(-(t+1)/tau) (unit DC gain)."""
    tau = 10.0
    out = LowPass(tau, dtype=torch.float64).run(np.ones((50, 1)))
    np.testing.assert_allclose(out[:, 0], 1 - np.exp(-np.arange(1, 51) / tau), rtol=1e-12)


def test_highpass_is_input_minus_weighted_lowpass():
    """HighPass(tau, weight) = x - weight * LowPass(tau)(x)."""
    x = np.random.default_rng(2).normal(size=(120, 2, 3))
    out = HighPass(5.0, weight=0.7, dtype=torch.float64).run(x, dt=11)
    ref = x - 0.7 * _lowpass_reference(x.reshape(120, -1), 5.0, 1).reshape(x.shape)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tau", [0, -1.0, np.inf, np.array([1.0, -2.0])])
def test_lowpass_refuses_bad_tau(tau):
    """tau must be positive and finite."""
    with pytest.raises(ValueError, match="tau must be a positive finite time constant in frames"):
        LowPass(tau)


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("k", [1, 5, 64])
def test_fir_shared_kernel_matches_lfilter(method, k):
    """A shared kernel filters every channel like scipy's FIR lfilter, in chunks shorter than the kernel."""
    rng = np.random.default_rng(k)
    kernel = rng.normal(size=k)
    x = rng.normal(size=(257, 3, 2))
    out = TemporalFIR(kernel, method=method, dtype=torch.float64).run(x, dt=max(1, k // 2))
    np.testing.assert_allclose(out, lfilter(kernel, [1.0], x, axis=0), rtol=1e-10, atol=1e-10)


def test_fir_per_channel_kernel_matches_lfilter():
    """A (K, C) kernel filters channel c with kernel[:, c]."""
    rng = np.random.default_rng(7)
    kernel = rng.normal(size=(6, 3))
    x = rng.normal(size=(90, 3))
    out = TemporalFIR(kernel, dtype=torch.float64).run(x, dt=4)
    ref = np.stack([lfilter(kernel[:, c], [1.0], x[:, c]) for c in range(3)], 1)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_fir_impulse_response_is_the_kernel():
    """An impulse at t produces kernel[0], kernel[1], ... at t, t+1, ... (causal, not flipped)."""
    kernel = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    x = np.zeros((12, 1))
    x[3] = 1
    out = TemporalFIR(kernel).run(x, dt=2)
    np.testing.assert_array_equal(out[:, 0], np.r_[np.zeros(3), kernel, np.zeros(4)])


def test_fir_auto_method_and_history():
    """method='auto' picks FFT for long kernels; history is K - 1."""
    from streamreg.filters.temporal import FIR_FFT_MIN_TAPS

    short, long = TemporalFIR(np.ones(8)), TemporalFIR(np.ones(FIR_FFT_MIN_TAPS))
    assert (short.chunk_exact, long.chunk_exact) == (True, False)
    assert (short.history, long.history) == (7, FIR_FFT_MIN_TAPS - 1)


def test_fir_refuses_bad_kernel():
    """Empty kernels and bad methods raise errors naming the argument."""
    with pytest.raises(ValueError, match=r"kernel must have shape \(K,\)"):
        TemporalFIR(np.array(2.0))
    with pytest.raises(ValueError, match=r"method must be one of \['auto', 'direct', 'fft'\]; got 'fast'"):
        TemporalFIR(np.ones(3), method="fast")


def test_fir_direct_blocks_long_inputs_with_the_same_bits():
    """A one-shot input longer than the internal block (and one frame past it) equals its chunked run bitwise."""
    from streamreg.functional import _FIR_BLOCK_ELEMENTS

    block = _FIR_BLOCK_ELEMENTS // 256
    x = torch.randn(2 * block + 1, 16, 16, generator=torch.Generator().manual_seed(8))
    fir = TemporalFIR(torch.randn(20, generator=torch.Generator().manual_seed(9)), method="direct")
    one_shot = fir.run(x)
    for dt in (19, block, block + 1, 1000):
        np.testing.assert_array_equal(fir.run(x, dt=dt), one_shot)
    k = fir.kernel.detach().double().numpy()
    np.testing.assert_allclose(one_shot, lfilter(k, [1.0], x.double().numpy(), axis=0), rtol=0, atol=1e-5)


def test_fir_autograd_forward_has_the_same_bits_as_no_grad():
    """The blocked direct path gives the same bits with and without autograd."""
    from streamreg.functional import _FIR_BLOCK_ELEMENTS

    x = torch.randn(_FIR_BLOCK_ELEMENTS // 4 + 3, 4, generator=torch.Generator().manual_seed(10))
    fir = TemporalFIR(torch.randn(12, 4, generator=torch.Generator().manual_seed(11)))
    with torch.no_grad():
        expected = fir(x)
    fir.reset_state()
    y = fir(x)
    assert y.requires_grad
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


@pytest.mark.parametrize("shared", [True, False])
def test_fir_fft_long_input_matches_lfilter_and_follows_kernel_changes(shared):
    """Several overlap-save blocks match scipy; changing the kernel in place empties the spectrum cache."""
    rng = np.random.default_rng(12)
    k = rng.normal(size=(600,) if shared else (600, 3))
    x = rng.normal(size=(9000, 3))
    fir = TemporalFIR(k, method="fft", dtype=torch.float64)

    def reference(kernel):
        kk = np.broadcast_to(kernel.reshape(600, -1), (600, 3))
        return np.stack([lfilter(kk[:, c], [1.0], x[:, c]) for c in range(3)], 1)

    for dt in (None, 700):
        np.testing.assert_allclose(fir.run(x, dt=dt), reference(k), rtol=0, atol=1e-9)
    with torch.no_grad():
        fir.kernel.mul_(2.0)
    np.testing.assert_allclose(fir.run(x, dt=700), reference(2 * k), rtol=0, atol=2e-9)


def test_parameters_do_not_share_memory_with_the_callers_arrays():
    """An in-place update of kernel or tau (an optimizer step, say) leaves the caller's array alone."""
    kernel, tau = np.ones(4), np.array([2.0, 3.0])
    fir, lp = TemporalFIR(kernel, dtype=torch.float64), LowPass(tau, learn_tau=True, dtype=torch.float64)
    with torch.no_grad():
        fir.kernel.mul_(5.0)
        lp.tau.add_(1.0)
    np.testing.assert_array_equal(kernel, np.ones(4))
    np.testing.assert_array_equal(tau, [2.0, 3.0])
