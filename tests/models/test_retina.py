"""Retina stages against a plain float64 numpy/scipy implementation of the same equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.signal import lfilter

from streamreg.models import OPL, Bipolar, GanglionInput, Retina


def _lowpass(x, tau):
    a = np.exp(-1.0 / tau)
    return lfilter([1 - a], [1, -a], x, axis=0)


def _blur(x, sigma):
    return gaussian_filter(x, sigma=(0, sigma, sigma), mode="nearest", truncate=3.0)


def test_opl_matches_reference():
    """OPL = lambda·(C - w·S) with C and S built from scipy filters."""
    x = np.random.default_rng(0).random((200, 9, 9))
    opl = OPL(frame_ms=2.0).to(torch.float64)
    w_undershoot = opl.undershoot.weight.item()  # 0.8 rounded to float32, as the model holds it
    c = _lowpass(_blur(x, 1.0), 10.0 / 2)
    c = c - w_undershoot * _lowpass(c, 100.0 / 2)
    s = _lowpass(_blur(c, 3.0), 4.0 / 2)
    np.testing.assert_allclose(opl.run(x, dt=13), 10.0 * (c - 1.0 * s), rtol=1e-9, atol=1e-9)


def test_bipolar_matches_a_plain_loop():
    """Contrast gain control equals a per-frame numpy loop of the documented update."""
    drive = 50 * np.random.default_rng(1).normal(size=(120, 7, 8))
    h, g0, lam, a, sigma = 1e-3, 5.0, 100.0, np.exp(-1.0 / 5.0), 2.0
    v, e, ref = np.zeros((7, 8)), np.full((7, 8), g0), []
    for i_t in drive:
        g = gaussian_filter(e, sigma, mode="nearest", truncate=3.0)
        v = (v + h * i_t) / (1 + h * g)
        e = a * e + (1 - a) * (g0 + lam * v**2)
        ref.append(v)
    out = Bipolar().to(torch.float64).run(drive, dt=11)
    np.testing.assert_allclose(out, np.array(ref), rtol=1e-9, atol=1e-12)


def test_ganglion_matches_reference():
    """ON/OFF rates = N(±G*(V - w·E(V))) with VirtualRetina's rectifier."""
    v = np.random.default_rng(2).normal(size=(80, 6, 6))
    ganglion = GanglionInput().to(torch.float64)
    u = _blur(v - ganglion.transient.weight.item() * _lowpass(v, 20.0), 1.0)

    def rect(z):
        return np.where(z < 0, 80 / (1 - 100 * z / 80), 80 + 100 * z)

    out = ganglion.run(v, dt=9)
    np.testing.assert_allclose(out, np.stack([rect(u), rect(-u)], 1), rtol=1e-9, atol=1e-9)


def test_retina_is_the_composition_of_its_stages():
    """Retina() = GanglionInput(Bipolar(OPL(x))) with default settings; rates are positive."""
    x = np.random.default_rng(3).random((60, 10, 10)).astype(np.float32)
    stages = OPL().run(x)
    stages = GanglionInput().run(Bipolar().run(stages))
    out = Retina().run(x, dt=7)
    np.testing.assert_array_equal(out, stages)
    assert out.shape == (60, 2, 10, 10)
    assert (out > 0).all()


def test_retina_spikes_are_seeded_and_chunk_invariant():
    """Spikes depend on the seed only, not on the chunking."""
    x = np.random.default_rng(4).random((100, 8, 8)).astype(np.float32)
    a = Retina(spikes=True, seed=7).run(x, dt=9)
    np.testing.assert_array_equal(a, Retina(spikes=True, seed=7).run(x))
    assert not np.array_equal(a, Retina(spikes=True, seed=8).run(x))
    assert set(np.unique(a)) <= {0.0, 1.0}


def test_retina_accepts_stage_settings_and_refuses_bad_ones():
    """Stage keyword dicts reach the stages; a bad value names the argument."""
    r = Retina(opl={"sigma_center": 2.0}, ganglion={"i0": 50.0})
    assert r.opl.center_blur.sigma == 2.0
    assert r.ganglion.i0 == 50.0
    with pytest.raises(ValueError, match="frame_ms must be a positive finite number; got 0"):
        Retina(frame_ms=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        Retina(opl={"sigma": 1.0})


def test_internal_blocks_do_not_change_the_result(monkeypatch):
    """Processing a long chunk in internal blocks of frames gives the same bits as one pass."""
    import streamreg.models.retina as retina_module

    x = np.random.default_rng(5).random((50, 12, 12)).astype(np.float32)
    whole = Retina(spikes=True).run(x)
    monkeypatch.setattr(retina_module, "_BLOCK_ELEMENTS", 7 * 144)  # blocks of 7 frames
    np.testing.assert_array_equal(Retina(spikes=True).run(x), whole)
    np.testing.assert_array_equal(Retina(spikes=True).run(x, dt=20), whole)
