"""Check MORI before a run plans anything, and say in one line what is wrong and how to fix it.

:func:`preflight` runs the client's :meth:`~mori.client.MoriClient.preflight` (a few unretried
requests with short timeouts, no side effects at MORI). A fault that no retry can fix ends the
run at once, before anything is planned: :class:`PreflightFailed` carries one line such as
``cannot resolve morimori.app (DNS): check MORI_API_URL and the network``. A passing fault at
MORI (a 429 or 5xx answer, a timeout, a dropped connection) does not: the run's own retries are
made for those, so :func:`preflight` returns a warning line and the run goes on.
"""

from __future__ import annotations

import httpx

from mori import errors
from mori.client import MoriClient, redact_url

__all__ = ["PreflightFailed", "describe", "is_transient", "preflight"]


class PreflightFailed(Exception):
    """MORI cannot be used as configured; ``str()`` is one line: the cause, then the fix."""

    def __init__(self, line: str, cause: errors.PreflightCause) -> None:
        super().__init__(line)
        self.cause = cause


def preflight(client: MoriClient) -> str | None:
    """Check MORI as ``client`` is configured: ``None`` when it answered as it should, a
    one-line warning when it met a passing fault; raises :class:`PreflightFailed` otherwise."""
    try:
        client.preflight()
    except errors.PreflightError as exc:
        line = describe(exc, client.base_url, client.generation)
        if is_transient(exc):
            return f"{line} (the run goes on; its retries handle a passing fault)"
        raise PreflightFailed(line, exc.cause) from exc
    return None


def is_transient(exc: errors.PreflightError) -> bool:
    """A fault a later attempt may not meet: a timeout, a dropped connection, 429 or 5xx."""
    return exc.passing


def describe(exc: errors.PreflightError, base_url: str, generation: str) -> str:
    """One line: what failed, where, and the fix (never a secret: the URL is redacted)."""
    url = httpx.URL(base_url)
    host = url.host or base_url
    address = f"{host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    where = redact_url(base_url).rstrip("/")
    cause = exc.cause
    if cause == "dns":
        return f"cannot resolve {host} (DNS): check MORI_API_URL and the network"
    if cause == "refused":
        return (
            f"{address} refused the connection: check MORI_API_URL (host and port) "
            "and that MORI runs there"
        )
    if cause == "tls":
        return (
            f"TLS handshake with {address} failed: check MORI_API_URL (https:// to a "
            "plain-HTTP server?) and the server's certificate"
        )
    if cause == "timeout":
        return f"MORI at {where} did not answer in time: check MORI_API_URL and the network"
    if cause == "unauthorized":
        return f"MORI at {where} rejected the credentials (401): {exc.fix}"
    if cause == "forbidden":
        return f"MORI at {where} refused these credentials the order API (403): {exc.fix}"
    if cause == "wrong_generation":
        return (
            f"MORI at {where} does not serve API generation {generation} (404 on its order "
            f"routes): {exc.fix}"
        )
    return " ".join(str(exc).split())
