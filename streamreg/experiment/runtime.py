"""The state of the experiment running in this process: its folder, parameters, seed and device.

An experiment sets this state (through the private :func:`_set_run`) before it
calls ``main(params)`` and clears it afterwards. Everything that needs "the
current run" (checkpoints, the Recorder, the Context) reads it here, so they
work the same in one process and on every rank of a distributed run.

Seeds: :func:`random_seed` is the run's seed, the same on every rank (a
``DistributedSampler`` needs one permutation for all ranks). The global python,
numpy and torch generators of rank ``r`` are seeded with ``random_seed() + r``,
so dropout and other per-rank noise differ between ranks.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import torch

__all__ = ["current_params", "is_running", "output_dir", "random_seed", "resolve_device", "run_device"]

_CUDA_SPEC = re.compile(r"cuda(:\d+)?")


@dataclasses.dataclass(frozen=True)
class _Run:
    """What the running experiment publishes to the rest of the process."""

    output_dir: Path
    params: dict[str, Any]
    random_seed: int
    local_rank: int
    device: torch.device


_current: _Run | None = None


def _set_run(run: _Run | None) -> None:
    """Publish ``run`` as the current experiment run (``None`` clears it); used by the experiment."""
    global _current
    _current = run


def _require() -> _Run:
    if _current is None:
        msg = (
            "No streamreg experiment is running in this process; call this inside the main() of an "
            "@experiment, run through exp.run(params) or exp.cli()."
        )
        raise RuntimeError(msg)
    return _current


def is_running() -> bool:
    """Return True while an experiment's ``main`` runs in this process."""
    return _current is not None


def output_dir() -> Path:
    """Return the folder of the running experiment (shared by all ranks of a distributed run).

    Raises
    ------
    RuntimeError
        Outside a running experiment.
    """
    return _require().output_dir


def current_params() -> dict[str, Any]:
    """Return a copy of the running experiment's parameters (defaults included).

    Raises
    ------
    RuntimeError
        Outside a running experiment.
    """
    return dict(_require().params)


def random_seed() -> int:
    """Return the run's seed, the same on every rank (see the module docstring for per-rank seeds).

    Raises
    ------
    RuntimeError
        Outside a running experiment.
    """
    return _require().random_seed


def run_device() -> torch.device:
    """Return the device the running experiment's ``cuda`` parameter selected for this rank.

    Raises
    ------
    RuntimeError
        Outside a running experiment.
    """
    return _require().device


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn a device name into a ``torch.device``.

    Parameters
    ----------
    spec : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"``. ``"auto"`` and ``"cuda"`` pick ``cuda:<local rank>``
        inside a distributed run, ``cuda:0`` otherwise.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        For an unknown name, or a CUDA device where CUDA is not available.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    return _resolve(spec, _current.local_rank if _current is not None else 0)


def _spec_from_cuda(cuda: bool | None) -> str:
    """Map the ``cuda`` parameter (True, False, None) to a device name ("cuda", "cpu", "auto")."""
    if cuda is not None and not isinstance(cuda, bool):
        msg = f"cuda must be True, False or None (auto); got {cuda!r}."
        raise TypeError(msg)
    return {None: "auto", True: "cuda", False: "cpu"}[cuda]


def _resolve(spec: str, local_rank: int) -> torch.device:
    if not isinstance(spec, str):
        msg = f"device must be a str ('auto', 'cpu', 'cuda' or 'cuda:N'); got {spec!r} of type {type(spec).__name__}."
        raise TypeError(msg)
    name = spec.strip().lower()
    if name == "cpu":
        return torch.device("cpu")
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        name = "cuda"
    if not _CUDA_SPEC.fullmatch(name):
        msg = f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {spec!r}."
        raise ValueError(msg)
    if not torch.cuda.is_available():
        msg = f"device {spec!r} asks for CUDA, but CUDA is not available here; use 'auto' or 'cpu'."
        raise ValueError(msg)
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)
