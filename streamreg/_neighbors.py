"""Exact, memory-bounded k nearest centres: ``knn_mc`` and ``knn_do`` (janelia_core's names).

The search runs in two passes over blocks of at most ``m`` centres and a few thousand
queries. A fast pass in float32 (float64 for float64 input) computes
``‖c‖² − 2x·c`` by one matrix product per block on centred points, and keeps for
each query the ``k + 4`` groups of centres with the smallest group minima (a group is
up to 32 centres of a block). An exact pass then computes ``Σ_j (x_j − c_j)²`` in float64,
in a fixed order of coordinates, for every centre of those groups and orders them by
(distance, centre index). A rounding bound proves per query that no centre outside the
groups can be among the k nearest; the rare query where the bound cannot prove it is
searched again exactly over all centres.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import Tensor

__all__ = ["knn_do", "knn_mc"]

_MAX_BLOCK_CTRS = 1024  # centres per distance block (fewer if m is smaller); measured fastest on CPU
_BLOCK_ELEMENTS = 1 << 18  # queries × centres per distance block: 1 MiB of float32, stays in L2
_MAX_CANDIDATES = 256  # centres refined exactly per query (groups × group size)
_GROUP = 32  # centres per group in the fast pass
_MERGE_BLOCKS = 8  # blocks whose group minima are merged by one topk


def _check_count(value: Any, name: str, high: int | None = None, high_text: str = "") -> int:
    """Return ``value`` as an int in ``[1, high]``; ``ValueError`` naming the value otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{name} must be a positive integer; got {value!r} of type {type(value).__name__}."
        raise ValueError(msg)
    if value < 1:
        msg = f"{name} must be a positive integer; got {value!r}."
        raise ValueError(msg)
    if high is not None and value > high:
        msg = f"{name} must be at most {high} ({high_text}); got {value!r}."
        raise ValueError(msg)
    return int(value)


def _check_points(x: Any, ctrs: Any) -> None:
    """``x`` (n, d) and ``ctrs`` (n_ctrs, d): finite real tensors on one device."""
    for name, t in (("x", x), ("ctrs", ctrs)):
        if not isinstance(t, Tensor):
            msg = f"{name} must be a torch.Tensor; got {type(t).__name__}."
            raise TypeError(msg)
        if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
            msg = f"{name} must have shape (n, d) with n, d ≥ 1; got {tuple(t.shape)}."
            raise ValueError(msg)
        if t.is_complex() or t.dtype == torch.bool:
            msg = f"{name} must be real-valued; got dtype {t.dtype}."
            raise ValueError(msg)
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            msg = f"{name} must be finite; it holds NaN or inf."
            raise ValueError(msg)
    if x.shape[1] != ctrs.shape[1]:
        msg = f"x and ctrs must have the same number of columns d; got x {tuple(x.shape)}, ctrs {tuple(ctrs.shape)}."
        raise ValueError(msg)
    if x.device != ctrs.device:
        msg = f"x and ctrs must be on one device; got {x.device} and {ctrs.device}."
        raise ValueError(msg)


class _Centres:
    """The searched centres: rows ``rows`` (sorted, or all when None) of ``ctrs``."""

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


def _exact_sq(xq: Tensor, cands: Tensor) -> Tensor:
    """``Σ_j (x_j − c_j)²`` in float64, summed over j = 0..d-1 in that order.

    ``xq`` is ``(b, d)`` float64 and ``cands`` ``(b or 1, C, d)`` float64; returns
    ``(b, C)``. The same elementwise operations serve every caller, so a distance never
    depends on blocking.
    """
    sq = (xq[:, None, :] - cands).square()
    acc = sq[:, :, 0]
    for j in range(1, sq.shape[2]):
        acc = acc + sq[:, :, j]
    return acc


def _order(dist: Tensor, ids: Tensor, k: int) -> tuple[Tensor, Tensor]:
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
    """:func:`_order` by two sorts: by id, then stably by distance."""
    ids, perm = ids.sort(dim=1)
    dist = dist.gather(1, perm)
    dist, perm = dist.sort(dim=1, stable=True)
    return dist[:, :k], ids.gather(1, perm[:, :k])


