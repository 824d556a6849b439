"""Private: the checks :func:`streamreg.optim.optimize` makes before it fits, so no fit fails silently."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["check_optimizer_params"]


def check_optimizer_params(layer: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Refuse an optimizer that holds parameters the layer lacks, or misses trainable ones it has.

    An optimizer built by ``layer.set_optimizer`` may leave out parameters that
    existed when it was built (``params=`` chose a subset); one built by hand
    must hold every trainable parameter (freeze the others with
    ``requires_grad_(False)``).

    Raises
    ------
    ValueError
        Naming the foreign parameters (by shape) or the missing ones (by name).
    """
    held = [p for group in optimizer.param_groups for p in group["params"]]
    own = dict(layer.named_parameters())
    own_ids = {id(p) for p in own.values()}
    foreign = [tuple(p.shape) for p in held if id(p) not in own_ids]
    if foreign:
        msg = (
            f"optimizer holds {len(foreign)} parameter(s) that are not this {type(layer).__name__}'s "
            f"(shapes {foreign}): it was built for another layer, or before a parameter was replaced "
            "(set_weight with a new shape, say). Build it again with layer.set_optimizer.<Name>(...)."
        )
        raise ValueError(msg)
    known = getattr(optimizer, "_streamreg_known_params", frozenset())
    held_ids = {id(p) for p in held}
    missing = [n for n, p in own.items() if p.requires_grad and id(p) not in held_ids and id(p) not in known]
    if missing:
        msg = (
            f"optimizer misses trainable parameter(s) {missing} of this {type(layer).__name__}: they would "
            "never change. Build it again with layer.set_optimizer.<Name>(...), or freeze them with "
            "requires_grad_(False)."
        )
        raise ValueError(msg)
