"""The :class:`SmartDataLoader`: sharded by rank, seeded from the run, moved to the device, resumable.

Also :class:`HDF5ChunkDataset`, a map-style dataset of time-first chunks read
from HDF5 datasets, and :class:`ShardedSampler`, which shards any sampler as
``DistributedSampler`` does.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

import h5py
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, IterableDataset, Sampler
from tqdm.auto import tqdm

from streamreg._hdf5 import resolve_dataset
from streamreg._validation import check_nonnegative_int, check_positive_int
from streamreg.experiment import distributed, runtime
from streamreg.experiment.context import move_to_device

__all__ = ["HDF5ChunkDataset", "ShardedSampler", "SmartDataLoader"]


def _shard(items: list[Any], rank: int, num_replicas: int) -> list[Any]:
    """``DistributedSampler``'s split: pad by repeating from the start, then every ``num_replicas``-th item."""
    if not items:
        return []
    total = math.ceil(len(items) / num_replicas) * num_replicas
    padded = list(itertools.islice(itertools.cycle(items), total))
    return padded[rank:total:num_replicas]


class ShardedSampler(Sampler[Any]):
    """Shard the items of any sampler (or batch sampler) across ranks, as ``DistributedSampler`` does.

    Rank ``r`` of ``n`` gets items ``r, r+n, r+2n, ...`` of the wrapped
    sampler's order, padded by repeating its first items so that every rank
    gets ``ceil(len / n)`` of them. ``set_epoch`` is forwarded.

    Examples
    --------
    >>> list(ShardedSampler(range(5), num_replicas=2, rank=1))
    [1, 3, 0]
    """

    def __init__(self, sampler: Iterable[Any], num_replicas: int, rank: int) -> None:
        self.sampler = sampler
        self.num_replicas = check_positive_int(num_replicas, "num_replicas")
        self.rank = check_nonnegative_int(rank, "rank")
        if self.rank >= self.num_replicas:
            msg = f"rank must be below num_replicas={num_replicas}; got {rank}."
            raise ValueError(msg)

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped sampler, if it takes one."""
        if callable(getattr(self.sampler, "set_epoch", None)):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        return iter(_shard(list(self.sampler), self.rank, self.num_replicas))

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.num_replicas)  # type: ignore[arg-type]


class _ResumableBatches(Sampler[list[int]]):
    """A batch sampler that starts each epoch at ``skip`` batches in."""

    def __init__(self, batches: Any, samplers: list[Any]) -> None:
        self.batches = batches
        self.samplers = samplers
        self.skip = 0

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.batches), self.skip, None)

    def __len__(self) -> int:
        return len(self.batches)


class _ShardedIterable(IterableDataset):
    """Every ``num_replicas``-th item of an iterable dataset from ``rank`` on, after ``skip`` items."""

    def __init__(self, dataset: IterableDataset, num_replicas: int, rank: int) -> None:
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.skip = 0

    def __iter__(self) -> Iterator[Any]:
        shard = itertools.islice(iter(self.dataset), self.rank, None, self.num_replicas)
        return itertools.islice(shard, self.skip, None)

    def __len__(self) -> int:
        return math.ceil((len(self.dataset) - self.rank) / self.num_replicas)  # type: ignore[arg-type]


def _default_seed() -> int:
    return runtime.random_seed() if runtime.is_running() else torch.initial_seed() % 2**32


class SmartDataLoader(DataLoader):
    """A DataLoader that shards by rank, seeds from the run, moves batches and resumes mid-epoch.

    Parameters
    ----------
    dataset : Dataset or IterableDataset
        Map-style datasets are sharded with ``DistributedSampler`` (or, with a
        user ``sampler``/``batch_sampler``, with :class:`ShardedSampler`);
        an ``IterableDataset`` gives rank ``r`` every ``num_replicas``-th item
        from item ``r`` on, and gets ``set_epoch(epoch)`` if it has one.
    batch_size, shuffle, sampler, batch_sampler, num_workers, collate_fn, pin_memory, drop_last
        As for ``DataLoader``. ``shuffle`` draws a new permutation per epoch
        from ``random_seed + epoch``, the same on every rank.
    random_seed : int, optional
        Defaults to the running experiment's seed (``torch.initial_seed()``
        outside an experiment). Saved in :meth:`state_dict`.
    move_output : bool, default True
        Move each batch to the device set by :meth:`to` (``Context.to`` calls it).
    loading_bar : bool, default True
        Show a tqdm bar, on rank 0 only.
    rank, num_replicas : int, optional
        This process's shard; by default the distributed rank and world size.

    Notes
    -----
    The loader is a cursor over epochs: :meth:`state_dict` holds the epoch and
    the number of batches of it already yielded, and iterating a loader loaded
    from that state yields exactly the remaining batches, then the next
    epochs. A loop that breaks out early continues where it stopped on the next
    ``iter()``; :meth:`set_epoch` starts an epoch from its beginning.
    The global RNGs are never drawn from (worker seeds come from the loader's
    own generator), so a resumed loader leaves dropout and the like exact.

    Examples
    --------
    >>> data = torch.utils.data.TensorDataset(torch.arange(6.0))
    >>> loader = SmartDataLoader(data, batch_size=2, loading_bar=False, rank=0, num_replicas=1)
    >>> [b[0].tolist() for b in loader]
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    >>> loader.state_dict()["epoch"]
    1
    """

    def __init__(self, dataset: Dataset[Any], batch_size: int | None = 1, shuffle: bool = False,
                 sampler: Sampler[Any] | Iterable[Any] | None = None,
                 batch_sampler: Sampler[list[Any]] | Iterable[list[Any]] | None = None, *, num_workers: int = 0,
                 collate_fn: Callable[[list[Any]], Any] | None = None, pin_memory: bool = False,
                 drop_last: bool = False, random_seed: int | None = None, move_output: bool = True,
                 loading_bar: bool = True, rank: int | None = None, num_replicas: int | None = None) -> None:
        self.random_seed = int(random_seed) if random_seed is not None else _default_seed()
        self.num_replicas = distributed.get_num_processes() if num_replicas is None else num_replicas
        self.rank = distributed.get_rank() if rank is None else rank
        self.move_output = move_output
        self.loading_bar = loading_bar
        self.device: torch.device | None = None
        self.epoch = 0
        self.position = 0
        ShardedSampler([], self.num_replicas, self.rank)  # validates rank and num_replicas
        self._generator = torch.Generator()
        self._own_sampler: DistributedSampler[Any] | None = None
        common = {"num_workers": num_workers, "collate_fn": collate_fn, "pin_memory": pin_memory,
                  "generator": self._generator}
        if isinstance(dataset, IterableDataset):
            if sampler is not None or batch_sampler is not None or shuffle or num_workers:
                msg = ("an IterableDataset takes no sampler, batch_sampler, shuffle or num_workers "
                       f"(it orders and shards its own items); got sampler={sampler!r}, "
                       f"batch_sampler={batch_sampler!r}, shuffle={shuffle!r}, num_workers={num_workers!r}.")
                raise ValueError(msg)
            self._skipper: Any = _ShardedIterable(dataset, self.num_replicas, self.rank)
            super().__init__(self._skipper, batch_size=batch_size, drop_last=drop_last, **common)
        else:
            self._skipper = self._batches(dataset, batch_size, shuffle, sampler, batch_sampler, drop_last)
            super().__init__(dataset, batch_sampler=self._skipper, **common)

    def _batches(self, dataset: Dataset[Any], batch_size: int | None, shuffle: bool, sampler: Any,
                 batch_sampler: Any, drop_last: bool) -> _ResumableBatches:
        if batch_sampler is not None:
            if sampler is not None or shuffle or batch_size != 1 or drop_last:
                msg = "batch_sampler is mutually exclusive with batch_size, shuffle, sampler and drop_last."
                raise ValueError(msg)
            sharded = ShardedSampler(batch_sampler, self.num_replicas, self.rank)
            return _ResumableBatches(sharded, [sharded])
        if batch_size is None:
            msg = "batch_size must be a positive int for a map-style dataset; got None."
            raise ValueError(msg)
        if sampler is None:
            index: Any = DistributedSampler(dataset, num_replicas=self.num_replicas, rank=self.rank,
                                            shuffle=shuffle, seed=self.random_seed)
            self._own_sampler = index
        elif shuffle:
            msg = "sampler is mutually exclusive with shuffle=True; shuffle inside the sampler."
            raise ValueError(msg)
        elif isinstance(sampler, DistributedSampler):
            index = sampler
        else:
            index = ShardedSampler(sampler, self.num_replicas, self.rank)
        batches = BatchSampler(index, check_positive_int(batch_size, "batch_size"), drop_last)
        return _ResumableBatches(batches, [index])

    def _start_epoch(self) -> None:
        if self._own_sampler is not None:
            self._own_sampler.seed = self.random_seed  # a loaded state brings its seed
        for sampler in getattr(self._skipper, "samplers", []):
            if callable(getattr(sampler, "set_epoch", None)):
                sampler.set_epoch(self.epoch)
        inner = getattr(self._skipper, "dataset", None)
        if isinstance(self._skipper, _ShardedIterable) and callable(getattr(inner, "set_epoch", None)):
            inner.set_epoch(self.epoch)
        per_batch = 1 if isinstance(self._skipper, _ResumableBatches) else (self.batch_size or 1)
        self._skipper.skip = self.position * per_batch
        self._generator.manual_seed(self.random_seed + self.epoch)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        self._start_epoch()
        total = len(self) if isinstance(self._skipper, _ResumableBatches) or isinstance(
            self._skipper.dataset, Sized) else None
        bar = tqdm(total=total, initial=self.position, leave=False, desc=f"epoch {self.epoch}",
                   disable=not (self.loading_bar and distributed.is_master()))
        try:
            for batch in super().__iter__():
                if self.move_output and self.device is not None:
                    batch = move_to_device(self.device, batch)
                self.position += 1
                bar.update(1)
                yield batch
        finally:
            bar.close()
        self.epoch += 1
        self.position = 0

    def to(self, device: torch.device | str) -> SmartDataLoader:
        """Move the batches this loader yields to ``device`` from now on; return ``self``."""
        self.device = torch.device(device)
        return self

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch on the next ``iter()``."""
        self.epoch = check_nonnegative_int(epoch, "epoch")
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        """Return ``{"epoch", "position", "random_seed"}``: position counts batches yielded in the epoch."""
        return {"epoch": self.epoch, "position": self.position, "random_seed": self.random_seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a :meth:`state_dict`: the next ``iter()`` yields the batches not yet seen."""
        expected = ["epoch", "position", "random_seed"]
        if not isinstance(state, dict) or sorted(state) != expected:
            msg = f"SmartDataLoader state must have the keys {expected}; got {state!r:.80}."
            raise KeyError(msg)
        self.epoch = check_nonnegative_int(state["epoch"], "state['epoch']")
        self.position = check_nonnegative_int(state["position"], "state['position']")
        self.random_seed = int(state["random_seed"])


class HDF5ChunkDataset(Dataset):
    """Consecutive time-first chunks of an HDF5 dataset, optionally with a target, as a map-style dataset.

    Item ``i`` is frames ``[i·chunk_frames, (i+1)·chunk_frames)`` of ``name``,
    a tensor ``(chunk_frames, *frame)``; with ``target`` it is the pair
    ``(input, target)`` of the same frames of both datasets. A last partial
    chunk is left out, so batches stack. Files open lazily, once per process
    (and per DataLoader worker).

    Parameters
    ----------
    path : path
        The HDF5 file.
    name : str
        The input dataset, ``(T, *frame)`` (an NWB TimeSeries group stands for its ``data``).
    chunk_frames : int
        Frames per item.
    target : str, optional
        A dataset in the same file with the same ``T``, ``(T, *frame_target)``.

    Examples
    --------
    >>> import tempfile, h5py, numpy as np
    >>> path = tempfile.mkdtemp() + "/rec.h5"
    >>> with h5py.File(path, "w") as f:
    ...     _ = f.create_dataset("x", data=np.arange(10.0)[:, None])
    ...     _ = f.create_dataset("y", data=np.arange(10.0))
    >>> data = HDF5ChunkDataset(path, "x", chunk_frames=4, target="y")
    >>> len(data), data[1][0].shape, data[1][1].tolist()
    (2, torch.Size([4, 1]), [4.0, 5.0, 6.0, 7.0])
    """

    def __init__(self, path: str | os.PathLike[str], name: str, chunk_frames: int, *,
                 target: str | None = None) -> None:
        self.path = os.fspath(path)
        self.name = name
        self.target = target
        self.chunk_frames = check_positive_int(chunk_frames, "chunk_frames")
        self._file: h5py.File | None = None
        with h5py.File(self.path, "r") as f:
            n_frames = resolve_dataset(f, name, "name").shape[0]
            if target is not None:
                n_target = resolve_dataset(f, target, "target").shape[0]
                if n_target != n_frames:
                    msg = f"target {target!r} has {n_target} frames, but {name!r} has {n_frames}; they must match."
                    raise ValueError(msg)
        self.n_frames = int(n_frames)

    def __len__(self) -> int:
        return self.n_frames // self.chunk_frames

    def _read(self, dataset: str, index: int) -> torch.Tensor:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        start = index * self.chunk_frames
        return torch.from_numpy(resolve_dataset(self._file, dataset, "name")[start:start + self.chunk_frames])

    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            msg = f"index must be in [0, {len(self)}); got {index}."
            raise IndexError(msg)
        x = self._read(self.name, index)
        return x if self.target is None else (x, self._read(self.target, index))

    def close(self) -> None:
        """Close the file handle (reopened on the next item)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def __repr__(self) -> str:
        target = f", target={self.target!r}" if self.target else ""
        return f"<HDF5ChunkDataset {self.path}:{self.name}{target}: {len(self)} chunks of {self.chunk_frames} frames>"
