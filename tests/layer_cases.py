"""The table of every exported Layer, with a small input for each.

``tests/test_public_api.py`` checks that every Layer streamreg exports has an
entry here; ``tests/test_common_layers.py`` runs the generic checks over it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from streamreg import Sequential
from streamreg.filters import (
    BernoulliSpikes,
    Conv3d,
    Elementwise,
    Exp,
    GaussianSpatial,
    HighPass,
    Identity,
    LowPass,
    Rectify,
    Sigmoid,
    Softplus,
    TemporalFIR,
)
from streamreg.models import LN, LNLN, OPL, Bipolar, GanglionInput, Retina

T = 41  # prime, so most dt leave a ragged last chunk


@dataclass
class LayerCase:
    """One row of the table: how to build the layer and what to feed it."""

    name: str
    build: Callable[[], nn.Module]
    frame: tuple[int, ...]
    kernel_frames: int = 1  # a dt below this is "smaller than the kernel"
    scale: float = 1.0
    offset: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def make_input(self, seed: int = 0, n: int = T, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A reproducible random input ``(n, *frame)``."""
        g = torch.Generator().manual_seed(seed)
        return (self.offset + self.scale * torch.rand((n, *self.frame), generator=g)).to(dtype)

    def __str__(self) -> str:
        return self.name


def _seeded(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(1234)
        return factory()

    return build


CASES = [
    LayerCase("Conv3d", _seeded(lambda: Conv3d((5, 3, 3))), (9, 8), kernel_frames=5),
    LayerCase("Conv3d-channels-bias", _seeded(lambda: Conv3d((4, 3, 5), 2, 3, bias=True)), (2, 7, 6), kernel_frames=4),
    LayerCase("Conv3d-replicate-even", _seeded(lambda: Conv3d((6, 4, 2), padding_mode="replicate")), (6, 7),
              kernel_frames=6),
    LayerCase("Conv3d-fft", _seeded(lambda: Conv3d((7, 5, 5), method="fft")), (9, 10), kernel_frames=7),
    LayerCase("TemporalFIR-shared", _seeded(lambda: TemporalFIR(torch.randn(8))), (5,), kernel_frames=8),
    LayerCase("TemporalFIR-per-channel", _seeded(lambda: TemporalFIR(torch.randn(6, 4, 3))), (4, 3), kernel_frames=6),
    LayerCase("TemporalFIR-fft", _seeded(lambda: TemporalFIR(torch.randn(300), method="auto")), (3,),
              kernel_frames=300),
    LayerCase("LowPass", lambda: LowPass(4.0), (3, 4)),
    LayerCase("LowPass-cascade-per-channel", lambda: LowPass(np.array([2.0, 5.0, 9.0]), n_stages=3), (3,)),
    LayerCase("HighPass", lambda: HighPass(6.0, weight=0.8), (5, 5)),
    LayerCase("GaussianSpatial", lambda: GaussianSpatial(1.3), (11, 9)),
    LayerCase("GaussianSpatial-zeros-channels", lambda: GaussianSpatial(0.8, padding_mode="zeros"), (2, 6, 7)),
    LayerCase("Rectify", lambda: Rectify(0.3, 2.0), (4,), offset=-0.5),
    LayerCase("Sigmoid", lambda: Sigmoid(0.5, 3.0), (4, 2), scale=4.0, offset=-2.0),
    LayerCase("Exp", lambda: Exp(0.5), (6,)),
    LayerCase("Softplus", lambda: Softplus(2.0), (6,), scale=4.0, offset=-2.0),
    LayerCase("Identity", Identity, (3,)),
    LayerCase("Elementwise-module", lambda: Elementwise(nn.Tanh()), (3,), offset=-0.5),
    LayerCase("BernoulliSpikes", lambda: BernoulliSpikes(seed=3, gain=2.0), (4, 4)),
    LayerCase("Sequential", lambda: Sequential(LowPass(3.0), nn.ReLU(), TemporalFIR(torch.ones(4) / 4)), (6,),
              kernel_frames=4, offset=-0.5),
    LayerCase("LN", _seeded(lambda: LN((6, 3, 3))), (8, 8), kernel_frames=6, offset=-0.5),
    LayerCase("LNLN", _seeded(lambda: LNLN((4, 3, 3), (3, 3, 3), hidden_channels=2)), (7, 7), kernel_frames=4,
              offset=-0.5),
    LayerCase("OPL", OPL, (10, 10)),
    LayerCase("Bipolar", Bipolar, (10, 10), scale=100.0),
    LayerCase("GanglionInput", GanglionInput, (10, 10), offset=-0.5),
    LayerCase("Retina", Retina, (12, 12)),
    LayerCase("Retina-spikes", lambda: Retina(spikes=True, seed=5), (12, 12)),
]
