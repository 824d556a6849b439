"""Private HDF5 helpers: ``"file.h5:/dataset"`` paths, opening files once, listing contents."""

from __future__ import annotations

import os
import secrets
from typing import Any

import h5py

from streamreg.exceptions import DatasetNotFoundError

__all__ = ["H5Files", "list_datasets", "parse_h5_path", "resolve_dataset"]

_MAX_LISTED = 20


def parse_h5_path(spec: str, name: str) -> tuple[str, str]:
    """Split ``"file.h5:/dataset"`` into the file path and the dataset path."""
    path, sep, dataset = spec.rpartition(":")
    if not sep or not path or not dataset.startswith("/"):
        msg = f"{name} must be an HDF5 location of the form 'file.h5:/dataset'; got {spec!r}."
        raise ValueError(msg)
    return path, dataset


def list_datasets(group: h5py.Group) -> list[str]:
    """Paths of the datasets under ``group``, in visiting order."""
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append("/" + name)

    group.visititems(visit)
    return found


def resolve_dataset(file: h5py.File, dataset: str, name: str) -> h5py.Dataset:
    """Return ``file[dataset]``; an NWB TimeSeries group stands for its ``data``."""
    obj = file.get(dataset)
    if isinstance(obj, h5py.Group) and isinstance(obj.get("data"), h5py.Dataset):
        obj = obj["data"]
    if not isinstance(obj, h5py.Dataset):
        held = list_datasets(file)
        shown = ", ".join(held[:_MAX_LISTED]) or "no datasets"
        more = f" and {len(held) - _MAX_LISTED} more" if len(held) > _MAX_LISTED else ""
        what = "is not a dataset" if obj is not None else "does not exist"
        msg = f"{name}: {dataset!r} {what} in {file.filename!r}; the file holds {shown}{more}."
        raise DatasetNotFoundError(msg)
    return obj


class H5Files:
    """Open each HDF5 file once per run, in the strongest mode any use needs.

    HDF5 refuses to open one file twice in conflicting modes, so a run whose
    input and output live in the same file must share one handle.
    """

    def __init__(self) -> None:
        self._files: dict[str, h5py.File] = {}
        self.created: set[str] = set()

    def open(self, path: str, *, write: bool, name: str, swmr: bool = False) -> h5py.File:
        """Return an open handle on ``path`` (created if ``write`` and missing).

        ``swmr`` opens a file for writing with ``libver="latest"``, which SWMR needs.
        """
        key = os.path.realpath(path)
        handle = self._files.get(key)
        if handle is not None and (not write or handle.mode == "r+"):
            return handle
        if not write and not os.path.exists(path):
            msg = f"{name}: no such HDF5 file {path!r}."
            raise FileNotFoundError(msg)
        if handle is not None:  # read-only handle, now wanted for writing: a caller bug, not a user error
            msg = f"{path!r} was opened for reading before it was opened for writing; open outputs first."
            raise RuntimeError(msg)
        existed = os.path.exists(path)
        # SWMR needs the latest format; otherwise HDF5 1.10 chunk indexes, whose extent can be cut back
        # after a failed write (a full disk) without losing chunks, in a file with an old superblock.
        libver: Any = ("latest" if swmr else ("v110", "latest")) if write else None
        try:
            handle = _create_file(path, libver) if write and not existed else None
            if handle is None:
                handle = h5py.File(path, "a" if write else "r", libver=libver)
        except OSError as exc:
            hint = " (is it open elsewhere in read-only mode, or not an HDF5 file?)" if existed else ""
            msg = f"{name}: cannot open {path!r} for {'writing' if write else 'reading'}{hint}: {exc}"
            raise OSError(msg) from exc
        if write and not existed:
            self.created.add(key)
        self._files[key] = handle
        return handle

    def get(self, path: str) -> h5py.File | None:
        """The handle this run opened on ``path``, if any."""
        return self._files.get(os.path.realpath(path))

    def close(self, *, failed: bool = False) -> None:
        """Close every file (each one, even if another fails); after a failure, delete files this run created
        that are still empty."""
        errors = []
        for key, handle in list(self._files.items()):
            try:
                empty = failed and key in self.created and len(handle) == 0
                handle.close()
                if empty:
                    os.remove(key)
            except OSError as exc:  # a full disk can fail the final flush: close the others anyway
                errors.append(exc)
        self._files.clear()
        if errors:
            raise errors[0]


def _create_file(path: str, libver: Any) -> h5py.File | None:
    """Create an empty HDF5 file at ``path`` so that it appears whole or not at all.

    HDF5 writes a new file's superblock piecemeal; a process killed meanwhile would
    leave a stub that no later open accepts. So the file is made under a random
    temporary name beside ``path`` (``.<name>.<random>.tmp``, created exclusively)
    and linked into place. A run that holds the output's lock deletes the
    temporaries of killed runs.

    A SWMR output (``libver="latest"``) stays open from its creation on, and that
    handle is returned: a live reader that opened the new file before the writer
    reopened it would hold a lock that makes the reopen fail. Other files are
    closed (``None`` is returned) and reopened with 1.10 layouts over a version 0
    superblock.
    """
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
    keep = libver == "latest"
    handle = None
    try:
        handle = h5py.File(tmp, "w-", libver="latest" if keep else None)
        if keep:
            handle.flush()  # whole on disk before it appears (a kill leaves what a killed writer leaves)
        else:
            handle.close()
            handle = None
        os.link(tmp, path)  # never replaces a file that appeared meanwhile (FileExistsError)
    except BaseException:
        if handle is not None:
            handle.close()
        raise
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
    return handle
