"""Command-line interface: ``streamreg demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamreg", description="Run PyTorch models over long recordings.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a Retina over a synthetic HDF5 stimulus and plot the response")
    demo.add_argument("--out", default=None, help="output folder (default: a new temporary folder)")
    demo.add_argument("--frames", type=int, default=5000, help="stimulus length in frames (default 5000)")
    demo.add_argument("--size", type=int, default=64, help="frame size in pixels (default 64)")
    demo.add_argument("--dt", type=int, default=200, help="chunk length in frames (default 200)")
    demo.add_argument("--overwrite", action="store_true", help="replace existing demo files in --out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from streamreg.demo import run_demo

        try:
            result = run_demo(args.out, n_frames=args.frames, size=args.size, dt=args.dt,
                              overwrite=args.overwrite)
        except (ValueError, TypeError, OSError) as exc:
            print(f"streamreg demo: error: {exc}", file=sys.stderr)
            return 2
        print(f"stimulus: {result.stimulus}:/stimulus")
        print(f"response: {result.response}:/retina/rates  (T, 2, H, W): ON and OFF rates in Hz")
        print(f"figure:   {result.figure}")
    return 0
