"""The chunk-invariance law and the state contract, checked for every exported Layer."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from streamreg.testing import assert_chunk_invariant, assert_same_output, run_chunks
from tests.layer_cases import CASES, T


def _dts(case):
    dts = {1, 2, 3, 7, T + 5}  # 7 is prime; T + 5 exceeds the recording
    if case.kernel_frames > 2:
        dts.add(case.kernel_frames - 1)  # smaller than the kernel
    return sorted(dts)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_chunked_run_equals_one_shot(case):
    """run(x, dt=k) equals the one-shot run for dt = 1, 2, 3, a prime, < kernel, > T, and ragged chunks."""
    layer = case.build()
    x = case.make_input()
    expected = assert_chunk_invariant(layer, x, dts=_dts(case), partitions=[(1, 12, 28), (20, 1, 1, 19)])
    layer.reset_state()
    with torch.no_grad():
        direct = layer(x.to(layer.compute_dtype(x.dtype))).numpy()
    np.testing.assert_array_equal(expected, direct)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_float64(case):
    """.to(torch.float64) gives float64 outputs that are chunk invariant too."""
    layer = case.build().to(torch.float64)
    x = case.make_input(dtype=torch.float64)
    out = assert_chunk_invariant(layer, x, dts=(1, 5))
    assert out.dtype == np.float64


@pytest.mark.parametrize("case", CASES, ids=str)
def test_reset_state_reproduces_first_output(case):
    """After reset_state() the same chunk gives the same output as the first time."""
    layer = case.build()
    x = case.make_input()
    with torch.no_grad():
        first = layer(x[:10]).clone()
        layer(x[10:20])
        layer.reset_state()
        again = layer(x[:10])
    torch.testing.assert_close(again, first, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_state_round_trips_mid_stream(case):
    """A state saved mid-recording and loaded into a fresh copy continues the recording exactly."""
    layer = case.build()
    x = case.make_input()
    expected = layer.run(x)
    layer.reset_state()
    with torch.no_grad():
        layer(x[:17])
    buffer = io.BytesIO()
    torch.save(layer.get_state(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    fresh = case.build()
    fresh.load_state_dict(layer.state_dict())
    fresh.set_state(state)
    rest = fresh.run(x[17:], dt=5, reset=False)
    assert_same_output(rest, expected[17:], layer.chunk_exact)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_reset_false_continues_the_recording(case):
    """run(reset=False) on the second part continues where the first run stopped."""
    layer = case.build()
    x = case.make_input()
    expected = layer.run(x)
    first = layer.run(x[:13], dt=4)
    second = layer.run(x[13:], dt=6, reset=False)
    assert_same_output(np.concatenate([first, second]), expected, layer.chunk_exact)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_empty_input_gives_empty_output_of_the_right_frame(case):
    """T = 0 returns an empty output whose frame shape is the layer's output frame."""
    layer = case.build()
    x = case.make_input()
    full = layer.run(x[:3])
    empty = layer.run(x[:0], dt=4)
    assert empty.shape == (0, *full.shape[1:])
    assert empty.dtype == full.dtype


@pytest.mark.parametrize("case", CASES, ids=str)
def test_finite_history_is_enough(case):
    """For a finite history h, starting h frames early from a fresh state reproduces later frames."""
    layer = case.build()
    h = layer.history
    t0 = 20
    if h is None or h > t0 or "spikes" in case.name.lower():
        pytest.skip("unbounded or long history, or a random stream")
    x = case.make_input()
    expected = layer.run(x)
    part = layer.run(x[t0 - h :])
    np.testing.assert_allclose(part[h:], expected[t0:], rtol=0, atol=1e-5 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_run_leaves_no_autograd_graph(case):
    """run() keeps no autograd graph in the state, even for layers with trainable parameters."""
    layer = case.build()
    layer.run(case.make_input(), dt=7)
    for name, buf in layer.named_buffers():
        assert buf.grad_fn is None, name


@pytest.mark.parametrize("case", CASES, ids=str)
def test_repr_and_history(case):
    """repr() works and history is None or a non-negative int."""
    layer = case.build()
    assert type(layer).__name__ in repr(layer)
    assert layer.history is None or (isinstance(layer.history, int) and layer.history >= 0)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_unequal_partition_matches_dt_run(case):
    """Feeding forward() directly with unequal chunks equals run() with equal ones."""
    layer = case.build()
    x = case.make_input()
    a = run_chunks(layer, x, [5, 1, 30, 5])
    b = layer.run(x, dt=5)
    assert_same_output(a, b, layer.chunk_exact)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_on_an_empty_chunk(case):
    """Calling the layer on a 0-frame chunk returns 0 frames and leaves the state usable."""
    layer = case.build()
    x = case.make_input()
    expected = layer.run(x)
    layer.reset_state()
    with torch.no_grad():
        first = layer(x[:10])
        empty = layer(x[:0])
        rest = layer(x[10:])
    assert empty.shape == (0, *first.shape[1:])
    assert_same_output(torch.cat([first, rest]).numpy(), expected, layer.chunk_exact)
