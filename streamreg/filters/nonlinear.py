"""Elementwise nonlinearities, and a registry to pick one by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from streamreg._validation import check_positive_float, check_real
from streamreg.layer import Layer

__all__ = [
    "Elementwise",
    "Exp",
    "Identity",
    "Rectify",
    "Sigmoid",
    "Softplus",
    "list_nonlinearities",
    "make_nonlinearity",
]


class Elementwise(Layer):
    """Wrap an elementwise function or ``torch.nn`` module as a Layer.

    Parameters
    ----------
    fn : callable or torch.nn.Module
        Applied to every chunk; it must act on each frame independently.

    Notes
    -----
    Shape: ``(T, *frame)`` → ``(T, *frame)``. State: none.
    Chunking: exact to dtype tolerance; torch's vectorised and scalar kernels of
    many functions (sigmoid, softplus, log1p) round differently, so bitwise
    equality is claimed only for the modules in :data:`streamreg.layer.EXACT_TORCH_MODULES`.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor] | nn.Module) -> None:
        super().__init__()
        if not callable(fn):
            msg = f"fn must be callable or a torch.nn.Module; got {type(fn).__name__}."
            raise TypeError(msg)
        self.fn = fn

    @property
    def bitwise_chunking(self) -> bool:  # type: ignore[override]
        return isinstance(self.fn, nn.Module)  # the wrapped module is judged on its own in chunk_exact

    def forward(self, x: Tensor) -> Tensor:
        """Apply ``fn`` to ``x``."""
        return self.fn(x)

    def extra_repr(self) -> str:
        return "" if isinstance(self.fn, nn.Module) else f"fn={getattr(self.fn, '__name__', self.fn)!r}"


class Identity(Layer):
    """Return the input unchanged (a no-op nonlinearity)."""

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x``."""
        return x


class Rectify(Layer):
    """Half-wave rectification ``gain · max(x - threshold, 0)``.

    Notes
    -----
    Shape: ``(T, *frame)`` → ``(T, *frame)``. State: none. Chunking: bitwise exact.
    """

    def __init__(self, threshold: float = 0.0, gain: float = 1.0) -> None:
        super().__init__()
        self.threshold = check_real(threshold, "threshold")
        self.gain = check_real(gain, "gain")

    def forward(self, x: Tensor) -> Tensor:
        """Rectify ``x``."""
        return self.gain * torch.relu(x - self.threshold)

    def extra_repr(self) -> str:
        settings = (("threshold", self.threshold, 0.0), ("gain", self.gain, 1.0))
        return ", ".join(f"{k}={v}" for k, v, default in settings if v != default)


class Sigmoid(Layer):
    """Logistic nonlinearity ``gain · sigmoid(slope · (x - threshold))``."""

    def __init__(self, threshold: float = 0.0, slope: float = 1.0, gain: float = 1.0) -> None:
        super().__init__()
        self.threshold = check_real(threshold, "threshold")
        self.slope = check_real(slope, "slope")
        self.gain = check_real(gain, "gain")

    def forward(self, x: Tensor) -> Tensor:
        """Apply the sigmoid to ``x``."""
        # 1 / (1 + exp(-z)) rather than torch.sigmoid: every step is correctly rounded or
        # position independent, so the result does not depend on the chunk length.
        return self.gain / (1 + torch.exp(-self.slope * (x - self.threshold)))


class Exp(Layer):
    """Exponential nonlinearity ``gain · exp(x)`` (the Poisson GLM link)."""

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = check_real(gain, "gain")

    def forward(self, x: Tensor) -> Tensor:
        """Apply ``gain · exp(x)``."""
        return self.gain * torch.exp(x)


class Softplus(Layer):
    """Smooth rectification ``log(1 + exp(beta · x)) / beta``.

    Notes
    -----
    Chunking: exact to one ulp, not bitwise: torch's vectorised and scalar
    ``softplus`` kernels round differently, and which one an element meets
    depends on the chunk length.
    """

    bitwise_chunking = False

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = check_positive_float(beta, "beta")

    def forward(self, x: Tensor) -> Tensor:
        """Apply softplus to ``x``."""
        return torch.nn.functional.softplus(x, beta=self.beta)


_NONLINEARITIES: dict[str, type[Layer]] = {
    "identity": Identity,
    "rectify": Rectify,
    "sigmoid": Sigmoid,
    "exp": Exp,
    "softplus": Softplus,
}


def list_nonlinearities() -> list[str]:
    """Names accepted by :func:`make_nonlinearity`."""
    return sorted(_NONLINEARITIES)


def make_nonlinearity(spec: Any) -> nn.Module:
    """Build a nonlinearity from a name, a module or a callable.

    ``None`` gives :class:`Identity`; a name is looked up in the registry; an
    ``nn.Module`` is returned as is; any other callable is wrapped in :class:`Elementwise`.
    """
    if spec is None:
        return Identity()
    if isinstance(spec, str):
        if spec not in _NONLINEARITIES:
            msg = f"Unknown nonlinearity {spec!r}; available: {list_nonlinearities()}."
            raise ValueError(msg)
        return _NONLINEARITIES[spec]()
    if isinstance(spec, nn.Module):
        return spec
    if callable(spec):
        return Elementwise(spec)
    msg = f"nonlinearity must be a name in {list_nonlinearities()}, a torch.nn.Module or a callable; got {spec!r}."
    raise TypeError(msg)
