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
