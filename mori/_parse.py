"""Reading MORI's answers: the envelope, error bodies with their details, typed ``data``.

Liberal on purpose. A success may come as ``{success, message, data, meta}``, as a bare
``{data}``, or as the object itself with no ``data`` key. A failure is a non-2xx status or
``"success": false``; its ``code`` and ``message`` may sit at the top level or under ``error``,
and its ``errors`` may be one object, a list of objects or a list of strings (a list-valued
``message``, as some frameworks send, is read as details too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

import httpx
import pydantic
from pydantic import BaseModel

from mori import errors
from mori._redact import redact_text, redact_url

__all__ = ["body_of", "check_presigned", "data_of", "error_code", "status_error", "validate"]

M = TypeVar("M", bound=BaseModel)

_ENVELOPE_KEYS = frozenset({"success", "message", "meta"})
_MAX_DETAILS = 20
_MAX_TEXT = 500
_S3_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


def body_of(response: httpx.Response) -> Any:
    """The response's JSON value, or ``None`` when it is empty or not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def is_failure(response: httpx.Response, body: Any) -> bool:
    """A non-2xx status, or a body saying ``"success": false``."""
    return not response.is_success or (isinstance(body, dict) and body.get("success") is False)


def data_of(body: Any) -> Any:
    """A success body's payload: ``data`` when present, else the body without envelope keys."""
    if not isinstance(body, dict):
        return body
    if "data" in body:
        return body["data"]
    rest = {k: v for k, v in body.items() if k not in _ENVELOPE_KEYS}
    return rest or None


def error_code(body: Any) -> str | None:
    """The error body's ``code`` (top level or under ``error``), if it has one."""
    if not isinstance(body, dict):
        return None
    nested = body.get("error")
    for source in (body, nested if isinstance(nested, dict) else {}):
        code = source.get("code")
        if isinstance(code, str) and code:
            return code
    return None


def _text(value: object) -> str | None:
    """A non-empty string field, shortened to a sane length."""
    if isinstance(value, str) and value.strip():
        return value.strip()[:_MAX_TEXT]
    return None


def _detail(item: object) -> errors.ErrorDetail | None:
    """One entry of ``errors``: an object (``message``, ``propertyName``, ``code``) or a string."""
    if isinstance(item, str):
        return errors.ErrorDetail(message=_text(item)) if _text(item) else None
    if not isinstance(item, dict):
        return None
    prop = next(
        (_text(item.get(k)) for k in ("propertyName", "property", "field", "path") if item.get(k)),
        None,
    )
    detail = errors.ErrorDetail(_text(item.get("message")), prop, _text(item.get("code")))
    return detail if detail.message or detail.code or detail.property_name else None


def _details(*sources: object) -> list[errors.ErrorDetail]:
    """Every detail found in ``sources`` (each one object, a list, or absent)."""
    found: list[errors.ErrorDetail] = []
    for source in sources:
        items = source if isinstance(source, list) else [source] if source is not None else []
        found.extend(d for d in map(_detail, items) if d is not None)
    return found[:_MAX_DETAILS]


def status_error(
    response: httpx.Response,
    body: Any,
    *,
    endpoint: str,
    key: str | None,
    secrets: Iterable[str | None],
) -> errors.APIStatusError:
    """The :mod:`mori.errors` class for a failed answer, with MORI's code, message and details
    (every text redacted: URLs lose their query strings, ``secrets`` are masked)."""
    envelope: dict[str, Any] = body if isinstance(body, dict) else {}
    error = envelope.get("error")
    nested: dict[str, Any] = error if isinstance(error, dict) else {}
    raw_message = envelope.get("message") or nested.get("message")
    listed = raw_message if isinstance(raw_message, list) else None
    message = _text(raw_message) or _text(envelope.get("error"))
    if not message:
        message = response.reason_phrase or "error"
        if not isinstance(body, dict):
            message += " (non-JSON response body)"
    details = _details(envelope.get("errors"), nested.get("errors"), listed)
    secrets = tuple(secrets)
    clean = [
        errors.ErrorDetail(
            redact_text(d.message, secrets) if d.message else None,
            redact_text(d.property_name, secrets) if d.property_name else None,
            d.code,
        )
        for d in details
    ]
    cls = errors.error_class_for(response.status_code)
    return cls(
        redact_text(message, secrets),
        status_code=response.status_code,
        code=error_code(body),
        idempotency_key=key,
        endpoint=endpoint,
        details=clean,
    )


def validate(
    model: type[M],
    data: Any,
    *,
    endpoint: str,
    status_code: int,
    key: str | None = None,
) -> M:
    """``data`` as ``model``, or :class:`~mori.errors.UnexpectedResponseError` naming the field
    paths that failed (never their values: they may hold presigned URLs)."""
    try:
        return model.model_validate(data if data is not None else {})
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<data>'}: {e['type']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise errors.UnexpectedResponseError(
            f"unexpected response data ({problems})",
            endpoint=endpoint,
            status_code=status_code,
            idempotency_key=key,
        ) from None


def check_presigned(response: httpx.Response, method: str, url: str) -> None:
    """Raise the presigned-URL error of a failing storage answer (S3's ``<Code>`` kept)."""
    if response.is_success:
        return
    status = response.status_code
    match = _S3_CODE.search(response.content[:4096])
    detail = f" {match.group(1).decode()}" if match else ""
    message = f"{method} {redact_url(url)} failed: HTTP {status}{detail}"
    if status == 403:
        raise errors.URLExpiredError(message, status_code=status)
    raise errors.PresignedURLError(message, status_code=status)
