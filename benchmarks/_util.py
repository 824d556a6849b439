"""Helpers shared by the benchmark scripts: child processes and peak-memory readings (Linux)."""

from __future__ import annotations

import json
import subprocess
import sys


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in KiB, e.g. ``"VmRSS"`` or ``"VmHWM"`` (the peak)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def reset_peak_rss() -> int:
    """Reset the peak-RSS counter (VmHWM) and return the current RSS in KiB."""
    rss = status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return rss


def run_child(script: str, spec: dict) -> dict:
    """Run ``script --child SPEC`` in a fresh interpreter; return the JSON on its last output line."""
    out = subprocess.run([sys.executable, script, "--child", json.dumps(spec)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def result_row(name: str, figure: float, baseline: float | None, goal: str) -> dict:
    """One row of a ``RESULT`` line (see README.md): the goal applies to figure/baseline, or to figure alone.

    ``goal`` is ``"<= X"`` or ``">= X"``; ``met`` is None when the figure is not a finite number.
    """
    ratio = figure / baseline if baseline else None
    value = figure if baseline is None else ratio
    op, bound = goal.split()
    met = None if value is None or value != value else (value <= float(bound) if op == "<=" else value >= float(bound))
    return {"name": name, "figure": figure, "baseline": baseline, "ratio": ratio, "goal": goal, "met": met}


def print_result(bench: str, rows: list[dict]) -> None:
    """Print the machine-readable last line ``RESULT {"bench": ..., "rows": [...]}`` that run_all.py reads."""
    print("RESULT " + json.dumps({"bench": bench, "rows": rows}), flush=True)
