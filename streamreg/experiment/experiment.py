"""``@experiment``: turn ``main(params)`` into a command-line experiment with its own run folder.

A run, in one process or on every rank of a distributed run:

1. rank 0 creates ``<output_dir>/<name>/<YYYY-mm-dd_HH-MM-SS>_<6 chars>`` (or, with
   ``checkpoint``, reuses the folder of the run it resumes), draws the seed if
   none is given, and broadcasts both, so all ranks share the folder;
2. rank 0 writes ``parameters.json`` (``parameters.resume-<k>.json`` for the
   k-th resume) and ``seed``; each rank logs to ``log.txt`` (``log.rank-<r>.txt``);
3. python, numpy and torch are seeded with ``seed + rank``;
4. ``main(params)`` runs; the run state, log handler and process group are
   torn down afterwards, also when a step before ``main`` fails.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import logging
import os
import random
import re
import secrets
import string
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamreg.experiment import distributed, launch, runtime
from streamreg.experiment.parameters import DEFAULT_PARAMETERS, Parameter, build_parser, complete

__all__ = ["Experiment", "experiment", "find_checkpoint"]

logger = logging.getLogger("streamreg.experiment")

_CHECKPOINT = re.compile(r"checkpoint-(.+)\.pt")
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Return the checkpoint file ``path`` names: the file itself, or a run folder's latest checkpoint.

    A folder's latest checkpoint is the one its ``latest`` pointer names (written
    by :func:`save_checkpoint`), else the ``checkpoint-<id>.pt`` of highest
    numeric id.

    Raises
    ------
    FileNotFoundError
        If the path does not exist or the folder holds no checkpoint.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        msg = f"checkpoint {str(path)!r} does not exist; give a checkpoint file or a run folder."
        raise FileNotFoundError(msg)
    pointer = path / "latest"
    if pointer.is_file() and (path / pointer.read_text().strip()).is_file():
        return path / pointer.read_text().strip()
    numbered = [(int(m.group(1)), p) for p in path.iterdir()
                if (m := _CHECKPOINT.fullmatch(p.name)) and m.group(1).isdigit()]
    if not numbered:
        msg = f"run folder {str(path)!r} holds no checkpoint-<id>.pt file."
        raise FileNotFoundError(msg)
    return max(numbered)[1]


class Experiment:
    """A runnable experiment made by :func:`experiment`; call ``cli(argv)`` or ``run(params)``.

    Attributes
    ----------
    name : str
        The folder name of its runs (the function name, ``_`` → ``-``, lower case).
    main : callable
        The decorated ``main(params)``.
    parameters : list of Parameter
        The declared parameters, then the defaults every experiment has.
    """

    def __init__(self, main: Callable[[dict[str, Any]], Any], name: str | None = None) -> None:
        self.main = main
        self.name = name if name is not None else main.__name__.lower().replace("_", "-")
        self._declared: list[Parameter] = list(main.__dict__.get("__streamreg_parameters__", []))
        self.__doc__ = main.__doc__

    def __repr__(self) -> str:
        return f"<Experiment {self.name!r}: {self.main.__module__}.{self.main.__qualname__}>"

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        """Pickle by import location, so spawned ranks and sweep runs import the experiment."""
        return _import_experiment, (self.main.__module__, self.main.__qualname__)

    def __call__(self, params: dict[str, Any] | None = None) -> Any:
        return self.run(params)

    @property
    def parameters(self) -> list[Parameter]:
        """The declared parameters followed by the default ones."""
        return [*self._declared, *DEFAULT_PARAMETERS]

    def _add_parameter(self, item: Parameter) -> None:
        taken = {p.name for p in self.parameters}
        if item.name in taken:
            msg = f"parameter {item.name!r} is already declared on experiment {self.name!r}."
            raise ValueError(msg)
        self._declared.insert(0, item)

    def cli(self, argv: Sequence[str] | None = None) -> Any:
        """Parse ``argv`` (``sys.argv[1:]`` by default) and run; returns what ``main`` returns."""
        parser = build_parser(self.name, self.__doc__ or "", self.parameters)
        return self.run(vars(parser.parse_args(argv)))

    def run(self, params: dict[str, Any] | None = None) -> Any:
        """Run in this process (or launch its ranks with ``distributed=True``); return ``main``'s result.

        Raises
        ------
        ValueError
            For an unknown parameter name or a bad value.
        RuntimeError
            When another experiment is running in this process.
        streamreg.experiment.LaunchError
            When a rank of a distributed run fails.
        """
        return self._invoke(params)[0]

    def _invoke(self, params: dict[str, Any] | None,
                on_folder: Callable[[Path], None] | None = None) -> tuple[Any, Path | None]:
        """Run and return ``(main's result, run folder)``."""
        full = complete(self.parameters, dict(params or {}))
        if runtime.is_running():
            msg = f"an experiment is already running in this process ({runtime.output_dir()}); runs cannot nest."
            raise RuntimeError(msg)
        if full["distributed"] and not launch.inside_launcher():
            return launch.launch(self, full)
        return self._execute(full, on_folder)

    def _execute(self, params: dict[str, Any],
                 on_folder: Callable[[Path], None] | None = None) -> tuple[Any, Path | None]:
        """Run ``main`` in this process, as the only process or as one rank of a launched run."""
        with contextlib.ExitStack() as stack:
            if params["distributed"]:
                stack.enter_context(launch.process_group(params))
            folder, seed = distributed.broadcast_from_master(_prepare_folder(self.name, params)
                                                             if distributed.is_master() else None)
            folder.mkdir(parents=True, exist_ok=True)  # other nodes without a shared filesystem
            params = {**params, "random_seed": seed,
                      "checkpoint": find_checkpoint(params["checkpoint"]) if params["checkpoint"] else None}
            stack.enter_context(_log_to(folder, params["debug"]))
            stack.enter_context(_published(folder, params, seed))
            if on_folder is not None:
                on_folder(folder)
            _seed_everything(seed + distributed.get_rank())
            logger.info("Experiment %s started in %s (rank %d of %d, seed %d)", self.name, folder,
                        distributed.get_rank(), distributed.get_num_processes(), seed)
            try:
                result = self.main(params)
            except BaseException:
                logger.exception("Experiment %s failed", self.name)
                raise
            logger.info("Experiment %s ended", self.name)
            return result, folder
        raise AssertionError  # unreachable: ExitStack re-raises or the body returns


def experiment(main: Callable[[dict[str, Any]], Any] | None = None, *,
               name: str | None = None) -> Any:
    """Turn ``main(params)`` into an :class:`Experiment`; use bare or as ``@experiment(name=...)``.

    Examples
    --------
    >>> from streamreg.experiment import experiment
    >>> @experiment
    ... def fit_model(params):
    ...     return params["nproc_per_node"]
    >>> fit_model.name
    'fit-model'
    """
    if main is None:
        return lambda fn: Experiment(fn, name=name)
    return Experiment(main, name=name)


def _import_experiment(module: str, qualname: str) -> Experiment:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not isinstance(target, Experiment):
        msg = f"{module}.{qualname} is {target!r}, not an Experiment; define experiments at module level."
        raise TypeError(msg)
    return target


def _prepare_folder(name: str, params: dict[str, Any]) -> tuple[Path, int]:
    """On rank 0: create or reuse the run folder, settle the seed, write parameters and seed."""
    if params["checkpoint"]:
        folder = find_checkpoint(params["checkpoint"]).resolve().parent
        seed = params["random_seed"] if params["random_seed"] is not None else _read_seed(folder)
        resumes = len(list(folder.glob("parameters.resume-*.json")))
        params_file = folder / f"parameters.resume-{resumes + 1}.json"
    else:
        folder = _new_folder(Path(params["output_dir"]) / name)
        seed = params["random_seed"] if params["random_seed"] is not None else random.SystemRandom().getrandbits(32)
        params_file = folder / "parameters.json"
    _write_new(params_file, json.dumps({**params, "random_seed": seed}, indent=2, default=str) + "\n")
    if not (folder / "seed").exists():
        _write_new(folder / "seed", f"{seed}\n")
    return folder, seed


def _new_folder(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    alphabet = string.digits + string.ascii_lowercase
    while True:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        folder = parent / f"{stamp}_{''.join(secrets.choice(alphabet) for _ in range(6))}"
        with contextlib.suppress(FileExistsError):  # a name drawn twice: draw again
            folder.mkdir()
            return folder.resolve()


def _read_seed(folder: Path) -> int:
    seed_file = folder / "seed"
    if not seed_file.is_file():
        msg = f"run folder {str(folder)!r} has no 'seed' file; pass random_seed to resume it."
        raise FileNotFoundError(msg)
    return int(seed_file.read_text().strip())


def _write_new(path: Path, text: str) -> None:
    """Write a file that must not exist yet, through a temporary file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "x") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        tmp.unlink()
        msg = f"{str(path)!r} exists; run files are never overwritten."
        raise FileExistsError(msg)
    os.replace(tmp, path)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global generator is what users call
    torch.manual_seed(seed)


@contextlib.contextmanager
def _log_to(folder: Path, debug: bool) -> Iterator[None]:
    """Add a file handler to the root logger for the run; the user's handlers stay."""
    rank = distributed.get_rank()
    handler = logging.FileHandler(folder / ("log.txt" if rank == 0 else f"log.rank-{rank}.txt"))
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    handler.setLevel(logging.DEBUG if debug else logging.INFO)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    if old_level > handler.level:  # NOTSET (0) already lets everything through
        root.setLevel(handler.level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


@contextlib.contextmanager
def _published(folder: Path, params: dict[str, Any], seed: int) -> Iterator[None]:
    local_rank = distributed.get_local_rank()
    device = runtime._resolve(runtime._spec_from_cuda(params["cuda"]), local_rank)
    runtime._set_run(runtime._Run(output_dir=folder, params=params, random_seed=seed,
                                  local_rank=local_rank, device=device))
    try:
        yield
    finally:
        runtime._set_run(None)
