"""Exact, memory-bounded k nearest centres: ``knn_mc`` and ``knn_do`` (janelia_core's names).

This module holds the public functions and their argument checks; the search itself is in
:mod:`streamreg._neighbors_search` (fast pass, candidates, certificate), its exact float64
distances and ordering in :mod:`streamreg._neighbors_exact`, and block sizes and the
rounding bound in :mod:`streamreg._neighbors_plan`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from streamreg._neighbors_plan import _Centres
from streamreg._neighbors_search import search
from streamreg._validation import check_count

__all__ = ["knn_do", "knn_mc"]

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
        blocks are capped at 1024 centres for ``d ≤ 16`` and 4096 above, which is
        fastest on CPU).

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
    Euclidean distances computed in float64 as ``Σ_j (x_j − c_j)²`` (summed in the
    order ``j = 0..d-1``), and ties break by the lower centre index, whatever ``m`` is.
    A fast float32 pass (float64 for float64 or integer input) computes
    ``‖c‖² − 2x·c`` by matrix products and keeps candidate groups; a rounding bound
    drops candidates that cannot be among the k nearest, measures the rest exactly,
    and checks per point that no centre outside the groups can be closer. The rare
    point it cannot clear is searched again exhaustively.

    Memory: besides the output, the temporaries are one reused ``(b, mb)`` block of
    fast distances, with ``mb ≤ min(m, n_ctrs, 4096)`` centres and ``b ≤ n`` points,
    so at most ``m × n`` elements (and at most 2**18 elements for ``d ≤ 16``, 2**23
    above); per block of points, the estimates of at most ``b × 512`` candidates in
    float64 and at most 2**21 gathered candidate coordinates; for the rare point
    searched again, at most 2**22 float64 differences; and one centred copy of the
    centres ``(n_ctrs, d + 2)``. That is never the ``m × n × d`` of
    janelia_core's broadcast: a search over 20000 × 50000 points in 3-D adds about
    25 MB, over 5000 × 50000 in 64-D about 170 MB (the bound ``m × n`` is 400 MB there
    with ``m = 4096``).

    Examples
    --------
    >>> ctrs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    >>> knn_mc(torch.tensor([[0.9, 0.0], [4.0, 4.0]]), ctrs, k=2, m=2)
    tensor([[1, 2],
            [0, 1]])
    """
    _check_points(x, ctrs)
    k = check_count(k, "k", ctrs.shape[0], "the number of centres")
    m = check_count(m, "m")
    return search(x, _Centres(ctrs, None), k, m)


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
    n_ctrs_used = check_count(n_ctrs_used, "n_ctrs_used", ctrs.shape[0], "the number of centres")
    k = check_count(k, "k", n_ctrs_used, "n_ctrs_used")
    m = check_count(m, "m")
    if generator is not None and not isinstance(generator, torch.Generator):
        msg = f"generator must be a torch.Generator or None; got {type(generator).__name__}."
        raise TypeError(msg)
    device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(ctrs.shape[0], generator=generator, device=device)
    rows = perm[:n_ctrs_used].sort().values.to(ctrs.device)
    if n_ctrs_used == ctrs.shape[0]:
        return search(x, _Centres(ctrs, None), k, m)
    return rows[search(x, _Centres(ctrs, rows), k, m)]
