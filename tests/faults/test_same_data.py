"""Fault 5: an output that is the input dataset is refused, even with overwrite=True, and the input is kept."""

from __future__ import annotations

import os

import h5py
import pytest

from streamreg import Runner
from tests.faults.common import DT, digest, recording, release, write_input
from tests.runner_models import model

REFUSED = (ValueError, FileExistsError)


def _forms(tmp_path):
    """(name, input, output, handles to close) for every way of naming the input as the output."""
    x = recording(100)
    src = write_input(tmp_path, x)
    path = tmp_path / "in.h5"
    os.symlink(path, tmp_path / "link.h5")
    write_input(tmp_path, x, dataset="g/output")
    return {
        "same string": lambda: (src, src, []),
        "relative path": lambda: (src, f"./{os.path.relpath(path)}:/x", []),
        "double slash": lambda: (src, f"{path}://x", []),
        "symlinked file": lambda: (src, f"{tmp_path / 'link.h5'}:/x", []),
        "another h5py handle": _handle(path, src),
        "same h5py dataset": _same_dataset(path),
        "group form": lambda: (f"{path}:/g/output", *_group(path)),
    }


def _handle(path, src):
    def make():
        f = h5py.File(path, "r+")
        return src, f["x"], [f]
    return make


def _same_dataset(path):
    def make():
        f = h5py.File(path, "r+")
        return f["x"], f["x"], [f]
    return make


def _group(path):
    f = h5py.File(path, "r+")
    return f["g"], [f]


def _attempt(entry: str, inp, out, overwrite: bool) -> None:
    if entry == "run":
        release(model().run(inp, DT, output=out, overwrite=overwrite))
    else:
        runner = Runner(model(), inp, out, dt=DT, overwrite=overwrite)
        runner.start()
        runner.join()


FORMS = ["same string", "relative path", "double slash", "symlinked file", "another h5py handle",
         "same h5py dataset", "group form"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("entry", ["run", "Runner"])
def test_output_that_is_the_input_is_refused(tmp_path, monkeypatch, entry, form, overwrite):
    """run() or Runner with the input dataset as output (the same string, another spelling of its path, a
    symlink to its file, another h5py handle, the same dataset object, or its group) raises ValueError or
    FileExistsError before any work, with or without overwrite=True, and the input's bytes are unchanged."""
    monkeypatch.chdir(tmp_path)
    make = _forms(tmp_path)[form]
    dataset = "g/output" if form == "group form" else "x"
    before = digest(tmp_path / "in.h5", dataset)
    inp, out, handles = make()
    try:
        with pytest.raises(REFUSED):
            _attempt(entry, inp, out, overwrite)
    finally:
        for f in handles:
            f.close()
    assert digest(tmp_path / "in.h5", dataset) == before, "the input was changed"
