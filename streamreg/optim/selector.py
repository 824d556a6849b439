"""Optimizer registry and the tab-completable ``layer.set_optimizer.<Name>()`` view."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["OptimizerSelector", "list_optimizers", "register_optimizer", "select_optimizer"]

_REGISTRY: dict[str, type[torch.optim.Optimizer]] = {}


def _constructible(cls: type[torch.optim.Optimizer]) -> bool:
    """True if ``cls`` builds with its default arguments on a small matrix parameter.

    Some constructible optimizers still restrict what they fit: torch's ``Muon``
    takes only 2-D parameters and ``SparseAdam`` only sparse gradients; torch
    raises a clear error when they meet a Layer's parameters.
    """
    try:
        cls([nn.Parameter(torch.zeros(2, 2))])
    except Exception:  # any failure means "cannot be constructed": the class is left out, never raised
        return False
    return True


@functools.cache
def _torch_optimizers() -> dict[str, type[torch.optim.Optimizer]]:
    found = {}
    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        if (inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer
                and not inspect.isabstract(obj) and _constructible(obj)):
            found[name] = obj
    return found


def register_optimizer(name: str, cls: type[torch.optim.Optimizer]) -> None:
    """Make ``cls`` available as ``layer.set_optimizer.<name>()``."""
    if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
        msg = f"cls must be a torch.optim.Optimizer subclass; got {cls!r}."
        raise TypeError(msg)
    if not name.isidentifier() or name.startswith("_"):
        msg = f"name must be a Python identifier not starting with '_'; got {name!r}."
        raise ValueError(msg)
    _REGISTRY[name] = cls


def list_optimizers() -> list[str]:
    """Names ``set_optimizer`` can build: torch.optim's usable optimizers and registered ones."""
    return sorted({**_torch_optimizers(), **_REGISTRY})


def select_optimizer(name: str) -> type[torch.optim.Optimizer]:
    """The optimizer class registered under ``name``."""
    table = {**_torch_optimizers(), **_REGISTRY}
    if name not in table:
        msg = f"Unknown optimizer {name!r}; available: {sorted(table)}."
        raise AttributeError(msg)
    return table[name]


class OptimizerSelector:
    """``layer.set_optimizer.<Name>(params=None, **kwargs)`` builds, stores and returns an optimizer.

    ``params`` defaults to every trainable parameter of the layer. The result is
    stored as ``layer.optimizer``. ``dir()`` lists exactly the buildable names,
    so tab completion shows them; each entry carries its optimizer's docstring.

    Examples
    --------
    >>> from streamreg.filters import TemporalFIR
    >>> fir = TemporalFIR([1.0, 0.0])
    >>> opt = fir.set_optimizer.SGD(lr=0.1)
    >>> fir.optimizer is opt, type(opt).__name__
    (True, 'SGD')
    """

    def __init__(self, layer: nn.Module) -> None:
        self._layer = layer

    def __dir__(self) -> list[str]:
        return list_optimizers()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        cls = select_optimizer(name)
        layer = self._layer

        def build(params: Iterable[Any] | None = None, **kwargs: Any) -> torch.optim.Optimizer:
            chosen = [p for p in layer.parameters() if p.requires_grad] if params is None else params
            optimizer = cls(chosen, **kwargs)
            # The layer's parameters when it was built: optimize() then knows a parameter left
            # out on purpose from one added later (by set_weight, say) that it silently misses.
            optimizer._streamreg_known_params = frozenset(id(p) for p in layer.parameters())
            layer.optimizer = optimizer
            return optimizer

        build.__name__ = name
        build.__qualname__ = f"set_optimizer.{name}"
        build.__doc__ = cls.__doc__
        return build

    def __call__(self, name: str, params: Iterable[Any] | None = None, **kwargs: Any) -> torch.optim.Optimizer:
        """``set_optimizer("Adam", lr=0.01)``: the same as ``set_optimizer.Adam(lr=0.01)``."""
        return getattr(self, name)(params, **kwargs)

    def __repr__(self) -> str:
        return f"<set_optimizer for {type(self._layer).__name__}: {', '.join(list_optimizers())}>"
