"""Keeping secrets out of messages and logs: URL redaction and the ``httpx`` log filter.

A presigned URL's signature lives in its query string, so every URL that could reach an
exception message or a log record goes through :func:`redact_url` first. httpx itself logs full
request URLs at INFO, and httpcore logs response headers (an ``accessToken`` among them) at
DEBUG: :func:`install_log_filters` (called when the first client is built, idempotent) adds a
:class:`RedactingFilter` to those loggers.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

import httpx

__all__ = ["RedactingFilter", "install_log_filters", "redact_text", "redact_url"]

_URL_IN_TEXT = re.compile(r"(?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+)")
#: A credential-bearing header as httpcore's debug log prints it: ``(b'accessToken', b'...')``.
_SECRET_HEADER = re.compile(
    r"(\(b'(?:accesstoken|authorization|proxy-authorization|set-cookie|cookie|"
    r"x-amz-security-token)', b')[^']*(')",
    re.IGNORECASE,
)
#: Loggers that print URLs or headers: httpx's request lines, httpcore's traces.
LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_install_lock = threading.Lock()


def redact_url(url: str | httpx.URL) -> str:
    """``scheme://host[:port]/path`` of ``url``: user info, query string and fragment dropped.

    Use it wherever a URL could be formatted into a message or log record; a presigned URL's
    signature lives in its query string.
    """
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url))
        host = parsed.host
        if ":" in host:
            host = f"[{host}]"
        port = f":{parsed.port}" if parsed.port is not None else ""
        if not parsed.scheme:
            return parsed.path
        return f"{parsed.scheme}://{host}{port}{parsed.path}"
    except Exception:  # never let redaction itself leak the input
        return "<unparseable URL>"


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every embedded URL redacted and each of ``secrets`` masked as ``***``."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group("url")), text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Redact URLs and credential headers in records of the httpx and httpcore loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's URL arguments, URLs and secret headers in it; keep the record."""
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args
            )
        if isinstance(record.msg, str):
            if "://" in record.msg:
                record.msg = redact_text(record.msg)
            if "(b'" in record.msg:
                record.msg = _SECRET_HEADER.sub(r"\1***\2", record.msg)
        return True


def install_log_filters() -> None:
    """Add a :class:`RedactingFilter` to each of :data:`LOGGERS` that has none yet."""
    with _install_lock:
        for name in LOGGERS:
            target = logging.getLogger(name)
            if not any(isinstance(f, RedactingFilter) for f in target.filters):
                target.addFilter(RedactingFilter())
