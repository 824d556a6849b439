"""streamreg.regression keeps janelia_core's names."""

from __future__ import annotations

import inspect

import streamreg.regression as reg


def test_regression_all_is_pinned():
    """The subpackage exports exactly the intended names, all present."""
    assert sorted(reg.__all__) == sorted([
        "MLP", "FormMatrixByCols", "IdentityMap", "LatentRegModel", "LinearMap", "MultiSubjectRegressionFitter",
        "SubjectRegressionCollection", "SumOfTiledHyperCubeBasisFcns", "TimeSeriesBatch", "TimeSeriesDataset",
        "format_output_list", "predict",
    ])
    assert all(hasattr(reg, name) for name in reg.__all__)


def test_seed_call_forms():
    """The seed's positional parameters come first, in the seed's order, with its defaults."""
    fit = inspect.signature(reg.MultiSubjectRegressionFitter.fit).parameters
    assert list(fit)[1:11] == ["n_epochs", "n_batches", "learning_rates", "adam_params", "s_inds", "update_int",
                               "print_mdl_nlls", "print_memory_usage", "cp_epochs", "cp_opts"]
    assert (fit["n_epochs"].default, fit["n_batches"].default, fit["learning_rates"].default) == (10, 10, 0.01)
    assert list(inspect.signature(reg.predict).parameters) == ["s_collection", "data", "batch_size"]
    cf = inspect.signature(reg.LatentRegModel.cond_forward).parameters
    assert list(cf)[1:] == ["x", "p", "u", "scales", "offsets", "direct_mappings"]
    assert list(inspect.signature(reg.MultiSubjectRegressionFitter.create_check_point).parameters)[1:] == [
        "copy_data", "copy_props", "subj_specific_preds"]
