"""Parameter sweeps: each entry runs as its own process, a bounded number at a time, resumable.

Each entry runs ``experiment.run(params)`` in a fresh process started with
multiprocessing's ``spawn`` (it imports the experiment's module, so define the
experiment at module level). A run that succeeds leaves the marker
``sweep-<key>.done`` in its run folder, where ``key`` hashes the entry's
parameters; a second sweep over the same list finds the marker under
``<output_dir>/<experiment name>/`` and skips the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from streamreg._validation import check_positive_int
from streamreg.experiment.experiment import Experiment
from streamreg.experiment.parameters import complete

__all__ = ["SweepResult", "run_parameter_sweep"]


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """The outcome of one sweep entry.

    Attributes
    ----------
    params : dict
        The entry as given.
    exit_code : int
        The process's exit code: 0 on success, 1 when ``main`` raised, negative for a signal.
    output_dir : Path or None
        The run's folder (``None`` if the run failed before creating it).
    skipped : bool
        The run had finished in an earlier sweep and was not run again.
    """

    params: dict[str, Any]
    exit_code: int
    output_dir: Path | None
    skipped: bool = False

    @property
    def ok(self) -> bool:
        """True when the run finished with exit code 0."""
        return self.exit_code == 0


def sweep_key(params: dict[str, Any]) -> str:
    """Return a 16-hex-digit hash of ``params`` (key order does not matter)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _finished(experiment: Experiment, params: dict[str, Any]) -> Path | None:
    full = complete(experiment.parameters, params)
    markers = sorted(Path(full["output_dir"]).glob(f"{experiment.name}/*/sweep-{sweep_key(params)}.done"))
    return markers[-1].parent if markers else None


def _child(experiment: Experiment, params: dict[str, Any], key: str, visible: str | None,
           conn: multiprocessing.connection.Connection) -> None:
    """Body of one sweep process: run, then mark the run folder as done."""
    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible  # before anything initialises CUDA in this process
    _, folder = experiment._invoke(params, on_folder=lambda path: conn.send(str(path)))
    if folder is not None:
        marker = folder / f"sweep-{key}.done"
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(json.dumps(params, sort_keys=True, default=str) + "\n")
        os.replace(tmp, marker)
        conn.send(str(folder))


def _check_gpus(num_gpus_per_process: int | None) -> list[int]:
    if num_gpus_per_process is None:
        return []
    check_positive_int(num_gpus_per_process, "num_gpus_per_process")
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if num_gpus_per_process > available:
        msg = (f"num_gpus_per_process={num_gpus_per_process} exceeds the {available} CUDA device(s) here; "
               "use None to run without assigning GPUs.")
        raise ValueError(msg)
    return list(range(available))


class _Slot:
    """A running sweep entry: its process, pipe and GPUs."""

    def __init__(self, index: int, process: Any, conn: multiprocessing.connection.Connection,
                 gpus: list[int]) -> None:
        self.index, self.process, self.conn, self.gpus = index, process, conn, gpus
        self.folder: Path | None = None

    def drain(self) -> None:
        while self.conn.poll():
            try:
                self.folder = Path(self.conn.recv())
            except EOFError:
                return


def run_parameter_sweep(experiment: Experiment, list_of_params: Sequence[dict[str, Any]],
                        max_num_processes: int = 1, num_gpus_per_process: int | None = None) -> list[SweepResult]:
    """Run ``experiment`` once per entry of ``list_of_params``, each in its own process.

    Parameters
    ----------
    experiment : Experiment
        Defined at module level (the processes import it).
    list_of_params : sequence of dict
        One parameter dict per run.
    max_num_processes : int, default 1
        At most this many runs at once.
    num_gpus_per_process : int, optional
        Give each run this many CUDA devices of its own (through
        ``CUDA_VISIBLE_DEVICES``); a run waits until enough are free.

    Returns
    -------
    list of SweepResult
        One per entry, in order. Failures are also summarised on stdout.

    Raises
    ------
    ValueError
        For a bad entry, or more GPUs per process than exist.
    """
    if not isinstance(experiment, Experiment):
        msg = f"experiment must be an Experiment (made by @experiment); got {type(experiment).__name__}."
        raise TypeError(msg)
    max_num_processes = check_positive_int(max_num_processes, "max_num_processes")
    free_gpus = _check_gpus(num_gpus_per_process)
    entries = [dict(p) for p in list_of_params]
    results: dict[int, SweepResult] = {}
    todo: list[int] = []
    for index, params in enumerate(entries):
        done = _finished(experiment, params)  # also validates the entry
        if done is not None:
            results[index] = SweepResult(params, 0, done, skipped=True)
        else:
            todo.append(index)
    _run_all(experiment, entries, todo, max_num_processes, num_gpus_per_process or 0, free_gpus, results)
    ordered = [results[i] for i in range(len(entries))]
    _print_summary(experiment, ordered)
    return ordered


def _run_all(experiment: Experiment, entries: list[dict[str, Any]], todo: list[int], limit: int,
             gpus_each: int, free_gpus: list[int], results: dict[int, SweepResult]) -> None:
    context = multiprocessing.get_context("spawn")
    running: list[_Slot] = []
    while todo or running:
        while todo and len(running) < limit and len(free_gpus) >= gpus_each:
            index = todo.pop(0)
            gpus, free_gpus[:] = free_gpus[:gpus_each], free_gpus[gpus_each:]
            visible = ",".join(map(str, gpus)) if gpus_each else None
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_child, name=f"sweep-{index}",
                                      args=(experiment, entries[index], sweep_key(entries[index]), visible, send))
            process.start()
            send.close()
            running.append(_Slot(index, process, receive, gpus))
        multiprocessing.connection.wait([slot.process.sentinel for slot in running])
        for slot in [s for s in running if not s.process.is_alive()]:
            slot.process.join()
            slot.drain()
            slot.conn.close()
            free_gpus.extend(slot.gpus)
            results[slot.index] = SweepResult(entries[slot.index], slot.process.exitcode, slot.folder)
            running.remove(slot)


def _print_summary(experiment: Experiment, results: list[SweepResult]) -> None:
    failed = [(i, r) for i, r in enumerate(results) if not r.ok]
    skipped = sum(r.skipped for r in results)
    print(f"Sweep of {experiment.name!r}: {len(results) - len(failed)} of {len(results)} runs succeeded"
          f" ({skipped} skipped as already finished), {len(failed)} failed.")
    for index, result in failed:
        print(f"  FAILED run {index}: exit code {result.exit_code}, params {result.params}, "
              f"output_dir {result.output_dir}")
