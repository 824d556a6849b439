"""The :class:`Context`: one object that registers, moves, wraps and checkpoints a training session."""

from __future__ import annotations

import collections
import copy
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from streamreg.experiment import distributed, runtime
from streamreg.experiment._state import load_value, state_of
from streamreg.experiment.checkpoint import load_checkpoint

__all__ = ["Context", "LoadResult", "move_to_device"]


class LoadResult(NamedTuple):
    """What :meth:`Context.load_state_dict` left out (empty lists under ``strict=True``)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class _DDP(DistributedDataParallel):
    """DistributedDataParallel that forwards unknown attributes to the wrapped module."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def move_to_device(device: torch.device | str, *args: Any) -> Any:
    """Move ``args`` to ``device`` with the rules of :meth:`Context.to`.

    Returns
    -------
    The moved object for one argument, a tuple of them for several.

    Examples
    --------
    >>> move_to_device("cpu", (torch.zeros(2), [torch.ones(1)]))
    (tensor([0., 0.]), [tensor([1.])])
    """
    device = torch.device(device)
    remap: dict[int, nn.Parameter] = {}
    moved = tuple(_move_optimizers(_move(arg, device, remap), remap) for arg in args)
    return moved[0] if len(moved) == 1 else moved


def _rebuild(value: Any, fn: Any) -> Any:
    """Apply ``fn`` to the items of a dict, list or tuple, keeping the container's type."""
    if isinstance(value, dict):
        out = copy.copy(value)
        for key, item in value.items():
            out[key] = fn(item)
        return out
    if isinstance(value, list):
        return [fn(item) for item in value]
    if isinstance(value, tuple):
        items = [fn(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value


def _move(value: Any, device: torch.device, remap: dict[int, nn.Parameter]) -> Any:
    """Move modules, tensors and loaders; note in ``remap`` the parameters a move replaced."""
    if isinstance(value, torch.optim.Optimizer):
        return value
    if isinstance(value, nn.Module):
        before = list(value.parameters())
        value.to(device)
        remap.update({id(old): new for old, new in zip(before, value.parameters(), strict=True) if old is not new})
        return value
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if callable(getattr(value, "to", None)) and hasattr(value, "device"):  # a SmartDataLoader
        return value.to(device)
    return _rebuild(value, lambda item: _move(item, device, remap))


def _move_optimizers(value: Any, remap: dict[int, nn.Parameter]) -> Any:
    """Point optimizers at their moved parameters and cast their state to the parameters' devices."""
    if isinstance(value, torch.optim.Optimizer):
        for group in value.param_groups:
            group["params"] = [remap.get(id(p), p) for p in group["params"]]
        value.state = collections.defaultdict(dict, {remap.get(id(p), p): s for p, s in value.state.items()})
        value.load_state_dict(value.state_dict())  # torch casts each state tensor as its parameter needs
        return value
    return _rebuild(value, lambda item: _move_optimizers(item, remap))


def _is_trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _wrap(value: Any, ddp_kwargs: dict[str, Any]) -> Any:
    if isinstance(value, DistributedDataParallel):
        return value
    if isinstance(value, nn.Module):
        if not _is_trainable(value):
            return value
        device = next(value.parameters()).device
        device_ids = [device] if device.type == "cuda" else None
        return _DDP(value, device_ids=device_ids, **ddp_kwargs)
    return _rebuild(value, lambda item: _wrap(item, ddp_kwargs))


class Context:
    """A registry of everything a training session needs to move and to checkpoint.

    Register objects by attribute assignment (``ctx.model = ...``); names that
    start with ``_`` are not registered. :meth:`to`, :meth:`ddp`,
    :meth:`state_dict` and :meth:`load_state_dict` walk the registered objects
    in assignment order.

    Examples
    --------
    >>> ctx = Context()
    >>> ctx.model = torch.nn.Linear(2, 1)
    >>> ctx.epoch = 0
    >>> sorted(ctx.state_dict())
    ['epoch', 'model']
    >>> ctx.cpu() is ctx
    True
    """

    def _registered(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        names = ", ".join(f"{k}: {type(v).__name__}" for k, v in self._registered().items())
        return f"<Context {names or 'empty'}>"

    # -- devices -------------------------------------------------------------
    def to(self, device: torch.device | str) -> Context:
        """Move every registered module, tensor, optimizer state and loader to ``device``.

        Modules and optimizers move in place; tensors are replaced; dicts
        (their type kept), lists and tuples (tuples stay tuples) are walked.
        Optimizer states follow their parameters, whatever the order of
        registration. Returns ``self``.
        """
        device = torch.device(device)
        remap: dict[int, nn.Parameter] = {}
        registered = self._registered()
        for name, value in registered.items():
            setattr(self, name, _move(value, device, remap))
        for name in registered:
            setattr(self, name, _move_optimizers(getattr(self, name), remap))
        return self

    def cpu(self) -> Context:
        """Move everything to the CPU (see :meth:`to`)."""
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> Context:
        """Move everything to ``cuda`` or ``cuda:index`` (see :meth:`to`)."""
        return self.to(torch.device("cuda", index) if index is not None else torch.device("cuda"))

    def ddp(self, *, find_unused_parameters: bool = False, gradient_as_bucket_view: bool = False,
            static_graph: bool = False) -> Context:
        """Wrap every trainable module in ``DistributedDataParallel``.

        On CPU (gloo) no ``device_ids`` are passed; on CUDA the module's device.
        The wrapper forwards unknown attributes to the module, so custom
        methods and attributes stay reachable. Modules without trainable
        parameters and already wrapped ones are left alone. The keywords go to
        ``DistributedDataParallel``. Returns ``self``.

        Raises
        ------
        RuntimeError
            If no process group is initialised.
        """
        if not distributed.is_distributed():
            msg = "ddp() needs an initialised process group; run inside a distributed experiment (--distributed)."
            raise RuntimeError(msg)
        kwargs = {"find_unused_parameters": find_unused_parameters,
                  "gradient_as_bucket_view": gradient_as_bucket_view, "static_graph": static_graph}
        for name, value in self._registered().items():
            setattr(self, name, _wrap(value, kwargs))
        return self

    def autotransform(self) -> Context:
        """Apply the running experiment's ``checkpoint``, device and ``distributed`` parameters.

        In this order: load the checkpoint (a file or a run folder, onto the
        CPU, RNG states included), move to the run's device, wrap in DDP when
        distributed. Returns ``self``.

        Raises
        ------
        RuntimeError
            Outside a running experiment.
        """
        params = runtime.current_params()
        if params.get("checkpoint"):
            self.load_state_dict(load_checkpoint(params["checkpoint"]))
        self.to(runtime.run_device())
        if params.get("distributed") and distributed.is_distributed():
            self.ddp()
        return self

    # -- state -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Return the state of every registered object, keyed by attribute name.

        Modules give their ``state_dict()`` (DDP unwrapped, no ``module.``
        prefix); modules holding streamreg streaming state give
        ``{"parameters": ..., "streaming_state": ...}``. Optimizers, schedulers,
        Recorders, loaders and anything with ``state_dict``/``load_state_dict``
        give their state. Tensors (detached copies), numpy arrays, numbers,
        strings, None and dicts, lists and tuples of these are kept as they are.

        Raises
        ------
        TypeError
            Naming the attribute (and the item inside it) that cannot be saved.
        """
        return {name: state_of(value, f"ctx.{name}") for name, value in self._registered().items()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Restore a :meth:`state_dict`, in place for objects and by replacement for values.

        Parameters
        ----------
        state : Mapping
            As returned by :meth:`state_dict` (or :func:`load_checkpoint`).
        strict : bool, default True
            Refuse attributes missing from ``state`` and keys of ``state`` that
            are not registered. With ``False`` only the common keys are loaded.

        Returns
        -------
        LoadResult
            The missing and unexpected keys.

        Raises
        ------
        KeyError
            Under ``strict``, naming every missing and unexpected key.
        TypeError, ValueError
            If a value does not fit the registered object (the message names it).
        """
        registered = self._registered()
        missing = [k for k in registered if k not in state]
        unexpected = [k for k in state if k not in registered]
        if strict and (missing or unexpected):
            msg = (f"Context.load_state_dict: missing keys {missing} (registered but not in the state), "
                   f"unexpected keys {unexpected} (in the state but not registered).")
            raise KeyError(msg)
        for name, value in registered.items():
            if name in state:
                setattr(self, name, load_value(value, state[name], f"ctx.{name}", strict))
        return LoadResult(missing, unexpected)
