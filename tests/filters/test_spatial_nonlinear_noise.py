"""GaussianSpatial against scipy.ndimage; nonlinearities against numpy; BernoulliSpikes statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from streamreg.filters import (
    BernoulliSpikes,
    Elementwise,
    Exp,
    GaussianSpatial,
    Rectify,
    Sigmoid,
    Softplus,
    list_nonlinearities,
    make_nonlinearity,
)


@pytest.mark.parametrize(("mode", "scipy_mode"), [("replicate", "nearest"), ("zeros", "constant"),
                                                  ("reflect", "mirror"), ("circular", "wrap")])
@pytest.mark.parametrize("sigma", [0.7, 1.3, 2.5])
def test_gaussian_matches_scipy(mode, scipy_mode, sigma):
    """Each frame is blurred like scipy.ndimage.gaussian_filter with the same truncation."""
    x = np.random.default_rng(0).normal(size=(7, 13, 11))
    out = GaussianSpatial(sigma, padding_mode=mode).run(x, dt=2)
    ref = gaussian_filter(x, sigma=(0, sigma, sigma), mode=scipy_mode, truncate=3.0)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)


def test_gaussian_blurs_leading_channels_independently():
    """(T, C, H, W) input blurs each channel map on its own."""
    x = np.random.default_rng(1).normal(size=(4, 2, 8, 8))
    out = GaussianSpatial(1.0).run(x)
    ref = gaussian_filter(x, sigma=(0, 0, 1.0, 1.0), mode="nearest", truncate=3.0)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)


def test_gaussian_refuses_bad_sigma_and_ndim():
    """sigma must be positive; the input needs two spatial axes."""
    with pytest.raises(ValueError, match="sigma must be a positive finite number; got -1"):
        GaussianSpatial(-1)
    with pytest.raises(ValueError, match=r"\(T, \*lead, H, W\)"):
        GaussianSpatial(1.0).run(np.zeros((5, 3), dtype=np.float32))


def test_nonlinearities_match_numpy():
    """Rectify, Sigmoid, Exp and Softplus compute their formulas."""
    x = np.linspace(-3, 3, 61).reshape(61, 1)
    np.testing.assert_allclose(Rectify(0.5, 2.0).run(x), 2 * np.maximum(x - 0.5, 0), rtol=1e-6)
    np.testing.assert_allclose(Sigmoid(1.0, 2.0, 3.0).run(x), 3 / (1 + np.exp(-2 * (x - 1))), rtol=1e-6)
    np.testing.assert_allclose(Exp(0.5).run(x), 0.5 * np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(Softplus(2.0).run(x), np.log1p(np.exp(2 * x)) / 2, rtol=1e-5)
    np.testing.assert_allclose(Elementwise(torch.tanh).run(x), np.tanh(x), rtol=1e-6)


def test_nonlinearity_registry():
    """Names build layers; modules pass through; callables are wrapped; unknown names list the valid ones."""
    assert list_nonlinearities() == ["exp", "identity", "rectify", "sigmoid", "softplus"]
    assert isinstance(make_nonlinearity("rectify"), Rectify)
    relu = torch.nn.ReLU()
    assert make_nonlinearity(relu) is relu
    assert isinstance(make_nonlinearity(torch.abs), Elementwise)
    with pytest.raises(ValueError, match=r"Unknown nonlinearity 'relu'; available: \['exp'"):
        make_nonlinearity("relu")
    with pytest.raises(TypeError, match="nonlinearity must be a name"):
        make_nonlinearity(3)


def test_spikes_follow_the_rate_and_the_seed():
    """Spike frequency matches 1 - exp(-gain·x); the same seed repeats, another seed differs."""
    x = np.full((4000, 50), 0.3, dtype=np.float32)
    spikes = BernoulliSpikes(seed=1, gain=2.0).run(x, dt=333)
    p = 1 - np.exp(-0.6)
    assert set(np.unique(spikes)) == {0.0, 1.0}
    assert abs(spikes.mean() - p) < 5 * np.sqrt(p * (1 - p) / spikes.size)
    np.testing.assert_array_equal(spikes, BernoulliSpikes(seed=1, gain=2.0).run(x))
    assert not np.array_equal(spikes, BernoulliSpikes(seed=2, gain=2.0).run(x))
    assert BernoulliSpikes().run(-np.ones((10, 3), dtype=np.float32)).sum() == 0
