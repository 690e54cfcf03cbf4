"""Presigned-style storage URLs: ``{base}/_s3/{kind}/{key}?expires=<unix>&sig=<hmac>``.

The signature is an HMAC-SHA256, under a per-process secret, of the method, the storage path
and the expiry; expiry is judged by the emulator's clock. Failures answer like S3: 403 with an
XML ``<Error>`` body.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape

UPLOAD = "upload"
RESULT = "result"


class S3Error(Exception):
    """An S3-style failure of a presigned request."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def xml(self) -> str:
        """The S3 error document."""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(self.code)}</Code><Message>{escape(self.message)}</Message>"
            "</Error>"
        )


class Presigner:
    """Issues and checks presigned URLs for uploads (PUT) and results (GET)."""

    def __init__(self, clock: Callable[[], float], secret: bytes | None = None) -> None:
        self._clock = clock
        self._secret = secret or secrets.token_bytes(32)

    def url(self, base: str, kind: str, key: str, method: str, ttl: float) -> tuple[str, int]:
        """A URL for ``method`` on ``{kind}/{key}`` valid ``ttl`` seconds, and its expiry."""
        expires = int(self._clock() + ttl)
        query = urlencode({"expires": expires, "sig": self._sign(method, kind, key, expires)})
        return f"{base.rstrip('/')}/_s3/{kind}/{quote(key)}?{query}", expires

    def check(self, method: str, kind: str, key: str, expires: str | None, sig: str | None) -> None:
        """Raise :class:`S3Error` unless the signature is right and the URL has not expired."""
        if not expires or not sig or not expires.isdigit():
            raise S3Error("AccessDenied", "Query-string authentication requires expires and sig")
        expected = self._sign(method, kind, key, int(expires))
        if not hmac.compare_digest(expected, sig):
            raise S3Error(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided",
            )
        if self._clock() > int(expires):
            raise S3Error("AccessDenied", "Request has expired")

    def _sign(self, method: str, kind: str, key: str, expires: int) -> str:
        """Hex HMAC of the signed fields."""
        message = f"{method.upper()}\n{kind}/{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
