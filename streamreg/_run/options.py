"""The options of one ``run()`` or ``Runner`` call, validated once into a frozen object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from streamreg._validation import check_bool, check_device, check_dt, check_nonnegative_int, check_positive_int
from streamreg.planning import parse_bytes

__all__ = ["RunOptions"]


def _optional(value: Any, check: Any, name: str) -> Any:
    return None if value is None else check(value, name)


@dataclass(frozen=True)
class RunOptions:
    """Every option of :meth:`streamreg.Layer.run`, checked; see there for their meaning.

    ``endless`` (Runner only) allows an infinite input without ``n_frames``. Construction
    raises ``TypeError``/``ValueError`` naming the option, the bad value and what is allowed.
    """

    dt: int | None = None
    max_memory: int | None = None
    reset: bool = True
    progress: bool | None = None
    device: torch.device | None = None
    overwrite: bool = False
    n_frames: int | None = None
    start: int = 0
    stop: int | None = None
    warmup: int | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    swmr: bool | None = None
    check_finite: bool = False
    endless: bool = False

    def __post_init__(self) -> None:
        fix = object.__setattr__
        fix(self, "dt", check_dt(self.dt))
        fix(self, "max_memory", _optional(self.max_memory, parse_bytes, "max_memory"))
        fix(self, "device", check_device(self.device))
        for name in ("reset", "overwrite", "resume", "check_finite", "endless"):
            fix(self, name, check_bool(getattr(self, name), name))
        for name in ("progress", "swmr"):
            fix(self, name, _optional(getattr(self, name), check_bool, name))
        fix(self, "start", check_nonnegative_int(self.start, "start"))
        for name in ("n_frames", "stop", "warmup"):
            fix(self, name, _optional(getattr(self, name), check_nonnegative_int, name))
        fix(self, "checkpoint_every", _optional(self.checkpoint_every, check_positive_int, "checkpoint_every"))
        self._check_combinations()

    def _check_combinations(self) -> None:
        if self.stop is not None and self.n_frames is not None:
            msg = f"give stop or n_frames, not both; got stop={self.stop} and n_frames={self.n_frames}."
            raise ValueError(msg)
        if self.stop is not None and self.stop < self.start:
            msg = f"stop must be at least start={self.start}; got stop={self.stop}."
            raise ValueError(msg)
        if self.resume and self.overwrite:
            msg = "resume=True continues an output and overwrite=True replaces it; give one of them."
            raise ValueError(msg)
        if not self.reset and (self.resume or self.start > 0):
            what = "resume=True" if self.resume else f"start={self.start}"
            msg = f"{what} sets the model's state itself; it cannot be combined with reset=False."
            raise ValueError(msg)

    @property
    def wants_checkpoint(self) -> bool:
        """True when the run keeps or reads a checkpoint."""
        return self.checkpoint_every is not None or self.resume
