"""A VirtualRetina-style retina: OPL, contrast gain control, ganglion stages, spikes.

Units follow VirtualRetina: time constants in milliseconds, rates in Hz,
sizes in pixels; ``frame_ms`` sets the duration of one frame. The
defaults are VirtualRetina's cat X-cell values at 1 frame = 1 ms, with
spatial extents scaled to small frames.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from streamreg import functional as F
from streamreg._validation import (
    check_nonnegative_int,
    check_positive_float,
    check_real,
    check_state_shape,
    check_time_series,
)
from streamreg.filters.noise import BernoulliSpikes
from streamreg.filters.spatial import GaussianSpatial
from streamreg.filters.temporal import HighPass, LowPass
from streamreg.layer import Layer

__all__ = ["OPL", "Bipolar", "GanglionInput", "Retina"]

_FRAME = ("H", "W")
_BLOCK_ELEMENTS = 1 << 20  # frames x pixels per internal block (4 MiB of float32): measured best at 64x64


def _parameter(value: float, name: str) -> nn.Parameter:
    return nn.Parameter(torch.tensor(check_real(value, name)))


def _frames(tau_ms: float, frame_ms: float, name: str) -> float:
    return check_positive_float(tau_ms, name) / frame_ms


class OPL(Layer):
    """Outer plexiform layer: centre minus surround with recursive temporal filters.

    ``C = HighPass_{tau_undershoot, w_undershoot}(LowPass^{n_center}_{tau_center}(G_{sigma_center} * L))``,
    ``S = LowPass_{tau_surround}(G_{sigma_surround} * C)``, output ``lambda_opl · (C - w_opl · S)``.

    Parameters ``lambda_opl``, ``w_opl`` and the undershoot weight are trainable.

    Notes
    -----
    Shape: ``(T, H, W)`` → ``(T, H, W)``. State: the three recursive filters'.
    History: unbounded. Chunking: bitwise exact.
    """

    def __init__(self, *, sigma_center: float = 1.0, tau_center: float = 10.0, n_center: int = 1,
                 tau_undershoot: float = 100.0, w_undershoot: float = 0.8, sigma_surround: float = 3.0,
                 tau_surround: float = 4.0, lambda_opl: float = 10.0, w_opl: float = 1.0,
                 frame_ms: float = 1.0) -> None:
        super().__init__()
        frame_ms = check_positive_float(frame_ms, "frame_ms")
        self.center_blur = GaussianSpatial(sigma_center)
        self.center_lowpass = LowPass(_frames(tau_center, frame_ms, "tau_center"), n_center)
        self.undershoot = HighPass(_frames(tau_undershoot, frame_ms, "tau_undershoot"), weight=w_undershoot)
        self.surround_blur = GaussianSpatial(sigma_surround)
        self.surround_lowpass = LowPass(_frames(tau_surround, frame_ms, "tau_surround"))
        self.lambda_opl = _parameter(lambda_opl, "lambda_opl")
        self.w_opl = _parameter(w_opl, "w_opl")

    def forward(self, x: Tensor) -> Tensor:
        """Luminance ``(T, H, W)`` → OPL current ``(T, H, W)``."""
        check_time_series(x, "input", frame=_FRAME)
        center = self.undershoot(self.center_lowpass(self.center_blur(x)))
        surround = self.surround_lowpass(self.surround_blur(center))
        return self.lambda_opl * (center - self.w_opl * surround)


class Bipolar(Layer):
    """Contrast gain control: ``dV/dt = I_OPL - g_A·V`` with ``g_A = G_{sigma_a} * E_{tau_a} * (g0 + lambda_a·V²)``.

    Integrated with one semi-implicit Euler step per frame
    (:func:`streamreg.functional.contrast_gain_control`).

    Notes
    -----
    Shape: ``(T, H, W)`` → ``(T, H, W)``.
    State: ``v`` and ``e`` (the low-passed conductance drive), each ``(H, W)``.
    History: unbounded. Chunking: bitwise exact.
    """

    def __init__(self, *, sigma_a: float = 2.0, tau_a: float = 5.0, g0: float = 5.0,
                 lambda_a: float = 100.0, frame_ms: float = 1.0) -> None:
        super().__init__()
        self.frame_ms = check_positive_float(frame_ms, "frame_ms")
        self.tau_a = check_positive_float(tau_a, "tau_a")
        self.g0 = check_real(g0, "g0")
        self.lambda_a = check_real(lambda_a, "lambda_a")
        self.blur = GaussianSpatial(sigma_a)
        self.register_state("v")
        self.register_state("e")

    @property
    def own_history(self) -> int | None:
        return None

    def forward(self, x: Tensor) -> Tensor:
        """OPL current ``(T, H, W)`` → bipolar potential ``(T, H, W)``."""
        check_time_series(x, "input", frame=_FRAME)
        check_state_shape(self.v, x.shape[1:], "Bipolar", "v")
        check_state_shape(self.e, x.shape[1:], "Bipolar", "e")
        v0 = self.v if self.v is not None else x.new_zeros(x.shape[1:])
        e0 = self.e if self.e is not None else x.new_full(x.shape[1:], self.g0)
        kernel = self.blur.kernel(torch.float64)
        m_rows, m_cols = (F.blur_matrix(n, kernel, self.blur.padding_mode).to(x) for n in x.shape[1:])
        a = float(torch.exp(torch.tensor(-self.frame_ms / self.tau_a, dtype=torch.float64)))
        v, self.v, self.e = F.contrast_gain_control(
            x, v0, e0, step=self.frame_ms / 1000.0, g0=self.g0, gain=self.lambda_a, a=a,
            m_rows=m_rows, m_cols=m_cols)
        return v


class GanglionInput(Layer):
    """Ganglion stage: transient high-pass, spatial pooling, then ON and OFF rectifiers.

    The rectifier is VirtualRetina's ``N(v) = i0 / (1 - lambda_g·(v - v0)/i0)`` below
    ``v0`` and ``i0 + lambda_g·(v - v0)`` above; ON cells see ``+v``, OFF cells ``-v``.
    ``i0``, ``lambda_g``, ``v0`` and the transient weight are trainable parameters.

    Notes
    -----
    Shape: ``(T, H, W)`` → ``(T, 2, H, W)`` firing rates in Hz (channel 0 ON, 1 OFF).
    State: the transient filter's. History: unbounded. Chunking: bitwise exact.
    """

    def __init__(self, *, tau_transient: float = 20.0, w_transient: float = 0.7, sigma_pool: float = 1.0,
                 i0: float = 80.0, lambda_g: float = 100.0, v0: float = 0.0, frame_ms: float = 1.0) -> None:
        super().__init__()
        frame_ms = check_positive_float(frame_ms, "frame_ms")
        self.transient = HighPass(_frames(tau_transient, frame_ms, "tau_transient"), weight=w_transient)
        self.pool = GaussianSpatial(sigma_pool)
        self.i0 = _parameter(check_positive_float(i0, "i0"), "i0")
        self.lambda_g = _parameter(lambda_g, "lambda_g")
        self.v0 = _parameter(v0, "v0")

    def _rectify(self, v: Tensor) -> Tensor:
        d = v - self.v0
        return self.i0 / (1 - self.lambda_g * d.clamp(max=0) / self.i0) + self.lambda_g * d.clamp(min=0)

    def forward(self, x: Tensor) -> Tensor:
        """Bipolar potential ``(T, H, W)`` → ON/OFF rates ``(T, 2, H, W)``."""
        check_time_series(x, "input", frame=_FRAME)
        u = self.pool(self.transient(x))
        return torch.stack([self._rectify(u), self._rectify(-u)], 1)


class Retina(Layer):
    """VirtualRetina-style retina model: OPL → contrast gain control → ganglion ON/OFF.

    Parameters
    ----------
    spikes : bool, default False
        Output seeded Bernoulli spikes (0/1 per frame) instead of rates in Hz.
    seed : int, default 0
        Seed of the spike generator (kept in the streaming state).
    frame_ms : float, default 1.0
        Duration of a frame; all time constants are in ms, rates in Hz.
    opl, bipolar, ganglion : dict, optional
        Keyword arguments for :class:`OPL`, :class:`Bipolar`, :class:`GanglionInput`.

    Notes
    -----
    Shape: luminance ``(T, H, W)`` → ``(T, 2, H, W)`` (channel 0 ON, 1 OFF).
    State: every stage's (nested under ``opl``, ``bipolar``, ``ganglion``, ``spikes``).
    History: unbounded (recursive filters). Chunking: bitwise exact, spikes included.

    Examples
    --------
    >>> import torch
    >>> Retina().run(torch.rand(50, 12, 12), dt=16).shape
    (50, 2, 12, 12)
    """

    def __init__(self, *, spikes: bool = False, seed: int = 0, frame_ms: float = 1.0,
                 opl: dict[str, Any] | None = None, bipolar: dict[str, Any] | None = None,
                 ganglion: dict[str, Any] | None = None) -> None:
        super().__init__()
        frame_ms = check_positive_float(frame_ms, "frame_ms")
        self.opl = OPL(frame_ms=frame_ms, **(opl or {}))
        self.bipolar = Bipolar(frame_ms=frame_ms, **(bipolar or {}))
        self.ganglion = GanglionInput(frame_ms=frame_ms, **(ganglion or {}))
        self.spikes = BernoulliSpikes(check_nonnegative_int(seed, "seed"), gain=frame_ms / 1000.0) if spikes else None

    def forward(self, x: Tensor) -> Tensor:
        """Luminance ``(T, H, W)`` → ON/OFF rates or spikes ``(T, 2, H, W)``.

        Long chunks are processed in cache-sized blocks of frames; the model is
        chunk invariant, so this changes the speed, not the result.
        """
        check_time_series(x, "input", frame=_FRAME)
        block = max(1, _BLOCK_ELEMENTS // max(1, x.shape[1] * x.shape[2]))
        if len(x) <= block:
            return self._forward(x)
        return torch.cat([self._forward(part) for part in x.split(block)])

    def _forward(self, x: Tensor) -> Tensor:
        y = self.ganglion(self.bipolar(self.opl(x)))
        return self.spikes(y) if self.spikes is not None else y
