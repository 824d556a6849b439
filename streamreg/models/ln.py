"""Linear-nonlinear cascades: ``LN`` and ``LNLN``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from streamreg._validation import check_positive_int
from streamreg.filters.conv import Conv3d
from streamreg.filters.nonlinear import make_nonlinearity
from streamreg.layer import Layer

__all__ = ["LN", "LNLN"]


class LN(Layer):
    """Linear-nonlinear model: a causal space-time kernel, then a nonlinearity.

    Parameters
    ----------
    kernel_size : (kt, kh, kw), default (10, 5, 5)
        Extent of the linear kernel in frames and pixels.
    nonlinearity : str, torch.nn.Module or callable, default "rectify"
        A name from :func:`streamreg.filters.list_nonlinearities`, a module or a function.
    **conv_kwargs
        Passed to :class:`streamreg.filters.Conv3d` (``padding_mode``, ``method``,
        ``bias``, ``device``, ``dtype``).

    Notes
    -----
    Shape: ``(T, H, W)`` → ``(T, H, W)``.
    State: the kernel's input history (``conv.history``). History: ``kt - 1`` frames.
    Chunking: exact for every ``dt`` (bitwise with direct convolution).

    Examples
    --------
    >>> import torch
    >>> LN((5, 3, 3)).run(torch.randn(30, 10, 10), dt=4).shape
    (30, 10, 10)
    """

    def __init__(self, kernel_size: int | Sequence[int] = (10, 5, 5), nonlinearity: Any = "rectify",
                 **conv_kwargs: Any) -> None:
        super().__init__()
        self.conv = Conv3d(kernel_size, **conv_kwargs)
        self.nonlinearity = make_nonlinearity(nonlinearity)

    def forward(self, x: Tensor) -> Tensor:
        """Filter ``x`` of shape ``(T, H, W)``, then apply the nonlinearity."""
        return self.nonlinearity(self.conv(x))


class LNLN(Layer):
    """Two linear-nonlinear stages in cascade (subunits, then pooling).

    Parameters
    ----------
    kernel_size : (kt, kh, kw), default (10, 5, 5)
        First stage kernel, from the input to ``hidden_channels`` subunit maps.
    second_kernel_size : (kt, kh, kw), default (5, 3, 3)
        Second stage kernel, pooling the subunit maps into one output.
    hidden_channels : int, default 1
    nonlinearity, output_nonlinearity : default "rectify"
        See :class:`LN`.

    Notes
    -----
    Shape: ``(T, H, W)`` → ``(T, H, W)``.
    State: both kernels' input histories. History: ``kt1 + kt2 - 2`` frames.
    """

    def __init__(self, kernel_size: int | Sequence[int] = (10, 5, 5),
                 second_kernel_size: int | Sequence[int] = (5, 3, 3), hidden_channels: int = 1,
                 nonlinearity: Any = "rectify", output_nonlinearity: Any = "rectify", *,
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        hidden = check_positive_int(hidden_channels, "hidden_channels")
        self.conv1 = Conv3d(kernel_size, 1, hidden, device=device, dtype=dtype)
        self.nonlinearity1 = make_nonlinearity(nonlinearity)
        self.conv2 = Conv3d(second_kernel_size, hidden, 1, device=device, dtype=dtype)
        self.nonlinearity2 = make_nonlinearity(output_nonlinearity)

    def forward(self, x: Tensor) -> Tensor:
        """Apply both stages to ``x`` of shape ``(T, H, W)``."""
        return self.nonlinearity2(self.conv2(self.nonlinearity1(self.conv1(x))))
