"""Where a flow run's settings and secrets come from."""

from __future__ import annotations

from mori.settings import Settings


def load_settings() -> Settings:
    """The run's :class:`~mori.settings.Settings`, read once at the start of a flow run from the
    environment of the process that runs it (the worker's or the ``serve`` process's)."""
    return Settings()
