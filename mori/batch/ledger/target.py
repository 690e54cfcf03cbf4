"""Where a ledger lives: a SQLite file or a PostgreSQL URL, and how to print it safely.

A target is a plain path or ``sqlite:///abs/path`` (SQLite), or ``postgresql://`` /
``postgres://`` (PostgreSQL, any libpq URL). :func:`redact` masks a URL's password (in the user
info and in a ``password=`` query parameter): use it wherever a target may be printed, logged or
raised in an exception.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from mori.batch.storage import is_s3
from mori.settings import Settings

__all__ = ["LedgerTarget", "ledger_location", "parse_target", "redact"]

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})
_MASK = "***"


@dataclass(frozen=True)
class LedgerTarget:
    """A parsed target: which backend, and the file or the URL (``url`` is secret-bearing)."""

    backend: Literal["sqlite", "postgresql"]
    path: Path | None = None
    url: str | None = None

    def __repr__(self) -> str:
        return f"LedgerTarget({self.describe()!r})"

    def describe(self) -> str:
        """The target, safe to print."""
        return str(self.path) if self.path is not None else redact(self.url or "")


def parse_target(target: str | Path) -> LedgerTarget:
    """The backend and location ``target`` names; ``ValueError`` for an unknown URL scheme."""
    if isinstance(target, Path):
        return LedgerTarget("sqlite", path=target)
    text = target.strip()
    match = _SCHEME.match(text)
    if match is None:
        return LedgerTarget("sqlite", path=Path(text).expanduser())
    scheme = match["scheme"].lower()
    if scheme in _POSTGRES_SCHEMES:
        return LedgerTarget("postgresql", url=text)
    if scheme == "sqlite":
        return LedgerTarget("sqlite", path=_sqlite_path(text))
    raise ValueError(
        f"unsupported ledger URL scheme {scheme!r} in {redact(text)!r}: use a path,"
        " sqlite:///abs/path or postgresql://..."
    )


def _sqlite_path(url: str) -> Path:
    """The file of ``sqlite:///abs/path`` (the host part must be empty)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.strip("/"):
        raise ValueError(f"expected sqlite:///absolute/path, got {redact(url)!r}")
    return Path("/" + unquote(parts.path).lstrip("/"))


def redact(url: str) -> str:
    """``url`` with its password masked (user info and ``password=``); other text unchanged."""
    match = _SCHEME.match(url)
    if match is None:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{match['scheme']}://{_MASK}"
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:{_MASK}@{hosts}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() == "password" for key, _ in pairs):
            query = urlencode(
                [(k, _MASK if k.lower() == "password" else v) for k, v in pairs], safe="*"
            )
    return parts._replace(netloc=netloc, query=query).geturl()


def ledger_location(audit_uri: str, settings: Settings, explicit: str | None = None) -> str:
    """The ledger a run with audit ``audit_uri`` uses.

    ``explicit`` first, then ``MORI_LEDGER_URL``, then ``MORI_LEDGER_PATH``; otherwise
    ``<audit>/ledger.sqlite`` for a local audit, and for an ``s3://`` audit a file of its own
    in the state folder, ``<state>/mori-pipeline/ledger-<sha256(audit)[:16]>.sqlite``.
    """
    if explicit:
        return explicit
    if settings.ledger_url:
        return settings.ledger_url
    if settings.ledger_path:
        return settings.ledger_path
    if not is_s3(audit_uri):
        return str(Path(audit_uri, "ledger.sqlite"))
    digest = hashlib.sha256(audit_uri.encode()).hexdigest()[:16]
    return str(settings.state_home / "mori-pipeline" / f"ledger-{digest}.sqlite")
