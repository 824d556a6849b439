"""Command-line interface: ``streamreg demo`` and ``streamreg run``."""

from __future__ import annotations

import argparse
import importlib
import pickle
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["load_model", "main"]

# Errors a user can cause with bad arguments or files: one line, exit status 2.
_USER_ERRORS = (ValueError, TypeError, KeyError, LookupError, OSError, ImportError, AttributeError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamreg", description="Run PyTorch models over long recordings.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a Retina over a synthetic HDF5 stimulus and plot the response")
    demo.add_argument("--out", default=None, help="output folder (default: a new temporary folder)")
    demo.add_argument("--frames", type=int, default=5000, help="stimulus length in frames (default 5000)")
    demo.add_argument("--size", type=int, default=64, help="frame size in pixels (default 64)")
    demo.add_argument("--dt", type=int, default=200, help="chunk length in frames (default 200)")
    demo.add_argument("--overwrite", action="store_true", help="replace existing demo files in --out")
    run = sub.add_parser("run", help="run a model over an HDF5 dataset into another, in chunks",
                         description="Run MODEL over INPUT into OUTPUT in chunks of --dt frames. Other "
                         "processes can read OUTPUT while it grows (HDF5 SWMR).")
    run.add_argument("model", metavar="MODEL", help="package.module:factory, a callable returning a streamreg.Layer")
    run.add_argument("input", metavar="INPUT", help="input dataset, file.h5:/dataset")
    run.add_argument("output", metavar="OUTPUT", help="output dataset, file.h5:/dataset")
    run.add_argument("--dt", type=int, required=True, help="chunk length in frames")
    run.add_argument("--weights", default=None, help="a state_dict saved with torch.save (loaded weights_only)")
    run.add_argument("--device", default=None, help="torch device, such as cuda or cuda:1 (default: cpu)")
    run.add_argument("--checkpoint-every", type=int, default=None, metavar="K",
                     help="save a resumable checkpoint every K chunks")
    run.add_argument("--resume", action="store_true", help="continue a stopped or killed run from its checkpoint")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output dataset")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--record", action="append", default=None, metavar="NAME",
                     help="also write this sub-module's output (a module path such as opl or opl.center_lowpass) "
                     "to OUTPUT_record/NAME beside OUTPUT; repeatable")
    return parser


def load_model(spec: str, weights: str | None = None) -> Any:
    """Build the Layer named by ``"package.module:factory"`` and load ``weights`` into it.

    Weights load with ``torch.load(weights_only=True)``: tensors only, no pickled code runs.
    """

    from streamreg.layer import Layer

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        msg = f"MODEL must have the form package.module:factory; got {spec!r}."
        raise ValueError(msg)
    factory: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        factory = getattr(factory, part)
    if not callable(factory):
        msg = f"MODEL {spec!r} names a {type(factory).__name__}, not a callable that returns a Layer."
        raise TypeError(msg)
    model = factory()
    if not isinstance(model, Layer):
        msg = f"MODEL factory {spec!r} returned a {type(model).__name__}, not a streamreg.Layer."
        raise TypeError(msg)
    if weights is not None:
        try:
            model.load_state_dict(_load_weights(weights))
        except RuntimeError as exc:  # missing, unexpected or mis-shaped keys
            text = " ".join(str(exc).split())
            msg = f"--weights {weights!r} does not fit {spec}: {text}"
            raise ValueError(msg) from None
    return model


def _load_weights(weights: str) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((ln.strip() for ln in str(exc).splitlines() if "Unsupported" in ln), "")
        if not detail:
            msg = f"--weights {weights!r} is not a file saved with torch.save: {str(exc).splitlines()[0]}"
            raise ValueError(msg) from None
        msg = f"--weights {weights!r} holds more than tensors and was refused (weights_only=True). {detail}"
        raise ValueError(msg) from None
    except RuntimeError as exc:  # a truncated or foreign file
        msg = f"--weights {weights!r} cannot be read as a torch.save file: {str(exc).splitlines()[0]}"
        raise ValueError(msg) from None
    if not isinstance(state, dict):
        msg = f"--weights {weights!r} holds a {type(state).__name__}, not a state_dict."
        raise TypeError(msg)
    return state


def _run(args: argparse.Namespace) -> int:
    from streamreg._validation import check_device
    from streamreg.streams.hdf5 import HDF5Stream

    check_device(args.device, "--device")
    model = load_model(args.model, args.weights)
    result = model.run(args.input, args.dt, output=args.output, device=args.device, overwrite=args.overwrite,
                       checkpoint_every=args.checkpoint_every, resume=args.resume, progress=not args.no_progress,
                       record=args.record)
    result, recorded = (result, {}) if args.record is None else result
    for location in (result, *recorded.values()):
        with HDF5Stream(location) as out:
            frames = out.length
        print(f"wrote {frames} frames to {location}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from streamreg.demo import run_demo

    result = run_demo(args.out, n_frames=args.frames, size=args.size, dt=args.dt, overwrite=args.overwrite)
    print(f"stimulus: {result.stimulus}:/stimulus")
    print(f"response: {result.response}:/retina/rates  (T, 2, H, W): ON and OFF rates in Hz")
    print(f"figure:   {result.figure}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    command = {"demo": _demo, "run": _run}[args.command]
    try:
        return command(args)
    except _USER_ERRORS as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"streamreg {args.command}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " (resume with --resume)" if getattr(args, "checkpoint_every", None) else ""
        print(f"streamreg {args.command}: interrupted; completed chunks were written{hint}", file=sys.stderr)
        return 130
