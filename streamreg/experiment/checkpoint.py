"""Atomic checkpoints that resume exactly: state, RNG states and a ``latest`` pointer.

:func:`save_checkpoint` is collective: every rank calls it. Each rank's RNG
states (python, numpy, torch, CUDA) are gathered, then rank 0 alone writes
``checkpoint-{id}.pt`` between two barriers, through a temporary file in the
same folder, ``fsync`` and ``os.replace``; a killed save leaves the previous
checkpoints intact. A text file ``latest`` names the newest checkpoint.

The payload loads with ``torch.load(weights_only=True)``: numpy arrays and
numpy scalars are stored as byte tensors with a type tag and come back as
numpy, with their dtype and shape.
"""

from __future__ import annotations

import collections
import os
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamreg.experiment import distributed, runtime
from streamreg.experiment.experiment import find_checkpoint

__all__ = ["capture_rng_state", "load_checkpoint", "restore_rng_state", "save_checkpoint"]

_FORMAT = 1
_LATEST = "latest"
_NAME = re.compile(r"checkpoint-(.+)\.pt")
_NDARRAY_TAG = "__streamreg_ndarray__"


# -- RNG states ------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """Return this process's python, numpy, torch and (when available) CUDA RNG states.

    Returns
    -------
    dict
        ``{"python": ..., "numpy": ..., "torch": ByteTensor, "cuda": [ByteTensor, ...]}``;
        ``"cuda"`` is an empty list without CUDA.
    """
    cuda = [s.clone() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),  # noqa: NPY002 (the global generator is what we restore)
        "torch": torch.get_rng_state(),
        "cuda": cuda,
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore states returned by :func:`capture_rng_state`.

    CUDA states are restored only where CUDA is available (a checkpoint taken on
    a GPU resumes on a CPU with its CPU generators exact).
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy"])  # noqa: NPY002 (the global generator, as captured)
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- weights_only-safe encoding of numpy values ----------------------------------
def _encode(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.hasobject:
            msg = f"cannot checkpoint a numpy array of dtype object; got shape {array.shape}."
            raise TypeError(msg)
        data = bytearray(np.ascontiguousarray(array).tobytes())
        raw = torch.frombuffer(data, dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
        return {_NDARRAY_TAG: raw, "dtype": array.dtype.str, "shape": list(array.shape),
                "scalar": isinstance(value, np.generic)}
    return _map_containers(value, _encode)


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and _NDARRAY_TAG in value:
        array = np.frombuffer(value[_NDARRAY_TAG].numpy().tobytes(), dtype=np.dtype(value["dtype"]))
        array = array.reshape(value["shape"]).copy()
        return array[()] if value["scalar"] else array
    return _map_containers(value, _decode)


def _map_containers(value: Any, fn: Any) -> Any:
    """Apply ``fn`` to the items of dicts, lists and tuples.

    Dict subclasses other than OrderedDict become dicts and namedtuples become
    tuples, which ``weights_only`` loading accepts; ``Context.load_state_dict``
    gives them back the types of the registered objects.
    """
    if isinstance(value, dict):
        out = collections.OrderedDict() if isinstance(value, collections.OrderedDict) else {}
        for key, item in value.items():
            out[key] = fn(item)
        return out
    if isinstance(value, list):
        return [fn(item) for item in value]
    if isinstance(value, tuple):
        return tuple(fn(item) for item in value)
    return value


# -- files ----------------------------------------------------------------------
def _write_atomic(path: Path, write: Any) -> None:
    """Write ``path`` through a temporary file in its folder, fsync, rename, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checkpoints_by_age(folder: Path) -> list[Path]:
    found = [p for p in folder.iterdir() if _NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


def _check_id(id: Any) -> str:  # noqa: A002
    text = str(id)
    if isinstance(id, bool) or not isinstance(id, (int, str)) or not text or "/" in text or os.sep in text:
        msg = f"id must be an int or a str without path separators; got {id!r}."
        raise ValueError(msg)
    return text


def _check_keep(keep: Any) -> int | None:
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        msg = f"keep must be a positive int or None (keep all); got {keep!r}."
        raise ValueError(msg)
    return keep


def _write_checkpoint(path: Path, payload: dict[str, Any], keep: int | None, overwrite: bool) -> None:
    """Rank 0's part of a save: refuse an existing id, write atomically, point ``latest``, prune."""
    if path.exists() and not overwrite:
        msg = f"checkpoint {str(path)!r} exists; pass overwrite=True to replace it, or use another id."
        raise FileExistsError(msg)
    encoded = _encode(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, lambda f: torch.save(encoded, f))
    _write_atomic(path.parent / _LATEST, lambda f: f.write(path.name.encode()))
    if keep is not None:
        for old in _checkpoints_by_age(path.parent)[:-keep]:
            if old != path:
                old.unlink()


def save_checkpoint(state_dict: Mapping[str, Any], id: int | str, *,  # noqa: A002
                    directory: str | os.PathLike[str] | None = None, keep: int | None = None,
                    overwrite: bool = False) -> Path:
    """Save ``state_dict`` and every rank's RNG states as ``checkpoint-{id}.pt``.

    Collective: call it on every rank. Rank 0 writes after a barrier, then
    tells every rank whether it succeeded: a failed save raises on every rank
    (the original error on rank 0, ``RuntimeError`` naming it elsewhere)
    instead of leaving the others waiting.

    Parameters
    ----------
    state_dict : Mapping
        Typically ``ctx.state_dict()``: tensors, numpy arrays, numbers, strings,
        None and containers of these.
    id : int or str
        Names the file, as in pystematic (``checkpoint-{id}.pt``).
    directory : path, optional
        Folder to write to (created if missing); the running experiment's
        :func:`output_dir` by default.
    keep : int, optional
        Keep only the ``keep`` newest checkpoints in the folder (all by default).
    overwrite : bool, default False
        Replace an existing checkpoint of the same id (otherwise ``FileExistsError``).

    Returns
    -------
    Path
        The checkpoint file (on every rank).
    """
    keep = _check_keep(keep)
    folder = Path(directory) if directory is not None else runtime.output_dir()
    path = folder / f"checkpoint-{_check_id(id)}.pt"
    rng = distributed.gather(capture_rng_state())
    distributed.distributed_barrier()
    error: Exception | None = None
    if distributed.is_master():
        try:
            _write_checkpoint(path, {"format": _FORMAT, "state": dict(state_dict), "rng": rng}, keep, overwrite)
        except Exception as exc:  # re-raised below, after telling the other ranks (they would wait forever)
            error = exc
    failure = distributed.broadcast_from_master(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if failure is not None:
        msg = f"rank 0 failed to save checkpoint {str(path)!r}: {failure}"
        raise RuntimeError(msg)
    return path


def load_checkpoint(path: str | os.PathLike[str], *, restore_rng: bool = True) -> dict[str, Any]:
    """Load a checkpoint onto the CPU and return its state dict.

    Parameters
    ----------
    path : path
        A ``checkpoint-*.pt`` file, or a run folder (then the checkpoint its
        ``latest`` pointer names, see :func:`find_checkpoint`).
    restore_rng : bool, default True
        Restore this rank's RNG states as they were at the save, so training
        continues exactly. A run with another number of ranks takes the states
        of rank ``rank % saved ranks``.

    Returns
    -------
    dict
        The state passed to :func:`save_checkpoint`, with numpy values restored.
    """
    path = find_checkpoint(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        msg = f"{str(path)!r} is not a streamreg checkpoint (format {_FORMAT}); it was not written by save_checkpoint."
        raise ValueError(msg)
    payload = _decode(payload)
    if restore_rng:
        states = payload["rng"]
        restore_rng_state(states[distributed.get_rank() % len(states)])
    return payload["state"]
