"""knn_mc and knn_do against a plain float64 reference, with ties, several m, and bad input."""

from __future__ import annotations

import pytest
import torch

from streamreg.functional import knn_do, knn_mc


def reference_knn(x: torch.Tensor, ctrs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain loop: float64 squared distances summed over coordinates in order, stable sort (ties by index).

    Returns the (n, n_ctrs) distance matrix and the (k, n) indices.
    """
    x64, c64 = x.double(), ctrs.double()
    dist = torch.zeros(x.shape[0], ctrs.shape[0], dtype=torch.float64)
    for j in range(x.shape[1]):
        diff = x64[:, j : j + 1] - c64[None, :, j]
        dist = dist + diff * diff
    return dist, dist.sort(dim=1, stable=True).indices[:, :k].T


def assert_exact(x: torch.Tensor, ctrs: torch.Tensor, got: torch.Tensor, k: int) -> None:
    """Distances are the k smallest (also against cdist) and indices equal the stable-sort reference."""
    dist, ref = reference_knn(x, ctrs, k)
    assert got.dtype == torch.int64 and got.shape == (k, x.shape[0])
    cd = torch.cdist(x.double(), ctrs.double(), compute_mode="donot_use_mm_for_euclid_dist")
    torch.testing.assert_close(cd.gather(1, got.T), cd.topk(k, dim=1, largest=False).values, rtol=1e-13, atol=0)
    assert torch.equal(dist.gather(1, got.T), dist.gather(1, ref.T))
    assert torch.equal(got, ref)


@pytest.mark.parametrize("d", [1, 3, 8])
@pytest.mark.parametrize("m", [1, 5, 37, 1000, 10**6])
def test_knn_mc_equals_the_float64_reference(d, m):
    """Random float32 points: the same neighbours, in the same order, whatever m is."""
    g = torch.Generator().manual_seed(d * 1000 + m % 997)
    x, ctrs = torch.rand(60, d, generator=g), torch.rand(700 if m > 1 else 90, d, generator=g)
    for k in (1, 4, 33):
        assert_exact(x, ctrs, knn_mc(x, ctrs, k, m), k)


def test_float64_and_integer_inputs():
    """float64 and integer tensors are searched exactly too."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 5, generator=g, dtype=torch.float64)
    ctrs = torch.randn(3000, 5, generator=g, dtype=torch.float64)
    assert_exact(x, ctrs, knn_mc(x, ctrs, 7, 256), 7)
    xi, ci = torch.randint(-50, 50, (40, 2), generator=g), torch.randint(-50, 50, (500, 2), generator=g)
    assert_exact(xi, ci, knn_mc(xi, ci, 6, 64), 6)


@pytest.mark.parametrize("m", [1, 3, 16, 100, 5000])
def test_exact_ties_break_by_lower_centre_index(m):
    """On an integer grid with duplicated centres, tied centres come in index order for every m."""
    axis = torch.arange(12.0)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    ctrs = torch.cat([grid, grid.flip(0)[:70], grid[::3]])  # duplicates at higher indices, in mixed order
    x = torch.cat([grid[::7] + 0.5, grid[::5]])  # cell centres (4 equidistant corners) and grid points
    for k in (1, 4, 9):
        assert_exact(x, ctrs, knn_mc(x, ctrs, k, m), k)


def test_points_far_from_the_origin_and_close_together():
    """Coordinates near 1e4 spaced 1e-2 apart (float32 cancellation) still give the exact neighbours."""
    g = torch.Generator().manual_seed(2)
    base = torch.tensor([1e4, -2e4, 3e4])
    ctrs = base + torch.rand(4000, 3, generator=g)
    x = base + torch.rand(100, 3, generator=g)
    assert_exact(x, ctrs, knn_mc(x, ctrs, 5, 512), 5)


def test_many_blocks_of_queries_and_centres():
    """A search over many query and centre blocks is exact on a sample of its queries."""
    g = torch.Generator().manual_seed(3)
    x, ctrs = torch.rand(3000, 2, generator=g), torch.rand(20000, 2, generator=g)
    got = knn_mc(x, ctrs, 2, 1000)
    sub = torch.arange(0, 3000, 97)
    assert_exact(x[sub], ctrs, got[:, sub], 2)


def near_tie_shell(x0: torch.Tensor, n: int, radius: float, rel: float, g: torch.Generator) -> torch.Tensor:
    """``n`` centres at distance ``radius·(1 + rel·i)`` from ``x0`` (d,), in random directions."""
    u = torch.randn(n, x0.shape[0], generator=g, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    r = radius * (1 + rel * torch.randperm(n, generator=g).double())
    return x0.double() + r[:, None] * u


@pytest.mark.parametrize("m", [7, 300, 4096])
def test_d64_near_ties_below_float32_resolution(m):
    """In d = 64, shells of centres whose distances differ below float32 resolution, with duplicates.

    The fast float32 pass cannot order them; the answer must still be the float64 order.
    """
    g = torch.Generator().manual_seed(7)
    x = torch.rand(12, 64, generator=g)
    shells = [near_tie_shell(x[i], 24, 0.05, 1e-9, g).float() for i in range(0, 12, 3)]
    background = torch.rand(1500, 64, generator=g)
    ctrs = torch.cat([background[:500], *shells, background[500:], shells[0][::5], shells[1][::2]])
    for k in (1, 5, 30):
        assert_exact(x, ctrs, knn_mc(x, ctrs, k, m), k)


def test_d64_float64_near_ties_and_exact_duplicates():
    """float64 in d = 64: shells 1e-12 apart in relative distance, and queries that equal duplicated centres."""
    g = torch.Generator().manual_seed(8)
    x = torch.rand(10, 64, generator=g, dtype=torch.float64)
    shells = [near_tie_shell(x[i], 20, 0.1, 1e-12, g) for i in range(5)]
    dup = x[5:].repeat(3, 1)  # each of the last 5 queries is a centre three times: distance-0 ties
    ctrs = torch.cat([torch.rand(2000, 64, generator=g, dtype=torch.float64), dup[:5], *shells, dup[5:]])
    for m in (64, 4096):
        assert_exact(x, ctrs, knn_mc(x, ctrs, 6, m), 6)


def test_d64_far_from_the_origin_many_blocks_and_large_k():
    """d = 64 coordinates near 1e3 with many query and centre blocks, k = 40 (small groups)."""
    g = torch.Generator().manual_seed(9)
    base = 1e3 * torch.randn(64, generator=g)
    x, ctrs = base + torch.rand(2100, 64, generator=g), base + torch.rand(9000, 64, generator=g)
    got = knn_mc(x, ctrs, 40, 5000)
    sub = torch.arange(0, 2100, 101)
    assert_exact(x[sub], ctrs, got[:, sub], 40)
    got5 = knn_mc(x[sub], ctrs, 5, 4096)
    assert_exact(x[sub], ctrs, got5, 5)


def test_knn_do_in_d64_returns_original_indices():
    """knn_do in d = 64 equals the reference over the drawn centres."""
    g = torch.Generator().manual_seed(10)
    x, ctrs = torch.rand(40, 64, generator=g), torch.rand(3000, 64, generator=g)
    got = knn_do(x, ctrs, 5, 1000, 1700, generator=torch.Generator().manual_seed(3))
    drawn = torch.randperm(3000, generator=torch.Generator().manual_seed(3))[:1700].sort().values
    _, ref = reference_knn(x, ctrs[drawn], 5)
    assert torch.equal(got, drawn[ref])


def test_knn_do_searches_the_drawn_centres_and_returns_original_indices():
    """The draw is one randperm(n_ctrs) on the generator; results index the original ctrs, ties by index."""
    x = torch.tensor([[0.5], [2.0], [7.25]])
    ctrs = torch.tensor([[1.0], [0.0], [3.0], [1.0], [2.0], [0.0], [7.0], [7.5], [3.0], [2.0]])
    for seed in range(5):
        got = knn_do(x, ctrs, 2, 3, 6, generator=torch.Generator().manual_seed(seed))
        drawn = torch.randperm(10, generator=torch.Generator().manual_seed(seed))[:6].sort().values
        _, ref = reference_knn(x, ctrs[drawn], 2)
        assert torch.equal(got, drawn[ref])


def test_knn_do_with_every_centre_is_knn_mc():
    """n_ctrs_used = n_ctrs means no dropout."""
    g = torch.Generator().manual_seed(4)
    x, ctrs = torch.rand(30, 3, generator=g), torch.rand(400, 3, generator=g)
    assert torch.equal(knn_do(x, ctrs, 5, 64, 400), knn_mc(x, ctrs, 5, 64))


def test_knn_do_is_reproducible_with_a_generator():
    """The same generator seed gives the same indices; the global generator is used without one."""
    g = torch.Generator().manual_seed(5)
    x, ctrs = torch.rand(30, 3, generator=g), torch.rand(400, 3, generator=g)
    a = knn_do(x, ctrs, 3, 50, 100, generator=torch.Generator().manual_seed(9))
    b = knn_do(x, ctrs, 3, 50, 100, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
    torch.manual_seed(9)
    assert torch.equal(knn_do(x, ctrs, 3, 50, 100), a)


X, C = torch.rand(4, 3), torch.rand(10, 3)


@pytest.mark.parametrize(("k", "m", "text"), [
    (0, 5, "k must be a positive integer; got 0."),
    (-1, 5, "got -1"),
    (11, 5, "k must be at most 10"),
    (2.0, 5, "got 2.0 of type float"),
    (True, 5, "got True of type bool"),
    ("3", 5, "got '3' of type str"),
    (2, 0, "m must be a positive integer; got 0."),
    (2, -4, "got -4"),
    (2, 1.5, "got 1.5"),
    (2, False, "got False"),
])
def test_bad_k_and_m_raise_value_error_naming_the_value(k, m, text):
    """Zero, negative, too large, non-integer and bool counts are refused by name."""
    with pytest.raises(ValueError, match=text.replace(".", r"\.").replace("(", r"\(")):
        knn_mc(X, C, k, m)
    with pytest.raises(ValueError, match=text.replace(".", r"\.").replace("(", r"\(")):
        knn_do(X, C, k, m, 10)


@pytest.mark.parametrize(("n_used", "text"), [(0, "got 0"), (11, "at most 10"), (3.0, "got 3.0"), (True, "got True")])
def test_bad_n_ctrs_used_raises_value_error(n_used, text):
    """n_ctrs_used must be an integer in [1, n_ctrs]."""
    with pytest.raises(ValueError, match=f"n_ctrs_used must .*{text}"):
        knn_do(X, C, 1, 5, n_used)


def test_k_larger_than_the_centres_used_raises():
    """k may not exceed n_ctrs_used."""
    with pytest.raises(ValueError, match=r"k must be at most 3 \(n_ctrs_used\); got 4"):
        knn_do(X, C, 4, 5, 3)


def test_bad_points_raise():
    """Mismatched columns, wrong ranks, NaN, non-tensors and bad generators are refused."""
    with pytest.raises(ValueError, match=r"same number of columns d; got x \(4, 3\), ctrs \(10, 2\)"):
        knn_mc(X, torch.rand(10, 2), 1, 5)
    with pytest.raises(ValueError, match=r"x must have shape \(n, d\).*got \(4,\)"):
        knn_mc(torch.rand(4), C, 1, 5)
    with pytest.raises(ValueError, match="ctrs must be finite"):
        knn_mc(X, torch.full((10, 3), float("nan")), 1, 5)
    with pytest.raises(TypeError, match="x must be a torch.Tensor; got ndarray"):
        knn_mc(X.numpy(), C, 1, 5)
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None; got int"):
        knn_do(X, C, 1, 5, 5, generator=3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_results_equal_the_cpu_results():
    """On CUDA the indices stay on the device and equal the CPU search."""
    g = torch.Generator().manual_seed(6)
    x, ctrs = torch.rand(500, 3, generator=g), torch.rand(5000, 3, generator=g)
    got = knn_mc(x.cuda(), ctrs.cuda(), 5, 1000)
    assert got.is_cuda
    assert torch.equal(got.cpu(), knn_mc(x, ctrs, 5, 1000))
    gen = torch.Generator(device="cuda").manual_seed(0)
    assert knn_do(x.cuda(), ctrs.cuda(), 5, 1000, 2000, generator=gen).is_cuda
