"""Small typed wrappers around Prefect utilities whose stubs are loose."""

from __future__ import annotations

from typing import TypeVar, cast

from prefect.utilities.annotations import quote

T = TypeVar("T")


def unwalked(value: T) -> T:
    """``value`` for a task parameter that Prefect must not walk looking for futures.

    Prefect visits every element of a plain task argument (about 100 µs per manifest row);
    ``quote()`` tells it not to. Typed as the value itself, which is what the task receives.
    """
    return cast(T, quote(value))
