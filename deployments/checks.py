"""What ``mori-pipeline run`` checks before Prefect starts: credentials, then MORI itself.

The CLI reads the environment; a ``mori-credentials`` block is merged only when named
(``--credentials NAME`` or ``MORI_CREDENTIALS_BLOCK``), so ``run`` needs neither a block nor
any Prefect server state. The flow then runs with the same choice: its ``credentials``
parameter is the named block, or ``""`` (the environment only).
"""

from __future__ import annotations

import sys

from mori.batch.preflight import preflight
from mori.client import MoriClient
from mori.settings import Settings
from tasks.credentials import CredentialsError, load_settings

__all__ = ["check_mori", "cli_block", "cli_settings"]


def cli_block(option: str | None, env: Settings) -> str:
    """The block ``run`` merges: ``--credentials``, else ``MORI_CREDENTIALS_BLOCK``, else none."""
    if option is not None:
        return option
    return env.credentials_block if "credentials_block" in env.model_fields_set else ""


def cli_settings(block: str, env: Settings) -> Settings:
    """``env`` merged with ``block`` (when named); :class:`CredentialsError` without credentials."""
    if block:
        return load_settings(block, env)
    if not env.has_credentials:
        raise CredentialsError(
            "no MORI credentials: set MORI_API_KEY (or MORI_EMAIL and MORI_PASSWORD), or name "
            "a mori-credentials block with --credentials"
        )
    return env


def check_mori(settings: Settings) -> None:
    """Preflight MORI: raise :class:`~mori.batch.preflight.PreflightFailed` (one line) when it
    cannot be used; print a warning when it met a passing fault."""
    with MoriClient.from_settings(settings, rate_limiter=None) as client:
        warning = preflight(client)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
