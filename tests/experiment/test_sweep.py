"""run_parameter_sweep: one process per entry, results in order, failure summary, skip on rerun."""

from __future__ import annotations

import pytest
import torch

from streamreg.experiment import experiment, output_dir, parameter, run_parameter_sweep


@experiment
@parameter("value", type=int, default=0)
@parameter("fail", type=bool, default=False)
def sweep_target(params):
    """Write the value into the run folder; fail on request."""
    (output_dir() / "value.txt").write_text(str(params["value"]))
    if params["fail"]:
        msg = f"run with value {params['value']} failed on purpose"
        raise RuntimeError(msg)


def test_sweep_reports_failures_and_skips_finished_runs_on_rerun(tmp_path, capsys):
    """A failing entry gets a non-zero exit code and a summary line; a rerun skips the finished runs only."""
    entries = [{"value": 1, "output_dir": tmp_path}, {"value": 2, "fail": True, "output_dir": tmp_path},
               {"value": 3, "output_dir": tmp_path}]
    first = run_parameter_sweep(sweep_target, entries, max_num_processes=2)
    summary = capsys.readouterr().out

    assert [r.exit_code for r in first] == [0, 1, 0]
    assert [r.params for r in first] == entries
    assert [(r.output_dir / "value.txt").read_text() for r in first] == ["1", "2", "3"]
    assert "2 of 3 runs succeeded" in summary
    assert "FAILED run 1: exit code 1" in summary

    second = run_parameter_sweep(sweep_target, entries, max_num_processes=2)

    assert [r.skipped for r in second] == [True, False, True]
    assert [r.exit_code for r in second] == [0, 1, 0]
    assert [r.output_dir for r in second][::2] == [r.output_dir for r in first][::2]
    assert second[1].output_dir != first[1].output_dir
    assert len(list((tmp_path / "sweep-target").iterdir())) == 4


def test_sweep_arguments_are_checked(tmp_path):
    """A bad concurrency, a bad entry or a non-experiment is refused before anything runs."""
    with pytest.raises(ValueError, match="max_num_processes must be a positive integer; got 0"):
        run_parameter_sweep(sweep_target, [{}], max_num_processes=0)
    with pytest.raises(ValueError, match="'valu' is not a parameter"):
        run_parameter_sweep(sweep_target, [{"valu": 1, "output_dir": tmp_path}])
    with pytest.raises(TypeError, match="experiment must be an Experiment"):
        run_parameter_sweep(print, [{}])
    assert not (tmp_path / "sweep-target").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_gpus_per_process_without_cuda_is_refused():
    """num_gpus_per_process on a machine without CUDA raises ValueError naming it."""
    with pytest.raises(ValueError, match="num_gpus_per_process=1 exceeds the 0 CUDA device"):
        run_parameter_sweep(sweep_target, [{}], num_gpus_per_process=1)
