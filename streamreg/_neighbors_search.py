"""The k-nearest-centres search: a fast pass picks candidate groups, an exact pass orders them.

For each block of queries:

1. Fast pass (:func:`_fast_groups`): one ``addmm`` per block of centres gives
   ``‖c − μ‖² − 2(x − μ)·(c − μ)`` into a reused buffer; the minimum over each group of
   consecutive centres is taken, and the ``k + 4`` groups with the smallest minima are kept.
2. Candidates (:func:`_refine`): the fast estimates of the kept groups' centres are
   recomputed by one batched product; a centre whose estimate, less its rounding bound,
   exceeds the bounded estimate of the k-th best cannot be among the k nearest and is dropped.
3. Exact pass: the remaining centres (typically little more than k) are measured in
   float64 (:mod:`streamreg._neighbors_exact`) and ordered by (distance, centre index).
4. Certificate (:func:`_certified`): a rounding bound proves per query that no centre
   outside the kept groups can be among the k nearest; a query it cannot clear is
   searched again exhaustively.
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamreg._neighbors_exact import exact_sq_pairs, exhaustive, order
from streamreg._neighbors_plan import _Centres, _Plan

_MERGE_BLOCKS = 8  # blocks whose group minima are merged by one topk
_REFINE_ELEMENTS = 1 << 21  # candidate coordinates gathered at once (8 MiB of float32)


def _fast_groups(xc: Tensor, plan: _Plan, buf: Tensor) -> tuple[Tensor, Tensor]:
    """Fast pass: the ``plan.n_keep`` groups with the smallest ``‖c‖² − 2x·c`` minima.

    ``xc`` is ``(b, d)``, centred, in the compute dtype; ``buf`` a ``(≥ b, mb)`` buffer.
    Returns the kept minima and group ids, ``(b, ≤ n_keep)``; every group not kept has a
    minimum ≥ every kept one. Minima of up to ``_MERGE_BLOCKS`` blocks wait before one ``topk``.
    """
    b, mb = xc.shape[0], plan.mb
    out = buf[:b]
    kept_v = xc.new_empty(b, 0)
    kept_i = torch.empty(b, 0, dtype=torch.long, device=xc.device)
    pending: list[Tensor] = []
    first = 0  # group id of the first pending minimum
    for blk in range(plan.n_blocks):
        c0 = blk * mb
        torch.addmm(plan.cn[c0 : c0 + mb], xc, plan.cc[c0 : c0 + mb].T, alpha=-2, out=out)
        pending.append(out.view(b, plan.per_block, plan.group).amin(2))  # group j: centres j·group + 0..group-1
        if len(pending) == _MERGE_BLOCKS or blk == plan.n_blocks - 1:
            n_kept = kept_v.shape[1]
            minima = torch.cat([kept_v, *pending], 1)
            kept_v, j = minima.topk(min(plan.n_keep, minima.shape[1]), dim=1, largest=False, sorted=False)
            old = kept_i.gather(1, j.clamp(max=max(n_kept - 1, 0))) if n_kept else j
            kept_i = torch.where(j < n_kept, old, j + (first - n_kept))
            pending, first = [], (blk + 1) * plan.per_block
    return kept_v, kept_i


def _group_pairs(xc: Tensor, kept_v: Tensor, plan: _Plan) -> tuple[Tensor, Tensor]:
    """The (query, kept slot) pairs ``(P,)``, ``(P,)`` whose group may hold one of the k nearest.

    The k smallest group minima belong to k distinct centres, so the k-th exact distance is
    at most ``v_k + ‖x − μ‖² + e`` (``e`` the rounding bound at the largest centre norm);
    every member of group j is at least ``v_j + ‖x − μ‖² − e`` away. Groups with
    ``v_j − v_k > 2e`` are dropped.
    """
    v = kept_v.double()
    err = plan.eps_factor * (xc.double().square().sum(1).sqrt() + plan.radius).square()
    vk = v.kthvalue(plan.k, dim=1, keepdim=True).values
    return (v - vk <= 2 * err[:, None]).nonzero().unbind(1)


def _estimates(xc: Tensor, kept_v: Tensor, kept_i: Tensor, plan: _Plan) -> tuple[Tensor, Tensor]:
    """Fast estimates and their rounding bounds (float64) of the kept groups' members: ``(b, C)`` each.

    Members of dropped groups (:func:`_group_pairs`) get ``inf``; a bound is
    ``eps_factor·(‖x − μ‖ + ‖c − μ‖)²``.
    """
    b, g = xc.shape[0], plan.group
    est = torch.full((b, kept_i.shape[1], g), float("inf"), dtype=torch.float64, device=xc.device)
    err = torch.zeros_like(est)
    q_all, slot_all = _group_pairs(xc, kept_v, plan)
    x_norm = xc.double().square().sum(1).sqrt()
    step = max(1, _REFINE_ELEMENTS // (g * plan.d))
    cc, cn, c_norm = plan.cc.view(-1, g, plan.d), plan.cn.view(-1, g), plan.c_norm.view(-1, g)
    for p0 in range(0, q_all.numel(), step):
        q, slot = q_all[p0 : p0 + step], slot_all[p0 : p0 + step]
        gid = kept_i[q, slot]
        est[q, slot] = torch.baddbmm(cn[gid][:, :, None], cc[gid], xc[q][:, :, None], alpha=-2).squeeze(2).double()
        err[q, slot] = plan.eps_factor * (x_norm[q][:, None] + c_norm[gid]).square()
    return est.flatten(1), err.flatten(1)


def _refine(
    xb: Tensor, xc: Tensor, centres: _Centres, kept_v: Tensor, kept_i: Tensor, plan: _Plan
) -> tuple[Tensor, Tensor]:
    """The k nearest members of the kept groups by exact (distance, id): distances and ids, ``(b, k)``.

    With ``f`` a member's fast estimate and ``e`` its bound, a member is measured exactly
    unless ``f − e`` exceeds ``max(f + e)`` over the k smallest estimates: its exact
    distance is then larger than k members' exact distances, ties excluded.
    """
    est, err = _estimates(xc, kept_v, kept_i, plan)
    pos = est.topk(plan.k, dim=1, largest=False, sorted=False).indices
    bound = (est + err).gather(1, pos).amax(1, keepdim=True)
    q, col = (est - err <= bound).nonzero().unbind(1)
    ids = plan.group_members(kept_i)
    cid = ids[q, col]
    dist = torch.full(ids.shape, float("inf"), dtype=torch.float64, device=ids.device)
    dist[q, col] = exact_sq_pairs(xb[q].double(), centres.rows_at(cid))
    return order(dist, ids, plan.k)


def _certified(xc: Tensor, kept_v: Tensor, kth: Tensor, plan: _Plan) -> Tensor:
    """Queries (b,) for which no centre outside the kept groups can be among the k nearest.

    A centre outside them has fast estimate ``≥ max(kept_v)``. If its exact distance
    were ``≤ kth`` it would lie within ``√kth`` (plus centring rounding) of the query, so
    ``‖c − μ‖ ≤ ‖x − μ‖ + √kth + δ``, and its estimate would be off by at most
    ``eps = eps_factor·(‖x − μ‖ + ‖c − μ‖)²``. So ``max(kept_v) + ‖x − μ‖² − eps > kth``
    rules every such centre out.
    """
    if kept_v.shape[1] < plan.n_keep or plan.n_blocks * plan.per_block <= plan.n_keep:
        return torch.ones_like(kth, dtype=torch.bool)
    xn = xc.double().square().sum(1)
    norm = xn.sqrt()
    unit = torch.finfo(plan.dtype).eps
    reach = torch.minimum(norm + kth.sqrt() + 2 * unit * (norm + plan.radius), norm.new_tensor(plan.radius))
    eps = plan.eps_factor * (norm + reach).square()
    return kept_v.amax(1).double() + xn - eps > kth


def search(x: Tensor, centres: _Centres, k: int, m: int) -> Tensor:
    """Ids into the searched set of the k nearest centres of each row of ``x`` (n, d): ``(k, n)``."""
    plan = _Plan(x, centres, k, m)
    out = torch.empty(x.shape[0], k, dtype=torch.long, device=x.device)
    buf = plan.cc.new_empty(plan.bq, plan.mb)
    for q0 in range(0, x.shape[0], plan.bq):
        xb = x[q0 : q0 + plan.bq]
        xc = xb.to(plan.dtype) - plan.mu
        kept_v, kept_i = _fast_groups(xc, plan, buf)
        dist, ids = _refine(xb, xc, centres, kept_v, kept_i, plan)
        doubtful = (~_certified(xc, kept_v, dist[:, -1], plan)).nonzero().squeeze(1)
        if doubtful.numel():
            ids[doubtful] = exhaustive(xb[doubtful].double(), centres, plan)
        out[q0 : q0 + plan.bq] = ids
    return out.T.contiguous()
