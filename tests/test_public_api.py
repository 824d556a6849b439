"""The public API is declared, and every exported Layer sits in the chunk-invariance table."""

from __future__ import annotations

import streamreg
from streamreg.testing import public_layers
from tests.layer_cases import CASES


def test_every_exported_layer_is_in_the_table():
    """A new Layer joins tests/layer_cases.py or does not ship."""
    covered = set()
    for case in CASES:
        for module in case.build().modules():
            covered.add(type(module))
    missing = [cls.__name__ for cls in public_layers() if cls not in covered]
    assert missing == []


def test_top_level_all_is_pinned():
    """streamreg.__all__ lists exactly the intended names."""
    assert sorted(streamreg.__all__) == sorted([
        "ChunkShapeError", "DatasetNotFoundError", "Layer", "NotFittedError", "OutputExistsError", "Runner",
        "RunnerError",
        "Sequential", "StreamClosedError", "__version__", "filters", "functional", "models", "optim", "parse_bytes",
        "plan_dt", "streams", "testing",
    ])
    for name in streamreg.__all__:
        assert hasattr(streamreg, name), name


def test_exceptions_subclass_the_builtins_they_mean():
    """Callers can catch builtin exceptions without importing streamreg."""
    assert issubclass(streamreg.ChunkShapeError, ValueError)
    assert issubclass(streamreg.StreamClosedError, ValueError)
    assert issubclass(streamreg.RunnerError, RuntimeError)
    assert issubclass(streamreg.NotFittedError, ValueError)
    assert issubclass(streamreg.NotFittedError, AttributeError)
    assert issubclass(streamreg.DatasetNotFoundError, KeyError)
    assert issubclass(streamreg.OutputExistsError, FileExistsError)
    assert str(streamreg.DatasetNotFoundError("plain text")) == "plain text"
