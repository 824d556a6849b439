"""The shape of the run layer: explicit signatures, frozen options, and no import cycle with Layer."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest

import streamreg
from streamreg import Layer, Runner
from streamreg._run import RunOptions
from streamreg.filters import LowPass

RUN = Path(streamreg.__file__).parent / "_run"
RUN_OPTIONS = {"output", "reset", "progress", "device", "max_memory", "overwrite", "n_frames", "start", "stop",
               "warmup", "checkpoint_every", "resume", "swmr", "check_finite", "record"}


def _keyword_only(fn) -> set[str]:
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


def test_public_signatures_show_every_option():
    """inspect.signature (what help() and IDEs show) lists every option as keyword-only; no **kwargs."""
    assert _keyword_only(Layer.run) == RUN_OPTIONS
    assert _keyword_only(Runner) == {"dt", "device", "reset", "overwrite", "n_frames", "checkpoint_every",
                                     "resume", "swmr", "progress", "max_memory", "record"}
    assert {"loss_fn", "optimizer", "n_steps", "device", "recorder"} <= _keyword_only(Layer.optimize)
    for fn in (Layer.run, Runner, Layer.optimize):
        kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds


@pytest.mark.parametrize(("call", "label", "meant"), [
    (lambda m, x: m.run(x, chekpoint_every=2), "run()", "checkpoint_every"),
    (lambda m, x: m.optimize(x, x, n_step=2), "optimize()", "n_steps"),
    (lambda m, x: Runner(m, x, None, dt=4, overwirte=True), "Runner()", "overwrite"),
])
def test_a_typo_names_the_public_call_and_the_nearest_option(call, label, meant):
    """An unknown keyword is a TypeError naming the public call and the nearest valid option."""
    x = np.zeros((10, 2), dtype=np.float32)
    with pytest.raises(TypeError, match=rf"^{label.replace('(', '[(]').replace(')', '[)]')} got an unexpected "
                                        rf"keyword argument .*did you mean '{meant}'"):
        call(LowPass(3.0), x)


def test_options_are_validated_once_into_a_frozen_object():
    """RunOptions checks values on construction and cannot be changed afterwards."""
    opts = RunOptions(dt=5, max_memory="1MB", checkpoint_every=2)
    assert opts.max_memory == 1_000_000 and opts.wants_checkpoint
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.dt = 6
    with pytest.raises(ValueError, match="dt must be a positive integer"):
        RunOptions(dt=0)
    with pytest.raises(ValueError, match="device"):
        RunOptions(device="gpu")
    with pytest.raises(ValueError, match="give one of them"):
        RunOptions(resume=True, overwrite=True)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_the_run_package_does_not_import_layer_and_layer_imports_it_lazily():
    """No cycle: streamreg._run never imports streamreg.layer, and layer.py imports _run only inside run()."""
    for module in RUN.glob("*.py"):
        assert "streamreg.layer" not in _imports(module), module.name
    tree = ast.parse((RUN.parent / "layer.py").read_text())
    top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert not any(m.startswith("streamreg._run") for m in top)


def test_the_run_package_keeps_functions_and_modules_small():
    """Every function of the run layer is at most 40 lines, docstring excluded, and every module at most 300."""
    for module in RUN.glob("*.py"):
        text = module.read_text()
        assert len(text.splitlines()) <= 300, module.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                lines = body[-1].end_lineno - body[0].lineno + 1 if body else 0
                assert lines <= 40, f"{module.name}:{node.name} has {lines} lines"
