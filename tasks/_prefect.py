"""Small typed wrappers around Prefect utilities whose stubs are loose.

Prefect is imported where it is used: the CLI's commands that need no Prefect server (``plan``,
``report``) reach this module through the credentials lookup and must stay free of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


def unwalked(value: T) -> T:
    """``value`` for a task parameter that Prefect must not walk looking for futures.

    Prefect visits every element of a plain task argument (about 100 µs per manifest row);
    ``quote()`` tells it not to. Typed as the value itself, which is what the task receives.
    """
    from prefect.utilities.annotations import quote

    return cast(T, quote(value))


def in_sync(method: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call a Prefect method that serves both sync and async callers (``async_dispatch``) in
    its sync form, also where an event loop runs (a notebook, a browser test): there it would
    otherwise return a coroutine that nobody awaits."""
    return method(*args, _sync=True, **kwargs)
