"""run(..., record=...) and Runner(..., record=...): named sub-module outputs written in the same pass.

The reference for every record is the sub-module's output captured by a plain forward hook during one
call ``layer(x)`` on the whole recording (the hook must fire exactly once there).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from streamreg import Layer, OutputExistsError, Runner, Sequential
from streamreg.filters import TemporalFIR
from streamreg.models import Retina
from streamreg.models import retina as retina_module
from streamreg.streams import QueueStream, SequenceStream
from tests.faults.common import open_fds_to
from tests.runner_models import model

T = 50
RETINA_NAMES = ["opl", "bipolar", "opl.center_lowpass", "ganglion.transient"]


def one_shot_records(layer: nn.Module, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Each named module's output during one plain call ``layer(x)``, from a forward hook that fires once
    (``""``: the layer's own output)."""
    modules = dict(layer.named_modules())
    seen: dict[str, list[np.ndarray]] = {name: [] for name in names}
    handles = [modules[n].register_forward_hook(lambda m, a, y, n=n: seen[n].append(y.detach().clone().numpy()))
               for n in names]
    try:
        with torch.no_grad():
            seen[""] = [layer(torch.as_tensor(x)).numpy()]
    finally:
        for h in handles:
            h.remove()
    assert all(len(v) == 1 for v in seen.values()), {k: len(v) for k, v in seen.items()}
    return {name: v[0] for name, v in seen.items()}


def frames(n: int = T, frame: tuple[int, ...] = (6, 6), seed: int = 3) -> np.ndarray:
    """A float32 recording ``(n, *frame)`` in [0, 1)."""
    return np.random.default_rng(seed).random((n, *frame), dtype=np.float32)


def fir_chain() -> Sequential:
    """A bounded-history chain: FIR → ReLU → FIR (history 4 + 3 frames)."""
    torch.manual_seed(1)
    return Sequential(TemporalFIR(torch.randn(5)), nn.ReLU(), TemporalFIR(torch.randn(4)))


def no_hooks_left(layer: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in layer.modules())


# -- exactness ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [1, 7, 16, None])
def test_records_equal_the_one_shot_module_outputs_for_every_dt(dt):
    """Each record equals the module's one-shot output bit for bit, for dt=1, a ragged last chunk and one chunk."""
    x = frames(30 if dt == 1 else T)
    layer = Retina()
    y, rec = layer.run(x, dt, record=RETINA_NAMES)
    ref = one_shot_records(Retina(), x, RETINA_NAMES)
    assert list(rec) == RETINA_NAMES
    for name in RETINA_NAMES:
        assert rec[name].shape[0] == len(x)
        np.testing.assert_array_equal(rec[name], ref[name], err_msg=name)
    np.testing.assert_array_equal(y, ref[""])
    assert no_hooks_left(layer)


@pytest.mark.parametrize(("start", "stop", "dt"), [(0, 20, 3), (9, 41, 5), (17, T, 1), (30, 31, 4)])
def test_records_of_a_frame_range_equal_the_slice_of_the_one_shot_outputs(start, stop, dt):
    """run(start=, stop=) records exactly frames [start, stop) of each module's one-shot output."""
    x = frames(frame=(3,))
    names = ["0", "1", "2"]
    y, rec = fir_chain().run(x, dt, start=start, stop=stop, record=names)
    ref = one_shot_records(fir_chain(), x, names)
    for name in names:
        np.testing.assert_allclose(rec[name], ref[name][start:stop], rtol=1e-6, atol=1e-6, err_msg=name)
    assert y.shape[0] == stop - start


def test_a_layer_that_works_in_blocks_is_recorded_in_time_order(monkeypatch):
    """Retina splits long chunks into blocks (each module called several times per forward): the blocks are
    joined in time order, so the records still equal the one-shot outputs, frame count and values."""
    x = frames(T, (6, 6))
    ref = one_shot_records(Retina(), x, RETINA_NAMES)  # default block: one call per module
    calls = []
    monkeypatch.setattr(retina_module, "_BLOCK_ELEMENTS", 36 * 4)  # blocks of 4 frames
    layer = Retina()
    layer.opl.register_forward_hook(lambda m, a, y: calls.append(len(y)))
    _, rec = layer.run(x, 15, record=RETINA_NAMES)
    assert max(calls) == 4 and len(calls) > len(range(0, T, 15))  # really called in blocks
    for name in RETINA_NAMES:
        assert rec[name].shape == ref[name].shape
        np.testing.assert_array_equal(rec[name], ref[name], err_msg=name)


