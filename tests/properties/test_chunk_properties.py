"""Hypothesis: random shapes, parameters and unequal chunkings never break chunk invariance."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamreg.filters import Conv3d, GaussianSpatial, HighPass, LowPass, TemporalFIR
from streamreg.models import LN, Retina
from streamreg.testing import assert_chunk_invariant

pytestmark = pytest.mark.slow

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PADDING = st.sampled_from(["zeros", "replicate", "reflect", "circular"])


@st.composite
def partitions(draw, max_t=30):
    """A recording length and a random partition of it into chunks."""
    t = draw(st.integers(1, max_t))
    cuts = sorted(draw(st.sets(st.integers(1, t - 1), max_size=6))) if t > 1 else []
    bounds = [0, *cuts, t]
    return t, [b - a for a, b in itertools.pairwise(bounds)]


DTYPES = st.sampled_from([torch.float32, torch.float64])


def _input(t, frame, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((t, *frame), generator=g, dtype=dtype)


@SETTINGS
@given(part=partitions(), kt=st.integers(1, 6), kh=st.integers(1, 4), kw=st.integers(1, 4),
       cin=st.integers(1, 2), cout=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7),
       padding=PADDING, method=st.sampled_from(["direct", "fft"]), seed=st.integers(0, 10), dtype=DTYPES)
def test_conv3d(part, kt, kh, kw, cin, cout, h, w, padding, method, seed, dtype):
    """Conv3d over random kernels, channels, frames, padding and methods."""
    t, sizes = part
    torch.manual_seed(seed)
    conv = Conv3d((kt, kh, kw), cin, cout, padding_mode=padding, method=method, dtype=dtype)
    frame = (h, w) if cin == 1 else (cin, h, w)
    assert_chunk_invariant(conv, _input(t, frame, seed, dtype), dts=(1, max(1, kt - 1)), partitions=[sizes])


@SETTINGS
@given(part=partitions(), k=st.integers(1, 40), frame=st.lists(st.integers(1, 4), min_size=0, max_size=3),
       shared=st.booleans(), seed=st.integers(0, 10), dtype=DTYPES)
def test_temporal_fir(part, k, frame, shared, seed, dtype):
    """TemporalFIR with shared or per-channel kernels on frames of any rank."""
    t, sizes = part
    g = torch.Generator().manual_seed(seed)
    kernel = torch.randn((k,) if shared else (k, *frame), generator=g, dtype=dtype)
    fir = TemporalFIR(kernel, dtype=dtype)
    assert_chunk_invariant(fir, _input(t, frame, seed, dtype), dts=(1, 3), partitions=[sizes])


@SETTINGS
@given(part=partitions(), tau=st.floats(0.3, 50.0), n=st.integers(1, 3), high=st.booleans(),
       frame=st.lists(st.integers(1, 5), min_size=0, max_size=3), seed=st.integers(0, 10))
def test_recursive_filters(part, tau, n, high, frame, seed):
    """LowPass / HighPass cascades are bitwise exact for every chunking."""
    t, sizes = part
    layer = HighPass(tau, n, weight=0.9) if high else LowPass(tau, n)
    assert_chunk_invariant(layer, _input(t, frame, seed), dts=(1, 2), partitions=[sizes], exact=True)


@SETTINGS
@given(part=partitions(), sigma=st.floats(0.2, 3.0), padding=PADDING, h=st.integers(1, 9), w=st.integers(1, 9),
       lead=st.integers(0, 2), seed=st.integers(0, 10))
def test_gaussian_spatial(part, sigma, padding, h, w, lead, seed):
    """GaussianSpatial is bitwise exact whatever the number of frames per chunk."""
    t, sizes = part
    frame = (2,) * lead + (h, w)
    assert_chunk_invariant(GaussianSpatial(sigma, padding_mode=padding), _input(t, frame, seed), dts=(1, 4),
                           partitions=[sizes], exact=True)


@settings(max_examples=10, deadline=None)
@given(part=partitions(max_t=40), h=st.integers(2, 9), w=st.integers(2, 9), spikes=st.booleans(),
       seed=st.integers(0, 5))
def test_models(part, h, w, spikes, seed):
    """LN and Retina (rates or spikes) on random frame sizes and chunkings."""
    t, sizes = part
    x = _input(t, (h, w), seed).abs()
    torch.manual_seed(seed)
    assert_chunk_invariant(LN((4, 3, 3)), x, dts=(1, 3), partitions=[sizes])
    assert_chunk_invariant(Retina(spikes=spikes, seed=seed), x, dts=(1, 3), partitions=[sizes], exact=True)
