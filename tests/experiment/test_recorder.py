"""Recorder: quoted long-form CSV, SIGKILL survival, TensorBoard read-back, one writer each, ranks, resume."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from streamreg.experiment import Recorder
from streamreg.experiment import distributed as dist_helpers

matplotlib.use("Agg")
ROOT = Path(__file__).parents[2]


def _rows(folder: Path) -> list[list[str]]:
    with open(folder / "scalars.csv", newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_scalars_csv_is_long_form_and_quoted(tmp_path):
    """One row per scalar, step,tag,value; tags with commas, quotes and newlines round-trip through csv."""
    tags = ["loss", 'a,b "c"', "line\nbreak"]
    with Recorder(tmp_path, tensorboard=False) as rec:
        for step in range(2):
            for i, tag in enumerate(tags):
                rec.scalar(tag, torch.tensor(step + i / 4) if i == 0 else step + i / 4)
            rec.step()

    expected = [["step", "tag", "value"]] + [[str(s), t, repr(s + i / 4)] for s in range(2) for i, t in enumerate(tags)]
    assert _rows(tmp_path) == expected


def test_count_and_state_dict(tmp_path):
    """count starts at 0, step() advances it, state_dict holds it."""
    rec = Recorder(tmp_path, tensorboard=False, file=False)
    rec.step()
    rec.step()
    assert rec.count == 2
    assert rec.state_dict() == {"count": 2}


def test_load_state_dict_drops_rows_after_the_checkpoint(tmp_path):
    """A resumed Recorder removes the rows a killed run wrote after its checkpoint, then appends."""
    rec = Recorder(tmp_path, tensorboard=False)
    for step in range(5):
        rec.scalar("x", step)
        rec.step()
    rec.close()

    resumed = Recorder(tmp_path, tensorboard=False)
    resumed.load_state_dict({"count": 3})
    resumed.scalar("x", 30)
    resumed.step()
    resumed.close()

    assert [(r[0], r[2]) for r in _rows(tmp_path)[1:]] == [("0", "0.0"), ("1", "1.0"), ("2", "2.0"), ("3", "30.0")]


def test_load_state_dict_refuses_other_states(tmp_path):
    """Only {'count': int} is accepted."""
    rec = Recorder(tmp_path, tensorboard=False)
    with pytest.raises(KeyError, match="count"):
        rec.load_state_dict({"step": 1})
    with pytest.raises(ValueError, match="state\\['count'\\] must be a non-negative int; got -1"):
        rec.load_state_dict({"count": -1})


def test_everything_up_to_the_last_step_survives_sigkill(tmp_path):
    """A child killed after 3 steps (and one unstepped scalar) leaves exactly those 3 steps in CSV and events."""
    tensorboard = _has_tensorboard()
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from streamreg.experiment import Recorder
        rec = Recorder({str(tmp_path)!r}, tensorboard={tensorboard})
        for step in range(3):
            rec.scalar("loss", step * 0.5)
            rec.step()
        rec.scalar("loss", 99.0)
        Path({str(tmp_path / 'ready')!r}).write_text("ready")
        time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert child.poll() is None, child.communicate()[1].decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stderr.close()

    assert child.returncode == -signal.SIGKILL
    assert [(r[0], r[2]) for r in _rows(tmp_path)[1:]] == [("0", "0.0"), ("1", "0.5"), ("2", "1.0")]
    if tensorboard:
        assert _events(tmp_path) == {"loss": [(0, 0.0), (1, 0.5), (2, 1.0)]}


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def test_tensorboard_events_are_readable_after_each_step(tmp_path):
    """Events are flushed at step(): tensorboard's own reader sees them before close()."""
    pytest.importorskip("tensorboard")
    rec = Recorder(tmp_path, tensorboard=True, file=False)
    rec.scalar("a/b", torch.tensor(1.25))
    rec.step()
    rec.scalar("a/b", 2.5)
    rec.step()

    assert _events(tmp_path) == {"a/b": [(0, 1.25), (1, 2.5)]}
    rec.close()


def test_two_recorders_write_their_own_folders(tmp_path):
    """One writer per Recorder: each folder gets its own CSV and events (pystematic shared one)."""
    pytest.importorskip("tensorboard")
    first, second = Recorder(tmp_path / "one", tensorboard=True), Recorder(tmp_path / "two", tensorboard=True)
    first.scalar("x", 1.0)
    second.scalar("x", 2.0)
    first.step()
    second.step()

    assert _events(tmp_path / "one") == {"x": [(0, 1.0)]}
    assert _events(tmp_path / "two") == {"x": [(0, 2.0)]}
    first.close()
    second.close()


