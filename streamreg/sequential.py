"""``Sequential``: a chain of layers that carries every child's state."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from torch import Tensor, nn

from streamreg.layer import Layer

__all__ = ["Sequential"]


class Sequential(Layer):
    """Apply layers one after the other, like ``torch.nn.Sequential``.

    Children may be streamreg Layers or any frame-wise ``torch.nn`` module
    (``nn.ReLU()``, ``nn.Sigmoid()``, ``nn.Linear`` over the last axis, ...): they
    treat axis 0 as a batch axis, so chunking changes at most their rounding
    (bitwise only for :data:`streamreg.layer.EXACT_TORCH_MODULES`).

    Notes
    -----
    Shape: ``(T, *frame_in)`` → ``(T, *frame_out)`` of the last child.
    State: the children's, under their index (``"0"``, ``"1"``, ...) or name.
    History: the sum of the children's histories.

    Examples
    --------
    >>> import torch
    >>> from streamreg.filters import LowPass
    >>> model = Sequential(LowPass(tau=4.0), torch.nn.ReLU())
    >>> model.run(torch.randn(100, 3), dt=7).shape
    (100, 3)
    """

    def __init__(self, *modules: nn.Module | OrderedDict[str, nn.Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, module in items:
            if not isinstance(module, nn.Module):
                msg = f"Sequential children must be torch.nn.Module instances; got {type(module).__name__} at {name!r}."
                raise TypeError(msg)
            self.add_module(name, module)

    def forward(self, x: Tensor) -> Tensor:
        """Apply each child in order to ``x`` of shape ``(T, *frame)``."""
        for module in self._modules.values():
            x = module(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> nn.Module:
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return list(self._modules.values())[index]
