"""Exact float64 distances and the (distance, index) order of the k-nearest-centres search.

Every exact distance is ``Σ_j (x_j − c_j)²`` in float64, summed over ``j = 0..d-1`` in
that order by the same elementwise operations, so a distance never depends on blocking
and ties break the same way in every path.
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamreg._neighbors_plan import _Centres, _Plan

_EXHAUSTIVE_ELEMENTS = 1 << 22  # float64 differences held at once by the exhaustive search (32 MiB)


def exact_sq_pairs(xq: Tensor, cands: Tensor) -> Tensor:
    """``Σ_j (x_j − c_j)²`` in float64 for pairs: ``xq`` and ``cands`` ``(p, d)`` float64 → ``(p,)``."""
    sq = (xq - cands).T.contiguous().square_()  # (d, p): each coordinate is one contiguous row
    acc = sq[0].clone()
    for j in range(1, sq.shape[0]):
        acc += sq[j]
    return acc


def exact_sq_block(xq: Tensor, cands: Tensor) -> Tensor:
    """``Σ_j (x_j − c_j)²`` in float64 between ``xq`` (b, d) and ``cands`` (C, d): ``(b, C)``."""
    b, c = xq.shape[0], cands.shape[0]
    diff = xq.T[:, :, None] - cands.T[:, None, :]  # (d, b, C), coordinate-major
    sq = diff.square_().view(diff.shape[0], b * c)
    acc = sq[0].clone()
    for j in range(1, sq.shape[0]):
        acc += sq[j]
    return acc.view(b, c)


def order(dist: Tensor, ids: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k smallest of ``dist`` (b, C) by (distance, id): their distances and ids, (b, k).

    One ``topk`` serves every row without a tie among or at the edge of its k smallest;
    rows with ties are sorted by id, then stably by distance.
    """
    best, pos = dist.topk(k, dim=1, largest=False, sorted=True)
    best_ids = ids.gather(1, pos)
    tied = (dist <= best[:, -1:]).sum(1) > k
    if k > 1:
        tied |= (best[:, 1:] == best[:, :-1]).any(1)
    rows = tied.nonzero().squeeze(1)
    if rows.numel():
        best[rows], best_ids[rows] = _sort_order(dist[rows], ids[rows], k)
    return best, best_ids


def _sort_order(dist: Tensor, ids: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """:func:`order` by two sorts: by id, then stably by distance."""
    ids, perm = ids.sort(dim=1)
    dist = dist.gather(1, perm)
    dist, perm = dist.sort(dim=1, stable=True)
    return dist[:, :k], ids.gather(1, perm[:, :k])


def exhaustive(x64: Tensor, centres: _Centres, plan: _Plan) -> Tensor:
    """Exact search of ``x64`` (b, d) over all centres, block by block, ties by lower id: ids ``(b, k)``.

    At most ``_EXHAUSTIVE_ELEMENTS`` float64 differences are held at once, whatever ``m`` is.
    """
    b = x64.shape[0]
    step = max(1, min(plan.n, _EXHAUSTIVE_ELEMENTS // max(1, b * plan.d)))
    if b > 1 and b * step * plan.d > _EXHAUSTIVE_ELEMENTS:
        half = b // 2
        return torch.cat([exhaustive(x64[:half], centres, plan), exhaustive(x64[half:], centres, plan)])
    best_d = x64.new_empty(b, 0)
    best_i = torch.empty(b, 0, dtype=torch.long, device=x64.device)
    for c0 in range(0, plan.n, step):
        ids = torch.arange(c0, min(c0 + step, plan.n), device=x64.device)
        dist = exact_sq_block(x64, centres.rows_at(ids))
        # earlier blocks hold lower ids and come first: a stable sort keeps ties in id order
        best_d, perm = torch.cat([best_d, dist], 1).sort(dim=1, stable=True)
        best_i = torch.cat([best_i, ids.expand(b, -1)], 1).gather(1, perm[:, : plan.k])
        best_d = best_d[:, : plan.k]
    return best_i
