"""Fault 2: a checkpoint never counts frames whose put failed, so resume after the failure is bit-identical."""

from __future__ import annotations

import numpy as np
import pytest

from streamreg.streams import HDF5Stream
from tests.faults.common import DT, read, recording, recover, reference, write_input
from tests.runner_models import model


class FailingStream(HDF5Stream):
    """An HDF5Stream whose ``fail_at``-th put raises OSError, after writing ``partial`` of its frames."""

    def __init__(self, location: str, fail_at: int, partial: float) -> None:
        super().__init__(location, "w-")
        self.fail_at, self.partial, self.calls = fail_at, partial, 0

    def put(self, frames: np.ndarray) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            part = int(len(frames) * self.partial)
            if part:
                super().put(frames[:part])
            msg = f"put number {self.calls} failed (injected)"
            raise OSError(msg)
        super().put(frames)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("fail_at", "partial", "checkpoint_every"), [(1, 0.0, 1), (4, 0.0, 1), (4, 0.5, 1),
                                                                      (12, 0.9, 3)],
                         ids=["first-put", "fourth-put", "fourth-put-half-written", "twelfth-put-mostly-written"])
def test_resume_after_a_failed_put_is_bit_identical(tmp_path, checkpoint_every, fail_at, partial):
    """A put that raises (after writing nothing or part of its frames) propagates out of run(); the checkpoint
    left behind describes only frames that really reached the file, so recovering (resume=True when a
    checkpoint exists, else overwrite=True) gives the reference output, with no fill values where the failed
    chunk was."""
    x = recording()
    src = write_input(tmp_path, x)
    out = f"{tmp_path / 'out.h5'}:/y"
    stream = FailingStream(out, fail_at, partial)
    with pytest.raises(OSError, match="injected"):
        model().run(src, DT, output=stream, checkpoint_every=checkpoint_every)
    stream.close()
    recover(tmp_path, src, tmp_path / "out.h5", checkpoint_every)
    np.testing.assert_array_equal(read(tmp_path / "out.h5"), reference(x))
