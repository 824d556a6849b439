"""Temporal filters: causal FIR and recursive exponential low- and high-pass."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from streamreg import functional as F
from streamreg._validation import (
    check_choice,
    check_positive_int,
    check_real,
    check_state_shape,
    check_time_series,
)
from streamreg.exceptions import ChunkShapeError
from streamreg.layer import Layer

__all__ = ["FIR_FFT_MIN_TAPS", "HighPass", "LowPass", "TemporalFIR"]

#: Kernel length from which ``method="auto"`` uses overlap-save FFT instead of direct convolution.
#: Measured (benchmarks/bench_conv_crossover.py, C=256, 1 thread): FFT is 1.2-1.8x faster from 512
#: taps on, K=256 is a tie (0.7-1.2x), so direct convolution, which is bitwise exact, keeps it.
FIR_FFT_MIN_TAPS = 512


def _as_tensor(value: Any, name: str, dtype: torch.dtype | None, device: Any) -> Tensor:
    """``value`` (a number, array or tensor of real numbers) as a new tensor of ``dtype``."""
    if isinstance(value, Tensor):
        ok = not value.is_complex() and value.dtype != torch.bool
        t = value.detach()
    else:
        arr = np.asarray(value)
        ok = arr.dtype.kind in "iuf"
        t = torch.as_tensor(arr) if ok else None
    if not ok:
        msg = f"{name} must be a real number or an array of real numbers; got {value!r}."
        raise TypeError(msg)
    return t.to(dtype=dtype or torch.get_default_dtype(), device=device, copy=True)  # never alias the caller's array


class LowPass(Layer):
    """Recursive exponential low-pass, optionally an ``n_stages`` cascade.

    Each stage computes ``y[t] = a·y[t-1] + (1-a)·x[t]`` with ``a = exp(-1/tau)``,
    so a step input settles with time constant ``tau`` frames and unit DC gain.

    Parameters
    ----------
    tau : float or array_like
        Time constant in frames (> 0); an array broadcastable to the frame gives
        one time constant per channel or pixel.
    n_stages : int, default 1
        Number of identical stages in cascade (a gamma-like impulse response).
    learn_tau : bool, default False
        Make ``tau`` a trainable parameter.

    Notes
    -----
    Shape: ``(T, *frame)`` → ``(T, *frame)``, any frame.
    Algorithm: with one ``tau``, blocks of :data:`~streamreg.functional.LOWPASS_BLOCK` frames
    aligned to absolute time, one fixed-shape matrix product per block for all stages
    (:func:`~streamreg.functional.exp_cascade_blocks`); with one ``tau`` per channel, one fused
    ``addcmul`` per frame and stage.
    State: ``y_last``, ``(n_stages, *frame)``, every stage's output before the current block
    (per-channel ``tau``: the last output); ``block_input``, ``(B, *frame)``, the inputs of the
    block left open by the last chunk, zero-padded, and ``block_fill``, how many they are
    (``None`` with per-channel ``tau``).
    History: unbounded (``None``).
    Chunking: bitwise exact for every ``dt``. A non-finite input makes the outputs from its
    frame on non-finite and leaves earlier outputs unchanged.

    Examples
    --------
    >>> import torch
    >>> LowPass(tau=5.0).run(torch.ones(50, 4, 4), dt=7).shape
    (50, 4, 4)
    """

    def __init__(self, tau: Any = 10.0, n_stages: int = 1, *, learn_tau: bool = False,
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        tau_t = _as_tensor(tau, "tau", dtype, device)
        if not torch.all(torch.isfinite(tau_t) & (tau_t > 0)):
            msg = f"tau must be a positive finite time constant in frames; got {tau!r}."
            raise ValueError(msg)
        self.n_stages = check_positive_int(n_stages, "n_stages")
        if learn_tau:
            self.tau = nn.Parameter(tau_t)
        else:
            self.register_buffer("tau", tau_t)
        self.register_state("y_last")
        self.register_state("block_input")
        self.register_state("block_fill")
        self._matrix_cache: tuple[tuple[Any, ...], Tensor] | None = None

    @property
    def own_history(self) -> int | None:
        return None

    def _highpass_weight(self) -> Tensor | None:
        return None

    def _block_matrix(self, dtype: torch.dtype) -> Tensor:
        """The block matrix for the current ``tau`` (and weight); cached while they are unchanged."""
        weight = self._highpass_weight()
        params = [self.tau] if weight is None else [self.tau, weight]
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            return self._build_matrix(dtype, weight)
        tag = (dtype, self.tau.device, *((id(p), p._version, p.data_ptr()) for p in params))
        if self._matrix_cache is None or self._matrix_cache[0] != tag:
            with torch.no_grad():
                self._matrix_cache = (tag, self._build_matrix(dtype, weight))
        return self._matrix_cache[1]

    def _build_matrix(self, dtype: torch.dtype, weight: Tensor | None) -> Tensor:
        a = torch.exp(-1.0 / self.tau.reshape(()).to(dtype))  # the same decay as the per-frame path
        return F.exp_cascade_matrix(a, self.n_stages, F.LOWPASS_BLOCK, highpass_weight=weight, dtype=dtype)

    def _check(self, x: Tensor) -> tuple[int, ...]:
        check_time_series(x, "input")
        frame = tuple(x.shape[1:])
        if torch.broadcast_shapes(frame, tuple(self.tau.shape)) != frame:
            msg = (
                f"tau of shape {tuple(self.tau.shape)} does not broadcast to the input frame {frame}; "
                "give one time constant, or an array broadcastable to the frame."
            )
            raise ChunkShapeError(msg)
        name = type(self).__name__
        check_state_shape(self.y_last, (self.n_stages, *frame), name, "y_last")
        check_state_shape(self.block_input, (F.LOWPASS_BLOCK, *frame), name, "block_input")
        check_state_shape(self.block_fill, (), name, "block_fill")
        return frame

    def _lowpass(self, x: Tensor) -> Tensor:
        """The per-frame cascade (one ``tau`` per channel)."""
        frame = self._check(x)
        a = torch.exp(-1.0 / self.tau.to(x.dtype))
        state = self.y_last if self.y_last is not None else x.new_zeros((self.n_stages, *frame))
        last = []
        for stage in range(self.n_stages):
            x, y_last = F.exp_lowpass(x, a, state[stage])
            last.append(y_last)
        self.y_last = torch.stack(last)
        return x

    def _blocks(self, x: Tensor) -> Tensor:
        """The block cascade (one ``tau``): low-pass, or high-pass when a weight is set."""
        frame = self._check(x)
        c = math.prod(frame)
        n, b = x.shape[0], F.LOWPASS_BLOCK
        state = self.y_last.reshape(self.n_stages, c) if self.y_last is not None else x.new_zeros((self.n_stages, c))
        pending = self.block_input.reshape(b, c) if self.block_input is not None else x.new_zeros((b, c))
        fill = int(self.block_fill) if self.block_fill is not None else 0
        y, state, pending, fill = F.exp_cascade_blocks(x.reshape(n, c), self._block_matrix(x.dtype), state,
                                                       pending, fill)
        self.y_last = state.reshape(self.n_stages, *frame)
        self.block_input = pending.reshape(b, *frame)
        self.block_fill = torch.tensor(fill, device=x.device)
        return y.reshape(n, *frame)

    def forward(self, x: Tensor) -> Tensor:
        """Filter ``x`` of shape ``(T, *frame)``."""
        return self._blocks(x) if self.tau.numel() == 1 else self._lowpass(x)

    def extra_repr(self) -> str:
        tau = self.tau.item() if self.tau.numel() == 1 else f"tensor of shape {tuple(self.tau.shape)}"
        stages = f", n_stages={self.n_stages}" if self.n_stages != 1 else ""
        return f"tau={tau}{stages}"


class HighPass(LowPass):
    """Recursive exponential high-pass: ``y = x - weight · LowPass(tau, n_stages)(x)``.

    With ``weight = 1`` a constant input decays to zero; ``weight < 1`` keeps a
    sustained part (VirtualRetina's undershoot and transient filters). ``weight``
    is a trainable parameter.

    Notes
    -----
    Shape: ``(T, *frame)`` → ``(T, *frame)``.
    Algorithm: as :class:`LowPass`; with one ``tau`` the subtraction is folded into the
    block matrix, so the high-pass costs one matrix product per block too.
    State: that of the inner low-pass (``y_last``, ``block_input``, ``block_fill``).
    History: unbounded (``None``).
    Chunking: bitwise exact for every ``dt``.
    """

    def __init__(self, tau: Any = 10.0, n_stages: int = 1, weight: float = 1.0, *, learn_tau: bool = False,
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(tau, n_stages, learn_tau=learn_tau, device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.tensor(check_real(weight, "weight"), dtype=dtype, device=device))

    def _highpass_weight(self) -> Tensor | None:
        return self.weight

    def forward(self, x: Tensor) -> Tensor:
        """Filter ``x`` of shape ``(T, *frame)``."""
        return self._blocks(x) if self.tau.numel() == 1 else x - self.weight * self._lowpass(x)

    def extra_repr(self) -> str:
        weight = f", weight={self.weight.item():g}" if self.weight.item() != 1.0 else ""
        return super().extra_repr() + weight


class TemporalFIR(Layer):
    """Causal FIR filter along time, shared by all channels or one kernel per channel.

    Parameters
    ----------
    kernel : array_like
        ``(K,)`` shared by every channel or pixel, or ``(K, *frame)`` with one
        kernel per channel. ``kernel[0]`` weights the current frame, so an
        impulse at ``t`` produces the kernel at ``t, t+1, ...``.
    method : {"auto", "direct", "fft"}
        ``"auto"`` uses direct convolution below :data:`FIR_FFT_MIN_TAPS` taps
        and overlap-save FFT from there on.

    Notes
    -----
    Shape: ``(T, *frame)`` → ``(T, *frame)``; ``(T, C)`` and ``(T, H, W)`` alike.
    State: ``past_input``, ``(K-1, *frame)``, the last ``K-1`` input frames (zeros at the start).
    History: ``K - 1`` frames.
    Chunking: bitwise exact with ``"direct"``, to dtype tolerance with ``"fft"``.
    """

    def __init__(self, kernel: Any, *, method: str = "auto", device: Any = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        k = _as_tensor(kernel, "kernel", dtype, device)
        if k.ndim == 0 or k.shape[0] < 1:
            msg = f"kernel must have shape (K,) or (K, *frame) with K >= 1; got shape {tuple(k.shape)}."
            raise ValueError(msg)
        self.method = check_choice(method, "method", ("auto", "direct", "fft"))
        self.kernel = nn.Parameter(k)
        self.register_state("past_input")

    @property
    def bitwise_chunking(self) -> bool:  # type: ignore[override]
        return self._method() == "direct"

    @property
    def own_history(self) -> int | None:
        return self.kernel.shape[0] - 1

    def _method(self) -> str:
        if self.method != "auto":
            return self.method
        return "fft" if self.kernel.shape[0] >= FIR_FFT_MIN_TAPS else "direct"

    def forward(self, x: Tensor) -> Tensor:
        """Filter ``x`` of shape ``(T, *frame)``."""
        shared = self.kernel.ndim == 1
        check_time_series(x, "input", frame=None if shared else tuple(self.kernel.shape[1:]))
        n, frame = x.shape[0], tuple(x.shape[1:])
        check_state_shape(self.past_input, (self.kernel.shape[0] - 1, *frame), "TemporalFIR", "past_input")
        c = math.prod(frame)
        k = self.kernel.to(x.dtype)
        k = k[:, None] if shared else k.reshape(k.shape[0], c)  # a shared kernel is transformed once
        hist = self.past_input.reshape(-1, c) if self.past_input is not None else x.new_zeros((k.shape[0] - 1, c))
        method = self._method()
        spectra = self._spectrum_cache(x) if method == "fft" else None
        y, hist = F.causal_fir(x.reshape(n, c), k, hist, method, spectra=spectra)
        self.past_input = hist.reshape(-1, *frame)
        return y.reshape(n, *frame)

    def _spectrum_cache(self, x: Tensor) -> dict[int, Tensor] | None:
        """Kernel spectra reused across chunks while the kernel is unchanged (never under autograd)."""
        if torch.is_grad_enabled() and self.kernel.requires_grad:
            return None
        tag = (id(self.kernel), self.kernel._version, self.kernel.data_ptr(), x.dtype, x.device)
        if getattr(self, "_spectra_tag", None) != tag or len(self._spectra) > 8:
            self._spectra: dict[int, Tensor] = {}
            self._spectra_tag = tag
        return self._spectra

    def extra_repr(self) -> str:
        method = f", method={self.method!r}" if self.method != "auto" else ""
        return f"kernel_shape={tuple(self.kernel.shape)}{method}"
