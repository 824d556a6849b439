"""A small seeded multi-subject problem shared by the regression tests and the SIGKILL child process."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from streamreg.regression import (
    FormMatrixByCols,
    IdentityMap,
    LatentRegModel,
    MultiSubjectRegressionFitter,
    SubjectRegressionCollection,
    SumOfTiledHyperCubeBasisFcns,
    TimeSeriesDataset,
)
from streamreg.regression.synthetic import make_synthetic_subjects, write_synthetic_h5


def build_fitter(seed: int = 0, n_train: int = 203, shared: bool = True, h5_path: str | None = None):
    """Three subjects (8 inputs, 6 outputs, latent 2); a shared hypercube predictor for P, free U per subject."""
    torch.manual_seed(seed)
    subjects = make_synthetic_subjects(n_train=n_train, n_test=50, d_in=8, d_out=6, seed=seed)
    locations = write_synthetic_h5(h5_path, subjects) if h5_path else None
    p_pred = FormMatrixByCols([SumOfTiledHyperCubeBasisFcns([4, 4, 4], [[0, 1]] * 3, [2, 2, 2]) for _ in range(2)])
    colls = []
    for i, s in enumerate(subjects):
        mdl = LatentRegModel([8], [6], [2], [2], IdentityMap(), [nn.Identity()], use_offsets=True)
        groups = [locations[i]["x"], locations[i]["y"]] if locations else [s.x, s.y]
        props = [torch.tensor(s.pos_in, dtype=torch.float32)]
        p = p_pred if shared else mdl.p[0]
        colls.append(SubjectRegressionCollection(
            mdl, TimeSeriesDataset(groups)[:], [0], [1], props, [0 if shared else None], [None], [p], [mdl.u[0]]))
    fitter = MultiSubjectRegressionFitter(colls)
    fitter.distribute(["cpu"])
    return fitter, subjects


def parameters_of(fitter) -> list[torch.Tensor]:
    """Detached copies of every trainable parameter, in the fitter's order."""
    return [p.detach().clone() for p in fitter.trainable_parameters()]


def seed_all(seed: int = 1) -> None:
    """Seed numpy's global generator (the batch draws) and torch's."""
    np.random.seed(seed)  # noqa: NPY002 - the fitter draws from numpy's global RNG, like janelia
    torch.manual_seed(seed)
