"""log_cosh and LOG_2: stability, precision against high-precision references, gradient tanh."""

from __future__ import annotations

import math

import pytest
import torch

from streamreg.functional import LOG_2, log_cosh

mpmath = pytest.importorskip("mpmath")


def _mp_log_cosh(values: torch.Tensor) -> torch.Tensor:
    """log(cosh(x)) at 800 significant digits (cosh(1e-300) needs 600 to differ from 1), rounded to float64."""
    with mpmath.workdps(800):
        return torch.tensor([float(mpmath.log(mpmath.cosh(mpmath.mpf(float(v))))) for v in values],
                            dtype=torch.float64)


def test_log_2_is_the_double_precision_log_of_two():
    """LOG_2 carries float64 precision, not float32's."""
    assert math.log(2.0) == LOG_2


def test_float64_matches_a_50_digit_reference_everywhere():
    """From 1e-300 to 1e300 and in between, log_cosh is within a few ulp of the true value."""
    points = [1e-300, 1e-20, 1e-8, 1e-4, 0.3, 0.999, 1.0, 1.001, 5.0, 20.0, 40.0, 700.0, 1e5, 1e300]
    x = torch.cat([torch.tensor(points, dtype=torch.float64), torch.linspace(-30, 30, 121, dtype=torch.float64)])
    x = torch.cat([x, -x])
    torch.testing.assert_close(log_cosh(x), _mp_log_cosh(x), rtol=4e-16, atol=0)


def test_float32_matches_log_cosh_of_float64_where_finite():
    """In float32, log_cosh agrees with float64 log(cosh(x)) where that is finite, and stays finite past it."""
    x = torch.linspace(-700, 700, 20001, dtype=torch.float64)
    ref = torch.log(torch.cosh(x))
    assert torch.isfinite(ref).all()
    got = log_cosh(x.float())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=2e-7, atol=1e-7)
    big = torch.tensor([-3e38, -1e4, 1e4, 3e38])
    assert torch.isfinite(torch.log(torch.cosh(big))).sum() == 0  # the naive form overflows here
    torch.testing.assert_close(log_cosh(big), big.abs() - LOG_2)


def test_gradient_is_tanh_including_zero_and_extremes():
    """Autograd gives tanh(x), finite at ±1e300 and exactly 0 at 0."""
    points = [-1e300, -50.0, -1.0, -0.999, -1e-9, 0.0, 1e-9, 0.5, 1.0, 1.0001, 30.0, 1e300]
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    log_cosh(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tanh(x.detach()), rtol=4e-16, atol=1e-300)
    assert x.grad[5] == 0.0


def test_gradcheck_in_float64():
    """Finite differences agree with autograd across both branches."""
    x = (torch.rand(40, dtype=torch.float64) - 0.5) * 8
    assert torch.autograd.gradcheck(log_cosh, (x.requires_grad_(),))


def test_shape_dtype_and_device_follow_the_input():
    """The output has the input's shape and dtype."""
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        x = torch.randn(3, 4, 5).to(dtype)
        y = log_cosh(x)
        assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