def test_zero_frames_give_empty_records_with_the_frame_shape():
    """T = 0 gives empty records with each module's frame shape."""
    _, rec = Retina().run(np.zeros((0, 5, 4), dtype=np.float32), 8, record=["opl", "ganglion"])
    assert rec["opl"].shape == (0, 5, 4) and rec["ganglion"].shape == (0, 2, 5, 4)
    given = np.empty((0, 2, 5, 4), np.float32)  # an output that knows its frame shape: no probe by the loop
    y, rec = Retina().run(np.zeros((0, 5, 4), dtype=np.float32), 8, output=given, record=["opl"])
    assert y is given and rec["opl"].shape == (0, 5, 4) and rec["opl"].dtype == np.float32


# -- refusals ----------------------------------------------------------------------------------------------


class Shared(Layer):
    """Uses one low-pass on two signals: the module is called twice per forward, on different data."""

    def __init__(self) -> None:
        super().__init__()
        self.smooth = nn.Identity()
        self.unused = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.smooth(x) + self.smooth(2 * x)


class Pair(Layer):
    """A sub-module returning a tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.split = _Split()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.split(x)[0]


class _Split(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


def test_a_module_called_on_two_signals_is_refused_and_leaves_no_file(tmp_path):
    """A module called twice per forward on different data is a ValueError; nothing is written."""
    layer = Shared()
    out = tmp_path / "out.h5"
    with pytest.raises(ValueError, match=r"'smooth' gave 20 frames in 2 call\(s\) during the layer's forward of 10"):
        layer.run(frames(30, (2,)), 10, output=f"{out}:/y", record=["smooth"])
    assert not out.exists()
    assert no_hooks_left(layer)


def test_an_unused_module_or_a_tuple_output_is_refused():
    """A module not called in the forward, or returning no tensor, cannot be recorded."""
    with pytest.raises(ValueError, match="'unused' was not called"):
        Shared().run(frames(10, (2,)), 5, record=["unused"])
    with pytest.raises(TypeError, match="'split' returned a tuple"):
        Pair().run(frames(10, (2,)), 5, record=["split"])


def test_an_unknown_name_lists_the_valid_module_paths_nearest_first():
    """A misspelt module path is a ValueError naming every valid path, the nearest first."""
    with pytest.raises(ValueError, match=r"'opl.centre_lowpass' is not a module of Retina; valid module paths, "
                                         r"nearest first: opl.center_lowpass, .*bipolar"):
        Retina().run(frames(4), record=["opl.centre_lowpass"])
    with pytest.raises(ValueError, match="'' is the layer itself"):
        Retina().run(frames(4), record=[""])
    with pytest.raises(ValueError, match="distinct"):
        Retina().run(frames(4), record=["opl", "opl"])
    with pytest.raises(TypeError, match=r"write record=\['opl'\]"):
        Retina().run(frames(4), record="opl")
    with pytest.raises(TypeError, match="module paths"):
        Retina().run(frames(4), record=[3])


def test_records_obey_the_output_rules(tmp_path):
    """Lossy dtypes, the input dataset, an existing dataset, one place twice and a second writer are refused."""
    x = frames(40, (3,))
    src = tmp_path / "in.h5"
    with h5py.File(src, "w") as f:
        f["x"] = x
    with pytest.raises(TypeError, match="float16, which cannot hold"):
        model().run(x, 10, record={"0": np.empty((40, 3), np.float16)})
    with pytest.raises(ValueError, match=r"is the input dataset(.|\n)*record\['0'\]"):
        model().run(f"{src}:/x", 10, record={"0": f"{src}:/x"})
    model().run(x, 10, output=f"{tmp_path}/o.h5:/y", record=["0"])
    with pytest.raises(OutputExistsError, match="y_record/0"):
        model().run(x, 10, output=f"{tmp_path}/o.h5:/z", record={"0": f"{tmp_path}/o.h5:/y_record/0"})
    with pytest.raises(ValueError, match="same place as the output"):
        model().run(x, 10, output=f"{tmp_path}/o.h5:/y2", record={"0": f"{tmp_path}/o.h5:/y2"})
    buf = np.empty((40, 3), np.float32)
    with pytest.raises(ValueError, match=r"record\['1'\] writes to the same place as record\['0'\]"):
        model().run(x, 10, record={"0": buf, "1": buf})
    holder = Runner(model(), x, f"{tmp_path}/busy.h5:/y", dt=10)  # holds busy.h5's lock until released
    try:
        with pytest.raises(BlockingIOError, match="busy.h5"):
            model().run(x, 10, record={"0": f"{tmp_path}/busy.h5:/r"})
    finally:
        holder.join()
    recorder = Runner(model(), x, None, dt=10, record={"0": f"{tmp_path}/rec.h5:/r"})  # locks rec.h5 as well
    try:
        with pytest.raises(BlockingIOError, match="rec.h5"):
            model().run(x, 10, output=f"{tmp_path}/rec.h5:/y")
    finally:
        recorder.join()
    assert not (tmp_path / "rec.h5.lock").exists()


def test_a_record_of_the_wrong_shape_is_refused_before_anything_is_written(tmp_path):
    """A destination array whose frames do not fit the module's is a ChunkShapeError; the output stays empty."""
    seq = SequenceStream()
    with pytest.raises(ValueError, match=r"record\['0'\]: the module gives frames of shape \(3,\)"):
        model().run(frames(20, (3,)), 10, output=seq, record={"0": np.empty((20, 4), np.float32)})
    assert len(seq) == 0


