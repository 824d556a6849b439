"""The public test helpers fail on layers that break the law, so a passing check means something."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamreg import Layer
from streamreg.filters import TemporalFIR
from streamreg.testing import assert_chunk_invariant, assert_same_output


class ChunkMean(Layer):
    """Subtracts each chunk's own mean: the output depends on how the recording is cut."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0, keepdim=True)


class LyingDifference(Layer):
    """``y[t] = x[t] - x[t-1]``, exact across chunks through its state, but declares no history."""

    def __init__(self) -> None:
        super().__init__()
        self.register_state("last")

    @property
    def own_history(self) -> int:
        return 0  # a lie: it needs one past frame

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = torch.zeros_like(x[:1]) if self.last is None else self.last
        self.last = x[-1:].clone()
        return x - torch.cat([last, x[:-1]])


class HonestDifference(LyingDifference):
    """The same layer with its history declared."""

    @property
    def own_history(self) -> int:
        return 1


@pytest.fixture
def x():
    """A (40, 3) recording."""
    return np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)


def test_a_chunk_dependent_layer_fails_assert_chunk_invariant(x):
    """A layer whose output depends on the chunking is caught."""
    with pytest.raises(AssertionError, match=r"ChunkMean.run\(dt=1\)"):
        assert_chunk_invariant(ChunkMean(), x)


def test_an_under_declared_history_fails_assert_chunk_invariant(x):
    """A layer that uses more past frames than its history says is caught through run(start=, stop=)."""
    with pytest.raises(AssertionError, match=r"start=.*is history=0 enough"):
        assert_chunk_invariant(LyingDifference(), x)
    assert_chunk_invariant(HonestDifference(), x)  # the honest twin passes


def test_a_correct_layer_passes_and_returns_the_one_shot_output(x):
    """A bitwise FIR passes, and the returned output is that of a plain numpy convolution."""
    kernel = np.array([0.5, 0.3, 0.2], dtype=np.float32)
    out = assert_chunk_invariant(TemporalFIR(torch.from_numpy(kernel)), x)
    ref = np.stack([np.convolve(x[:, c], kernel)[: len(x)] for c in range(3)], axis=1)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_assert_same_output_fails_on_a_changed_value_or_shape():
    """Bitwise mode fails on one ulp; tolerance mode fails beyond its bound; shapes must match; NaNs pair up."""
    a = np.linspace(0, 1, 12, dtype=np.float32).reshape(4, 3)
    b = a.copy()
    b[2, 1] = np.nextafter(b[2, 1], np.float32(2))
    with pytest.raises(AssertionError, match=r"not bitwise equal.*index \(2, 1\)"):
        assert_same_output(b, a, True)
    assert_same_output(b, a, False)  # one ulp is within the tolerance
    b[2, 1] += 1e-3
    with pytest.raises(AssertionError, match="exceeds"):
        assert_same_output(b, a, False)
    with pytest.raises(AssertionError, match="shape"):
        assert_same_output(a[:3], a, True)
    c = a.copy()
    c[0, 0] = np.nan
    assert_same_output(c.copy(), c, True)
    with pytest.raises(AssertionError):
        assert_same_output(c, a, True)
