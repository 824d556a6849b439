"""Spatial filters, applied to every frame independently."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from streamreg import functional as F
from streamreg._validation import check_choice, check_positive_float, check_time_series
from streamreg.exceptions import ChunkShapeError
from streamreg.layer import Layer

__all__ = ["GaussianSpatial"]

_PADDING_MODES = ("zeros", "replicate", "reflect", "circular")


class GaussianSpatial(Layer):
    """Gaussian blur of each frame over its last two axes.

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels (> 0).
    truncate : float, default 3.0
        The kernel spans ``2·round(truncate·sigma) + 1`` pixels, as in ``scipy.ndimage``.
    padding_mode : {"replicate", "zeros", "reflect", "circular"}
        Border handling.

    Notes
    -----
    Shape: ``(T, *lead, H, W)`` → same shape; ``lead`` axes (channels) are blurred independently.
    State: none. History: 0 frames.
    Chunking: bitwise exact (frames are independent).

    Examples
    --------
    >>> import torch
    >>> GaussianSpatial(1.5).run(torch.randn(10, 16, 16), dt=3).shape
    (10, 16, 16)
    """

    def __init__(self, sigma: float = 1.0, truncate: float = 3.0, *, padding_mode: str = "replicate") -> None:
        super().__init__()
        self.sigma = check_positive_float(sigma, "sigma")
        self.truncate = check_positive_float(truncate, "truncate")
        self.padding_mode = check_choice(padding_mode, "padding_mode", _PADDING_MODES)

    def kernel(self, dtype: torch.dtype | None = None, device: Any = None) -> Tensor:
        """The normalised 1-D Gaussian, computed in float64 and cast to ``dtype``."""
        return F.gaussian_kernel1d(self.sigma, self.truncate, dtype=dtype, device=device)

    def forward(self, x: Tensor) -> Tensor:
        """Blur ``x`` of shape ``(T, *lead, H, W)``."""
        check_time_series(x, "input")
        if x.ndim < 3:
            msg = f"input must have shape (T, *lead, H, W) with time on axis 0; got {tuple(x.shape)}."
            raise ChunkShapeError(msg)
        return F.gaussian_blur(x, self.kernel(x.dtype, x.device), self.padding_mode)

    def extra_repr(self) -> str:
        parts = [f"sigma={self.sigma}"]
        if self.truncate != 3.0:
            parts.append(f"truncate={self.truncate}")
        if self.padding_mode != "replicate":
            parts.append(f"padding_mode={self.padding_mode!r}")
        return ", ".join(parts)
