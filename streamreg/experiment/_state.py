"""Private: turn registered objects into checkpointable state and load it back, type by type."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from streamreg.layer import Layer, module_device

__all__ = ["load_value", "state_of"]

_PRIMITIVES = (bool, int, float, complex, str)
_MODULE_KEYS = ["parameters", "streaming_state"]


def _has_state_methods(value: Any) -> bool:
    return callable(getattr(value, "state_dict", None)) and callable(getattr(value, "load_state_dict", None))


def _streaming_state(module: nn.Module) -> dict[str, dict[str, Any]] | None:
    """``{submodule name: {state name: tensor or None}}`` of every stateful Layer; None if there is none."""
    found = {}
    for name, sub in module.named_modules():
        if isinstance(sub, Layer) and sub.state_names:
            found[name] = {s: None if getattr(sub, s) is None else getattr(sub, s).detach().clone()
                           for s in sub.state_names}
    return found or None


def _set_streaming_state(module: nn.Module, state: Any, path: str) -> None:
    expected = _streaming_state(module) or {}
    if not isinstance(state, Mapping) or {k: sorted(v) for k, v in state.items()} != {
            k: sorted(v) for k, v in expected.items()}:
        shown = {k: sorted(v) for k, v in state.items()} if isinstance(state, Mapping) else type(state).__name__
        msg = (f"{path}['streaming_state'] does not match the module: expected layers and states "
               f"{ {k: sorted(v) for k, v in expected.items()} }; got {shown}.")
        raise KeyError(msg)
    modules = dict(module.named_modules())
    device = module_device(module)
    for name, states in state.items():
        for s, value in states.items():
            setattr(modules[name], s, None if value is None else value.detach().to(device, copy=True))


def state_of(value: Any, path: str) -> Any:
    """Checkpointable state of ``value``; ``path`` names it in errors (``"ctx.meta['x']"``)."""
    if isinstance(value, DistributedDataParallel):
        value = value.module
    if isinstance(value, nn.Module):
        params = value.state_dict()
        stream = _streaming_state(value)
        return params if stream is None else {"parameters": params, "streaming_state": stream}
    if _has_state_methods(value):
        state = value.state_dict()
        _check_plain(state, f"{path}.state_dict()")
        return state
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (np.ndarray, np.generic)):
        return _check_plain(value.copy(), path)
    if value is None or isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, (dict, list, tuple)):
        return _rebuild_with_paths(value, path, state_of)
    msg = (f"{path} of type {type(value).__name__} cannot be saved; a Context saves modules, objects with "
           f"state_dict()/load_state_dict(), tensors, numpy arrays, numbers, strings, None and dicts, lists "
           f"and tuples of these.")
    raise TypeError(msg)


def _check_plain(value: Any, path: str) -> Any:
    """Raise TypeError unless ``value`` is made of tensors, numpy arrays, primitives, None and containers."""
    if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.hasobject:
        msg = f"{path} is a numpy array of dtype object, which cannot be saved; use a numeric dtype."
        raise TypeError(msg)
    if value is None or isinstance(value, (torch.Tensor, np.ndarray, np.generic, *_PRIMITIVES)):
        return value
    if isinstance(value, (dict, list, tuple)):
        return _rebuild_with_paths(value, path, _check_plain)
    msg = f"{path} holds a {type(value).__name__}, which a checkpoint cannot hold."
    raise TypeError(msg)


def _rebuild_with_paths(value: Any, path: str, fn: Any) -> Any:
    if isinstance(value, dict):
        out = copy.copy(value)
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                msg = f"{path} has a key {key!r} of type {type(key).__name__}; keys must be str or int."
                raise TypeError(msg)
            out[key] = fn(item, f"{path}[{key!r}]")
        return out
    items = [fn(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, list):
        return items
    return type(value)(*items) if hasattr(value, "_fields") else tuple(items)


def _type_error(path: str, current: Any, state: Any) -> TypeError:
    msg = (f"{path} is a {type(current).__name__}, but the state holds a {type(state).__name__} "
           f"({state!r:.60}); load a state saved from the same kind of object.")
    return TypeError(msg)


def _load_module(module: nn.Module, state: Any, path: str, strict: bool) -> None:
    if _streaming_state(module) is None:
        params = state
    else:
        if not isinstance(state, Mapping) or sorted(state) != _MODULE_KEYS:
            msg = f"{path} holds streaming state, so its state must have the keys {_MODULE_KEYS}; got {state!r:.80}."
            raise KeyError(msg)
        params = state["parameters"]
        _set_streaming_state(module, state["streaming_state"], path)
    try:
        module.load_state_dict(params, strict=strict)
    except RuntimeError as exc:
        msg = f"{path}: {exc}"
        raise RuntimeError(msg) from exc


def load_value(current: Any, state: Any, path: str, strict: bool) -> Any:
    """Load ``state`` into ``current`` (in place for objects); return the value to register."""
    if isinstance(current, DistributedDataParallel):
        _load_module(current.module, state, path, strict)
        return current
    if isinstance(current, nn.Module):
        _load_module(current, state, path, strict)
        return current
    if _has_state_methods(current):
        current.load_state_dict(state)
        return current
    if current is None or state is None:
        return state
    if isinstance(current, torch.Tensor):
        if not isinstance(state, torch.Tensor):
            raise _type_error(path, current, state)
        return state.detach().to(current.device, copy=True)
    if isinstance(current, (np.ndarray, np.generic)):
        if not isinstance(state, type(current)):
            raise _type_error(path, current, state)
        return state.copy()
    if isinstance(current, _PRIMITIVES):
        if type(state) is not type(current):
            raise _type_error(path, current, state)
        return state
    if isinstance(current, dict):
        return _load_dict(current, state, path, strict)
    if isinstance(current, (list, tuple)):
        return _load_sequence(current, state, path, strict)
    raise _type_error(path, current, state)


def _load_dict(current: dict[Any, Any], state: Any, path: str, strict: bool) -> dict[Any, Any]:
    if not isinstance(state, Mapping):
        raise _type_error(path, current, state)
    missing = [k for k in current if k not in state]
    unexpected = [k for k in state if k not in current]
    if strict and (missing or unexpected):
        msg = f"{path}: missing keys {missing}, unexpected keys {unexpected}."
        raise KeyError(msg)
    out = copy.copy(current)
    for key in current:
        if key in state:
            out[key] = load_value(current[key], state[key], f"{path}[{key!r}]", strict)
    return out


def _load_sequence(current: list[Any] | tuple[Any, ...], state: Any, path: str, strict: bool) -> Any:
    if not isinstance(state, (list, tuple)):
        raise _type_error(path, current, state)
    if len(state) != len(current):
        msg = f"{path} has {len(current)} items, but the state holds {len(state)}."
        raise ValueError(msg)
    items = [load_value(c, s, f"{path}[{i}]", strict) for i, (c, s) in enumerate(zip(current, state, strict=True))]
    if isinstance(current, list):
        return items
    return type(current)(*items) if hasattr(current, "_fields") else tuple(items)
