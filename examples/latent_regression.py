"""Multi-subject latent regression fitted from HDF5 with a hypercube mode predictor shared by all subjects.

Writes the synthetic problem of the janelia_core reference (§8.1) to an HDF5 file: 3 subjects, 50 inputs,
40 outputs, latent dimension 2, every variable at a 3-D position. The modes P and U of every subject are
predicted from those positions by two predictors shared across subjects (``FormMatrixByCols`` of
``SumOfTiledHyperCubeBasisFcns``). The fit reads batches from the file (never loading it whole), saves
``plot_log``'s figure as a PNG and prints held-out R² against the oracle and the error of W = U Pᵀ.

    python examples/latent_regression.py                   # small and quick (CI): 3000 samples, 40 epochs
    python examples/latent_regression.py --samples 20000 --epochs 60   # the reference's size
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

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
    predict,
)
from streamreg.regression.synthetic import make_synthetic_subjects, write_synthetic_h5


def hypercube_predictor() -> FormMatrixByCols:
    """Two columns (latent 2), each a sum of 2x2x2-division hypercubes over an 8x8x8 grid of [0, 1)^3."""
    return FormMatrixByCols([SumOfTiledHyperCubeBasisFcns([8, 8, 8], [[0, 1]] * 3, [2, 2, 2]) for _ in range(2)])


def r2(y: np.ndarray, y_hat: np.ndarray) -> float:
    """R² pooled over outputs."""
    return float(1 - ((y - y_hat) ** 2).sum() / ((y - y.mean(axis=0)) ** 2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000, help="training samples per subject")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None, help="folder for the HDF5 file and the PNG (default: temp)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="latent_regression_"))
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # the per-batch matmuls are tiny; one thread avoids thread hand-off costs
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - the fitter draws its batches from numpy's global RNG, as janelia did

    subjects = make_synthetic_subjects(n_subjects=3, n_train=args.samples, n_test=5000, seed=0)
    locations = write_synthetic_h5(str(out / "recordings.h5"), subjects)
    p_pred, u_pred = hypercube_predictor(), hypercube_predictor()
    collections = []
    for s, loc in zip(subjects, locations, strict=True):
        model = LatentRegModel([50], [40], [2], [2], IdentityMap(), [nn.Identity()], use_offsets=True,
                               assign_p_modes=False, assign_u_modes=False)
        data = TimeSeriesDataset([loc["x"], loc["y"]])[:]  # samples (x[t], y[t+1]), read lazily from the file
        props = [torch.tensor(s.pos_in, dtype=torch.float32), torch.tensor(s.pos_out, dtype=torch.float32)]
        collections.append(SubjectRegressionCollection(model, data, [0], [1], props, [0], [1], [p_pred], [u_pred]))

    fitter = MultiSubjectRegressionFitter(collections, min_var=1e-3)
    fitter.distribute(["cpu"])
    rates = [(0, 0.01), (int(0.7 * args.epochs), 0.001)]
    log, _ = fitter.fit(args.epochs, 10, rates, update_int=max(1, args.epochs // 4), print_memory_usage=False)
    png = out / "fit_log.png"
    fitter.plot_log(log).savefig(png)

    for i, (s, c) in enumerate(zip(subjects, collections, strict=True)):
        held_out = TimeSeriesDataset([s.x_test, s.y_test])[:]
        y = s.y_test[1:]
        fit = r2(y, predict(c, held_out, batch_size=1000)[0])
        oracle = r2(y, s.oracle_mean(s.x_test[:-1]))
        with torch.no_grad():
            p, u = c.modes()
            w_err = np.linalg.norm((u[0] @ p[0].T).numpy() - s.w) / np.linalg.norm(s.w)
        print(f"subject {i}: held-out R² {fit:.4f} (oracle {oracle:.4f}), |W_hat - W|/|W| = {w_err:.3f}")
    print(f"wrote {png} and {out / 'recordings.h5'}")


if __name__ == "__main__":
    main()
