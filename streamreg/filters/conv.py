"""``Conv3d``: a space-time kernel, causal in time and same-size in space."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from streamreg import functional as F
from streamreg._validation import check_choice, check_positive_int, check_state_shape, check_time_series
from streamreg.exceptions import ChunkShapeError
from streamreg.filters.temporal import _as_tensor
from streamreg.layer import Layer

__all__ = ["CONV3D_FFT_MIN_VOLUME", "Conv3d"]

#: Kernel volume ``kt·kh·kw`` from which ``method="auto"`` uses FFT convolution.
#: Measured on CPU (benchmarks/bench_conv_crossover.py, 1 channel, 1 thread, 32x32 and 64x64
#: frames): FFT is 1.4-2.5x faster already at volume 8, 2-4x at 125-250 and 6-20x at 810-2000,
#: because oneDNN's single-channel conv3d is slow. Neither method is bitwise chunk invariant, so
#: speed decides; direct convolution is kept only for the tiniest kernels (not measured on GPU).
CONV3D_FFT_MIN_VOLUME = 8

_PADDING_MODES = ("zeros", "replicate", "reflect", "circular")


class Conv3d(Layer):
    """Space-time convolution, causal in time, output the size of the input in space.

    Parameters
    ----------
    kernel_size : int or (kt, kh, kw)
        Kernel extent in frames and pixels.
    in_channels, out_channels : int, default 1
        With one channel the frame is ``(H, W)``; with more it is ``(C, H, W)``.
    bias : bool, default False
    padding_mode : {"zeros", "replicate", "reflect", "circular"}
        Spatial border handling. Time is always causal with zero history.
    method : {"auto", "direct", "fft"}
        ``"auto"`` uses direct convolution below :data:`CONV3D_FFT_MIN_VOLUME`
        kernel elements and FFT convolution from there on.

    Notes
    -----
    The weight is a true convolution kernel ``(C_out, C_in, kt, kh, kw)``:
    ``weight[..., 0, :, :]`` applies to the current frame and a spatial impulse
    reproduces the kernel centred on it (centre ``((kh-1)//2, (kw-1)//2)``).

    Shape: ``(T, [C_in,] H, W)`` → ``(T, [C_out,] H, W)``.
    State: ``past_input``, ``(kt-1, C_in, H, W)``, the last ``kt-1`` input frames.
    History: ``kt - 1`` frames.
    Chunking: exact to dtype tolerance (:func:`streamreg.testing.chunk_tolerance`);
    library convolution kernels round differently for different chunk lengths.

    Examples
    --------
    >>> import torch
    >>> conv = Conv3d((5, 3, 3))
    >>> conv.run(torch.randn(40, 8, 8), dt=3).shape
    (40, 8, 8)
    """

    def __init__(self, kernel_size: int | Sequence[int] = (10, 5, 5), in_channels: int = 1,
                 out_channels: int = 1, *, bias: bool = False, padding_mode: str = "zeros",
                 method: str = "auto", device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        size = (kernel_size,) * 3 if isinstance(kernel_size, int) else tuple(kernel_size)
        if len(size) != 3:
            msg = f"kernel_size must be an int or (kt, kh, kw); got {kernel_size!r}."
            raise ValueError(msg)
        size = tuple(check_positive_int(s, "kernel_size") for s in size)
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.padding_mode = check_choice(padding_mode, "padding_mode", _PADDING_MODES)
        self.method = check_choice(method, "method", ("auto", "direct", "fft"))
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty((self.out_channels, self.in_channels, *size), **factory))
        self.bias = nn.Parameter(torch.empty(self.out_channels, **factory)) if bias else None
        self.register_state("past_input")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like ``torch.nn.Conv3d`` (Kaiming-uniform weight, uniform bias)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def kernel_size(self) -> tuple[int, int, int]:
        """``(kt, kh, kw)``."""
        return tuple(self.weight.shape[2:])  # type: ignore[return-value]

    @property
    def own_history(self) -> int | None:
        return self.kernel_size[0] - 1

    #: Not bitwise: oneDNN's conv3d (and FFT) rounding depends on the chunk length for
    #: some shapes (batch-of-one paths, float64, small frames); equal to dtype tolerance.
    bitwise_chunking = False

    def _method(self) -> str:
        if self.method != "auto":
            return self.method
        return "fft" if math.prod(self.kernel_size) >= CONV3D_FFT_MIN_VOLUME else "direct"

    def workspace_bytes(self, x: Tensor) -> int:
        """Bytes of library workspace a forward call on ``x`` needs beyond its output.

        Direct: oneDNN copies input and output into layouts blocked by 16 channels.
        FFT: real and complex spectra of every frame of a block (an over-estimate for
        chunks longer than one FFT block, whose size is fixed).
        """
        kt, kh, kw = self.kernel_size
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        channels = self.in_channels + self.out_channels
        if self._method() == "direct":
            blocks = 16 * (-(-self.in_channels // 16) + -(-self.out_channels // 16))
            return n * h * w * blocks * x.element_size()
        spectra = F.fast_fft_len(h + kh - 1) * F.fast_fft_len(w + kw - 1)
        return 4 * (n + kt) * spectra * channels * x.element_size()

    def _spectrum_cache(self, x: Tensor) -> dict[tuple[int, int, int], Tensor] | None:
        """Kernel spectra reused across chunks while the weight is unchanged (never under autograd)."""
        if torch.is_grad_enabled() and self.weight.requires_grad:
            return None
        tag = (id(self.weight), self.weight._version, x.dtype, x.device)
        if getattr(self, "_spectra_tag", None) != tag or len(self._spectra) > 8:
            self._spectra: dict[tuple[int, int, int], Tensor] = {}
            self._spectra_tag = tag
        return self._spectra

    def set_weight(self, weight: Any, normalize: bool = False) -> None:
        """Replace the kernel; its shape may change (the state is then reset).

        Parameters
        ----------
        weight : array_like
            ``(kt, kh, kw)`` for one input and output channel, or
            ``(C_out, C_in, kt, kh, kw)``.
        normalize : bool, default False
            Divide the kernel by its sum, so a constant input passes with gain 1.
        """
        w = _as_tensor(weight, "weight", self.weight.dtype, self.weight.device)
        if w.ndim == 3 and self.in_channels == self.out_channels == 1:
            w = w[None, None]
        if w.ndim != 5 or w.shape[:2] != (self.out_channels, self.in_channels):
            msg = (
                f"weight must have shape (kt, kh, kw) (one channel in and out) or "
                f"({self.out_channels}, {self.in_channels}, kt, kh, kw); got {tuple(w.shape)}."
            )
            raise ValueError(msg)
        if normalize:
            total = w.sum()
            if total == 0:
                msg = "weight sums to 0 and cannot be normalised; pass normalize=False."
                raise ValueError(msg)
            w = w / total
        with torch.no_grad():
            if w.shape == self.weight.shape:
                self.weight.copy_(w)  # keeps the Parameter an optimizer may hold
            else:
                self.reset_state()
                self.weight = nn.Parameter(w.clone())

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` of shape ``(T, [C_in,] H, W)``."""
        single = self.in_channels == 1
        frame = ("H", "W") if single else (self.in_channels, "H", "W")
        check_time_series(x, "input", frame=frame)
        x4 = x.unsqueeze(1) if single else x
        check_state_shape(self.past_input, (self.kernel_size[0] - 1, *x4.shape[1:]), "Conv3d", "past_input")
        if min(x4.shape[-2:]) == 0:
            msg = f"input frames must have at least one pixel; got frame {tuple(x.shape[1:])}."
            raise ChunkShapeError(msg)
        kt = self.kernel_size[0]
        hist = self.past_input if self.past_input is not None else x4.new_zeros((kt - 1, *x4.shape[1:]))
        y, self.past_input = F.causal_conv3d(x4, self.weight.to(x.dtype), hist,
                                          None if self.bias is None else self.bias.to(x.dtype),
                                          padding_mode=self.padding_mode, method=self._method(),
                                          spectra=self._spectrum_cache(x))
        return y[:, 0] if self.out_channels == 1 else y

    def extra_repr(self) -> str:
        parts = [f"kernel_size={self.kernel_size}"]
        if self.in_channels != 1 or self.out_channels != 1:
            parts.append(f"in_channels={self.in_channels}, out_channels={self.out_channels}")
        if self.bias is not None:
            parts.append("bias=True")
        if self.padding_mode != "zeros":
            parts.append(f"padding_mode={self.padding_mode!r}")
        if self.method != "auto":
            parts.append(f"method={self.method!r}")
        return ", ".join(parts)
