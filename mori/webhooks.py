"""Webhook deliveries: signature checks and event parsing, for both API generations.

The signature is the lowercase hex HMAC-SHA256 of the exact raw body, keyed with the UTF-8
bytes of the whole secret string (a G3 secret keeps its ``whsec_`` prefix in the key), sent as
``X-Mori-Signature`` (G1) or ``X-MoriBiz-Signature`` (G3). No timestamp, no prefix, no version
tag. Verify the raw body *before* parsing it: a re-serialised body does not match.

:func:`parse_event` reads either generation's event into one :class:`~mori.models.WebhookEvent`:
G1 ``ORDER.ANTI_AI.PROCESSED`` / ``ORDER.PROCESSED`` carry ``data.status`` (complete or failed);
G3 ``order.antiAi.completed`` / ``order.antiAi.failed`` may leave it out, and it is then taken
from the type. Other types (other products, future events) parse too, with
``is_order_finished`` false.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import pydantic

from mori.errors import InvalidEventError, SignatureVerificationError
from mori.models import WebhookEvent
from mori.settings import Generation

__all__ = [
    "G3_SIGNATURE_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_HEADERS",
    "is_valid",
    "parse_event",
    "sign",
    "verify",
    "verify_request",
]

SIGNATURE_HEADER = "X-Mori-Signature"
G3_SIGNATURE_HEADER = "X-MoriBiz-Signature"
#: The signature header of each generation.
SIGNATURE_HEADERS: dict[str, str] = {"g1": SIGNATURE_HEADER, "g3": G3_SIGNATURE_HEADER}
#: ``data.status`` of an event that has none and whose type names no outcome.
UNKNOWN_STATUS = "unknown"
_TYPE_STATUS = {"completed": "complete", "failed": "failed"}


def sign(body: bytes, secret: str) -> str:
    """The lowercase hex HMAC-SHA256 of ``body`` keyed with ``secret``."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str | None, secret: str, header: str = SIGNATURE_HEADER) -> None:
    """Raise :class:`SignatureVerificationError` unless ``signature`` signs ``body``.

    The comparison is constant-time and case-insensitive in the hex digits.
    """
    if not signature:
        raise SignatureVerificationError(f"missing {header} header")
    expected = sign(body, secret)
    given = signature.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(expected.encode("ascii"), given):
        raise SignatureVerificationError("webhook signature does not match the body")


def is_valid(body: bytes, signature: str | None, secret: str) -> bool:
    """``True`` when ``signature`` signs ``body``."""
    try:
        verify(body, signature, secret)
    except SignatureVerificationError:
        return False
    return True


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]``, matching the name case-insensitively (plain dicts included)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def verify_request(
    body: bytes, headers: Mapping[str, str], secret: str, generation: Generation = "g1"
) -> None:
    """Raise :class:`SignatureVerificationError` unless the generation's signature header in
    ``headers`` signs the raw ``body`` with ``secret``."""
    name = SIGNATURE_HEADERS.get(generation)
    if name is None:
        raise ValueError(f"unknown API generation {generation!r}")
    verify(body, _header(headers, name), secret, name)


def _status_of(event_type: str, data: Mapping[str, Any]) -> object:
    """``data.status``; without one, what the type's last word says (``completed`` ->
    ``complete``, ``failed`` -> ``failed``), else ``unknown``."""
    status = data.get("status")
    if status is not None:
        return status
    return _TYPE_STATUS.get(event_type.rsplit(".", 1)[-1].lower(), UNKNOWN_STATUS)


def parse_event(body: bytes) -> WebhookEvent:
    """Either generation's event as a :class:`~mori.models.WebhookEvent` (``eventId`` is
    required); :class:`~mori.errors.InvalidEventError` when it is not one."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidEventError("the webhook body is not JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
        raise InvalidEventError("the webhook body is not an event object with data")
    event_type = raw.get("eventType", raw.get("type"))
    if not isinstance(event_type, str):
        raise InvalidEventError("the webhook event has no eventType")
    data = {**raw["data"], "status": _status_of(event_type, raw["data"])}
    try:
        return WebhookEvent.model_validate({**raw, "eventType": event_type, "data": data})
    except pydantic.ValidationError as exc:
        fields = ", ".join(
            ".".join(str(p) for p in e["loc"]) or "<event>"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise InvalidEventError(f"the webhook event is missing or has invalid: {fields}") from None
