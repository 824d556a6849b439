"""Training-state checkpoints of ``MultiSubjectRegressionFitter.fit``: written atomically, loaded weights-only.

A file holds the subject models, the predictor modules, every trainable tensor, the Adam state, the numpy and
torch RNG states, the epochs done and the log so far, and never the training data. It loads with
``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["FORMAT", "checkpoint_name", "load_training_state", "save_atomic"]

FORMAT = "streamreg.regression.fit/1"


def checkpoint_name(epoch: int) -> str:
    """File name of the checkpoint made after 0-based epoch ``epoch``."""
    return f"epoch_{epoch:06d}.pt"


def numpy_rng_state() -> dict[str, Any]:
    """numpy's global RNG state in weights-only-loadable form."""
    # the fitter draws batches from numpy's global RNG, as janelia did
    name, key, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "name": name,
        "key": torch.from_numpy(key.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def set_numpy_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`numpy_rng_state` saved."""
    key = state["key"].numpy().astype(np.uint32)
    np.random.set_state(  # noqa: NPY002 - see numpy_rng_state
        (state["name"], key, state["pos"], state["has_gauss"], state["cached_gaussian"])
    )


def training_state(
    models: list[nn.Module],
    predictors: list[nn.Module],
    params: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs_done: int,
    config: dict[str, Any],
    log: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The record :func:`save_atomic` writes (tensors on CPU)."""

    def cpu(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in sd.items()}

    return {
        "format": FORMAT,
        "epochs_done": epochs_done,
        "config": config,
        "models": [cpu(m.state_dict()) for m in models],
        "predictors": [cpu(m.state_dict()) for m in predictors],
        "params": [p.detach().cpu().clone() for p in params],
        "optimizer": optimizer.state_dict(),
        "numpy_rng": numpy_rng_state(),
        "torch_rng": torch.get_rng_state(),
        "log": {k: torch.from_numpy(np.ascontiguousarray(v[:epochs_done])) for k, v in log.items()},
    }


def save_atomic(record: dict[str, Any], path: str) -> None:
    """``torch.save`` to a temporary file in the same directory, fsync, then ``os.replace`` onto ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_training_state(path: str | os.PathLike, config: dict[str, Any], params: list[torch.Tensor]) -> dict[str, Any]:
    """Read a checkpoint (weights only) and check it was made by a fitter built and called the same way."""
    record = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        msg = f"resume_from={str(path)!r} is not a MultiSubjectRegressionFitter checkpoint (format {FORMAT})."
        raise ValueError(msg)
    if record["config"] != config:
        msg = f"resume_from={str(path)!r} was made with {record['config']}; this fit has {config}."
        raise ValueError(msg)
    shapes = [tuple(p.shape) for p in record["params"]]
    if shapes != [tuple(p.shape) for p in params]:
        have = [tuple(p.shape) for p in params]
        msg = f"resume_from={str(path)!r} holds parameters of shapes {shapes}; this fitter has {have}."
        raise ValueError(msg)
    return record


def restore(
    record: dict[str, Any],
    models: list[nn.Module],
    predictors: list[nn.Module],
    params: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
) -> None:
    """Load models, predictors, parameters, optimizer state and RNG states from a checkpoint record."""
    for m, sd in zip(models, record["models"], strict=True):
        m.load_state_dict(sd)
    for m, sd in zip(predictors, record["predictors"], strict=True):
        m.load_state_dict(sd)
    with torch.no_grad():
        for p, v in zip(params, record["params"], strict=True):
            p.copy_(v)
    optimizer.load_state_dict(record["optimizer"])
    set_numpy_rng_state(record["numpy_rng"])
    torch.set_rng_state(record["torch_rng"])
