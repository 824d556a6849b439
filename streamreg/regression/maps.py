"""Latent maps ``m``: modules that map a list of ``(n, d_in[g])`` tensors to a list of ``(n, d_out[h])`` tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from streamreg._validation import check_positive_int

__all__ = ["IdentityMap", "LinearMap"]


class IdentityMap(nn.Module):
    """Pass the list of projections through unchanged (``d_trans[h] == d_proj[h]``).

    Examples
    --------
    >>> x = [torch.ones(3, 2)]
    >>> IdentityMap()(x)[0] is x[0]
    True
    """

    def forward(self, x: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Return ``list(x)``; each entry is ``(n, d)``."""
        return list(x)


class LinearMap(nn.Module):
    """Concatenate the input groups, apply one ``nn.Linear``, split into the output groups.

    Parameters
    ----------
    d_in : sequence of int
        Widths of the input groups; their sum is the Linear's input width.
    d_out : sequence of int
        Widths of the output groups; their sum is the Linear's output width.
    bias : bool
        Whether the Linear has a bias.

    Examples
    --------
    >>> m = LinearMap([2, 3], [4])
    >>> [t.shape for t in m([torch.ones(5, 2), torch.ones(5, 3)])]
    [torch.Size([5, 4])]
    """

    def __init__(self, d_in: Sequence[int], d_out: Sequence[int], bias: bool = False) -> None:
        super().__init__()
        self.d_in = [check_positive_int(d, "d_in entries") for d in d_in]
        self.d_out = [check_positive_int(d, "d_out entries") for d in d_out]
        self.linear = nn.Linear(sum(self.d_in), sum(self.d_out), bias=bias)

    def forward(self, x: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Map ``[(n, d_in[g])]`` to ``[(n, d_out[h])]``."""
        if len(x) != len(self.d_in):
            msg = f"LinearMap expects {len(self.d_in)} input groups; got {len(x)}."
            raise ValueError(msg)
        return list(torch.split(self.linear(torch.cat(list(x), dim=1)), self.d_out, dim=1))
