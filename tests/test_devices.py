"""streamreg.devices: device listing, memory reports against independent readings, torch_mod_to_fcn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from streamreg.devices import list_torch_devices, summarize_memory_stats, torch_devices_memory_usage, torch_mod_to_fcn

psutil = pytest.importorskip("psutil")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only listing needs a machine without CUDA")
CPU = torch.device("cpu")


def _vm_hwm_gb() -> float:
    """Peak resident memory from /proc/self/status (VmHWM), in GB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 / 1e9 for line in f if line.startswith("VmHWM:"))


@no_cuda
def test_list_torch_devices_without_cuda_gives_the_cpu(capsys):
    """Without GPUs the list is [cpu] and the flag False, with the seed's message."""
    assert list_torch_devices() == [[CPU], False]
    assert capsys.readouterr().out == "No GPUs found.\n"
    assert list_torch_devices(verbose=False) == [[CPU], False]
    assert capsys.readouterr().out == ""


@pytest.mark.gpu
@cuda
def test_list_torch_devices_with_cuda_lists_every_gpu_and_no_cpu(capsys):
    """With GPUs every cuda:i is listed, the CPU is not."""
    n = torch.cuda.device_count()
    assert list_torch_devices() == [[torch.device("cuda", i) for i in range(n)], True]
    assert capsys.readouterr().out == f"Found {n} GPUs.\n"


def test_memory_usage_is_nan_on_cpu_for_both_types():
    """The CPU has no torch allocator counters: NaN, as in the seed."""
    for kind in ("memory_allocated", "max_memory_allocated"):
        (value,) = torch_devices_memory_usage([CPU], type=kind)
        assert math.isnan(value)


def test_unknown_memory_type_lists_the_allowed_ones():
    """A typo is an error that names it and the allowed values."""
    with pytest.raises(ValueError, match=r"one of \['max_memory_allocated', 'memory_allocated'\]; got 'max'"):
        torch_devices_memory_usage([CPU], type="max")


@pytest.mark.gpu
@cuda
def test_cuda_memory_usage_and_summary_use_the_allocator_counters():
    """On CUDA, current is memory_allocated and max is max_memory_allocated, in bytes and in GB."""
    dev = torch.device("cuda", 0)
    torch.cuda.reset_peak_memory_stats(dev)
    big = torch.empty(2**28, dtype=torch.uint8, device=dev)
    del big
    small = torch.empty(2**20, dtype=torch.uint8, device=dev)
    current, peak = torch.cuda.memory_allocated(dev), torch.cuda.max_memory_allocated(dev)
    assert torch_devices_memory_usage([dev]) == [float(current)]
    assert torch_devices_memory_usage([dev], type="max_memory_allocated") == [float(peak)]
    (stats,) = summarize_memory_stats([dev])
    assert stats == {"type": "cuda", "current": current / 1e9, "max": peak / 1e9}
    assert stats["max"] >= stats["current"] + 0.25
    del small


def test_cpu_summary_reports_resident_memory_and_its_peak_in_gb():
    """current follows psutil's RSS, max follows VmHWM, both in GB, after a 300 MB touch and release."""
    before = summarize_memory_stats([CPU])[0]
    assert before["type"] == "cpu"
    assert before["current"] == pytest.approx(psutil.Process().memory_info().rss / 1e9, abs=0.02)
    block = np.ones(300_000_000 // 8)  # touched: resident
    during = summarize_memory_stats(["cpu"])[0]
    assert during["current"] == pytest.approx(psutil.Process().memory_info().rss / 1e9, abs=0.02)
    assert during["current"] >= before["current"] + 0.28
    del block
    after = summarize_memory_stats([CPU])[0]
    assert after["max"] == pytest.approx(max(_vm_hwm_gb(), after["current"]), abs=0.02)
    assert after["max"] >= during["current"] - 0.01
    assert after["current"] <= after["max"]


def test_mod_to_fcn_keeps_a_float64_module_in_float64():
    """A float64 module gets float64 input and gives float64 numpy, equal to a hand matmul."""
    lin = torch.nn.Linear(3, 2).double()
    x = np.random.default_rng(0).standard_normal((5, 3))
    y = torch_mod_to_fcn(lin)(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float64
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-14)


def test_mod_to_fcn_casts_to_a_float32_module_and_runs_without_grad():
    """float64 input meets a float32 module in float32; no graph is built."""
    lin = torch.nn.Linear(2, 1)
    seen = []
    lin.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].dtype, out.requires_grad)))
    y = torch_mod_to_fcn(lin)(np.array([[1.0, 2.0]]))
    assert y.dtype == np.float32 and seen == [(torch.float32, False)]


def test_mod_to_fcn_reads_python_scalars_and_lists_as_values():
    """An int is a value, never a size; floats and lists work too."""
    f = torch_mod_to_fcn(torch.exp)
    assert f(3).shape == () and f(3) == pytest.approx(math.exp(3), rel=1e-6)
    assert f(0.5) == pytest.approx(math.exp(0.5), rel=1e-6)
    np.testing.assert_allclose(f([0, 1, 2]), np.exp([0.0, 1.0, 2.0]), rtol=1e-6)
    lin = torch.nn.Linear(1, 1)
    expected = float(lin.weight.detach()) * 7 + float(lin.bias.detach())
    assert torch_mod_to_fcn(lin)([7]) == pytest.approx(expected, rel=1e-6)


def test_mod_to_fcn_plain_function_keeps_float64_and_tuples():
    """A parameterless callable keeps float64 input; a tuple of tensors comes back as a tuple of arrays."""
    f = torch_mod_to_fcn(lambda t: (t * 2, t.sum()))
    a, s = f(np.array([1.0, 2.5]))
    assert a.dtype == np.float64 and a.tolist() == [2.0, 5.0] and float(s) == 3.5


def test_mod_to_fcn_refuses_a_non_callable():
    """Passing data instead of a module is a TypeError naming the type."""
    with pytest.raises(TypeError, match="got ndarray"):
        torch_mod_to_fcn(np.zeros(3))


@pytest.mark.gpu
@cuda
def test_mod_to_fcn_moves_input_to_a_cuda_module_and_returns_host_numpy():
    """A module on the GPU gets its input there and hands back host numpy."""
    lin = torch.nn.Linear(3, 2).cuda()
    x = np.ones((4, 3), dtype=np.float32)
    y = torch_mod_to_fcn(lin)(x)
    assert isinstance(y, np.ndarray)
    np.testing.assert_allclose(y, torch_mod_to_fcn(lin.cpu())(x), rtol=1e-5, atol=1e-6)
