"""The ``mori-pipeline emulator`` command's arguments turned into an :class:`EmulatorConfig`."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from mori.emulator.config import EmulatorConfig

DEFAULT_API_KEY = "test-key"


def parse_logins(entries: Iterable[str]) -> dict[str, str]:
    """``EMAIL:PASSWORD`` entries (split at the first ``:``) as email -> password.

    The ``ValueError`` for a bad entry never repeats it: it holds a password.
    """
    logins: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        email, colon, password = entry.partition(":")
        if not (colon and email.strip() and password):
            raise ValueError(f"--login #{number} is not EMAIL:PASSWORD")
        logins[email.strip()] = password
    return logins


def config_from_args(
    args: argparse.Namespace, default_api_key: str | None = None
) -> EmulatorConfig:
    """The emulator settings the command line asks for; without ``--api-key`` it accepts
    ``default_api_key`` (the client's key, so both sides agree), else ``test-key``. Its S3
    endpoint is boto3's (``AWS_ENDPOINT_URL``).

    ``ValueError`` for settings that cannot work.
    """
    api_keys = args.api_key or [default_api_key or DEFAULT_API_KEY]
    return EmulatorConfig(
        api_keys=frozenset(api_keys),
        logins=parse_logins(args.login),
        token_ttl=args.token_ttl,
        usage_limit=args.usage_limit,
        enforce_usage_limit=args.enforce_usage_limit,
        generation=args.generation,
        processing_mode=args.processing_mode,
        rpm=args.rpm,
        processing_seconds=args.processing_seconds,
        faults=args.faults,
        seed=args.seed,
        url_allowlist=frozenset(args.allow_url_host),
    )
