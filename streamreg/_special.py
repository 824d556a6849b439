"""Special functions from janelia_core's ``extra_torch_functions``: ``log_cosh`` and ``LOG_2``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["LOG_2", "log_cosh"]

LOG_2: float = math.log(2.0)
"""``log(2)`` as a Python float (double precision), so it never rounds a float64 input down to float32.

janelia_core kept it as a float32 tensor, which costs float64 callers about 8 digits.
"""


def log_cosh(x: Tensor) -> Tensor:
    """``log(cosh(x))``, elementwise, stable for every finite input.

    Parameters
    ----------
    x : Tensor
        Any shape, floating point.

    Returns
    -------
    y : Tensor
        Same shape, dtype and device as ``x``.

    Notes
    -----
    For ``|x| ≥ 1`` it is computed as ``|x| + log1p(exp(-2|x|)) - log 2``: ``exp`` only
    sees non-positive arguments, so nothing overflows (``log(cosh(x))`` is ``inf`` from
    ``|x| ≈ 89`` in float32 and ``≈ 711`` in float64). For ``|x| < 1`` it is
    ``log1p(2·sinh²(|x|/2))``, which keeps full relative precision near 0, where the
    first form cancels. Each branch sees an argument clamped to its own range, so the
    gradient autograd gives is ``tanh(x)``, finite everywhere and 0 at 0. ``log 2`` is a
    Python float (:data:`LOG_2`), so the result is computed in the dtype of ``x``.

    Examples
    --------
    >>> log_cosh(torch.tensor([0.0, 1.0, 1000.0]))
    tensor([0.0000e+00, 4.3378e-01, 9.9931e+02])
    """
    a = x.abs()
    big = a.clamp(min=1.0)
    small = a.clamp(max=1.0)
    y_big = big + torch.log1p(torch.exp(-2.0 * big)) - LOG_2
    y_small = torch.log1p(2.0 * torch.sinh(0.5 * small).square())
    return torch.where(a < 1.0, y_small, y_big)
