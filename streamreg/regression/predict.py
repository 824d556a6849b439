"""``predict``: means of a subject's output groups over contiguous slices of samples, under ``no_grad``."""

from __future__ import annotations

import numpy as np
import torch

from streamreg._validation import check_positive_int
from streamreg.regression.collection import SubjectRegressionCollection
from streamreg.regression.data import TimeSeriesBatch

__all__ = ["predict"]


def predict(
    s_collection: SubjectRegressionCollection, data: TimeSeriesBatch, batch_size: int = 100
) -> list[np.ndarray]:
    """Predicted means ``[(len(data), d_out[h])]`` as host numpy, in ``data.i_x`` order.

    Runs under ``no_grad`` on the collection's device (that of its model if never distributed), over contiguous
    slices of ``batch_size`` samples; HDF5-backed data is read slice by slice. ``data.i_y`` is not used.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    c = s_collection
    device = c.device if c.device is not None else next(iter(c.s_mdl.parameters()), torch.empty(0)).device
    outs: list[list[np.ndarray]] = [[] for _ in c.output_grps]
    with torch.no_grad():
        p, u = c.modes()
        for start in range(0, len(data), batch_size):
            rows = data.i_x[start : start + batch_size]
            x = [data.rows(g, rows).to(device) for g in c.input_grps]
            for h, mn in enumerate(c.s_mdl.cond_forward(x, p=[t.to(device) for t in p], u=[t.to(device) for t in u])):
                outs[h].append(mn.cpu().numpy())
    return [
        np.concatenate(o, axis=0) if o else np.empty((0, d), np.float32)
        for o, d in zip(outs, c.s_mdl.d_out, strict=True)
    ]
