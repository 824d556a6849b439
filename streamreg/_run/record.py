"""Recording sub-module outputs in the same pass: ``run(..., record=["opl", "bipolar"])``.

Names are module paths, as ``layer.named_modules()`` gives them. Where each one goes:

* ``record=[names]`` beside an HDF5 output ``file.h5:/path/y``: a dataset
  ``file.h5:/path/y_record/<name>`` (the module path kept whole, dots included, so
  ``opl`` and ``opl.center`` never collide, and two outputs in one file never share a
  record group). Beside any other output (``None``, an array, a stream without a
  file): a new numpy array.
* ``record={name: destination}``: any output form ``run()`` accepts; ``None`` is a new
  numpy array.

The run then returns ``(output, {name: record})``, each in the form the output rules
give (a string for a string, the array, the dataset, the stream). Every destination is
opened by :func:`~streamreg._run.endpoints.open_writer` under the output's rules
(existing datasets need ``overwrite``, lossy dtypes and the input dataset are refused)
and every other HDF5 file a record goes to is locked like the output's. The hooks and
the writer that carries the records with the output live in :mod:`.capture`.
"""

from __future__ import annotations

import difflib
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import torch
from torch import nn

from streamreg._hdf5 import H5Files, parse_h5_path
from streamreg._modules import preserved_state
from streamreg._run.capture import Capture, RecordingWriter
from streamreg._run.checkpoint import OutputGuard
from streamreg._run.endpoints import DEFAULT_OUTPUT_NAME, Output, check_not_input, hdf5_location, open_writer
from streamreg._run.options import RunOptions

__all__ = ["RECORD_SUFFIX", "Recording"]

#: ``file.h5:/y`` records ``opl`` into ``file.h5:/y_record/opl``.
RECORD_SUFFIX = "_record"


@dataclass(frozen=True)
class _Slot:
    """A dataset ``name`` (absolute) to create in the caller's open file ``group``, beside an h5py output."""

    group: h5py.Group
    name: str


class Recording:
    """The ``record=`` of one run: names checked, destinations resolved, then files, hooks and writers.

    Construction only checks (no file is touched); :meth:`reserve` locks the other HDF5 files
    before any file is opened, :meth:`attach` opens the writers and hooks once the output is
    open, and :meth:`release` (idempotent) undoes it all.
    """

    def __init__(self, layer: nn.Module, record: Any, output: Any, opts: RunOptions) -> None:
        names = _names(record)
        self.modules = _modules(layer, names)
        self.dests = dict(record) if isinstance(record, Mapping) else {n: _beside(output, n) for n in names}
        self.locations = {name: _location(dest) for name, dest in self.dests.items()}
        _check_distinct(self.dests, self.locations, output)
        if opts.wants_checkpoint:
            kept = [n for n, loc in self.locations.items() if loc is None]
            if kept:
                msg = (
                    f"record: checkpoint_every and resume need every record in an HDF5 dataset, so that it resumes "
                    f"with the output; {kept} would be kept in memory. Give an HDF5 output (records go beside it) "
                    "or HDF5 destinations in record={name: 'file.h5:/dataset'}."
                )
                raise ValueError(msg)
        self._opts = opts
        self._guards: dict[str, OutputGuard] = {}
        self._outputs: dict[str, Output] = {}
        self._capture: Capture | None = None

    def reserve(self, files: H5Files, output_file: str | None) -> None:
        """Lock every HDF5 file a record goes to, other than the output's, and open string ones for writing
        (before the input is opened: it may live in one of them)."""
        for name, dest in self.dests.items():
            loc = self.locations[name]
            if loc is None or loc[0] == output_file:
                continue
            if loc[0] not in self._guards:
                guard = OutputGuard(loc[0], loc[1], RunOptions())
                guard.reserve(repair=isinstance(dest, str))
                self._guards[loc[0]] = guard
            if isinstance(dest, str):
                files.open(parse_h5_path(dest, f"record[{name!r}]")[0], write=True, name=f"record[{name!r}]")

    def attach(self, job: Any, swmr: bool) -> None:
        """Open every record's writer, hook the modules, and put the records beside ``job.output``."""
        output_file = (job.output.writer.location or (None,))[0]
        resumed = job.guard is not None and job.guard.record is not None
        for name, dest in self.dests.items():
            loc = self.locations[name]
            self._outputs[name] = _open(name, dest, job, overwrite=self._opts.overwrite, append=resumed,
                                        swmr=swmr and loc is not None and loc[0] == output_file)
        if job.guard is not None and job.guard.keeps:
            fixed = [n for n, out in self._outputs.items() if not out.writer.resizable]
            if fixed:
                msg = f"record: checkpoint_every and resume need record datasets resizable along time; {fixed} are not."
                raise ValueError(msg)
        self._capture = Capture(job.layer, self.modules)
        writer = RecordingWriter(job.output, self._outputs, self._capture, self.release, lambda: _probe(job))
        job.output = Output(writer, writer.result, owned=True)
        if job.base:
            job.base["record"] = {n: f"{loc[0]}:{loc[1]}" for n, loc in self.locations.items() if loc is not None}

    def release(self) -> None:
        """Remove the hooks, close the record writers the run opened, release the locks (each, even if one fails)."""
        errors = []
        if self._capture is not None:
            self._capture.remove()
        for out in self._outputs.values():
            try:
                if out.owned:
                    out.writer.close()
            except OSError as exc:  # a full disk can fail the final flush: close the others anyway
                errors.append(exc)
        for guard in self._guards.values():
            guard.release()
        self._guards.clear()
        if errors:
            raise errors[0]


