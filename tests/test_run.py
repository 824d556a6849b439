"""Layer.run(): input and output forms, chunk planning, progress, and bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from streamreg import ChunkShapeError, DatasetNotFoundError, OutputExistsError, Sequential
from streamreg.filters import Conv3d, LowPass, TemporalFIR
from streamreg.models import LN


@pytest.fixture
def model():
    """A small FIR model with a known kernel."""
    return TemporalFIR(torch.tensor([0.5, 0.3, 0.2]))


def _reference(x):
    """Independent reference for the model fixture: numpy causal convolution per channel."""
    k = np.array([0.5, 0.3, 0.2], dtype=np.float64)
    return np.stack([np.convolve(x[:, c].astype(np.float64), k)[: len(x)] for c in range(x.shape[1])], 1)


def _write(path, name, data, **kwargs):
    with h5py.File(path, "a") as f:
        f.create_dataset(name, data=data, **kwargs)


def test_numpy_tensor_and_hdf5_inputs_agree(model, h5_path):
    """A numpy array, a tensor, an h5py.Dataset and a 'file.h5:/x' string give the same output."""
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    _write(h5_path, "group/x", x)
    expected = _reference(x)
    outs = [model.run(x, dt=7), model.run(torch.from_numpy(x), dt=7), model.run(f"{h5_path}:/group/x", dt=7)]
    with h5py.File(h5_path, "r") as f:
        outs.append(model.run(f["group/x"], dt=7))
    for out in outs:
        assert isinstance(out, np.ndarray)
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_integer_input_is_cast_to_the_model_dtype(model):
    """uint8 video is accepted and computed in float32."""
    x = np.arange(60, dtype=np.uint8).reshape(20, 3)
    out = model.run(x, dt=6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _reference(x), rtol=1e-6)


def test_output_string_creates_a_resizable_dataset(model, h5_path):
    """output='out.h5:/y' writes a (T, *frame) dataset resizable along time, closes the file, returns the string."""
    x = np.random.default_rng(1).normal(size=(33, 2)).astype(np.float32)
    result = model.run(x, dt=8, output=f"{h5_path}:/results/y")
    assert result == f"{h5_path}:/results/y"
    with h5py.File(h5_path, "r+") as f:  # closed by the run: opens read-write again
        ds = f["results/y"]
        assert ds.shape == (33, 2)
        assert ds.maxshape == (None, 2)
        np.testing.assert_allclose(ds[()], _reference(x), rtol=1e-6, atol=1e-6)


def test_input_and_output_in_the_same_file(model, h5_path):
    """A run may read and write one HDF5 file."""
    x = np.random.default_rng(2).normal(size=(21, 3)).astype(np.float32)
    _write(h5_path, "x", x)
    model.run(f"{h5_path}:/x", dt=4, output=f"{h5_path}:/y")
    with h5py.File(h5_path, "r") as f:
        np.testing.assert_allclose(f["y"][()], _reference(x), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(f["x"][()], x)


def test_output_group_and_existing_dataset(model, h5_path):
    """A group gets a dataset named 'output'; an empty resizable dataset is filled in place."""
    x = np.ones((10, 2), dtype=np.float32)
    with h5py.File(h5_path, "w") as f:
        model.run(x, dt=3, output=f.create_group("g"))
        np.testing.assert_allclose(f["g/output"][()], _reference(x), rtol=1e-6)
        empty = f.create_dataset("e", shape=(0, 2), maxshape=(None, 2), dtype="f4")
        model.run(x, dt=3, output=empty)
        assert f["e"].shape == (10, 2)
        np.testing.assert_allclose(f["e"][()], _reference(x), rtol=1e-6)


def test_existing_output_is_refused_unless_overwrite(model, h5_path):
    """An existing output dataset raises OutputExistsError; overwrite=True replaces it."""
    x = np.ones((5, 2), dtype=np.float32)
    _write(h5_path, "y", np.zeros((3, 3)))
    with pytest.raises(OutputExistsError, match=r"'/y'.*overwrite=True"):
        model.run(x, output=f"{h5_path}:/y")
    with h5py.File(h5_path, "r") as f:
        assert f["y"].shape == (3, 3)  # untouched
    model.run(x, output=f"{h5_path}:/y", overwrite=True)
    with h5py.File(h5_path, "r") as f:
        assert f["y"].shape == (5, 2)
    with h5py.File(h5_path, "a") as f, pytest.raises(OutputExistsError, match="already holds 5 frames"):
        model.run(x, output=f["y"])


def test_numpy_output_is_filled_in_place(model):
    """A preallocated numpy array receives the output."""
    x = np.ones((6, 2), dtype=np.float32)
    out = np.full((6, 2), np.nan, dtype=np.float32)
    assert model.run(x, dt=4, output=out) is out
    np.testing.assert_allclose(out, _reference(x), rtol=1e-6)
    with pytest.raises(ChunkShapeError, match=r"output array has shape \(5, 2\)"):
        model.run(x, output=np.empty((5, 2), dtype=np.float32))


def test_missing_file_and_dataset_are_named(model, h5_path, tmp_path):
    """A missing file names the path; a missing dataset lists what the file holds."""
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        model.run(f"{tmp_path / 'nothere.h5'}:/x")
    _write(h5_path, "a/b", np.zeros((3, 2)))
    _write(h5_path, "c", np.zeros((3, 2)))
    with pytest.raises(DatasetNotFoundError, match=r"'/x' does not exist.*holds /a/b, /c") as info:
        model.run(f"{h5_path}:/x")
    assert isinstance(info.value, KeyError)
    with pytest.raises(ValueError, match="form 'file.h5:/dataset'"):
        model.run(str(h5_path))


def test_failed_run_leaves_no_new_file(tmp_path):
    """An error on the first chunk deletes the output file the run created."""
    out = tmp_path / "out.h5"
    with pytest.raises(ChunkShapeError):
        Conv3d((3, 3, 3)).run(np.zeros((5, 4), dtype=np.float32), output=f"{out}:/y")
    assert not out.exists()


def test_nwb_timeseries_group_stands_for_its_data(model, h5_path):
    """An NWB TimeSeries group path reads its 'data' dataset."""
    x = np.random.default_rng(3).normal(size=(12, 2)).astype(np.float32)
    with h5py.File(h5_path, "w") as f:
        ts = f.create_group("acquisition/stim")
        ts.attrs["neurodata_type"] = "TimeSeries"
        ts.create_dataset("data", data=x)
        ts.create_dataset("timestamps", data=np.arange(12.0))
    np.testing.assert_allclose(model.run(f"{h5_path}:/acquisition/stim", dt=5), _reference(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dt", [0, -3])
def test_non_positive_dt_is_refused(model, dt):
    """dt <= 0 raises ValueError naming dt and the value."""
    with pytest.raises(ValueError, match=rf"dt must be a positive integer .*got {dt}\."):
        model.run(np.zeros((4, 2), dtype=np.float32), dt=dt)


@pytest.mark.parametrize("dt", [2.0, True, "10"])
def test_non_integer_dt_is_refused(model, dt):
    """A float, bool or string dt raises TypeError naming dt and the value."""
    with pytest.raises(TypeError, match=r"dt must be a positive integer number of frames or None; got"):
        model.run(np.zeros((4, 2), dtype=np.float32), dt=dt)


def test_wrong_ndim_and_frame_are_refused():
    """Wrong ndim or frame shape raises ChunkShapeError naming the expected shape and the actual one."""
    with pytest.raises(ChunkShapeError, match=r"input must have shape \(T, H, W\) with time on axis 0; got \(5, 4\)"):
        LN((3, 3, 3)).run(np.zeros((5, 4), dtype=np.float32))
    fir = TemporalFIR(np.ones((3, 4)))
    with pytest.raises(ChunkShapeError, match=r"must have shape \(T, 4\).*got \(6, 5\)"):
        fir.run(np.zeros((6, 5), dtype=np.float32))
    with pytest.raises(ChunkShapeError, match="0-d"):
        fir.run(np.array(3.0, dtype=np.float32))


def test_frame_change_without_reset_is_refused():
    """Continuing with another frame shape asks for reset_state()."""
    lp = LowPass(3.0)
    lp.run(np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ChunkShapeError, match=r"reset_state\(\)"):
        lp.run(np.zeros((4, 5), dtype=np.float32), reset=False)


@pytest.mark.parametrize("data", [np.array([["a"], ["b"]]), np.zeros((3, 2), dtype=complex)])
def test_non_numeric_dtype_is_refused(model, data):
    """String and complex inputs raise TypeError naming the dtype."""
    with pytest.raises(TypeError, match=r"input must have a numeric dtype .* got "):
        model.run(data)


def test_unsupported_input_and_output_types(model):
    """Other input and output objects raise TypeError listing the accepted forms."""
    with pytest.raises(TypeError, match="input must be a numpy array, a torch tensor"):
        model.run([[1.0, 2.0]])
    with pytest.raises(TypeError, match="output must be None, a numpy array"):
        model.run(np.zeros((3, 2), dtype=np.float32), output=5)


def test_max_memory_plans_dt_and_keeps_the_result(model):
    """max_memory picks a chunk length that fits the budget, and the output is unchanged."""
    from streamreg.planning import frame_cost, plan_dt

    x = np.random.default_rng(4).normal(size=(200, 8)).astype(np.float32)
    cost = frame_cost(model, (8,), torch.float32)
    assert cost >= 8 * 4
    assert plan_dt(model, (8,), 10 * cost) == 10
    np.testing.assert_allclose(model.run(x, max_memory=10 * cost), _reference(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.run(x, max_memory="1KB"), _reference(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("text", "expected"), [("512MB", 512 * 10**6), ("2GiB", 2 * 2**30), ("1.5 kB", 1500),
                                                (4096, 4096), ("3M", 3 * 2**20)])
def test_parse_bytes(text, expected):
    """Memory budgets parse with decimal and binary units."""
    from streamreg import parse_bytes

    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["12 parsecs", "-1MB", 0, "", True])
def test_parse_bytes_refuses_nonsense(bad):
    """A malformed budget names max_memory and the value."""
    from streamreg import parse_bytes

    with pytest.raises(ValueError, match="max_memory must be a positive number of bytes"):
        parse_bytes(bad)


def test_progress_bar_is_shown_on_request(model, capsys):
    """progress=True draws a tqdm bar on stderr; progress=False draws nothing."""
    x = np.zeros((40, 2), dtype=np.float32)
    model.run(x, dt=5, progress=True)
    assert "40/40" in capsys.readouterr().err
    model.run(x, dt=5, progress=False)
    assert capsys.readouterr().err == ""


def test_run_is_repeatable_and_reset_false_continues(model):
    """Two identical runs agree; reset=False continues the recording."""
    x = np.random.default_rng(5).normal(size=(30, 3)).astype(np.float32)
    a, b = model.run(x, dt=4), model.run(x, dt=4)
    np.testing.assert_array_equal(a, b)
    first = model.run(x[:10], dt=4)
    rest = model.run(x[10:], dt=4, reset=False)
    np.testing.assert_array_equal(np.concatenate([first, rest]), a)


def test_sequential_accepts_plain_torch_modules():
    """Elementwise torch.nn modules work inside a Sequential and the chain is exact."""
    x = torch.randn(25, 3)
    seq = Sequential(LowPass(2.0), torch.nn.ReLU(), torch.nn.Sigmoid())
    ref = torch.sigmoid(torch.relu(torch.from_numpy(LowPass(2.0).run(x))))
    np.testing.assert_allclose(seq.run(x, dt=3), ref.numpy(), rtol=1e-6)
    assert seq.history is None
    assert Sequential(TemporalFIR(torch.ones(4)), TemporalFIR(torch.ones(3))).history == 5


def test_device_argument_moves_the_model(model):
    """device='cpu' is accepted and results come back as numpy."""
    x = np.ones((8, 2), dtype=np.float32)
    out = model.run(x, dt=3, device="cpu")
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, _reference(x), rtol=1e-6)


_MEMORY_CHILD = """
import resource, sys, h5py, numpy as np, torch
from streamreg.filters import TemporalFIR
path, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with h5py.File(path, "w") as f:
    ds = f.create_dataset("x", shape=(n, 64), dtype="f4", chunks=(1000, 64))
    for t0 in range(0, n, 10000):
        ds[t0 : t0 + 10000] = 1.0
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
TemporalFIR(torch.ones(5)).run(path + ":/x", dt=500, output=out + ":/y")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def _peak_growth_kib(tmp_path, n):
    import subprocess
    import sys

    args = [sys.executable, "-c", _MEMORY_CHILD, str(tmp_path / f"in{n}.h5"), str(tmp_path / f"out{n}.h5"), str(n)]
    return int(subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout)


def test_memory_stays_bounded_with_hdf5_output(tmp_path):
    """Peak RSS of an HDF5 → HDF5 run (measured in a child process) does not grow with T.

    Ten times the frames (51 MB more input and output) may add at most 16 MB: the
    run holds a few chunks, never the recording.
    """
    small, large = _peak_growth_kib(tmp_path, 20_000), _peak_growth_kib(tmp_path, 200_000)
    assert large - small < 16 * 1024, f"peak RSS grew {small} KiB at T and {large} KiB at 10 T"
