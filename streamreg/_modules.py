"""Private helpers about torch modules that do not need :class:`streamreg.Layer`."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["module_device", "preserved_state"]


def module_device(module: nn.Module) -> torch.device | None:
    """The device of the first parameter or buffer of ``module`` (``None`` if it has none)."""
    for t in itertools.chain(module.parameters(), module.buffers()):
        return t.device
    return None


@contextlib.contextmanager
def preserved_state(module: nn.Module) -> Iterator[None]:
    """Run a probe through ``module`` and give it back the streaming state it had before."""
    state = module.get_state() if hasattr(module, "get_state") else None
    try:
        yield
    finally:
        if state is not None:
            module.set_state(state)