def _names(record: Any) -> list[str]:
    if isinstance(record, str) or not isinstance(record, (Mapping, Sequence)):
        hint = f" (write record=[{record!r}])" if isinstance(record, str) else ""
        msg = (
            "record must be a list of module names or a dict {name: destination}; "
            f"got {type(record).__name__} {record!r}{hint}."
        )
        raise TypeError(msg)
    names = list(record)
    for name in names:
        if not isinstance(name, str):
            msg = f"record names must be module paths (str), as named_modules() gives them; got {name!r}."
            raise TypeError(msg)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        msg = f"record names must be distinct; {repeated} appear more than once."
        raise ValueError(msg)
    return names


def _modules(layer: nn.Module, names: list[str]) -> dict[str, nn.Module]:
    """The module at each path; an unknown path is a ``ValueError`` listing the valid ones, nearest first."""
    known = dict(layer.named_modules(remove_duplicate=False))
    valid = [path for path in known if path]
    for name in names:
        if name == "":
            msg = (
                "record: '' is the layer itself, whose output is run()'s output; name sub-modules: "
                f"{', '.join(valid) or 'this layer has none'}."
            )
            raise ValueError(msg)
        if name not in known:
            nearest = difflib.get_close_matches(name, valid, n=len(valid), cutoff=0.0)
            msg = (
                f"record: {name!r} is not a module of {type(layer).__name__}; valid module paths, "
                f"nearest first: {', '.join(nearest) or 'none (the layer has no sub-modules)'}."
            )
            raise ValueError(msg)
    return {name: known[name] for name in names}


def _beside(output: Any, name: str) -> Any:
    """The destination of ``name`` for ``record=[names]``: beside an HDF5 output, else a new array."""
    loc = hdf5_location(output)
    if loc is None:
        return None
    dataset = f"{loc[1].rstrip('/')}{RECORD_SUFFIX}/{name}"
    if isinstance(output, str) or getattr(output, "file", None) is None:
        return f"{loc[0]}:{dataset}"
    return _Slot(output.file, dataset)


def _location(dest: Any) -> tuple[str, str] | None:
    """``(real file path, normalised dataset path)`` of an HDF5 destination, else ``None``."""
    loc = (dest.group.file.filename, dest.name) if isinstance(dest, _Slot) else hdf5_location(dest)
    if loc is None:
        return None
    return os.path.realpath(loc[0]), posixpath.normpath("/" + loc[1].lstrip("/"))


def _check_distinct(dests: dict[str, Any], locations: dict[str, Any], output: Any) -> None:
    """No two records, and no record and the output, may write to one place."""
    main = _location(output)
    seen: dict[Any, str] = {} if main is None else {main: "the output"}
    held: dict[int, str] = {id(output): "the output"} if output is not None else {}
    for name, loc in locations.items():
        dest = dests[name]
        where = loc if loc is not None else (None if dest is None else id(dest))
        table = seen if loc is not None else held
        if where is not None and where in table:
            msg = (
                f"record[{name!r}] writes to the same place as {table[where]} "
                f"({loc[0] + ':' + loc[1] if loc else type(dest).__name__}); give every record its own destination."
            )
            raise ValueError(msg)
        if where is not None:
            table[where] = f"record[{name!r}]"


def _open(name: str, dest: Any, job: Any, *, overwrite: bool, append: bool, swmr: bool) -> Output:
    """Open one record's writer under the output rules; errors say which record they are about."""
    target, dataset = (dest.group, dest.name) if isinstance(dest, _Slot) else (dest, DEFAULT_OUTPUT_NAME)
    where = f"{dest.group.file.filename}:{dest.name}" if isinstance(dest, _Slot) else dest
    try:
        check_not_input(job.reader, where, job.files)
        return open_writer(target, job.files, n=job.plan.total, overwrite=overwrite, append=append, swmr=swmr,
                           dtype=job.plan.dtype, name=dataset)
    except (ValueError, TypeError, OSError) as exc:
        exc.add_note(f"(the destination of record[{name!r}])")
        raise


def _probe(job: Any) -> None:
    """Run the layer once on a zero frame, keeping its state, so the hooks see each module's frame shape."""
    frame = tuple(job.reader.frame_shape or ())
    with preserved_state(job.layer), torch.no_grad():
        job.layer(torch.zeros((1, *frame), dtype=job.plan.dtype, device=job.plan.device))
