"""Edge cases of run(): failures leave nothing behind, casts are checked, flags are validated."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from streamreg import ChunkShapeError, Layer, OutputExistsError, Sequential
from streamreg.filters import LowPass, TemporalFIR
from tests.runner_models import read_output


class FailsAtFrame(Layer):
    """Passes frames through and raises once it reaches frame ``at``."""

    def __init__(self, at):
        super().__init__()
        self.at = at
        self.register_state("seen")

    def forward(self, x):
        seen = 0 if self.seen is None else int(self.seen)
        if seen + len(x) > self.at:
            msg = "boom"
            raise RuntimeError(msg)
        self.seen = torch.tensor(seen + len(x))
        return x * 1.0


def test_failed_run_keeps_every_completed_chunk(tmp_path):
    """An error mid-run leaves the chunks computed before it written and readable; a retry needs overwrite."""
    path = tmp_path / "out.h5"
    with h5py.File(path, "w") as f:
        f["keep"] = np.arange(3)
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    with pytest.raises(RuntimeError, match="boom"):
        FailsAtFrame(12).run(x, dt=5, output=f"{path}:/y")
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        assert sorted(f) == ["keep", "y"]
        np.testing.assert_array_equal(f["y"][:], x[:10])
    with pytest.raises(OutputExistsError):
        FailsAtFrame(100).run(x, dt=5, output=f"{path}:/y")
    out = FailsAtFrame(100).run(x, dt=5, output=f"{path}:/y", overwrite=True)
    np.testing.assert_array_equal(read_output(out), x)


def test_failure_on_the_first_chunk_leaves_no_dataset(tmp_path):
    """An error before any frame is written leaves the file as it was."""
    path = tmp_path / "out.h5"
    with h5py.File(path, "w") as f:
        f["keep"] = np.arange(3)
    with pytest.raises(RuntimeError, match="boom"):
        FailsAtFrame(2).run(np.ones((20, 3), dtype=np.float32), dt=5, output=f"{path}:/y")
    with h5py.File(path, "r") as f:
        assert list(f) == ["keep"]


def test_a_group_is_never_replaced(tmp_path):
    """An output path naming a group is refused, even with overwrite=True."""
    path = tmp_path / "g.h5"
    with h5py.File(path, "w") as f:
        f["acq/a"] = np.zeros(2)
    with pytest.raises(OutputExistsError, match="is a group, not a dataset"):
        LowPass(2.0).run(np.ones((4, 2), dtype=np.float32), output=f"{path}:/acq", overwrite=True)
    with h5py.File(path, "r") as f:
        assert "acq/a" in f


def test_lossy_output_dtype_is_refused():
    """A float output cannot be written silently into an integer array."""
    with pytest.raises(TypeError, match="cannot hold the layer's float32 output"):
        LowPass(3.0).run(np.ones((5, 3), dtype=np.float32), output=np.empty((5, 3), dtype=np.int64))


@pytest.mark.parametrize("budget", [0, "", "bogus", "0.5"])
def test_bad_max_memory_is_refused_even_with_dt(budget):
    """max_memory is validated whenever it is given."""
    with pytest.raises(ValueError, match="max_memory must be a positive number of bytes"):
        LowPass(3.0).run(np.ones((5, 3), dtype=np.float32), dt=2, max_memory=budget)


@pytest.mark.parametrize(("flag", "value"), [("progress", "no"), ("reset", 1), ("overwrite", "yes")])
def test_flags_must_be_booleans(flag, value):
    """progress, reset and overwrite accept only True or False."""
    with pytest.raises(TypeError, match=f"{flag} must be True or False; got"):
        LowPass(3.0).run(np.ones((5, 3), dtype=np.float32), **{flag: value})


def test_state_of_the_wrong_shape_is_refused():
    """set_state with a history of the wrong length fails on the next chunk instead of shifting the output."""
    fir = TemporalFIR([1.0, 0.0, 0.0])
    fir.set_state({"past_input": torch.zeros(5, 1)})
    with pytest.raises(ChunkShapeError, match=r"TemporalFIR.past_input has shape \(5, 1\) but this input needs"):
        fir.run(np.ones((8, 1), dtype=np.float32), reset=False)
    lp = LowPass(2.0)
    lp.set_state({"y_last": torch.zeros(3, 4), "block_input": None, "block_fill": None})
    with pytest.raises(ChunkShapeError, match=r"LowPass.y_last has shape \(3, 4\) but this input needs \(1, 4\)"):
        lp.run(np.ones((2, 4), dtype=np.float32), reset=False)


def test_big_endian_input_is_accepted(tmp_path):
    """Non-native byte order, common in HDF5 files, is converted."""
    x = np.arange(12, dtype=">f4").reshape(6, 2)
    expected = LowPass(2.0).run(x.astype("<f4"))
    np.testing.assert_array_equal(LowPass(2.0).run(x), expected)


def test_tau_must_fit_the_frame_and_be_numeric():
    """A tau that would reshape the frame, or is not numeric, is named."""
    with pytest.raises(ChunkShapeError, match=r"tau of shape \(4, 1\) does not broadcast to the input frame \(1, 3\)"):
        LowPass(np.ones((4, 1))).run(np.ones((10, 1, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="tau must be a real number or an array of real numbers; got None"):
        LowPass(None)


def test_in_place_modules_do_not_change_the_callers_input():
    """Chunks are copies: an in-place ReLU leaves the input array untouched."""
    x = np.linspace(-1, 1, 20, dtype=np.float32).reshape(10, 2)
    before = x.copy()
    Sequential(torch.nn.ReLU(inplace=True)).run(x, dt=3)
    np.testing.assert_array_equal(x, before)


def test_plain_torch_modules_claim_bitwise_only_when_safe():
    """chunk_exact is True for piecewise-linear activations, False for sigmoid-like ones."""
    assert Sequential(LowPass(2.0), torch.nn.ReLU()).chunk_exact
    assert not Sequential(LowPass(2.0), torch.nn.Sigmoid()).chunk_exact
    assert not Sequential(torch.nn.Linear(3, 2)).chunk_exact
    assert isinstance(Sequential(LowPass(1.0), torch.nn.ReLU())[1:], Sequential)


def test_check_finite_names_the_first_bad_input_frame():
    """run(check_finite=True) raises FloatingPointError naming the first NaN or inf frame, in any chunk."""
    from streamreg.filters import LowPass

    x = np.ones((30, 2), dtype=np.float32)
    x[17, 1] = np.nan
    x[25, 0] = np.inf
    with pytest.raises(FloatingPointError, match="input frame 17 holds a non-finite value"):
        LowPass(3.0).run(x, dt=4, check_finite=True)
    assert np.isnan(LowPass(3.0).run(x, dt=4)[29]).any()  # unchecked: the NaN spreads, as documented
