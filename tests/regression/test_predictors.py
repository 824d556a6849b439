"""Mode predictors against brute-force references, and the zero-gradient saddle avoided."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from streamreg.regression import MLP, FormMatrixByCols, IdentityMap, LatentRegModel, SumOfTiledHyperCubeBasisFcns


def brute_force_hypercubes(f: SumOfTiledHyperCubeBasisFcns, x: torch.Tensor, n_div, ranges, side) -> torch.Tensor:
    """Sum b_m over every cube whose extent (in padded division units) contains the point, by looping over cubes."""
    n_cubes = [n + s - 1 for n, s in zip(n_div, side)]
    out = torch.zeros(x.shape[0], dtype=torch.float64)
    for flat, cube in enumerate(itertools.product(*[range(c) for c in n_cubes])):
        inside = torch.ones(x.shape[0], dtype=torch.bool)
        for d, j in enumerate(cube):
            lo, hi = ranges[d]
            w = (hi - lo) / n_div[d]
            start = lo + (j - side[d] + 1) * w  # cube j covers divisions j - s + 1 .. j
            inside &= (x[:, d] >= start) & (x[:, d] < start + side[d] * w)
        out += inside * f.b_m[flat].detach().double()
    return out[:, None]


def test_hypercube_sum_matches_brute_force():
    """Index arithmetic equals the sum over cubes containing each point, and each point lies in prod(s_d) cubes."""
    n_div, ranges, side = [5, 3, 4], [[0.0, 1.0], [-1.0, 2.0], [0.0, 4.0]], [2, 1, 3]
    f = SumOfTiledHyperCubeBasisFcns(n_div, ranges, side)
    x = torch.rand(300, 3, dtype=torch.float64) * torch.tensor([1.0, 3.0, 4.0]) + torch.tensor([0.0, -1.0, 0.0])
    torch.testing.assert_close(f(x), brute_force_hypercubes(f, x, n_div, ranges, side))
    f.b_m.data.fill_(1.0)
    assert torch.all(f(x) == 6)


def test_hypercube_rejects_points_out_of_range():
    """The upper bound is exclusive; the error names the ranges."""
    f = SumOfTiledHyperCubeBasisFcns([2], [[0, 1]], [1])
    with pytest.raises(ValueError, match="outside dim_ranges"):
        f(torch.tensor([[1.0]]))
    with pytest.raises(ValueError, match=r"\(n, 1\)"):
        f(torch.zeros(2, 2))


def test_predictors_do_not_start_at_the_saddle():
    """Hypercube and MLP predictors of both P and U with an identity map start with non-zero gradients."""
    for make in (lambda: FormMatrixByCols([SumOfTiledHyperCubeBasisFcns([3, 3], [[0, 1]] * 2, [2, 2])
                                           for _ in range(2)]),
                 lambda: MLP(2, 2)):
        p_pred, u_pred = make(), make()
        mdl = LatentRegModel([10], [8], [2], [2], IdentityMap(), [nn.Identity()], assign_p_modes=False,
                             assign_u_modes=False)
        x, y = [torch.randn(50, 10)], [torch.randn(50, 8)]
        mn = mdl.cond_forward(x, p=[p_pred(torch.rand(10, 2))], u=[u_pred(torch.rand(8, 2))])
        mdl.neg_ll(y, mn).backward()
        grads = [p.grad for p in [*p_pred.parameters(), *u_pred.parameters()]]
        assert all(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_form_matrix_by_cols_stacks_columns():
    """Column j is col_modules[j]'s output."""
    cols = [SumOfTiledHyperCubeBasisFcns([2], [[0, 1]], [1]) for _ in range(3)]
    x = torch.rand(4, 1)
    torch.testing.assert_close(FormMatrixByCols(cols)(x), torch.cat([c(x) for c in cols], dim=1))