# -- destinations ------------------------------------------------------------------------------------------


def test_a_list_goes_beside_a_string_output_and_comes_back_as_strings(tmp_path):
    """output 'out.h5:/g/y' puts 'opl' at 'out.h5:/g/y_record/opl' (dots kept), returns strings, closes the file."""
    x = frames()
    out = tmp_path / "out.h5"
    names = ["opl", "opl.center_lowpass"]
    y, rec = Retina().run(x, 16, output=f"{out}:/g/y", record=names)
    assert y == f"{out}:/g/y"
    assert rec == {n: f"{out}:/g/y_record/{n}" for n in names}
    assert open_fds_to(out) == []
    ref = one_shot_records(Retina(), x, names)
    with h5py.File(out, "r", libver="latest", swmr=True) as f:
        assert sorted(f["g/y_record"]) == sorted(names)
        for n in names:
            np.testing.assert_array_equal(f[f"g/y_record/{n}"][()], ref[n])
            assert f[f"g/y_record/{n}"].maxshape[0] is None


def test_a_list_beside_an_open_file_gives_its_datasets(tmp_path):
    """With an h5py File (or dataset) as output, the records are datasets in it, returned open."""
    x = frames(30, (3,))
    with h5py.File(tmp_path / "f.h5", "w") as f:
        y, rec = model().run(x, 7, output=f, record=["0", "1"])
        assert y.name == "/output" and rec["0"].name == "/output_record/0" and rec["1"].name == "/output_record/1"
        ref = one_shot_records(model(), x, ["0", "1"])
        np.testing.assert_allclose(rec["1"][()], ref["1"], rtol=1e-6, atol=1e-6)
        ds = f.create_dataset("mine", shape=(0, 3), maxshape=(None, 3), dtype=np.float64)
        _, rec = model().run(x, 7, output=f.create_group("g"), record={"0": ds})
        assert rec["0"] is ds and ds.shape == (30, 3)


