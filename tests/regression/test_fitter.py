"""MultiSubjectRegressionFitter against a plain loop, its log, options and errors."""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from streamreg.regression import (
    MultiSubjectRegressionFitter,
    SubjectRegressionCollection,
    TimeSeriesDataset,
    format_output_list,
    predict,
)
from tests.regression.problem import build_fitter, parameters_of, seed_all


def plain_loop_epochs(fitter, n_epochs: int, n_batches: int, lr: float):
    """Adam over Σ_s (N_s/n_b)·NLL_s written out with the fitter's draws; returns (params, per-epoch mean obj)."""
    params = fitter.trainable_parameters()
    opt = torch.optim.Adam(params, lr=lr)
    objs = []
    for _ in range(n_epochs):
        perms = [np.array_split(np.random.permutation(len(c.data)), n_batches) for c in fitter.s_collections]  # noqa: NPY002
        total = 0.0
        for b in range(n_batches):
            opt.zero_grad()
            obj = 0
            for c, perm in zip(fitter.s_collections, perms):
                t = torch.from_numpy(perm[b])
                x, y = c.data.data[0][c.data.i_x[t]], c.data.data[1][c.data.i_y[t]]
                p = c.p_preds[0] if isinstance(c.p_preds[0], torch.Tensor) else c.p_preds[0](c.props[0])
                mn = x @ p @ c.u_preds[0].T + c.s_mdl.offsets[0]
                psi = c.s_mdl.psi[0]
                n = len(t)
                nll = 0.5 * (n * 6 * np.log(2 * np.pi) + n * torch.log(psi).sum() + ((y - mn) ** 2 / psi).sum())
                obj = obj + len(c.data) / len(t) * nll
            obj.backward()
            total += float(obj.detach())
            opt.step()
            with torch.no_grad():
                for c in fitter.s_collections:
                    c.s_mdl.psi[0].clamp_(min=1e-3)
        objs.append(total / n_batches)
    return [p.detach().clone() for p in params], objs


def test_fit_matches_plain_loop():
    """Three epochs of 4 uneven batches equal the plain loop, and log['obj'] is its epoch mean."""
    fitter, _ = build_fitter()
    reference = copy.deepcopy(fitter)
    seed_all(3)
    log, cps = fitter.fit(3, 4, 0.02, update_int=100)
    seed_all(3)
    ref_params, ref_objs = plain_loop_epochs(reference, 3, 4, 0.02)
    for got, want in zip(parameters_of(fitter), ref_params):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log["obj"], ref_objs, rtol=1e-5)
    np.testing.assert_allclose(log["obj"], log["mdl_nll"].sum(axis=1), rtol=1e-6)
    assert log["mdl_nll"].shape == (3, 3) and cps is None


def test_every_sample_used_each_epoch():
    """Batches cover every sample once, with sizes within one (janelia dropped N mod n_batches)."""
    fitter, _ = build_fitter(n_train=23)
    inds = fitter.generate_batch_smp_inds(4)
    for per_subject in inds:
        assert sorted(np.concatenate(per_subject).tolist()) == list(range(23))
        assert sorted(len(b) for b in per_subject) == [5, 6, 6, 6]


def test_parameter_order_deterministic_and_shared_once():
    """A shared predictor's parameters appear once, first, in the same order on every call."""
    fitter, _ = build_fitter()
    params = fitter.trainable_parameters()
    shared = list(fitter.s_collections[0].p_preds[0].parameters())
    assert [id(p) for p in params[: len(shared)]] == [id(p) for p in shared]
    assert len({id(p) for p in params}) == len(params)
    assert [id(p) for p in params] == [id(p) for p in fitter.trainable_parameters(None)]
    assert len(fitter.trainable_parameters([1])) < len(params)


def test_rate_change_keeps_adam_moments_unless_asked(tmp_path):
    """A scheduled rate change keeps Adam's step count; reset_adam_on_rate_change restarts it."""
    for reset, steps in ((False, 6), (True, 3)):
        fitter, _ = build_fitter()
        d = tmp_path / str(reset)
        fitter.fit(2, 3, [(0, 0.01), (1, 0.001)], update_int=100, cp_epochs=[1], checkpoint_dir=d,
                   reset_adam_on_rate_change=reset)
        state = torch.load(d / "epoch_000001.pt", weights_only=True)["optimizer"]
        assert int(state["state"][0]["step"]) == steps
        assert state["param_groups"][0]["lr"] == 0.001


def test_recorder_and_status_lines(capsys):
    """A duck-typed recorder gets each epoch's scalars; status lines print every update_int epochs."""

    class FakeRecorder:
        def __init__(self):
            self.rows, self.current = [], {}

        def scalar(self, tag, value):
            self.current[tag] = value

        def step(self):
            self.rows.append(self.current)
            self.current = {}

    fitter, _ = build_fitter()
    rec = FakeRecorder()
    log, _ = fitter.fit(3, 2, 0.01, update_int=2, recorder=rec)
    assert [r["obj"] for r in rec.rows] == log["obj"].tolist()
    assert rec.rows[1]["mdl_nll/s2"] == log["mdl_nll"][1, 2] and rec.rows[0]["lr"] == 0.01
    out = capsys.readouterr().out
    assert "Epoch 0 complete.  Obj: " in out and "Epoch 2 complete." in out and "Epoch 1 complete" not in out
    assert "Model NLLs:  s_0: " in out and "Device memory allocated:  d_0: nan" in out and "Elapsed time: " in out


