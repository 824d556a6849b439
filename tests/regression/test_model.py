"""LatentRegModel against torch.distributions and a hand-written matmul chain."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from streamreg.regression import IdentityMap, LatentRegModel, LinearMap


def two_group_model() -> LatentRegModel:
    """Two input groups, two output groups, scales, offsets and two direct pairs into output group 0."""
    return LatentRegModel(
        [4, 3], [3, 5], [2, 1], [2, 1], LinearMap([2, 1], [2, 1]), [nn.Identity(), nn.Tanh()],
        use_scales=True, use_offsets=True, direct_pairs=[(1, 0), (1, 0)],
    )


def test_neg_ll_equals_normal_log_prob():
    """neg_ll is -Normal(mn, sqrt(psi)).log_prob(y) summed over samples and outputs."""
    mdl = LatentRegModel([4], [3, 2], [2], [1, 1], LinearMap([2], [1, 1]), [nn.Identity(), nn.Identity()])
    y = [torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)]
    mn = [torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)]
    mdl.double()
    ref = sum(-torch.distributions.Normal(m, torch.sqrt(p)).log_prob(t).sum() for t, m, p in zip(y, mn, mdl.psi))
    torch.testing.assert_close(mdl.neg_ll(y, mn), ref)
    psi = [None, torch.full((2,), 0.7, dtype=torch.float64)]
    ref = -torch.distributions.Normal(mn[0], torch.sqrt(mdl.psi[0])).log_prob(y[0]).sum() - torch.distributions.Normal(
        mn[1], math.sqrt(0.7)).log_prob(y[1]).sum()
    torch.testing.assert_close(mdl.neg_ll(y, mn, psi=psi), ref)


def test_neg_ll_refuses_tuples():
    """y and mn must be lists, as in janelia_core."""
    mdl = LatentRegModel([2], [2], [1], [1], IdentityMap(), [nn.Identity()])
    with pytest.raises(TypeError, match="lists"):
        mdl.neg_ll((torch.zeros(1, 2),), [torch.zeros(1, 2)])


def test_cond_forward_matches_hand_written_chain():
    """cond_forward equals X P -> linear map -> U^T -> s -> scales, offsets -> direct pairs, written out by hand."""
    mdl = two_group_model()
    x = [torch.randn(6, 4), torch.randn(6, 3)]
    w, b = mdl.m.linear.weight, None
    proj = torch.cat([x[0] @ mdl.p[0], x[1] @ mdl.p[1]], dim=1) @ w.T
    assert b is None and mdl.m.linear.bias is None
    z0, z1 = proj[:, :2] @ mdl.u[0].T, torch.tanh(proj[:, 2:] @ mdl.u[1].T)
    y0 = mdl.offsets[0] + mdl.scales[0] * z0 + mdl.direct_mappings[0] * x[1] + mdl.direct_mappings[1] * x[1]
    y1 = mdl.offsets[1] + mdl.scales[1] * z1
    out = mdl.cond_forward(x)
    torch.testing.assert_close(out[0], y0)
    torch.testing.assert_close(out[1], y1)


def test_cond_forward_overrides_with_none_entries():
    """Override lists replace only their non-None entries; more direct pairs than output groups work."""
    mdl = two_group_model()
    x = [torch.randn(5, 4), torch.randn(5, 3)]
    p0 = torch.randn(4, 2)
    dm = [None, torch.zeros(3)]
    got = mdl.cond_forward(x, p=[p0, None], direct_mappings=dm)
    mdl.p[0].data.copy_(p0)
    mdl.direct_mappings[1].data.zero_()
    torch.testing.assert_close(got, mdl.cond_forward(x))


def test_scales_start_near_one():
    """Scales start at 1 + N(0, sc_std^2), not near 0 (janelia bug 9.5)."""
    mdl = LatentRegModel([2], [50], [1], [1], IdentityMap(), [nn.Identity()], use_scales=True)
    assert abs(float(mdl.scales[0].detach().mean()) - 1.0) < 0.01


def test_unassigned_modes_need_overrides():
    """A model without its own P says which mode is missing."""
    mdl = LatentRegModel([2], [2], [1], [1], IdentityMap(), [nn.Identity()], assign_p_modes=False)
    with pytest.raises(ValueError, match=r"p\[0\]"):
        mdl([torch.zeros(1, 2)])
    assert mdl.cond_forward([torch.zeros(1, 2)], p=[torch.ones(2, 1)])[0].shape == (1, 2)


def test_bad_direct_pair_named():
    """A direct pair between groups of different width is refused with the pair in the message."""
    with pytest.raises(ValueError, match=r"\(0, 0\)"):
        LatentRegModel([3], [2], [1], [1], IdentityMap(), [nn.Identity()], direct_pairs=[(0, 0)])


def test_generate_noise_has_variance_psi():
    """generate adds N(0, psi) noise around the mean."""
    mdl = LatentRegModel([2], [3], [1], [1], IdentityMap(), [nn.Identity()])
    x = [torch.randn(20000, 2)]
    resid = mdl.generate(x)[0] - mdl(x)[0].detach()
    torch.testing.assert_close(resid.var(dim=0), mdl.psi[0].detach(), atol=0.01, rtol=0.05)


def test_recursive_generate_fills_nan_rows_from_previous_output():
    """NaN input rows are filled with the previous row's sampled output; row 0 NaN is an error."""
    mdl = LatentRegModel([3], [3], [1], [1], IdentityMap(), [nn.Identity()], noise_range=(1e-12, 2e-12))
    x = torch.randn(5, 3)
    x[1:] = float("nan")
    y = mdl.recursive_generate([x], [(0, 0)])[0]
    with torch.no_grad():
        for t in range(1, 5):
            torch.testing.assert_close(y[t], mdl([y[t - 1 : t]])[0][0], atol=1e-4, rtol=0)
    x[0] = float("nan")
    with pytest.raises(ValueError, match="row 0"):
        mdl.recursive_generate([x], [(0, 0)])


def test_trainable_parameters_order():
    """m, s, then p, u, scales, offsets, direct maps, psi."""
    mdl = two_group_model()
    expected = [mdl.m.linear.weight, *mdl.p, *mdl.u, *mdl.scales, *mdl.offsets, *mdl.direct_mappings, *mdl.psi]
    assert [id(p) for p in mdl.trainable_parameters()] == [id(p) for p in expected]
