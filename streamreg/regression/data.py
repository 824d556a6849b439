"""Time-first row stores: ``TimeSeriesBatch`` of (x at t−1, y at t) samples over shared rows, and ``TimeSeriesDataset``.

A group's data is ``(n_rows, n_vars)`` and may be a tensor, a numpy array, an ``h5py.Dataset`` or a
``"file.h5:/dataset"`` string. HDF5 groups are never loaded whole: a batch reads the sorted unique rows it needs,
as a few contiguous slab reads when they form few runs, else as one h5py fancy read, or, when the rows are dense
within the dataset's chunks, one slab per touched chunk (at most one chunk's rows are held beyond the batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
import torch

from streamreg._hdf5 import parse_h5_path, resolve_dataset

__all__ = ["H5Rows", "TimeSeriesBatch", "TimeSeriesDataset"]

_MAX_SLAB_READS = 32  # more runs than this: a fancy read, or one slab per chunk where the rows are dense
_DENSE_FACTOR = 16  # per-chunk slabs when they span at most this many rows per needed row (a slab row costs
# about 1/17 of a fancy-indexed row in h5py 3.16)
Index = int | slice | Sequence[int] | np.ndarray | torch.Tensor


class H5Rows:
    """Lazy rows of a 2-D HDF5 dataset, opened read-only on first use; ``read_rows`` reads only given rows."""

    def __init__(self, source: str | h5py.Dataset, name: str) -> None:
        if isinstance(source, h5py.Dataset):
            self.filename, self.dataset = source.file.filename, source.name
        else:
            self.filename, self.dataset = parse_h5_path(source, name)
        self._ds: h5py.Dataset | None = source if isinstance(source, h5py.Dataset) else None
        ds = self.h5()
        if ds.ndim != 2 or ds.dtype.kind not in "iuf":
            msg = f"{name} must be a numeric (n_rows, n_vars) dataset; {self.location} is {ds.shape} {ds.dtype}."
            raise ValueError(msg)
        self.shape: tuple[int, int] = (int(ds.shape[0]), int(ds.shape[1]))

    @property
    def location(self) -> str:
        """``"file.h5:/dataset"``."""
        return f"{self.filename}:{self.dataset}"

    def h5(self) -> h5py.Dataset:
        """The open dataset (the file is opened read-only if needed)."""
        if self._ds is None or not self._ds.id.valid:
            self._ds = resolve_dataset(h5py.File(self.filename, "r"), self.dataset, self.location)
        return self._ds

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (sorted, unique int64) as ``(len(rows), n_vars)`` numpy, in coalesced reads."""
        ds = self.h5()
        if rows.size == 0:
            return np.empty((0, self.shape[1]), dtype=ds.dtype)
        breaks = np.flatnonzero(np.diff(rows) > 1) + 1
        if breaks.size + 1 > _MAX_SLAB_READS:
            return self._read_many(ds, rows)
        starts = np.concatenate([rows[:1], rows[breaks]])
        stops = np.concatenate([rows[breaks - 1], rows[-1:]]) + 1
        return np.concatenate([ds[int(a) : int(b)] for a, b in zip(starts, stops, strict=True)], axis=0)

    def _read_many(self, ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
        """Scattered rows: one fancy read, or, where they are dense in the HDF5 chunks (which HDF5 reads whole
        from disk anyway), one slab per touched chunk, from its first to its last needed row (≤ one chunk held)."""
        if ds.chunks is None:
            return ds[rows]
        chunk = ds.chunks[0]
        starts = np.flatnonzero(np.diff(rows // chunk)) + 1
        firsts, lasts = rows[np.r_[0, starts]], rows[np.r_[starts - 1, rows.size - 1]]
        if int((lasts - firsts + 1).sum()) > _DENSE_FACTOR * rows.size:
            return ds[rows]
        out = np.empty((rows.size, self.shape[1]), dtype=ds.dtype)
        for lo, hi, a, b in zip(firsts, lasts, np.r_[0, starts], np.r_[starts, rows.size], strict=True):
            out[a:b] = ds[int(lo) : int(hi) + 1][rows[a:b] - lo]
        return out

    def __len__(self) -> int:
        return self.shape[0]

    def __deepcopy__(self, memo: dict[int, Any]) -> H5Rows:
        return H5Rows(self.location, "data")

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["location"], "data")  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"H5Rows({self.location!r}, shape={self.shape})"


def _as_source(entry: Any, name: str) -> torch.Tensor | H5Rows:
    """A group's storage: a 2-D tensor (numpy converted without copy) or lazy HDF5 rows."""
    if isinstance(entry, (str, h5py.Dataset)):
        return H5Rows(entry, name)
    if isinstance(entry, H5Rows):
        return entry
    if isinstance(entry, np.ndarray):
        entry = torch.from_numpy(entry)
    if not isinstance(entry, torch.Tensor) or entry.ndim != 2:
        shape = getattr(entry, "shape", None)
        msg = (
            f"{name} must be a (n_rows, n_vars) tensor, array, h5py.Dataset or 'file.h5:/ds'; "
            f"got {type(entry).__name__} {shape}."
        )
        raise TypeError(msg)
    return entry


def _as_index(index: Index, n: int) -> torch.Tensor:
    """Any int/slice/sequence/array/tensor index into ``range(n)`` as an int64 tensor (ints wrapped to length 1)."""
    if isinstance(index, slice):
        return torch.arange(n)[index]
    if isinstance(index, (int, np.integer)):
        index = [int(index)]
    if isinstance(index, np.ndarray):
        idx = torch.from_numpy(index.astype(np.int64, copy=False))
    else:
        idx = torch.as_tensor(index if isinstance(index, torch.Tensor) else np.asarray(index)).to(torch.int64)
    if idx.numel() and not -n <= int(idx.min()) <= int(idx.max()) < n:
        msg = f"index out of range for {n} samples: min {int(idx.min())}, max {int(idx.max())}."
        raise IndexError(msg)
    return torch.where(idx < 0, idx + n, idx).reshape(-1)


class TimeSeriesBatch(torch.utils.data.Dataset):
    """Samples ``(x rows i_x, y rows i_y)`` over rows shared by all variable groups.

    Parameters
    ----------
    data : sequence
        ``data[g]`` is ``(n_rows, n_vars_g)``: tensor, numpy array, ``h5py.Dataset`` or ``"file.h5:/ds"``.
    i_x, i_y : Tensor
        ``(n_samples,)`` row indices of each sample's x and y point.
    i_orig : Tensor
        ``(n_rows,)`` original time index of each row.

    Examples
    --------
    >>> data = [torch.arange(10.0).reshape(5, 2)]
    >>> b = TimeSeriesBatch(data, torch.tensor([0, 3]), torch.tensor([1, 4]), torch.arange(5))
    >>> len(b), b.rows(0, b.i_y).tolist()
    (2, [[2.0, 3.0], [8.0, 9.0]])
    """

    def __init__(self, data: Sequence[Any], i_x: torch.Tensor, i_y: torch.Tensor, i_orig: torch.Tensor) -> None:
        self.data = [_as_source(d, f"data[{g}]") for g, d in enumerate(data)]
        n_rows = {len(d) for d in self.data}
        self.i_x, self.i_y = torch.as_tensor(i_x, dtype=torch.int64), torch.as_tensor(i_y, dtype=torch.int64)
        self.i_orig = torch.as_tensor(i_orig, dtype=torch.int64)
        if len(n_rows) > 1 or self.i_x.shape != self.i_y.shape or (n_rows and self.i_orig.shape[0] != n_rows.pop()):
            msg = (
                f"data groups must share their row count, i_x and i_y their length, and i_orig must have one entry "
                f"per row; got rows {[len(d) for d in self.data]}, i_x {tuple(self.i_x.shape)}, "
                f"i_y {tuple(self.i_y.shape)}, i_orig {tuple(self.i_orig.shape)}."
            )
            raise ValueError(msg)

    def __len__(self) -> int:
        return int(self.i_x.shape[0])

    @property
    def in_memory(self) -> bool:
        """True if no group is backed by HDF5."""
        return all(isinstance(d, torch.Tensor) for d in self.data)

    def n_vars(self, g: int) -> int:
        """Width of group ``g``."""
        return int(self.data[g].shape[1])

    def rows(self, g: int, rows: torch.Tensor) -> torch.Tensor:
        """``data[g][rows]`` as a tensor (HDF5 reads only the unique rows, sorted and coalesced)."""
        src = self.data[g]
        if isinstance(src, torch.Tensor):
            return src.index_select(0, rows.to(src.device))  # much faster than src[rows] on CPU
        uniq, inverse = torch.unique(rows.cpu(), sorted=True, return_inverse=True)
        return torch.from_numpy(src.read_rows(uniq.numpy()))[inverse]

    def efficient_get_item(self, index: Index) -> TimeSeriesBatch:
        """A batch of the samples ``index`` sharing this batch's data and ``i_orig`` (no copy)."""
        idx = _as_index(index, len(self)).to(self.i_x.device)
        new = TimeSeriesBatch.__new__(TimeSeriesBatch)
        new.data, new.i_orig, new.i_x, new.i_y = self.data, self.i_orig, self.i_x[idx], self.i_y[idx]
        return new

    def __getitem__(self, index: Index) -> TimeSeriesBatch:
        """A compact in-memory copy of samples ``index``: only the union of their rows, re-indexed (O(k log k))."""
        idx = _as_index(index, len(self)).to(self.i_x.device)
        both = torch.cat([self.i_x[idx], self.i_y[idx]])
        rows, inverse = torch.unique(both, sorted=True, return_inverse=True)
        data = [self.rows(g, rows) for g in range(len(self.data))]
        k = idx.shape[0]
        return TimeSeriesBatch(data, inverse[:k], inverse[k:], self.i_orig[rows.to(self.i_orig.device)])

    def to(self, device: torch.device | str | int, move_i_orig: bool = False, non_blocking: bool = False) -> None:
        """Move the data and sample indices to ``device`` in place; HDF5 groups are read whole onto it (asked for)."""
        self.data = [
            (d if isinstance(d, torch.Tensor) else self.rows(g, torch.arange(len(d)))).to(
                device, non_blocking=non_blocking
            )
            for g, d in enumerate(self.data)
        ]
        self.i_x, self.i_y = (
            self.i_x.to(device, non_blocking=non_blocking),
            self.i_y.to(device, non_blocking=non_blocking),
        )
        if move_i_orig:
            self.i_orig = self.i_orig.to(device, non_blocking=non_blocking)

    def pin_memory(self) -> TimeSeriesBatch:
        """Pin in-memory CPU groups in place; return self."""
        self.data = [d.pin_memory() if isinstance(d, torch.Tensor) else d for d in self.data]
        return self


class TimeSeriesDataset(torch.utils.data.Dataset):
    """Consecutive-time samples ``(x at t−1, y at t)`` over time-first groups ``(T, n_vars_g)``.

    ``len(ds) == T − 1``. ``ds[index]`` is a :class:`TimeSeriesBatch` that **shares** the groups' storage (rows are
    time points, ``i_orig = arange(T)``), with ``i_x = arange(T − 1)[index]`` and ``i_y = i_x + 1``; nothing is read
    or copied. (janelia_core compacted the rows here; ``batch[...]`` gives that compact copy.)

    Examples
    --------
    >>> ds = TimeSeriesDataset([torch.zeros(6, 3), torch.zeros(6, 2)])
    >>> b = ds[[0, 5 - 1]]
    >>> len(ds), b.i_x.tolist(), b.i_y.tolist()
    (5, [0, 4], [1, 5])
    """

    def __init__(self, ts_data: Sequence[Any]) -> None:
        self.data = [_as_source(d, f"ts_data[{g}]") for g, d in enumerate(ts_data)]
        lengths = [len(d) for d in self.data]
        if not lengths or len(set(lengths)) > 1:
            msg = f"All entries of ts_data must have the same number of time points; got {lengths}."
            raise ValueError(msg)
        self.n_time = lengths[0]

    def __len__(self) -> int:
        return max(self.n_time - 1, 0)

    def __getitem__(self, index: Index) -> TimeSeriesBatch:
        i_x = _as_index(index, len(self))
        return TimeSeriesBatch(self.data, i_x, i_x + 1, torch.arange(self.n_time))
