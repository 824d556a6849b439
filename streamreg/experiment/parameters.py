"""Experiment parameters: the ``@parameter`` decorator, the default set, and the argparse bridge.

A parameter's CLI flag is its name in kebab-case (``kill_at`` → ``--kill-at``).
Values come from the command line or the ``params`` dict given to
``exp.run``, else from the default; no parameter is ever read from an
environment variable.
"""

from __future__ import annotations

import argparse
import dataclasses
import keyword
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["DEFAULT_PARAMETERS", "Parameter", "parameter"]

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    msg = f"expected yes/no/true/false/1/0; got {text!r}"
    raise argparse.ArgumentTypeError(msg)


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One declared parameter of an experiment.

    Parameters
    ----------
    name : str
        A Python identifier; the flag is ``--`` plus the name with ``_`` → ``-``.
    type : callable
        Converts the command-line string (``bool`` accepts yes/no/true/false/1/0).
    default : object
        The value when none is given; a zero-argument callable is called at parse time.
    help : str
        One line for ``--help``.
    required : bool
        The value must be given.
    allowed_values : sequence or None
        The value must be one of these.
    is_flag : bool
        A switch: ``--name`` sets True and ``--no-name`` sets False.
    multiple : bool
        The flag takes any number of values and gives a list.
    default_text : str or None
        How ``--help`` shows the default (e.g. ``"auto"`` for a ``None`` that means automatic).
    """

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    required: bool = False
    allowed_values: Sequence[Any] | None = None
    is_flag: bool = False
    multiple: bool = False
    default_text: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier() or keyword.iskeyword(self.name):
            msg = f"parameter name must be a Python identifier; got {self.name!r}."
            raise ValueError(msg)
        if not callable(self.type):
            msg = f"type of parameter {self.name!r} must be callable; got {self.type!r}."
            raise TypeError(msg)

    @property
    def flag(self) -> str:
        """The command-line flag, ``--kebab-case``."""
        return "--" + self.name.replace("_", "-")

    def resolve_default(self) -> Any:
        """Return the default, calling it if it is a zero-argument callable."""
        return self.default() if callable(self.default) else self.default

    def check(self, value: Any) -> Any:
        """Validate a value given through ``exp.run`` and return it."""
        if self.allowed_values is not None and value is not None and value not in self.allowed_values:
            msg = f"parameter {self.name!r} must be one of {list(self.allowed_values)}; got {value!r}."
            raise ValueError(msg)
        return value

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add this parameter's flag to ``parser``, its default shown in the help."""
        shown = self.default_text if self.default_text is not None else repr(self.default)
        text = f"{self.help} (default: {shown})" if self.help else f"(default: {shown})"
        if self.is_flag:
            parser.add_argument(self.flag, dest=self.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=text)
            return
        convert = _parse_bool if self.type is bool else self.type
        parser.add_argument(self.flag, dest=self.name, type=convert, default=argparse.SUPPRESS,
                            required=self.required, choices=self.allowed_values,
                            nargs="*" if self.multiple else None, help=text, metavar=self.name.upper())


def parameter(
    name: str,
    type: Callable[[str], Any] = str,  # noqa: A002 - the seed's keyword
    default: Any = None,
    help: str = "",  # noqa: A002 - the seed's keyword
    *,
    required: bool = False,
    allowed_values: Sequence[Any] | None = None,
    is_flag: bool = False,
    multiple: bool = False,
) -> Callable[[Any], Any]:
    """Declare a parameter of an experiment; put it above or below ``@experiment``.

    See :class:`Parameter` for the arguments.

    Examples
    --------
    >>> from streamreg.experiment import experiment, parameter
    >>> @experiment
    ... @parameter("kill_at", type=int, default=0, help="Epoch to stop at.")
    ... def demo(params):
    ...     return params["kill_at"]
    >>> [p.flag for p in demo.parameters][:1]
    ['--kill-at']
    """
    declared = Parameter(name, type=type, default=default, help=help, required=required,
                         allowed_values=allowed_values, is_flag=is_flag, multiple=multiple)

    def attach(target: Any) -> Any:
        add = getattr(target, "_add_parameter", None)
        if add is not None:  # an Experiment
            add(declared)
            return target
        pending = target.__dict__.setdefault("__streamreg_parameters__", [])
        pending.insert(0, declared)  # decorators apply bottom-up; keep top-down order
        return target

    return attach


DEFAULT_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("output_dir", type=pathlib.Path, default=pathlib.Path("output"),
              help="Folder under which each run gets its own folder."),
    Parameter("random_seed", type=int, default=None, default_text="random",
              help="Seed of python, numpy and torch (rank r uses seed + r); drawn at random if not given."),
    Parameter("debug", is_flag=True, default=False, help="Log at DEBUG level."),
    Parameter("checkpoint", type=pathlib.Path, default=None,
              help="A checkpoint file, or a run folder to resume from its latest checkpoint; "
                   "the run continues in that run's folder."),
    Parameter("cuda", is_flag=True, default=None, default_text="auto",
              help="Run on CUDA (--cuda), on the CPU (--no-cuda), or on CUDA when available."),
    Parameter("distributed", is_flag=True, default=False,
              help="Launch nproc_per_node ranks on this node through torch's elastic launcher."),
    Parameter("node_rank", type=int, default=0, help="Rank of this node in a multi-node run."),
    Parameter("nproc_per_node", type=int, default=1, help="Number of ranks to launch on this node."),
    Parameter("nnodes", type=int, default=1, help="Number of nodes."),
    Parameter("master_addr", type=str, default="127.0.0.1",
              help="Address of node 0 (multi-node runs; a single node uses a free local port)."),
    Parameter("master_port", type=int, default=29500, help="Port on node 0 for the rendezvous (multi-node runs)."),
)


def build_parser(prog: str, description: str, declared: Sequence[Parameter]) -> argparse.ArgumentParser:
    """Return an argparse parser with one flag per parameter."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for item in declared:
        item.add_to(parser)
    return parser


def complete(declared: Sequence[Parameter], given: dict[str, Any]) -> dict[str, Any]:
    """Return ``given`` with defaults filled in, in declaration order.

    Raises
    ------
    ValueError
        For a key that is not a declared parameter, a missing required
        parameter, or a value outside ``allowed_values``.
    """
    names = [item.name for item in declared]
    unknown = sorted(set(given) - set(names))
    if unknown:
        msg = f"{unknown[0]!r} is not a parameter of this experiment; parameters: {names}."
        raise ValueError(msg)
    params: dict[str, Any] = {}
    for item in declared:
        if item.name in given:
            params[item.name] = item.check(given[item.name])
        elif item.required:
            msg = f"parameter {item.name!r} is required ({item.flag})."
            raise ValueError(msg)
        else:
            params[item.name] = item.resolve_default()
    return params
