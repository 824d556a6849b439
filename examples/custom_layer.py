"""Write your own streaming Layer and check it obeys the chunk-invariance law.

An adapting integrator: a low-pass whose gain is divided by a slow running
average of its own output. Its state is two named tensors, so chunked runs,
checkpoints and resets work with no extra code.
"""

import math

import torch

from streamreg import Layer
from streamreg.testing import assert_chunk_invariant


class AdaptingIntegrator(Layer):
    """y[t] = a·y[t-1] + (1-a)·x[t] / (1 + g[t-1]);  g[t] = b·g[t-1] + (1-b)·|y[t]|."""

    def __init__(self, tau: float = 5.0, tau_adapt: float = 50.0) -> None:
        super().__init__()
        self.a, self.b = math.exp(-1 / tau), math.exp(-1 / tau_adapt)
        self.register_state("y")
        self.register_state("g")

    @property
    def own_history(self):
        return None  # recursive: the whole past matters

    def forward(self, x):  # x: (T, *frame)
        y = self.y if self.y is not None else x.new_zeros(x.shape[1:])
        g = self.g if self.g is not None else x.new_zeros(x.shape[1:])
        out = []
        for x_t in x.unbind(0):
            y = self.a * y + (1 - self.a) * x_t / (1 + g)
            g = self.b * g + (1 - self.b) * y.abs()
            out.append(y)
        self.y, self.g = y, g
        return torch.stack(out) if out else x.clone()


layer = AdaptingIntegrator()
x = torch.rand(500, 8)
y = assert_chunk_invariant(layer, x, dts=(1, 7, 64, 1000))
print("chunk invariant for dt = 1, 7, 64, 1000; output", y.shape, "history:", layer.history)
print("state after a run:", {k: tuple(v.shape) for k, v in layer.get_state().items()})