def test_a_dict_takes_any_output_form(tmp_path):
    """record={name: dest}: an array filled in place, streams, another file's dataset (locked, then closed),
    None (a new array)."""
    x = frames(30, (3,))
    names = ["0", "1", "2"]
    ref = one_shot_records(model(), x, names)
    buf = np.full((30, 3), np.nan, np.float64)
    seq = SequenceStream()
    other = tmp_path / "other.h5"
    _, rec = model().run(x, 4, record={"0": buf, "1": seq, "2": f"{other}:/s"})
    assert rec["0"] is buf and rec["1"] is seq and rec["2"] == f"{other}:/s"
    np.testing.assert_allclose(buf, ref["0"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(seq.get(100), ref["1"], rtol=1e-6, atol=1e-6)
    with h5py.File(other, "r") as f:
        np.testing.assert_allclose(f["s"][()], ref["2"], rtol=1e-6, atol=1e-6)
    assert not (tmp_path / "other.h5.lock").exists() and open_fds_to(other) == []
    queue = QueueStream((3,), maxsize=64)
    _, rec = model().run(x, 4, record={"1": queue})
    assert rec["1"] is queue
    np.testing.assert_allclose(queue.get(30, timeout=1), ref["1"], rtol=1e-6, atol=1e-6)
    _, rec = model().run(x, 4, record={"1": None})
    np.testing.assert_allclose(rec["1"], ref["1"], rtol=1e-6, atol=1e-6)


def test_overwrite_replaces_records(tmp_path):
    """A second run into the same output needs overwrite=True, which replaces the records too."""
    x = frames(20, (3,))
    loc = f"{tmp_path}/o.h5:/y"
    model().run(np.zeros_like(x), 5, output=loc, record=["1"])
    with pytest.raises(OutputExistsError):
        model().run(x, 5, output=loc, record=["1"])
    model().run(x, 5, output=loc, overwrite=True, record=["1"])
    with h5py.File(tmp_path / "o.h5", "r", libver="latest", swmr=True) as f:
        np.testing.assert_allclose(f["y_record/1"][()], one_shot_records(model(), x, ["1"])["1"], rtol=1e-6)


# -- Runner, checkpoints and resume ------------------------------------------------------------------------


def test_runner_records_and_returns_them_in_its_result():
    """Runner(record=[...]).result is (output, records), each equal to the one-shot outputs."""
    x = frames(40, (3,))
    layer = model()
    with Runner(layer, x, None, dt=6, record=["0", "1"]) as r:
        r.join()
    y, rec = r.result
    ref = one_shot_records(model(), x, ["0", "1"])
    np.testing.assert_array_equal(y, model().run(x, 6))
    for n in ("0", "1"):
        np.testing.assert_allclose(rec[n], ref[n], rtol=1e-6, atol=1e-6)
    assert no_hooks_left(layer)


def test_records_in_memory_are_refused_with_checkpoints(tmp_path):
    """checkpoint_every with a record kept in memory is a ValueError naming it."""
    with pytest.raises(ValueError, match=r"\['0'\] would be kept in memory"):
        model().run(frames(20, (3,)), 5, output=f"{tmp_path}/o.h5:/y", checkpoint_every=1, record={"0": None})


def test_a_stopped_runner_resumes_with_its_records_bit_identically(tmp_path):
    """A checkpointed Runner stopped mid-run resumes (run(resume=True)) to records equal to an uninterrupted run."""
    x = frames(300, (3,))
    loc = f"{tmp_path}/o.h5:/y"
    names = ["0", "1"]
    _, want = model().run(x, 10, record=names)
    r = Runner(model(0.01), x, loc, dt=10, checkpoint_every=2, record=names)
    with r:
        while r.frames_done < 60:
            r.join(0.01)
    assert 0 < r.frames_done < 300
    with pytest.raises(ValueError, match=r"different record= \(module names or destinations\)"):
        model().run(x, 10, output=loc, resume=True, record=["0"])
    with pytest.raises(ValueError, match="different record="):
        model().run(x, 10, output=loc, resume=True)
    y, rec = model().run(x, 10, output=loc, resume=True, record=names)
    assert y == loc and rec == {n: f"{loc}_record/{n}" for n in names}
    with h5py.File(tmp_path / "o.h5", "r", libver="latest", swmr=True) as f:
        np.testing.assert_array_equal(f["y"][()], model().run(x, 10))
        for n in names:
            np.testing.assert_array_equal(f[f"y_record/{n}"][()], want[n])


def test_resume_refuses_a_record_cut_shorter_than_the_checkpoint(tmp_path):
    """A record dataset holding fewer frames than the checkpoint counts is a ValueError on resume."""
    x = frames(300, (3,))
    loc = f"{tmp_path}/o.h5:/y"
    r = Runner(model(0.01), x, loc, dt=10, checkpoint_every=1, record=["1"])
    with r:
        while r.frames_done < 50:
            r.join(0.01)
    with h5py.File(tmp_path / "o.h5", "a") as f:
        f["y_record/1"].resize(5, axis=0)
    with pytest.raises(ValueError, match="holds 5 frames, fewer than the"):
        model().run(x, 10, output=loc, resume=True, record=["1"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_records_on_cuda_equal_the_cpu_one_shot_outputs():
    """device='cuda': records come back to host memory equal to the one-shot outputs."""
    x = frames()
    _, rec = Retina().run(x, 16, device="cuda", record=RETINA_NAMES)
    ref = one_shot_records(Retina(), x, RETINA_NAMES)
    for name in RETINA_NAMES:
        np.testing.assert_allclose(rec[name], ref[name], rtol=1e-4, atol=1e-4, err_msg=name)


def test_the_cli_records_beside_its_output(tmp_path, capsys):
    """`streamreg run ... --record 0 --record 1` writes OUTPUT_record/0 and /1 and says so."""
    from streamreg.cli import main

    x = frames(30, (3,))
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["x"] = x
    out = f"{tmp_path}/out.h5:/y"
    argv = ["run", "tests.runner_models:model", f"{tmp_path}/in.h5:/x", out, "--dt", "7", "--no-progress",
            "--record", "0", "--record", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote 30 frames to {out}_record/0" in printed and f"wrote 30 frames to {out}_record/1" in printed
    ref = one_shot_records(model(), x, ["1"])
    with h5py.File(tmp_path / "out.h5", "r", libver="latest", swmr=True) as f:
        np.testing.assert_allclose(f["y_record/1"][()], ref["1"], rtol=1e-6, atol=1e-6)
    assert main([*argv[:-4], "--overwrite", "--record", "nope"]) == 2
    assert "'nope' is not a module of Sequential" in capsys.readouterr().err
