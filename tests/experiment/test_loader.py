"""SmartDataLoader: sharding (disjoint, complete), seeding, resume, device moves, bar; HDF5ChunkDataset."""

from __future__ import annotations

import itertools
import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler, Dataset, IterableDataset, SequentialSampler, TensorDataset

from streamreg.exceptions import DatasetNotFoundError
from streamreg.experiment import HDF5ChunkDataset, ShardedSampler, SmartDataLoader
from streamreg.experiment import distributed as dist_helpers


class Indices(Dataset):
    """Item i is i."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class Stream(IterableDataset):
    """Yields 0..n-1; records the epochs it is given."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


def _loader(dataset, rank=0, num_replicas=1, **kwargs) -> SmartDataLoader:
    kwargs.setdefault("loading_bar", False)
    return SmartDataLoader(dataset, rank=rank, num_replicas=num_replicas, **kwargs)


def _items(loader) -> list[int]:
    return [int(i) for batch in loader for i in batch]


@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_are_disjoint_and_complete(shuffle):
    """12 items over 3 ranks: each rank 4, no overlap, all covered, the same permutation on every rank."""
    shards = [_items(_loader(Indices(12), rank=r, num_replicas=3, batch_size=2, shuffle=shuffle, random_seed=5))
              for r in range(3)]

    assert [len(s) for s in shards] == [4, 4, 4]
    assert sorted(itertools.chain.from_iterable(shards)) == list(range(12))


def test_uneven_shards_pad_like_distributed_sampler():
    """10 items over 3 ranks: every rank gets ceil(10/3) = 4, all items covered, 2 repeated."""
    shards = [_items(_loader(Indices(10), rank=r, num_replicas=3, batch_size=4)) for r in range(3)]

    assert [len(s) for s in shards] == [4, 4, 4]
    assert set(itertools.chain.from_iterable(shards)) == set(range(10))


def test_user_sampler_is_sharded_in_its_order():
    """A user sampler (here reversed order) is split across ranks, not repeated on each."""
    order = list(range(9, -1, -1))
    shards = [_items(_loader(Indices(10), rank=r, num_replicas=2, batch_size=1, sampler=order)) for r in range(2)]

    assert shards == [order[0::2], order[1::2]]


def test_user_batch_sampler_is_sharded_by_batch():
    """Each rank gets every other batch of a user batch sampler."""
    batches = BatchSampler(SequentialSampler(range(8)), batch_size=2, drop_last=False)
    shards = [[b.tolist() for b in _loader(Indices(8), rank=r, num_replicas=2, batch_sampler=batches)]
              for r in range(2)]

    assert shards == [[[0, 1], [4, 5]], [[2, 3], [6, 7]]]


def test_iterable_dataset_is_sharded_and_gets_its_epoch():
    """An IterableDataset works (pystematic refused it); rank r takes items r, r+n, ...; set_epoch is called."""
    streams = [Stream(10), Stream(10)]
    shards = [_items(_loader(streams[r], rank=r, num_replicas=2, batch_size=3)) for r in range(2)]

    assert shards == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    assert streams[0].epochs == [0]


def test_sharded_sampler_validates_rank():
    """rank must be below num_replicas."""
    with pytest.raises(ValueError, match="rank must be below num_replicas=2; got 2"):
        ShardedSampler(range(4), num_replicas=2, rank=2)


def test_shuffle_is_seeded_per_epoch_and_by_the_seed():
    """Same seed, same orders; each epoch a new permutation; another seed, another order."""
    a = _loader(Indices(20), batch_size=20, shuffle=True, random_seed=3)
    b = _loader(Indices(20), batch_size=20, shuffle=True, random_seed=3)
    c = _loader(Indices(20), batch_size=20, shuffle=True, random_seed=4)

    first, second = _items(a), _items(a)

    assert first == _items(b)
    assert first != second
    assert first != _items(c)
    assert sorted(first) == list(range(20))


def test_default_seed_follows_torch_outside_an_experiment():
    """Without an experiment or random_seed, the seed is torch's initial seed (not a fixed constant)."""
    torch.manual_seed(11)
    assert _loader(Indices(4)).random_seed == 11


def test_iteration_leaves_global_rng_untouched():
    """A loader never draws from the global torch generator, so resuming keeps dropout exact."""
    loader = _loader(Indices(8), batch_size=2, shuffle=True)
    before = torch.get_rng_state()

    _items(loader)

    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("make", [
    lambda: dict(dataset=Indices(10), batch_size=2, shuffle=True, random_seed=1),
    lambda: dict(dataset=Indices(10), batch_size=2, sampler=list(range(9, -1, -1))),
    lambda: dict(dataset=Stream(11), batch_size=2),
], ids=["shuffled", "user-sampler", "iterable"])
@pytest.mark.parametrize("rank", [0, 1])
def test_resumed_loader_yields_exactly_the_unseen_batches(make, rank):
    """Stopping after 1 epoch + 1 batch and resuming a fresh loader gives the straight run's remaining batches."""
    straight_loader = _loader(rank=rank, num_replicas=2, **make())
    straight = [b.tolist() for _ in range(3) for b in straight_loader]
    killed = _loader(rank=rank, num_replicas=2, **make())
    seen = [b.tolist() for b in killed]
    seen.append(next(iter(killed)).tolist())
    state = killed.state_dict()

    resumed = _loader(rank=rank, num_replicas=2, **{**make(), "random_seed": 99})
    resumed.load_state_dict(state)
    rest = [b.tolist() for _ in range(2) for b in resumed]

    assert (state["epoch"], state["position"]) == (1, 1)
    assert len(straight) == 9
    assert seen + rest == straight