def test_plot_log_returns_figure(tmp_path):
    """plot_log gives a matplotlib Figure with the two panels, savable without pyplot."""
    fitter, _ = build_fitter()
    log, _ = fitter.fit(2, 2, update_int=100)
    fig = MultiSubjectRegressionFitter.plot_log(log)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    fig.savefig(tmp_path / "log.png")
    assert (tmp_path / "log.png").stat().st_size > 0


def test_predict_equals_cond_forward_without_autograd():
    """predict gives cond_forward's means over contiguous slices, builds no graph and leaves no gradient."""
    fitter, subjects = build_fitter()
    c, s = fitter.s_collections[1], subjects[1]
    test = TimeSeriesDataset([s.x_test, s.y_test])[:]
    got = predict(c, test, batch_size=7)[0]
    p, u = c.modes()
    want = c.s_mdl.cond_forward([torch.from_numpy(s.x_test[:-1])], p=p, u=u)[0].detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert all(q.grad is None for q in c.trainable_parameters())


def test_create_check_point_copies_no_data_and_keeps_sharing():
    """The checkpoint leaves out data and props; shared predictors stay shared unless subj_specific_preds."""
    fitter, _ = build_fitter()
    cp = fitter.create_check_point()["s_collections"]
    assert all(c.data is None and c.props is None for c in cp)
    assert cp[0].p_preds[0] is cp[2].p_preds[0] is not fitter.s_collections[0].p_preds[0]
    own = fitter.create_check_point(copy_props=True, subj_specific_preds=True)["s_collections"]
    assert own[0].p_preds[0] is not own[1].p_preds[0] and own[0].props is not None
    torch.testing.assert_close(own[1].s_mdl.u[0], fitter.s_collections[1].s_mdl.u[0])


def test_cp_epochs_return_check_points():
    """check_points[i] is the checkpoint after epoch cp_epochs[i]; unreached ones stay None."""
    fitter, _ = build_fitter()
    _, cps = fitter.fit(2, 2, update_int=100, cp_epochs=[0, 5])
    assert cps[0]["s_collections"][0].data is None and cps[1] is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"adam_params": {"lr": 0.1}}, ValueError, "lr"),
        ({"s_inds": [0, 7]}, ValueError, r"\[0, 7\]"),
        ({"n_batches": 500}, ValueError, "n_batches=500"),
        ({"n_epochs": 0}, ValueError, "n_epochs"),
        ({"cp_opts": {"copy_everything": True}}, ValueError, "copy_everything"),
        ({"learning_rates": [(5, 0.1)]}, ValueError, "iteration 0"),
    ],
)
def test_fit_bad_arguments_named(kwargs, error, match):
    """Bad fit arguments raise errors that name the value."""
    fitter, _ = build_fitter()
    args = {"n_epochs": 1, "n_batches": 2, **kwargs}
    with pytest.raises(error, match=match):
        fitter.fit(**args)


def test_fit_needs_distribute():
    """fit before distribute is janelia's RuntimeError."""
    fitter, _ = build_fitter()
    fitter.distributed = False
    with pytest.raises(RuntimeError, match="distribute"):
        fitter.fit(1, 1)


def test_bad_collections_named(h5_path):
    """Group widths that do not match the model, and NaN in data (memory or HDF5), are named."""
    fitter, subjects = build_fitter()
    c = fitter.s_collections[0]
    with pytest.raises(ValueError, match="width 6 does not match the model's 8"):
        SubjectRegressionCollection(c.s_mdl, c.data, [1], [1], c.props, [0], [None], c.p_preds, c.u_preds)
    x = subjects[0].x.copy()
    x[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"rows \[5\]"):
        SubjectRegressionCollection(c.s_mdl, TimeSeriesDataset([x, subjects[0].y])[:], [0], [1], c.props, [0],
                                    [None], c.p_preds, c.u_preds)
    with h5py.File(h5_path, "w") as f:
        f["x"], f["y"] = x, subjects[0].y
    data = TimeSeriesDataset([f"{h5_path}:/x", f"{h5_path}:/y"])[:]
    on_disk = MultiSubjectRegressionFitter(
        [SubjectRegressionCollection(c.s_mdl, data, [0], [1], c.props, [0], [None], c.p_preds, c.u_preds)])
    on_disk.distribute(["cpu"])
    with pytest.raises(ValueError, match="subject 0: NaN in input group 0"):
        on_disk.fit(1, 1, update_int=100)


def test_hdf5_fit_equals_memory_fit(h5_path):
    """Fitting from HDF5 gives the in-memory fit (same rows, same draws)."""
    mem, _ = build_fitter()
    disk, _ = build_fitter(h5_path=str(h5_path))
    assert not disk.s_collections[0].data.in_memory
    for f in (mem, disk):
        seed_all(5)
        f.fit(2, 3, update_int=100)
    for a, b in zip(parameters_of(mem), parameters_of(disk)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_format_output_list():
    """The seed's status format."""
    expected = "Model NLLs:  s_2: 1.23e+03, s_0: 1.00e-03"
    assert format_output_list("Model NLLs: ", "s_", [1234.5, 0.001], [2, 0]) == expected
