"""Private: keyword-only public signatures whose typos name the nearest valid option."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["suggest_keywords"]

F = TypeVar("F", bound=Callable[..., Any])


def suggest_keywords(label: str) -> Callable[[F], F]:
    """Decorate a public function so that an unknown keyword raises a helpful ``TypeError``.

    The message names ``label`` (such as ``"run()"``), the unknown keyword, the
    nearest valid one and every valid one. ``inspect.signature`` and ``help()``
    still show the decorated function's own signature.
    """

    def decorate(fn: F) -> F:
        params = inspect.signature(fn).parameters.values()
        valid = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)][1:]  # no self
        allowed = frozenset(valid)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            unknown = [k for k in kwargs if k not in allowed]
            if unknown:
                raise TypeError(unknown_keyword_message(label, unknown[0], valid))
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def unknown_keyword_message(label: str, name: str, valid: list[str]) -> str:
    """``"run() got an unexpected keyword argument 'dtt'; did you mean 'dt'? ..."``."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return f"{label} got an unexpected keyword argument {name!r}{hint} Valid options: {', '.join(valid)}."
