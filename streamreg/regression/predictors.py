"""Mode predictors: modules mapping per-variable properties ``(n_vars, n_props)`` to modes ``(n_vars, n_modes)``.

None starts at zero: with an identity latent map, zero P and U predictors sit at a saddle where both gradients
vanish (janelia_core's hypercube default), so every predictor here starts from a small random function.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from streamreg._validation import check_positive_int

__all__ = ["MLP", "FormMatrixByCols", "SumOfTiledHyperCubeBasisFcns"]


class SumOfTiledHyperCubeBasisFcns(nn.Module):
    """Piecewise-constant function R^D → R^1: a sum of overlapping, tiled hypercube indicators.

    Dimension d's range ``[lo_d, hi_d)`` is cut into ``n_divisions_per_dim[d]`` divisions; each hypercube is
    ``n_div_per_hc_side_per_dim[d]`` (s_d) divisions wide, and the cubes are padded to ``n_div_d + s_d − 1`` per
    dimension, so every in-range point lies in exactly ``Π s_d`` cubes. ``b_m`` holds one magnitude per cube.

    Parameters
    ----------
    n_divisions_per_dim : sequence of int
        Divisions per dimension.
    dim_ranges : array-like, (D, 2)
        ``[lo_d, hi_d)`` per dimension; the upper bound is exclusive.
    n_div_per_hc_side_per_dim : sequence of int
        Hypercube side, in divisions, per dimension.
    init_std : float
        ``b_m`` starts as ``N(0, init_std²)`` (janelia started at 0, a zero-gradient saddle for P and U together).

    Examples
    --------
    >>> f = SumOfTiledHyperCubeBasisFcns([4, 4], [[0, 1], [0, 1]], [2, 2])
    >>> f.b_m.shape, f(torch.rand(7, 2)).shape
    (torch.Size([25]), torch.Size([7, 1]))
    """

    def __init__(
        self,
        n_divisions_per_dim: Sequence[int],
        dim_ranges: Sequence[Sequence[float]] | torch.Tensor,
        n_div_per_hc_side_per_dim: Sequence[int],
        init_std: float = 0.05,
    ) -> None:
        super().__init__()
        n_div = [check_positive_int(n, "n_divisions_per_dim entries") for n in n_divisions_per_dim]
        side = [check_positive_int(n, "n_div_per_hc_side_per_dim entries") for n in n_div_per_hc_side_per_dim]
        ranges = torch.as_tensor(dim_ranges, dtype=torch.float64)
        if (
            len(side) != len(n_div)
            or tuple(ranges.shape) != (len(n_div), 2)
            or bool((ranges[:, 1] <= ranges[:, 0]).any())
        ):
            msg = (
                f"dim_ranges must be ({len(n_div)}, 2) with lo < hi and n_div_per_hc_side_per_dim must have "
                f"{len(n_div)} entries; got dim_ranges {ranges.tolist()} and sides {side}."
            )
            raise ValueError(msg)
        n_cubes = [n + s - 1 for n, s in zip(n_div, side, strict=True)]
        strides = [math.prod(n_cubes[d + 1 :]) for d in range(len(n_cubes))]
        offsets = torch.tensor(list(itertools.product(*[range(s) for s in side])), dtype=torch.int64)
        self.register_buffer("lo", ranges[:, 0].clone(), persistent=False)
        self.register_buffer(
            "width", (ranges[:, 1] - ranges[:, 0]) / torch.tensor(n_div, dtype=torch.float64), persistent=False
        )
        self.register_buffer("n_div", torch.tensor(n_div), persistent=False)
        self.register_buffer("strides", torch.tensor(strides), persistent=False)
        self.register_buffer("cube_offsets", offsets @ torch.tensor(strides), persistent=False)  # (Π s_d,)
        self.b_m = nn.Parameter(init_std * torch.randn(math.prod(n_cubes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Values ``(n, 1)`` at points ``x`` ``(n, D)``, all inside ``dim_ranges``."""
        if x.ndim != 2 or x.shape[1] != self.lo.shape[0]:
            msg = f"x must be (n, {self.lo.shape[0]}); got {tuple(x.shape)}."
            raise ValueError(msg)
        k = torch.floor((x.to(torch.float64) - self.lo) / self.width).to(torch.int64)  # (n, D) division indices
        if bool(((k < 0) | (k >= self.n_div)).any()):
            ranges = torch.stack([self.lo, self.lo + self.width * self.n_div], 1).tolist()
            msg = f"x has points outside dim_ranges [lo, hi) = {ranges}."
            raise ValueError(msg)
        first = (k * self.strides).sum(dim=1, keepdim=True)  # the cube whose first division holds the point
        return self.b_m[first + self.cube_offsets].sum(dim=1, keepdim=True).to(x.dtype)


class FormMatrixByCols(nn.Module):
    """Concatenate column modules: ``(n, n_props)`` → ``(n, len(col_modules))``, column j from ``col_modules[j]``.

    Examples
    --------
    >>> cols = [SumOfTiledHyperCubeBasisFcns([2], [[0, 1]], [1]) for _ in range(3)]
    >>> FormMatrixByCols(cols)(torch.rand(5, 1)).shape
    torch.Size([5, 3])
    """

    def __init__(self, col_modules: Sequence[nn.Module]) -> None:
        super().__init__()
        self.col_modules = nn.ModuleList(col_modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stack each column module's ``(n, 1)`` output into ``(n, n_cols)``."""
        return torch.cat([m(x) for m in self.col_modules], dim=1)


class MLP(nn.Module):
    """A small tanh multilayer perceptron ``(n, d_in)`` → ``(n, d_out)`` with PyTorch's default random init.

    Parameters
    ----------
    d_in, d_out : int
        Input (properties) and output (modes) widths.
    hidden : sequence of int
        Widths of the hidden layers.

    Examples
    --------
    >>> MLP(3, 2)(torch.rand(4, 3)).shape
    torch.Size([4, 2])
    """

    def __init__(self, d_in: int, d_out: int, hidden: Sequence[int] = (32, 32)) -> None:
        super().__init__()
        widths = [check_positive_int(d_in, "d_in"), *[check_positive_int(h, "hidden entries") for h in hidden]]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), nn.Tanh()]
        layers.append(nn.Linear(widths[-1], check_positive_int(d_out, "d_out")))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Modes ``(n, d_out)`` from properties ``(n, d_in)``."""
        return self.net(x)
