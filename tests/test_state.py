"""get_state / set_state: structure, strictness, and history bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamreg import Layer, Sequential
from streamreg.filters import Conv3d, LowPass, TemporalFIR
from streamreg.models import Retina


def test_state_is_nested_by_child_name():
    """Own state by name, children's under their attribute names; None while fresh."""
    model = Sequential(LowPass(2.0, n_stages=2), torch.nn.ReLU(), TemporalFIR(torch.ones(3)))
    assert model.get_state() == {"0": {"y_last": None, "block_input": None, "block_fill": None},
                                 "2": {"past_input": None}}
    model.run(np.ones((5, 4), dtype=np.float32))
    state = model.get_state()
    assert state["0"]["y_last"].shape == (2, 4)
    assert state["2"]["past_input"].shape == (2, 4)


def test_get_state_returns_copies():
    """Changing a returned state does not change the layer."""
    lp = LowPass(2.0)
    lp.run(np.ones((3, 2), dtype=np.float32))
    state = lp.get_state()
    state["y_last"] += 100
    assert torch.all(lp.y_last < 2)


def test_set_state_refuses_unknown_and_missing_keys():
    """No silently ignored key: unknown and missing keys are both named."""
    r = Retina()
    state = r.get_state()
    state["bogus"] = None
    with pytest.raises(KeyError, match=r"unknown keys \['bogus'\]"):
        r.set_state(state)
    del state["bogus"]
    del state["opl"]
    with pytest.raises(KeyError, match=r"missing keys \['opl'\]"):
        r.set_state(state)
    with pytest.raises(TypeError, match=r"state\['y_last'\] must be a tensor or None; got list"):
        LowPass(1.0).set_state({"y_last": [1.0], "block_input": None, "block_fill": None})


def test_custom_layer_gets_state_machinery():
    """A user Layer registering state gets reset, get/set_state and the chunk-invariance check."""
    from streamreg.testing import assert_chunk_invariant

    class RunningSum(Layer):
        def __init__(self):
            super().__init__()
            self.register_state("total")

        @property
        def own_history(self):
            return None

        def forward(self, x):
            total = self.total if self.total is not None else x.new_zeros(x.shape[1:])
            y = torch.cumsum(x, 0) + total
            self.total = y[-1].clone() if len(y) else total
            return y

    layer = RunningSum()
    x = torch.arange(20.0).reshape(10, 2)
    out = assert_chunk_invariant(layer, x, dts=(1, 3), exact=False)
    np.testing.assert_allclose(out, np.cumsum(x.numpy(), 0))
    assert layer.history is None
    assert Sequential(layer, Conv3d((2, 1, 1))).history is None


def test_history_sums_over_a_chain():
    """Chained FIR histories add up; any recursive stage makes the history unbounded."""
    assert Sequential(TemporalFIR(torch.ones(4)), TemporalFIR(torch.ones(6))).history == 8
    assert Conv3d((7, 3, 3)).history == 6
    assert LowPass(3.0).history is None