def test_tensorboard_true_without_tensorboard_names_the_extra(tmp_path, monkeypatch):
    """A clear ImportError says which extra to install."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"streamreg\[tensorboard\]"):
        Recorder(tmp_path, tensorboard=True)


def test_only_rank_zero_writes(tmp_path, monkeypatch):
    """On other ranks the Recorder records nothing and creates no files."""
    monkeypatch.setattr(dist_helpers, "is_master", lambda: False)
    rec = Recorder(tmp_path / "run", tensorboard=False)
    rec.scalar("x", 1.0)
    rec.image("img", np.zeros((4, 4)))
    rec.params({"lr": 0.1})
    rec.step()
    rec.close()

    assert rec.count == 1
    assert not (tmp_path / "run").exists()


def test_reduce_validates_its_choice(tmp_path):
    """reduce takes None or 'mean'; one process averages over itself."""
    rec = Recorder(tmp_path, tensorboard=False)
    with pytest.raises(ValueError, match="reduce must be one of \\[None, 'mean'\\]; got 'sum'"):
        rec.scalar("x", 1.0, reduce="sum")
    with pytest.raises(TypeError, match="tag must be a str"):
        rec.scalar(3, 1.0)
    rec.scalar("x", 3, reduce="mean")
    rec.close()
    assert _rows(tmp_path)[1] == ["0", "x", "3.0"]


def _rank(rank: int, folder: str, store: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        rec = Recorder(folder, tensorboard=False)
        rec.scalar("loss", torch.tensor(float(rank + 1)), reduce="mean")
        rec.step()
        rec.close()
    finally:
        dist.destroy_process_group()


def test_reduce_mean_averages_across_two_ranks(tmp_path):
    """Two gloo ranks record 1 and 2 with reduce='mean'; rank 0 alone writes 1.5."""
    torch.multiprocessing.start_processes(_rank, args=(str(tmp_path / "run"), str(tmp_path / "store")), nprocs=2,
                                          start_method="fork")

    assert _rows(tmp_path / "run") == [["step", "tag", "value"], ["0", "loss", "1.5"]]


@pytest.mark.parametrize("image", [
    np.random.default_rng(0).random((6, 5)),
    np.zeros((6, 5, 3), np.uint8),
    torch.rand(3, 6, 5),
    torch.rand(1, 6, 5),
    np.ones((6, 5), bool),
], ids=["HW-float", "HWC-uint8", "CHW-tensor", "1HW-tensor", "HW-bool"])
def test_images_are_written_in_every_layout(tmp_path, image):
    """HW, HWC and CHW (numpy or tensor) become a 6x5 PNG under images/<tag>-<count>.png."""
    import matplotlib.image

    rec = Recorder(tmp_path, tensorboard=_has_tensorboard())
    rec.image("cam/left", image)
    rec.close()

    assert matplotlib.image.imread(tmp_path / "images" / "cam.left-0.png").shape[:2] == (6, 5)


def test_pil_images_are_accepted(tmp_path):
    """A PIL image is recorded like its array."""
    pil = pytest.importorskip("PIL.Image")
    import matplotlib.image

    rec = Recorder(tmp_path, tensorboard=False)
    rec.image("pil", pil.new("RGB", (5, 6)))
    rec.close()

    assert matplotlib.image.imread(tmp_path / "images" / "pil-0.png").shape[:2] == (6, 5)


@pytest.mark.parametrize(("image", "error", "match"), [
    (np.zeros((2, 3, 4, 5)), ValueError, "HW, HWC or CHW"),
    (np.zeros((6, 5), np.int32), TypeError, "uint8, bool or floating"),
])
def test_bad_images_are_refused(tmp_path, image, error, match):
    """Shapes and dtypes that are not images raise before anything is written."""
    rec = Recorder(tmp_path, tensorboard=False)
    with pytest.raises(error, match=match):
        rec.image("x", image)
    rec.close()


def test_figure_and_params(tmp_path):
    """A matplotlib figure becomes a PNG; params go to params.json; a non-figure is refused."""
    import json

    import matplotlib.pyplot as plt

    rec = Recorder(tmp_path, tensorboard=_has_tensorboard())
    fig = plt.figure()
    rec.figure("curves/loss", fig)
    plt.close(fig)
    rec.params({"lr": 0.1, "path": Path("/x")})
    with pytest.raises(TypeError, match="matplotlib.figure.Figure"):
        rec.figure("bad", np.zeros((2, 2)))
    rec.close()

    assert (tmp_path / "figures" / "curves.loss-0.png").stat().st_size > 0
    assert json.loads((tmp_path / "params.json").read_text()) == {"lr": 0.1, "path": "/x"}


def test_resumed_tensorboard_purges_events_after_the_checkpoint(tmp_path):
    """tensorboard's reader shows the resumed run's values, not the killed run's, from the restored step on."""
    pytest.importorskip("tensorboard")
    rec = Recorder(tmp_path, tensorboard=True, file=False)
    for step in range(5):
        rec.scalar("x", float(step))
        rec.step()
    rec.close()

    resumed = Recorder(tmp_path, tensorboard=True, file=False)
    resumed.load_state_dict({"count": 3})
    resumed.scalar("x", 30.0)
    resumed.step()
    resumed.close()

    assert _events(tmp_path) == {"x": [(0, 0.0), (1, 1.0), (2, 2.0), (3, 30.0)]}
