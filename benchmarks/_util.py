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
