"""Piecewise-constant schedules: ``(iteration, value0, value1, ...)`` entries, janelia_core style."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["format_and_check_learning_rates", "learning_rate_at"]


def _is_number(value: Any) -> bool:
    """A real number: Python, numpy scalar, or 0-d array or tensor (bools excluded)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iuf"
    if isinstance(value, torch.Tensor):
        return value.ndim == 0 and not value.is_complex() and value.dtype != torch.bool
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def format_and_check_learning_rates(learning_rates: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a learning-rate schedule and return it sorted.

    Parameters
    ----------
    learning_rates : number or sequence of tuples
        One number (used from iteration 0 on), or entries ``(iteration, value0,
        value1, ...)``, each meaning "from this iteration on, use these values".
        Values may be any objects (a dict of per-group rates, say); every entry
        must have the same number of values, and one entry must start at 0.

    Returns
    -------
    iterations : numpy.ndarray
        ``(n_entries,)`` int64, ascending.
    values : numpy.ndarray
        ``(n_entries, n_values)``; float64 for numbers, object otherwise.

    Raises
    ------
    ValueError
        For an empty schedule, an entry that is not ``(iteration, values...)``,
        ragged entries, non-integer, negative or duplicate iterations, or no entry at 0.

    Examples
    --------
    >>> its, values = format_and_check_learning_rates([(1000, 0.001, 0.3), (0, 0.01, 0.2)])
    >>> its.tolist(), values.tolist()
    ([0, 1000], [[0.01, 0.2], [0.001, 0.3]])
    """
    if _is_number(learning_rates):
        entries: list[tuple[Any, ...]] = [(0, float(learning_rates))]
    elif isinstance(learning_rates, Sequence) and not isinstance(learning_rates, (str, bytes)):
        entries = [_check_entry(e, i) for i, e in enumerate(learning_rates)]
    else:
        msg = (
            "learning_rates must be a number or a list of (iteration, value, ...) tuples; "
            f"got {learning_rates!r} of type {type(learning_rates).__name__}."
        )
        raise ValueError(msg)
    if not entries:
        msg = "learning_rates must not be empty; give a number or at least one (0, value) entry."
        raise ValueError(msg)
    widths = sorted({len(e) for e in entries})
    if len(widths) > 1:
        msg = f"learning_rates entries must all have the same number of values; got entry lengths {widths}."
        raise ValueError(msg)
    its = np.array([e[0] for e in entries], dtype=np.int64)
    dupes = sorted({int(i) for i in its if (its == i).sum() > 1})
    if dupes:
        msg = f"learning_rates gives more than one entry for iteration(s) {dupes}."
        raise ValueError(msg)
    if (its < 0).any():
        msg = f"learning_rates iterations must be >= 0; got {sorted(int(i) for i in its[its < 0])}."
        raise ValueError(msg)
    if 0 not in its:
        msg = f"learning_rates must have an entry for iteration 0; the first is at {int(its.min())}."
        raise ValueError(msg)
    order = np.argsort(its, kind="stable")
    rows = [entries[i][1:] for i in order]
    numeric = all(_is_number(v) for row in rows for v in row)
    values = np.empty((len(rows), widths[0] - 1), dtype=np.float64 if numeric else object)
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            values[r, c] = float(v) if numeric else v
    return its[order], values


def _check_entry(entry: Any, index: int) -> tuple[Any, ...]:
    if not isinstance(entry, (tuple, list)) or len(entry) < 2:
        msg = f"learning_rates[{index}] must be a tuple (iteration, value, ...); got {entry!r}."
        raise ValueError(msg)
    it = entry[0]
    if isinstance(it, bool) or not isinstance(it, numbers.Integral):
        msg = f"learning_rates[{index}] iteration must be an integer; got {it!r}."
        raise ValueError(msg)
    return tuple(entry)


def learning_rate_at(iterations: np.ndarray, values: np.ndarray, iteration: int) -> np.ndarray:
    """The row of ``values`` in force at ``iteration``: that of the last entry at or before it.

    Examples
    --------
    >>> its, values = format_and_check_learning_rates([(0, 0.1), (10, 0.01)])
    >>> float(learning_rate_at(its, values, 9)[0]), float(learning_rate_at(its, values, 10)[0])
    (0.1, 0.01)
    """
    if iteration < 0:
        msg = f"iteration must be >= 0; got {iteration}."
        raise ValueError(msg)
    return values[int(np.searchsorted(iterations, iteration, side="right")) - 1]
