"""Stochastic layers that keep their random generator in the streaming state."""

from __future__ import annotations

import torch
from torch import Tensor

from streamreg._validation import check_nonnegative_int, check_positive_float
from streamreg.layer import Layer

__all__ = ["BernoulliSpikes"]


class BernoulliSpikes(Layer):
    """Draw spikes from a rate: one Bernoulli trial per element and frame.

    A spike occurs with probability ``1 - exp(-gain · max(x, 0))``, the chance
    of at least one event of a Poisson process with intensity ``gain · x`` per frame.

    Parameters
    ----------
    seed : int, default 0
        Seed of the layer's own generator; ``reset_state()`` returns to it.
    gain : float, default 1.0
        Converts the input to expected events per frame (for rates in Hz at
        1 ms frames, ``gain = 0.001``).

    Notes
    -----
    Shape: ``(T, *frame)`` → ``(T, *frame)`` of 0.0 / 1.0.
    State: ``rng``, the CPU generator state (uint8). Draws are made on the CPU
    in time order and moved to the input's device, so chunked output is bitwise
    equal to one-shot output on every device for the same seed.
    """

    def __init__(self, seed: int = 0, gain: float = 1.0) -> None:
        super().__init__()
        self.seed = check_nonnegative_int(seed, "seed")
        self.gain = check_positive_float(gain, "gain")
        self.register_state("rng")

    def forward(self, x: Tensor) -> Tensor:
        """Draw spikes for ``x`` of shape ``(T, *frame)``."""
        gen = torch.Generator()
        if self.rng is None:
            gen.manual_seed(self.seed)
        else:
            gen.set_state(self.rng.cpu())
        u = torch.rand(x.shape, generator=gen, dtype=x.dtype)
        self.rng = gen.get_state()
        p = -torch.expm1(-self.gain * x.clamp(min=0))
        return (u.to(x.device) < p).to(x.dtype)

    @property
    def own_history(self) -> int | None:
        """``None``: the generator's position depends on every earlier frame, so no
        finite look-back reproduces a later spike train (``run(start=)`` needs ``warmup``)."""
        return None

    def extra_repr(self) -> str:
        return f"seed={self.seed}, gain={self.gain}"
