"""The command-line interface: `streamreg demo`."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np

from streamreg.cli import main
from streamreg.models import Retina


def test_demo_writes_stimulus_response_and_figure(tmp_path, capsys):
    """The demo's response equals a one-shot Retina run over its stimulus, and it prints the paths."""
    assert main(["demo", "--out", str(tmp_path), "--frames", "300", "--size", "16", "--dt", "64"]) == 0
    printed = capsys.readouterr().out
    for name in ("stimulus.h5", "response.h5", "retina_demo.png"):
        assert (tmp_path / name).exists()
        assert name in printed
    with h5py.File(tmp_path / "stimulus.h5", "r") as f:
        stimulus = f["stimulus"][()]
    with h5py.File(tmp_path / "response.h5", "r") as f:
        response = f["retina/rates"][()]
    assert stimulus.shape == (300, 16, 16)
    np.testing.assert_array_equal(response, Retina().run(stimulus))
    assert (tmp_path / "retina_demo.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_refuses_to_overwrite(tmp_path, capsys):
    """A second demo into the same folder fails with a one-line message unless --overwrite."""
    args = ["demo", "--out", str(tmp_path), "--frames", "50", "--size", "8"]
    assert main(args) == 0
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_module_entry_point_runs(tmp_path):
    """python -m streamreg demo works as a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "streamreg", "demo", "--out", str(tmp_path), "--frames", "40",
                           "--size", "8"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "response.h5" in proc.stdout


# -- streamreg run ---------------------------------------------------------------------
def _recording(tmp_path):
    x = np.random.default_rng(5).normal(size=(120, 4, 3)).astype(np.float32)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["x"] = x
    return x, f"{tmp_path / 'in.h5'}:/x"


def test_run_subcommand_end_to_end(tmp_path):
    """`python -m streamreg run` writes the model's output, shows a progress bar and says what it wrote."""
    from tests.runner_models import model, one_shot

    x, src = _recording(tmp_path)
    out = f"{tmp_path / 'out.h5'}:/y"
    done = subprocess.run(
        [sys.executable, "-m", "streamreg", "run", "tests.runner_models:model", src, out, "--dt", "16"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 120 frames" in done.stdout
    assert "120/120" in done.stderr  # the tqdm bar
    with h5py.File(tmp_path / "out.h5", "r") as f:
        np.testing.assert_array_equal(f["y"][:], one_shot(model(), x))


def test_run_loads_weights_without_executing_pickled_code(tmp_path, capsys):
    """--weights loads a state_dict; a file holding pickled code is refused and the code never runs."""
    import torch

    from tests.runner_models import model, one_shot

    x, src = _recording(tmp_path)
    tuned = model()
    with torch.no_grad():
        tuned[0].kernel.mul_(-3)
    torch.save(tuned.state_dict(), tmp_path / "w.pt")
    out = f"{tmp_path / 'o.h5'}:/y"
    assert main(["run", "tests.runner_models:model", src, out, "--dt", "7", "--weights", str(tmp_path / "w.pt"),
                 "--no-progress"]) == 0
    with h5py.File(tmp_path / "o.h5", "r") as f:
        np.testing.assert_array_equal(f["y"][:], one_shot(tuned, x))
    marker = tmp_path / "pwned"
    torch.save({"w": _Evil(str(marker))}, tmp_path / "evil.pt")
    assert main(["run", "tests.runner_models:model", src, f"{tmp_path / 'e.h5'}:/y", "--dt", "7",
                 "--weights", str(tmp_path / "evil.pt")]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert err.startswith("streamreg run: error:") and err.count("\n") == 1


class _Evil:
    """Pickles into a call that would create a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_run_bad_input_exits_2_with_one_line(tmp_path, capsys):
    """Bad MODEL, missing dataset, existing output, resume without checkpoint: exit 2 and one line on stderr."""
    _, src = _recording(tmp_path)
    out = f"{tmp_path / 'o.h5'}:/y"
    cases = [
        (["run", "tests.runner_models", src, out, "--dt", "4"], "form package.module:factory"),
        (["run", "tests.runner_models:not_a_layer", src, out, "--dt", "4"], "returned a int, not a streamreg.Layer"),
        (["run", "tests.nowhere:model", src, out, "--dt", "4"], "No module named"),
        (["run", "tests.runner_models:model", f"{tmp_path / 'in.h5'}:/nope", out, "--dt", "4"], "holds /x"),
        (["run", "tests.runner_models:model", src, out, "--dt", "0"], "dt must be a positive integer"),
        (["run", "tests.runner_models:model", src, out, "--dt", "4", "--resume"], "no checkpoint"),
        (["run", "tests.runner_models:model", src, src, "--dt", "4"], "is the input dataset"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, (argv, err)
    assert not (tmp_path / "o.h5").exists(), "no half-written file is left behind"
