"""Where a flow run's settings and secrets come from: the environment, then a block.

:func:`load_settings` reads :class:`~mori.settings.Settings` from the environment of the
process that runs the flow (the worker's, the ``serve`` process's or the CLI's) and fills what
it lacks from the ``mori-credentials`` block the run names: the environment wins, so a worker
can always override a block, and a run whose environment holds credentials needs no block.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from mori.settings import Settings
from tasks._prefect import in_sync

if TYPE_CHECKING:
    from tasks.blocks import MoriCredentials

# Prefect (through ``tasks.blocks``) is imported only when a block is looked up: the CLI can
# check the environment's credentials without paying for Prefect's import.

__all__ = ["CredentialsError", "find_block", "load_settings"]

log = logging.getLogger("mori.credentials")

_ENV_HINT = "set MORI_API_KEY (or MORI_EMAIL and MORI_PASSWORD)"
#: The slug of the block type :class:`tasks.blocks.MoriCredentials`.
BLOCK_TYPE = "mori-credentials"


class CredentialsError(Exception):
    """Neither the environment nor the named block holds MORI credentials (one line)."""


def load_settings(credentials: str | None = None, base: Settings | None = None) -> Settings:
    """The run's settings: ``base`` (default: the environment) merged with the block.

    ``credentials`` names the ``mori-credentials`` block; ``None`` takes
    ``MORI_CREDENTIALS_BLOCK`` (default ``default``) and ``""`` uses the environment alone.
    A missing block is fine when the environment has credentials; otherwise
    :class:`CredentialsError` says what to set.
    """
    settings = base if base is not None else Settings()
    name = settings.credentials_block if credentials is None else credentials.strip()
    if not name:
        if not settings.has_credentials:
            raise CredentialsError(f"no MORI credentials: {_ENV_HINT}")
        return settings
    block = find_block(name)
    if block is None:
        if not settings.has_credentials:
            raise CredentialsError(
                f"no MORI credentials: {_ENV_HINT}, or save a {BLOCK_TYPE} block named "
                f"{name!r} (mori-pipeline bootstrap saves one from the environment)"
            )
        log.debug("no %s block %r: the environment's credentials apply", BLOCK_TYPE, name)
        return settings
    merged = block.settings(settings)
    if not merged.has_credentials:
        raise CredentialsError(
            f"the {BLOCK_TYPE} block {name!r} holds no API key (nor email and password) "
            f"and the environment has none: {_ENV_HINT} or fill the block"
        )
    return merged


def find_block(name: str) -> MoriCredentials | None:
    """The ``mori-credentials`` block ``name`` from the Prefect API, ``None`` if there is none."""
    from prefect.exceptions import ObjectNotFound

    from tasks.blocks import MoriCredentials

    try:
        block = in_sync(MoriCredentials.load, name)
    except ValueError as exc:  # Block.load's "Unable to find block document named ..."
        if isinstance(exc.__cause__, ObjectNotFound):
            return None
        raise
    return cast(MoriCredentials, block)
