"""Regression guard: run every benchmark's quick mode and print one table of its ratios.

Each ``benchmarks/bench_*.py`` runs as ``python bench_X.py --quick`` in a child process,
one after another. A benchmark reports through its last ``RESULT {json}`` line (the
convention in benchmarks/README.md): rows of name, figure, baseline, ratio, goal and met.
This script prints them as one table, with each benchmark's wall time.

It reports; it never fails on timing or on a missed goal. It exits 1 if a benchmark
crashes (non-zero exit status) or prints no RESULT line, and prints the tail of its
output. A benchmark that runs past ``--timeout`` is stopped and reported, not failed.

Run:  python benchmarks/run_all.py [--only NAME,...] [--skip NAME,...] [--timeout S] [--convis-python PATH]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#: Arguments added to ``--quick`` to keep the whole guard short (each child process costs a torch import).
EXTRA_ARGS = {"bench_knn": ["--skip-seed", "--dims", "3"]}


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_one(script: str, timeout: float, env: dict[str, str]) -> tuple[str, list[dict], float, str]:
    """Run ``script --quick`` (plus its EXTRA_ARGS); return (status, rows, wall seconds, output tail)."""
    extra = EXTRA_ARGS.get(os.path.splitext(os.path.basename(script))[0], [])
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, script, "--quick", *extra], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=os.path.dirname(HERE))
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return "timeout", [], time.perf_counter() - start, out[-2000:]
    wall = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0:
        return f"crashed (exit {proc.returncode})", [], wall, output[-3000:]
    if not lines:
        return "no RESULT line", [], wall, output[-3000:]
    return "ok", json.loads(lines[-1][len("RESULT "):])["rows"], wall, ""


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def print_table(results: list[tuple[str, str, list[dict], float, float]]) -> None:
    head = (f"{'benchmark':<24} {'row':<52} {'figure':>10} {'baseline':>10} {'ratio':>7} {'goal':>9} {'met':>4} "
            f"{'wall s':>7} {'CPU s':>6}")
    print(head)
    print("-" * len(head))
    for bench, status, rows, wall, cpu in results:
        times = f"{wall:>7.1f} {cpu:>6.1f}"
        if status != "ok" or not rows:
            what = status.upper() if status != "ok" else "(ran; no ratio rows)"
            print(f"{bench:<24} {what:<52} {'':>10} {'':>10} {'':>7} {'':>9} {'':>4} {times}")
            continue
        for i, r in enumerate(rows):
            met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
            print(f"{bench if i == 0 else '':<24} {r['name'][:52]:<52} {fmt(r['figure']):>10} {fmt(r['baseline']):>10} "
                  f"{fmt(r['ratio']):>7} {r['goal']:>9} {met:>4} {times if i == 0 else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark names (bench_X), default all")
    parser.add_argument("--skip", default="", help="comma-separated benchmark names to leave out")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per benchmark")
    parser.add_argument("--convis-python", default=os.environ.get("CONVIS_PYTHON") or None,
                        help="interpreter of a venv with convis 0.6.3, for bench_retina (default: $CONVIS_PYTHON)")
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    env = dict(os.environ)
    if args.convis_python:
        env["CONVIS_PYTHON"] = args.convis_python
    scripts = sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    results, failed, start = [], [], time.perf_counter()
    for script in scripts:
        name = os.path.splitext(os.path.basename(script))[0]
        if (only and name not in only) or name in skip:
            continue
        print(f"== {name} --quick {' '.join(EXTRA_ARGS.get(name, []))}", flush=True)
        cpu0 = children_cpu()
        status, rows, wall, tail = run_one(script, args.timeout, env)
        results.append((name, status, rows, wall, children_cpu() - cpu0))
        if status != "ok":
            print(f"{name}: {status}; last output:\n{tail}", flush=True)
            if status != "timeout":
                failed.append(name)
    print()
    print_table(results)
    missed = sum(1 for _, _, rows, _, _ in results for r in rows if r["met"] is False)
    cpu = sum(r[4] for r in results)
    print(f"\n{len(results)} benchmarks in {time.perf_counter() - start:.0f} s ({cpu:.0f} CPU s, "
          f"load avg {os.getloadavg()[0]:.1f}); {missed} goals missed in quick mode "
          f"(reported, not failed: quick sizes are small and the machine may be shared)")
    if failed:
        print(f"FAILED: {', '.join(failed)} crashed or printed no RESULT line")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
