"""The ``mori-pipeline emulator`` command's arguments turned into an :class:`EmulatorConfig`."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping

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


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> EmulatorConfig:
    """The emulator settings the command line (and ``MORI_API_KEY``, ``AWS_ENDPOINT_URL``) ask for.

    ``ValueError`` for settings that cannot work.
    """
    api_keys = args.api_key or [environ.get("MORI_API_KEY") or DEFAULT_API_KEY]
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
        s3_endpoint_url=environ.get("AWS_ENDPOINT_URL"),
    )
