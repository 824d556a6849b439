"""The plan of one k-nearest-centres search: block sizes, compute dtype, centred centres, rounding bound.

The fast pass works on centred points (``x − μ``, ``c − μ``, with ``μ`` the mean centre)
in float32 (float64 for float64 or integer input). ``_Plan.eps_factor`` bounds its
rounding: ``|fast estimate + ‖x − μ‖² − exact float64 distance| ≤ eps_factor·(‖x − μ‖ + ‖c − μ‖)²``,
which covers the matrix product (γ_d), the centring and the float64 sum, with a factor
2 to spare.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Blocks for small d: the product is memory bound, so blocks stay in L2 (1 MiB of float32).
_SMALL_D = 16
_SMALL_BLOCK_CTRS = 1024
_SMALL_BLOCK_ELEMENTS = 1 << 18
# Blocks for larger d: the product is compute bound and bigger blocks run faster (32 MiB of float32).
_LARGE_BLOCK_CTRS = 4096
_LARGE_BLOCK_ELEMENTS = 1 << 23
_MAX_CANDIDATES = 512  # at most this many centres per query in the kept groups (groups × group size)
_GROUP = 32  # consecutive centres per group (a power of two: contiguous minima vectorize)
_SPARE_GROUPS = 4  # groups kept beyond k, so that the certificate rarely fails


class _Centres:
    """The searched centres: rows ``rows`` (sorted, or all when None) of ``ctrs`` (n_ctrs, d)."""

    def __init__(self, ctrs: Tensor, rows: Tensor | None) -> None:
        self.ctrs = ctrs
        self.rows = rows
        self.n = ctrs.shape[0] if rows is None else rows.numel()

    def block(self, c0: int, c1: int) -> Tensor:
        """Centres ``c0:c1`` of the searched set, ``(c1 - c0, d)``."""
        return self.ctrs[c0:c1] if self.rows is None else self.ctrs[self.rows[c0:c1]]

    def rows_at(self, ids: Tensor) -> Tensor:
        """The searched centres ``ids`` (any shape), in float64: ``(*ids.shape, d)``."""
        return (self.ctrs[ids] if self.rows is None else self.ctrs[self.rows[ids]]).double()


class _Plan:
    """Block sizes, compute dtype, centring and rounding bound of one search.

    Attributes
    ----------
    dtype : torch.dtype
        Compute dtype of the fast pass.
    group, mb, per_block, n_blocks : int
        Centres per group, centres per block (a multiple of ``group``), groups per block, blocks.
    bq : int
        Queries per block; ``bq · mb ≤ (queries) · min(m, n_ctrs)``.
    cc : Tensor
        ``(n_blocks · mb, d)`` centred centres in ``dtype``, zero-padded.
    cn : Tensor
        ``(n_blocks · mb,)`` their squared norms, ``inf`` for the padding.
    c_norm : Tensor
        ``(n_blocks · mb,)`` float64 norms ``‖c − μ‖`` (0 for the padding).
    """

    def __init__(self, x: Tensor, centres: _Centres, k: int, m: int) -> None:
        exact64 = torch.float64 in (x.dtype, centres.ctrs.dtype) or not x.is_floating_point()
        self.dtype = torch.float64 if exact64 or not centres.ctrs.is_floating_point() else torch.float32
        self.d = x.shape[1]
        self.k, self.n = k, centres.n
        self.n_keep = k + _SPARE_GROUPS  # groups kept per query by the fast pass
        small = self.d <= _SMALL_D
        mb = min(m, centres.n, _SMALL_BLOCK_CTRS if small else _LARGE_BLOCK_CTRS)
        group = max(1, min(_GROUP, _MAX_CANDIDATES // self.n_keep, mb // self.n_keep))
        self.group = 1 << (group.bit_length() - 1)
        self.mb = (mb // self.group) * self.group
        self.per_block = self.mb // self.group
        self.n_blocks = -(-centres.n // self.mb)
        block_elements = _SMALL_BLOCK_ELEMENTS if small else _LARGE_BLOCK_ELEMENTS
        self.bq = max(1, min(x.shape[0], block_elements // self.mb))
        self._centre(centres)
        self.eps_factor = 4.0 * (self.d + 5) * torch.finfo(self.dtype).eps / 2

    def _centre(self, centres: _Centres) -> None:
        """Set ``mu``, ``cc``, ``cn``, ``c_norm`` and ``radius`` (the largest ``‖c − μ‖``)."""
        total = None
        for c0 in range(0, self.n, self.mb):
            part = centres.block(c0, min(c0 + self.mb, self.n)).double().sum(0)
            total = part if total is None else total + part
        self.mu = (total / self.n).to(self.dtype)
        self.cc = self.mu.new_zeros(self.n_blocks * self.mb, self.d)
        for c0 in range(0, self.n, self.mb):
            c1 = min(c0 + self.mb, self.n)
            self.cc[c0:c1] = centres.block(c0, c1).to(self.dtype) - self.mu
        self.cn = self.cc.square().sum(1)
        self.cn[self.n :] = float("inf")
        self.c_norm = self.cc.double().square().sum(1).sqrt()
        self.radius = float(self.c_norm[: self.n].max())

    def group_members(self, group_ids: Tensor) -> Tensor:
        """Centre ids (padding included) of the groups ``group_ids`` (b, G): ``(b, G · group)``."""
        offsets = torch.arange(self.group, device=group_ids.device)
        return (group_ids[:, :, None] * self.group + offsets).flatten(1)
