"""TimeSeriesBatch / TimeSeriesDataset over tensors, numpy and HDF5, against plain indexing."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from streamreg.regression import TimeSeriesBatch, TimeSeriesDataset
from streamreg.regression.data import H5Rows


def test_dataset_pairs_consecutive_times():
    """ds[index] pairs x at t with y at t + 1 and len is T - 1."""
    x = np.arange(20.0).reshape(10, 2)
    ds = TimeSeriesDataset([x, torch.from_numpy(x[:, :1].copy())])
    b = ds[[0, 5, 6]]
    assert len(ds) == 9
    assert b.rows(0, b.i_x).tolist() == x[[0, 5, 6]].tolist()
    assert b.rows(1, b.i_y)[:, 0].tolist() == x[[1, 6, 7], 0].tolist()


def test_dataset_rejects_unequal_lengths():
    """All groups must have the same number of time points; the lengths are named."""
    with pytest.raises(ValueError, match=r"\[5, 4\]"):
        TimeSeriesDataset([np.zeros((5, 1)), np.zeros((4, 1))])


def test_getitem_compacts_rows_like_janelia():
    """batch[[0, 5, 6]] keeps rows [0, 1, 5, 6, 7] with i_x = [0, 2, 3], i_y = [1, 3, 4] (reference §3)."""
    ds = TimeSeriesDataset([torch.arange(10.0)[:, None]])
    b = ds[:][[0, 5, 6]]
    assert b.i_orig.tolist() == [0, 1, 5, 6, 7]
    assert (b.i_x.tolist(), b.i_y.tolist()) == ([0, 2, 3], [1, 3, 4])
    assert b.data[0][:, 0].tolist() == [0.0, 1.0, 5.0, 6.0, 7.0]


def test_efficient_get_item_shares_data():
    """efficient_get_item copies nothing; an int is wrapped to one sample."""
    ds = TimeSeriesDataset([torch.zeros(10, 2)])
    full = ds[:]
    b = full.efficient_get_item(3)
    assert b.data[0] is full.data[0] and b.i_x.tolist() == [3] and b.i_y.tolist() == [4]


class RecordingDataset:
    """A stand-in h5py.Dataset that records each read selection."""

    def __init__(self, ds: h5py.Dataset) -> None:
        self.ds, self.reads = ds, []
        self.id, self.dtype, self.chunks = ds.id, ds.dtype, ds.chunks

    def __getitem__(self, sel):
        self.reads.append(sel)
        return self.ds[sel]


def test_hdf5_batch_reads_only_needed_rows(h5_path):
    """An HDF5 group gives the rows of in-memory indexing and reads only sorted unique needed rows."""
    x = np.random.default_rng(0).standard_normal((1000, 3)).astype(np.float32)
    with h5py.File(h5_path, "w") as f:
        f["x"] = x
    full = TimeSeriesDataset([f"{h5_path}:/x"])[:]
    rec = RecordingDataset(full.data[0].h5())
    full.data[0]._ds = rec
    b = full[[10, 11, 500, 3]]  # two runs + one: slab reads
    assert b.data[0].numpy().tolist() == x[[3, 4, 10, 11, 12, 500, 501]].tolist()
    assert rec.reads == [slice(3, 5), slice(10, 13), slice(500, 502)]
    rec.reads.clear()
    idx = np.arange(0, 998, 7)
    b = full[idx]  # many runs: one fancy read of sorted unique rows
    needed = np.unique(np.concatenate([idx, idx + 1]))
    assert len(rec.reads) == 1 and np.array_equal(rec.reads[0], needed)
    np.testing.assert_array_equal(b.rows(0, b.i_y).numpy(), x[idx + 1])


def test_h5_location_errors(h5_path):
    """A bad location names what is wrong; a 1-D dataset is refused with its shape."""
    with h5py.File(h5_path, "w") as f:
        f["v"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        H5Rows(f"{h5_path}:/v", "data[0]")
    with pytest.raises(KeyError, match="nope"):
        TimeSeriesDataset([f"{h5_path}:/nope"])


def test_batch_checks_consistency():
    """i_orig must have one entry per row."""
    with pytest.raises(ValueError, match="i_orig"):
        TimeSeriesBatch([torch.zeros(4, 1)], torch.tensor([0]), torch.tensor([1]), torch.arange(3))


def test_hdf5_dense_rows_read_per_chunk(h5_path):
    """Rows dense within HDF5 chunks are read as one slab per touched chunk and give plain indexing's rows."""
    x = np.random.default_rng(1).standard_normal((1000, 2)).astype(np.float32)
    with h5py.File(h5_path, "w") as f:
        f.create_dataset("x", data=x, chunks=(100, 2))
    rows = H5Rows(f"{h5_path}:/x", "x")
    rec = RecordingDataset(rows.h5())
    rows._ds = rec
    idx = np.concatenate([np.arange(0, 98, 2), np.arange(301, 398, 2)])  # two chunks, every other row
    np.testing.assert_array_equal(rows.read_rows(idx), x[idx])
    assert rec.reads == [slice(0, 97), slice(301, 398)]
