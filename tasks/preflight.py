"""A flow run's MORI client, checked before the run plans anything."""

from __future__ import annotations

from prefect import get_run_logger

from mori.batch.preflight import PreflightFailed, preflight
from mori.client import MoriClient
from mori.settings import Settings
from tasks.credentials import CredentialsError, load_settings
from tasks.ratelimit import client_for

__all__ = ["CredentialsError", "PreflightFailed", "checked_client"]


def checked_client(credentials: str) -> tuple[Settings, MoriClient]:
    """The run's settings (environment, then the ``credentials`` block) and a MORI client that
    passed the preflight. Raises :class:`CredentialsError` or :class:`PreflightFailed`, each
    one line; a passing fault at MORI is logged as a warning and the run goes on."""
    settings = load_settings(credentials)
    client = client_for(settings)
    try:
        warning = preflight(client)
    except BaseException:
        client.close()
        raise
    if warning:
        get_run_logger().warning("preflight: %s", warning)
    return settings, client