class _Plan:
    """Block sizes, compute dtype, centring and rounding bound of one search."""

    def __init__(self, x: Tensor, centres: _Centres, k: int, m: int) -> None:
        exact64 = torch.float64 in (x.dtype, centres.ctrs.dtype) or not x.is_floating_point()
        self.dtype = torch.float64 if exact64 or not centres.ctrs.is_floating_point() else torch.float32
        self.d = x.shape[1]
        self.k, self.n = k, centres.n
        self.n_keep = k + 4  # groups kept per query by the fast pass (spare ones make doubt rare)
        mb = min(m, centres.n, _MAX_BLOCK_CTRS)
        self.group = max(1, min(_GROUP, _MAX_CANDIDATES // self.n_keep, mb // self.n_keep))
        self.mb = (mb // self.group) * self.group
        self.per_block = self.mb // self.group  # groups per block
        self.n_blocks = -(-centres.n // self.mb)
        self.bq = max(1, min(x.shape[0], _BLOCK_ELEMENTS // self.mb))
        self._centre(centres)
        # |fast estimate − exact float64 distance| ≤ eps_factor·(‖x − μ‖ + ‖c − μ‖)² (see _certified)
        self.eps_factor = 4.0 * (self.d + 5) * torch.finfo(self.dtype).eps / 2

    def _centre(self, centres: _Centres) -> None:
        """Centred centres ``cc`` (n_blocks·mb, d) in the compute dtype, padded with centres at
        infinite distance, their squared norms ``cn``, the mean ``mu`` and the largest norm ``radius``."""
        total = None
        for c0 in range(0, self.n, self.mb):
            part = centres.block(c0, min(c0 + self.mb, self.n)).double().sum(0)
            total = part if total is None else total + part
        self.mu = (total / self.n).to(self.dtype)
        n_pad = self.n_blocks * self.mb
        self.cc = self.mu.new_zeros(n_pad, self.d)
        for c0 in range(0, self.n, self.mb):
            c1 = min(c0 + self.mb, self.n)
            self.cc[c0:c1] = centres.block(c0, c1).to(self.dtype) - self.mu
        self.cn = self.cc.square().sum(1)
        self.cn[self.n :] = float("inf")
        self.radius = float(self.cc[: self.n].double().square().sum(1).max().sqrt())


def _fast_groups(xc: Tensor, plan: _Plan) -> tuple[Tensor, Tensor]:
    """Fast pass: the ``plan.n_keep`` groups with the smallest ``‖c‖² − 2x·c`` minima.

    ``xc`` is ``(b, d)``, centred, in the compute dtype. Returns the kept minima and
    group ids, ``(b, ≤ n_keep)``; every group not kept has a minimum ≥ every kept one.
    Group minima of up to ``_MERGE_BLOCKS`` blocks wait in a list before one ``topk``.
    """
    b, mb, g = xc.shape[0], plan.mb, plan.group
    kept_v = xc.new_empty(b, 0)
    kept_i = torch.empty(b, 0, dtype=torch.long, device=xc.device)
    pending: list[Tensor] = []
    first = 0  # group id of the first pending minimum
    for blk in range(plan.n_blocks):
        c0 = blk * mb
        dist = torch.addmm(plan.cn[c0 : c0 + mb], xc, plan.cc[c0 : c0 + mb].T, alpha=-2)  # (b, mb): ‖c‖² − 2x·c
        pending.append(dist.view(b, g, plan.per_block).amin(1))  # group j: centres c0 + j + t·per_block
        if len(pending) == _MERGE_BLOCKS or blk == plan.n_blocks - 1:
            minima = torch.cat([kept_v, *pending], 1)
            fresh = torch.arange(first, (blk + 1) * plan.per_block, device=xc.device).expand(b, -1)
            ids = torch.cat([kept_i, fresh], 1)
            kept_v, j = minima.topk(min(plan.n_keep, minima.shape[1]), dim=1, largest=False, sorted=False)
            kept_i = ids.gather(1, j)
            pending, first = [], (blk + 1) * plan.per_block
    return kept_v, kept_i


def _group_members(group_ids: Tensor, plan: _Plan) -> Tensor:
    """Centre ids (padding included) of the groups ``group_ids`` (b, G): ``(b, G·group)``."""
    blk, j = group_ids // plan.per_block, group_ids % plan.per_block
    offsets = torch.arange(plan.group, device=group_ids.device) * plan.per_block
    return ((blk * plan.mb + j)[:, :, None] + offsets).flatten(1)


def _refine(x64: Tensor, centres: _Centres, ids: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Exact float64 distances to the candidate ids (b, C); the k best by (distance, id)."""
    dist = _exact_sq(x64, centres.rows_at(ids.clamp(max=centres.n - 1)))
    dist.masked_fill_(ids >= centres.n, float("inf"))
    return _order(dist, ids, k)


def _exhaustive(x64: Tensor, centres: _Centres, plan: _Plan) -> Tensor:
    """Exact search over all centres, block by block, ties by lower id: ids ``(b, k)``."""
    b = x64.shape[0]
    if b * plan.mb * plan.d > _BLOCK_ELEMENTS * 16:  # keep the (b, mb, d) difference bounded
        half = b // 2
        return torch.cat([_exhaustive(x64[:half], centres, plan), _exhaustive(x64[half:], centres, plan)])
    best_d = x64.new_empty(b, 0)
    best_i = torch.empty(b, 0, dtype=torch.long, device=x64.device)
    for c0 in range(0, plan.n, plan.mb):
        ids = torch.arange(c0, min(c0 + plan.mb, plan.n), device=x64.device)
        dist = _exact_sq(x64, centres.rows_at(ids)[None])
        # earlier blocks hold lower ids and come first: a stable sort keeps ties in id order
        best_d, perm = torch.cat([best_d, dist], 1).sort(dim=1, stable=True)
        best_i = torch.cat([best_i, ids.expand(b, -1)], 1).gather(1, perm[:, : plan.k])
        best_d = best_d[:, : plan.k]
    return best_i


def _certified(xc: Tensor, kept_v: Tensor, kth: Tensor, plan: _Plan) -> Tensor:
    """Queries (b,) for which no centre outside the kept groups can be among the k nearest.

    A centre outside them has fast estimate ``≥ max(kept_v)``. If its exact distance
    were ``≤ kth`` it would lie within ``√kth`` (plus centring rounding) of the query, so
    ``‖c − μ‖ ≤ ‖x − μ‖ + √kth + δ``, and its estimate would be off by at most
    ``eps = eps_factor·(‖x − μ‖ + ‖c − μ‖)²``: the rounding of the matrix product
    (γ_d), of the centring and of the exact float64 sum, with a factor 2 to spare.
    So ``max(kept_v) + ‖x − μ‖² − eps > kth`` rules every such centre out.
    """
    if kept_v.shape[1] < plan.n_keep or plan.n_blocks * plan.per_block <= plan.n_keep:
        return torch.ones_like(kth, dtype=torch.bool)
    xn = xc.double().square().sum(1)
    norm = xn.sqrt()
    unit = torch.finfo(plan.dtype).eps
    reach = torch.minimum(norm + kth.sqrt() + 2 * unit * (norm + plan.radius), norm.new_tensor(plan.radius))
    eps = plan.eps_factor * (norm + reach).square()
    return kept_v.amax(1).double() + xn - eps > kth


def _search(x: Tensor, centres: _Centres, k: int, m: int) -> Tensor:
    """Ids into the searched set of the k nearest centres of each row of ``x``: ``(k, n)``."""
    plan = _Plan(x, centres, k, m)
    out = torch.empty(x.shape[0], k, dtype=torch.long, device=x.device)
    for q0 in range(0, x.shape[0], plan.bq):
        xb = x[q0 : q0 + plan.bq]
        xc = xb.to(plan.dtype) - plan.mu
        kept_v, kept_i = _fast_groups(xc, plan)
        x64 = xb.double()
        dist, ids = _refine(x64, centres, _group_members(kept_i, plan), k)
        doubtful = (~_certified(xc, kept_v, dist[:, -1], plan)).nonzero().squeeze(1)
        if doubtful.numel():
            ids[doubtful] = _exhaustive(x64[doubtful], centres, plan)
        out[q0 : q0 + plan.bq] = ids
    return out.T.contiguous()


def knn_mc(x: Tensor, ctrs: Tensor, k: int, m: int) -> Tensor:
    """Indices of the k nearest centres of every point, searching ``m`` centres at a time.

    Parameters
    ----------
    x : Tensor
        ``(n, d)`` points (real, finite).
    ctrs : Tensor
        ``(n_ctrs, d)`` centres, on the device of ``x``.
    k : int
        Neighbours per point, ``1 ≤ k ≤ n_ctrs``.
    m : int
        Centres processed at a time, ``≥ 1`` (values above ``n_ctrs`` mean all of them;
        blocks are capped at 1024 centres, which is fastest on CPU).

    Returns
    -------
    indices : Tensor
        ``(k, n)`` int64 on the device of ``x``: ``indices[:, i]`` are the centres
        nearest to ``x[i]``, nearest first.

    Raises
    ------
    ValueError
        If ``k`` or ``m`` is not an integer in range (bools count as non-integers), or
        if the shapes, devices or values of ``x`` and ``ctrs`` do not fit.

    Notes
    -----
    Exact: the distances of the returned centres are the k smallest of the squared
    Euclidean distances computed in float64 as ``Σ_j (x_j − c_j)²``, and ties break by
    the lower centre index, whatever ``m`` is. A fast float32 pass (float64 for float64
    input) selects candidates; a rounding bound checks per point that no other centre
    can be closer, and the rare point it cannot clear is searched again exhaustively.

    Memory: besides the output, the temporaries are one ``(b, min(m, 1024))`` distance
    block with ``b ≤ min(n, 2**18 / min(m, 1024))`` points, the coordinates of that
    block's ``b × 256`` candidates in float64, and one centred float copy of the
    centres ``(n_ctrs, d + 1)``. For ``d`` up to about 10 that is at most a small
    constant times ``m × n`` elements plus the size of ``ctrs``, and never the
    ``m × n × d`` of janelia_core's broadcast; a search over 20000 × 50000 points in
    3-D adds about 10 MB.

    Examples
    --------
    >>> ctrs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    >>> knn_mc(torch.tensor([[0.9, 0.0], [4.0, 4.0]]), ctrs, k=2, m=2)
    tensor([[1, 2],
            [0, 1]])
    """
    _check_points(x, ctrs)
    k = _check_count(k, "k", ctrs.shape[0], "the number of centres")
    m = _check_count(m, "m")
    return _search(x, _Centres(ctrs, None), k, m)


def knn_do(
    x: Tensor, ctrs: Tensor, k: int, m: int, n_ctrs_used: int, generator: torch.Generator | None = None
) -> Tensor:
    """:func:`knn_mc` among ``n_ctrs_used`` centres drawn at random (dropout of centres).

    Parameters
    ----------
    x : Tensor
        ``(n, d)`` points.
    ctrs : Tensor
        ``(n_ctrs, d)`` centres, on the device of ``x``.
    k : int
        Neighbours per point, ``1 ≤ k ≤ n_ctrs_used``.
    m : int
        Centres processed at a time, ``≥ 1``.
    n_ctrs_used : int
        Centres drawn without replacement, ``1 ≤ n_ctrs_used ≤ n_ctrs``; ``n_ctrs`` means
        no dropout.
    generator : torch.Generator, optional
        Source of the draw (one ``torch.randperm(n_ctrs)`` on the generator's device);
        the global generator when None.

    Returns
    -------
    indices : Tensor
        ``(k, n)`` int64 indices into the original ``ctrs``, nearest first; ties break by
        the lower original index.

    Raises
    ------
    ValueError
        As :func:`knn_mc`, and if ``n_ctrs_used`` is out of range.

    Notes
    -----
    The drawn rows are read in place (no copy of the centres), so memory is that of
    :func:`knn_mc` plus ``n_ctrs_used`` int64 row numbers.

    Examples
    --------
    >>> ctrs = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    >>> knn_do(torch.tensor([[1.1]]), ctrs, k=1, m=2, n_ctrs_used=4)
    tensor([[1]])
    """
    _check_points(x, ctrs)
    n_ctrs_used = _check_count(n_ctrs_used, "n_ctrs_used", ctrs.shape[0], "the number of centres")
    k = _check_count(k, "k", n_ctrs_used, "n_ctrs_used")
    m = _check_count(m, "m")
    if generator is not None and not isinstance(generator, torch.Generator):
        msg = f"generator must be a torch.Generator or None; got {type(generator).__name__}."
        raise TypeError(msg)
    device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(ctrs.shape[0], generator=generator, device=device)
    rows = perm[:n_ctrs_used].sort().values.to(ctrs.device)
    if n_ctrs_used == ctrs.shape[0]:
        return _search(x, _Centres(ctrs, None), k, m)
    return rows[_search(x, _Centres(ctrs, rows), k, m)]
