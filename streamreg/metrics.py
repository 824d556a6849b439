"""Goodness of fit in one chunked pass: correlation and fraction of variance explained.

Both take time-first ``pred`` and ``target`` of equal shape ``(T, *frame)`` (numpy arrays,
torch tensors or h5py datasets), read ``dt`` frames at a time and never load them whole.
The frame is flattened into ``C`` channels. The result is a :class:`ChannelScores`:
``per_channel`` ``(C,)`` and ``pooled`` (a float). A target element that is NaN (a missing
frame) is left out of both, together with its prediction.

* correlation: Pearson's r per channel; pooled: r over all elements of all channels.
* explained variance: ``1 - SSE_c / SST_c`` per channel, with ``SST_c`` the sum of squares
  around channel c's mean; pooled: ``1 - Σ_c SSE_c / Σ_c SST_c``.

Examples
--------
>>> import numpy as np
>>> t = np.arange(10.0).reshape(5, 2)
>>> correlation(2 * t + 1, t).pooled
1.0
>>> explained_variance(t, t).per_channel
array([1., 1.])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["ChannelScores", "Moments", "correlation", "explained_variance"]


class ChannelScores(NamedTuple):
    """A score per channel ``(C,)`` and pooled over channels (a float)."""

    per_channel: np.ndarray
    pooled: float


def _as_2d(chunk: Any) -> np.ndarray:
    arr = chunk.detach().cpu().numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk)
    return arr.reshape(len(arr), -1).astype(np.float64)


class _Sums:
    """Shifted sums of x, y and their products per column, for a stable one-pass covariance."""

    def __init__(self) -> None:
        self.shift: tuple[np.ndarray, np.ndarray] | None = None
        self.n = self.sx = self.sy = self.sxx = self.syy = self.sxy = self.sse = 0.0

    def add(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        if self.shift is None:
            count = np.maximum(w.sum(0), 1)
            self.shift = ((x * w).sum(0) / count, (y * w).sum(0) / count)
        dx, dy = (x - self.shift[0]) * w, (y - self.shift[1]) * w
        self.n = self.n + w.sum(0)
        self.sx, self.sy = self.sx + dx.sum(0), self.sy + dy.sum(0)
        self.sxx, self.syy = self.sxx + (dx * dx).sum(0), self.syy + (dy * dy).sum(0)
        self.sxy = self.sxy + (dx * dy).sum(0)
        self.sse = self.sse + (((x - y) * w) ** 2).sum(0)

    def central(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centred sums of squares ``(Sxx, Syy, Sxy)``."""
        n = np.maximum(self.n, 1)
        return (self.sxx - self.sx**2 / n, self.syy - self.sy**2 / n, self.sxy - self.sx * self.sy / n)


class Moments:
    """Running sums for :func:`correlation` and :func:`explained_variance`; feed chunks with :meth:`add`."""

    def __init__(self) -> None:
        self.channels, self.pooled = _Sums(), _Sums()

    def add(self, pred: Any, target: Any, valid: Any = None) -> None:
        """Add a chunk ``(n, *frame)`` of predictions and targets (``valid``: elements to count)."""
        x, y = _as_2d(pred), _as_2d(target)
        w = np.isfinite(y)
        if valid is not None:
            v = _as_2d(valid).astype(bool)
            w &= v if v.shape == w.shape else v[:, :1]
        y = np.where(w, y, 0.0)
        x = np.where(w, x, 0.0)
        w = w.astype(np.float64)
        self.channels.add(x, y, w)
        self.pooled.add(x.reshape(-1, 1), y.reshape(-1, 1), w.reshape(-1, 1))

    def correlation(self) -> ChannelScores:
        """Pearson's r per channel and pooled (NaN where a variance is 0)."""
        def r(s: _Sums) -> np.ndarray:
            sxx, syy, sxy = s.central()
            with np.errstate(divide="ignore", invalid="ignore"):
                return sxy / np.sqrt(sxx * syy)
        return ChannelScores(r(self.channels), float(r(self.pooled)[0]))

    def explained_variance(self) -> ChannelScores:
        """``1 - SSE / SST`` per channel and pooled (NaN where the target variance is 0)."""
        _, syy, _ = self.channels.central()
        with np.errstate(divide="ignore", invalid="ignore"):
            per = 1 - self.channels.sse / syy
            pooled = 1 - np.sum(self.channels.sse) / np.sum(syy)
        return ChannelScores(per, float(pooled))


def _accumulate(pred: Any, target: Any, dt: int) -> Moments:
    if tuple(pred.shape) != tuple(target.shape) or len(pred.shape) == 0:
        msg = f"pred and target must be time-first of equal shape; got {tuple(pred.shape)} and {tuple(target.shape)}."
        raise ValueError(msg)
    if not isinstance(dt, int) or dt < 1:
        msg = f"dt must be a positive int; got {dt!r}."
        raise ValueError(msg)
    moments = Moments()
    for t0 in range(0, pred.shape[0], dt):
        moments.add(pred[t0:t0 + dt], target[t0:t0 + dt])
    return moments


def correlation(pred: Any, target: Any, *, dt: int = 65536) -> ChannelScores:
    """Pearson correlation of ``pred`` and ``target`` ``(T, *frame)``, per channel and pooled.

    Parameters
    ----------
    pred, target : numpy.ndarray, torch.Tensor or h5py.Dataset
        Equal shapes ``(T, *frame)``; NaN target elements are skipped.
    dt : int, default 65536
        Frames read at a time.

    Returns
    -------
    ChannelScores
        ``per_channel`` ``(C,)`` with ``C = prod(frame)``, and ``pooled``.
    """
    return _accumulate(pred, target, dt).correlation()


def explained_variance(pred: Any, target: Any, *, dt: int = 65536) -> ChannelScores:
    """Fraction of the target's variance that ``pred`` explains, per channel and pooled.

    Parameters
    ----------
    pred, target : numpy.ndarray, torch.Tensor or h5py.Dataset
        Equal shapes ``(T, *frame)``; NaN target elements are skipped.
    dt : int, default 65536
        Frames read at a time.

    Returns
    -------
    ChannelScores
        ``per_channel`` ``(C,)`` with ``C = prod(frame)``, and ``pooled``.
    """
    return _accumulate(pred, target, dt).explained_variance()
