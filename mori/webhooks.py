"""Webhook signatures: ``X-Mori-Signature`` = lowercase hex HMAC-SHA256(secret, raw body).

MORI signs the exact bytes it sends (no timestamp, no prefix, no version tag). Verify the raw
body *before* parsing it: a re-serialised body does not match.
"""

from __future__ import annotations

import hashlib
import hmac

from mori.errors import SignatureVerificationError

SIGNATURE_HEADER = "X-Mori-Signature"


def sign(body: bytes, secret: str) -> str:
    """The lowercase hex HMAC-SHA256 of ``body`` keyed with ``secret``."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str | None, secret: str) -> None:
    """Raise :class:`SignatureVerificationError` unless ``signature`` signs ``body``.

    The comparison is constant-time and case-insensitive in the hex digits.
    """
    if not signature:
        raise SignatureVerificationError(f"missing {SIGNATURE_HEADER} header")
    expected = sign(body, secret)
    if not hmac.compare_digest(expected.encode("ascii"), signature.strip().lower().encode()):
        raise SignatureVerificationError("webhook signature does not match the body")


def is_valid(body: bytes, signature: str | None, secret: str) -> bool:
    """``True`` when ``signature`` signs ``body``."""
    try:
        verify(body, signature, secret)
    except SignatureVerificationError:
        return False
    return True
