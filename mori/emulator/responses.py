"""Wire helpers: MORI's error envelope and JSON with MORI-style timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from mori.models import ErrorEnvelope, envelope, iso_ms


class ApiError(Exception):
    """An API failure answered as ``{"success": false, "message": ..., "code": ...}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> Response:
        """The error as an HTTP response."""
        body = ErrorEnvelope(message=self.message, code=self.code).model_dump(by_alias=True)
        return json_response(body, self.status, self.headers)


def timestamp(seconds: float) -> datetime:
    """An aware UTC datetime from seconds since the epoch."""
    return datetime.fromtimestamp(seconds, UTC)


def wire(model: BaseModel) -> dict[str, Any]:
    """``model`` as wire JSON: aliases, no ``None`` fields, timestamps as ``...sss Z``."""
    body: dict[str, Any] = _with_iso_times(model.model_dump(by_alias=True, exclude_none=True))
    return body


def _with_iso_times(value: Any) -> Any:
    """``value`` with every datetime rendered by :func:`mori.models.iso_ms`."""
    if isinstance(value, datetime):
        return iso_ms(value)
    if isinstance(value, dict):
        return {k: _with_iso_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_iso_times(v) for v in value]
    return value


def dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON, exactly as MORI sends it."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response with compact UTF-8 serialisation."""
    return Response(dumps(body), status, headers, media_type="application/json")


def success(data: BaseModel | dict[str, Any] | None, message: str = "ok") -> dict[str, Any]:
    """The success envelope around ``data`` (models serialised with :func:`wire`)."""
    return envelope(wire(data) if isinstance(data, BaseModel) else data, message)