def test_break_continues_on_next_iter_and_set_epoch_restarts():
    """The loader is a cursor: an early break continues where it stopped; set_epoch starts over."""
    loader = _loader(Indices(6), batch_size=2)
    for _ in loader:
        break
    assert [b.tolist() for b in loader] == [[2, 3], [4, 5]]
    loader.set_epoch(0)
    assert [b.tolist() for b in loader] == [[0, 1], [2, 3], [4, 5]]


def test_load_state_dict_refuses_other_keys():
    """A state without the loader's keys is refused by name."""
    with pytest.raises(KeyError, match="epoch"):
        _loader(Indices(2)).load_state_dict({"count": 1})


def test_batches_move_to_the_device_keeping_tuples():
    """After to(device) each batch is moved; tuple batches stay tuples."""
    loader = _loader(TensorDataset(torch.zeros(4), torch.ones(4)), batch_size=2).to("meta")

    batch = next(iter(loader))

    assert all(t.device.type == "meta" for t in batch)


def test_loading_bar_only_on_rank_zero(capsys, monkeypatch):
    """The tqdm bar shows on the master and not elsewhere."""
    _items(_loader(Indices(4), batch_size=2, loading_bar=True))
    assert "epoch 0" in capsys.readouterr().err

    monkeypatch.setattr(dist_helpers, "is_master", lambda: False)
    _items(_loader(Indices(4), batch_size=2, loading_bar=True))
    assert capsys.readouterr().err == ""


def test_iterable_dataset_refuses_sampler_options():
    """Sampler options make no sense for an IterableDataset and are refused."""
    with pytest.raises(ValueError, match="IterableDataset takes no sampler"):
        _loader(Stream(4), shuffle=True)


@pytest.fixture
def recording(h5_path):
    """x: (50, 2, 3) float32, y: (50, 4) float64, z: 40 frames."""
    rng = np.random.default_rng(0)
    with h5py.File(h5_path, "w") as f:
        f["x"] = rng.standard_normal((50, 2, 3)).astype(np.float32)
        f["y"] = rng.standard_normal((50, 4))
        f["z"] = np.zeros(40)
    return h5_path


def test_hdf5_chunks_are_consecutive_time_slices(recording):
    """Item i is frames [i*k, (i+1)*k) of the dataset; the partial last chunk is left out."""
    data = HDF5ChunkDataset(recording, "x", chunk_frames=16)
    with h5py.File(recording) as f:
        x = f["x"][:]

    assert len(data) == 3
    for i in range(3):
        assert np.array_equal(data[i].numpy(), x[16 * i:16 * (i + 1)])
    with pytest.raises(IndexError):
        data[3]
    data.close()


def test_hdf5_chunks_with_target_through_the_loader(recording):
    """The (input, target) form batches to ((B, k, *frame), (B, k, *frame_target)) with matching frames."""
    data = HDF5ChunkDataset(recording, "x", chunk_frames=10, target="y")
    loader = _loader(data, batch_size=2, shuffle=True)
    with h5py.File(recording) as f:
        y = f["y"][:]

    batches = list(loader)

    assert [tuple(b[0].shape) for b in batches] == [(2, 10, 2, 3), (2, 10, 2, 3), (1, 10, 2, 3)]
    assert batches[0][1].dtype == torch.float64
    chunks = sorted(int(np.argmin(np.abs(y[::10, 0] - t[0, 0].item()))) for b in batches for t in b[1])
    assert chunks == [0, 1, 2, 3, 4]
    assert pickle.loads(pickle.dumps(data)).n_frames == 50  # picklable for DataLoader workers
    data.close()


def test_hdf5_chunk_dataset_errors(recording):
    """Mismatched lengths and missing datasets are named."""
    with pytest.raises(ValueError, match="target 'z' has 40 frames, but 'x' has 50"):
        HDF5ChunkDataset(recording, "x", chunk_frames=5, target="z")
    with pytest.raises(DatasetNotFoundError, match="'nope' does not exist"):
        HDF5ChunkDataset(recording, "nope", chunk_frames=5)
    with pytest.raises(ValueError, match="chunk_frames"):
        HDF5ChunkDataset(recording, "x", chunk_frames=0)
