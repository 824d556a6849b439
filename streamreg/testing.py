"""Public test helpers: check the chunk-invariance law on any Layer.

Users who write their own Layers can call :func:`assert_chunk_invariant` in
their test suites, exactly as streamreg's own test table does.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from streamreg.layer import Layer, module_device

__all__ = ["assert_chunk_invariant", "assert_same_output", "chunk_tolerance", "public_layers", "run_chunks"]

#: Multiple of the dtype's machine epsilon, relative to the output's largest
#: magnitude, allowed for layers that are not bitwise chunk invariant (FFT paths).
TOLERANCE_EPS = 512


def chunk_tolerance(dtype: Any, scale: float) -> float:
    """Absolute tolerance for non-bitwise layers: ``TOLERANCE_EPS · eps(dtype) · max(1, scale)``."""
    eps = float(np.finfo(np.dtype(dtype)).eps) if np.dtype(dtype).kind == "f" else 0.0
    return TOLERANCE_EPS * eps * max(1.0, scale)


def run_chunks(layer: Layer, x: Any, sizes: Iterable[int]) -> np.ndarray:
    """Reset ``layer`` and feed ``x`` through ``forward`` in chunks of the given sizes.

    ``sizes`` must add up to ``len(x)``; unlike ``run(dt=...)`` they need not be equal.
    """
    sizes = list(sizes)
    x_t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    if sum(sizes) != x_t.shape[0] or any(s < 1 for s in sizes):
        msg = f"sizes must be positive and add up to len(x) = {x_t.shape[0]}; got {sizes}."
        raise ValueError(msg)
    layer.reset_state()
    if x_t.shape[0] == 0:
        return layer.run(x_t)
    x_t = x_t.to(dtype=layer.compute_dtype(x_t.dtype), device=module_device(layer))
    outs = []
    t0 = 0
    with torch.no_grad():
        for n in sizes:
            outs.append(layer(x_t[t0 : t0 + n]).cpu())
            t0 += n
    return torch.cat(outs).numpy()


def assert_same_output(actual: np.ndarray, expected: np.ndarray, exact: bool, what: str = "output") -> None:
    """Assert ``actual`` equals ``expected``: bitwise if ``exact``, else to :func:`chunk_tolerance`."""
    if actual.shape != expected.shape:
        msg = f"{what}: shape {actual.shape} differs from the one-shot shape {expected.shape}."
        raise AssertionError(msg)
    if exact:
        same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
        if not same.all():
            bad = np.argwhere(~same)
            diff = np.nanmax(np.abs(actual.astype(np.float64) - expected))
            msg = (
                f"{what}: not bitwise equal to the one-shot output; {len(bad)} of {actual.size} "
                f"values differ (first at index {tuple(int(i) for i in bad[0])}, max |diff| {diff:.3g})."
            )
            raise AssertionError(msg)
        return
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    finite = np.abs(expected[np.isfinite(expected)])
    atol = chunk_tolerance(expected.dtype, float(finite.max()) if finite.size else 0.0)
    diff = np.where(same, 0.0, np.abs(actual.astype(np.float64) - expected))
    if not np.all(same | (diff <= atol)):
        msg = f"{what}: max |diff| {np.nanmax(diff):.3g} from the one-shot output exceeds {atol:.3g}."
        raise AssertionError(msg)


def assert_chunk_invariant(
    layer: Layer,
    x: Any,
    dts: Sequence[int] = (1, 2, 3, 7),
    *,
    partitions: Sequence[Sequence[int]] = (),
    exact: bool | None = None,
) -> np.ndarray:
    """Assert that chunked runs of ``layer`` equal its one-shot run.

    Parameters
    ----------
    layer : Layer
        The layer under test; its state is reset before every run.
    x : array_like
        A time-first input ``(T, *frame)``.
    dts : sequence of int
        Chunk lengths for ``layer.run(x, dt=dt)``; a ``dt`` that does not divide
        ``T`` checks a ragged last chunk.
    partitions : sequence of sequences of int
        Explicit, unequal chunkings, fed through ``forward`` by :func:`run_chunks`.
    exact : bool, optional
        Demand bitwise equality. Default: ``layer.chunk_exact``. Otherwise the
        tolerance is :func:`chunk_tolerance` of the output dtype and magnitude.

    Returns
    -------
    numpy.ndarray
        The one-shot output.

    Notes
    -----
    Besides chunked runs, a layer of bounded ``history`` is checked with
    ``run(x, start=s, stop=e)`` against the one-shot slice, so a ``history`` that
    declares fewer past frames than the layer uses fails here.
    """
    exact = layer.chunk_exact if exact is None else exact
    expected = layer.run(x)
    again = layer.run(x)
    assert_same_output(again, expected, True, f"{type(layer).__name__}: a second one-shot run after reset")
    for dt in dts:
        assert_same_output(layer.run(x, dt=dt), expected, exact, f"{type(layer).__name__}.run(dt={dt})")
    for sizes in partitions:
        assert_same_output(run_chunks(layer, x, sizes), expected, exact, f"{type(layer).__name__} chunks {list(sizes)}")
    _check_ranges(layer, x, expected, min(dts, default=1), exact)
    return expected


def _check_ranges(layer: Layer, x: Any, expected: np.ndarray, dt: int, exact: bool) -> None:
    """``run(x, start=s, stop=e)`` must equal the one-shot slice: a check that ``history`` is not under-declared."""
    n = len(expected)
    if layer.history is None or n < 2:
        return  # unbounded history: start= is refused, by design
    for start, stop in ((1, n), (n // 2, n), (n // 2, n - n // 4)):
        part = layer.run(x, dt=dt, start=start, stop=stop)
        assert_same_output(part, expected[start:stop], exact,
                           f"{type(layer).__name__}.run(start={start}, stop={stop}) (is history={layer.history} "
                           "enough?)")


def public_layers() -> list[type[Layer]]:
    """Every Layer class streamreg exports (top level, ``filters`` and ``models``)."""
    import streamreg
    from streamreg import filters, models

    found: dict[str, type[Layer]] = {}
    for module in (streamreg, filters, models):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, Layer) and obj is not Layer:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return sorted(found.values(), key=lambda c: c.__name__)
