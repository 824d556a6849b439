"""LN and LNLN against scipy convolution plus numpy nonlinearities."""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import convolve

from streamreg.models import LN, LNLN


def _conv(x, w):
    kt, kh, kw = w.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x, ((kt - 1, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw)))
    return convolve(xp, w, mode="valid")


def test_ln_is_convolution_then_rectification():
    """LN output = max(conv(x, kernel), 0) for a known kernel."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 3, 3))
    x = rng.normal(size=(50, 10, 10))
    ln = LN((6, 3, 3), dtype=torch.float64)
    ln.conv.set_weight(w)
    np.testing.assert_allclose(ln.run(x, dt=4), np.maximum(_conv(x, w), 0), rtol=1e-10, atol=1e-10)


def test_ln_accepts_any_nonlinearity():
    """A torch module or a function replaces the rectifier."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(2, 1, 1))
    x = rng.normal(size=(9, 3, 3))
    ln = LN((2, 1, 1), torch.nn.Tanh(), dtype=torch.float64)
    ln.conv.set_weight(w)
    np.testing.assert_allclose(ln.run(x, dt=2), np.tanh(_conv(x, w)), rtol=1e-10)


def test_lnln_cascades_two_stages_with_hidden_channels():
    """LNLN = rect(sum_c conv(rect(conv(x, w1[c])), w2[c]))."""
    rng = np.random.default_rng(2)
    model = LNLN((3, 3, 3), (2, 3, 3), hidden_channels=2, dtype=torch.float64)
    w1 = model.conv1.weight.detach().numpy()[:, 0]
    w2 = model.conv2.weight.detach().numpy()[0]
    x = rng.normal(size=(20, 6, 6))
    hidden = [np.maximum(_conv(x, w1[c]), 0) for c in range(2)]
    ref = np.maximum(sum(_conv(hidden[c], w2[c]) for c in range(2)), 0)
    np.testing.assert_allclose(model.run(x, dt=3), ref, rtol=1e-10, atol=1e-10)
    assert model.history == 3


def test_default_models_build_and_run():
    """LN() and LNLN() run out of the box on (T, H, W)."""
    x = np.random.default_rng(3).random((30, 12, 12)).astype(np.float32)
    assert LN().run(x, dt=7).shape == (30, 12, 12)
    assert LNLN().run(x, dt=7).shape == (30, 12, 12)
