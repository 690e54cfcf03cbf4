"""Wire helpers: MORI's envelopes (per generation) and JSON with MORI-style timestamps.

``g1`` wraps answers as ``{"success": true, "message": ..., "data": ...}`` and failures as
``{"success": false, "message": ..., "code": ...}``; ``g3`` answers ``{"data": ...}`` and fails
with ``{"code": ..., "message": ...}``. Either failure may carry ``errors``
(``{"propertyName": ..., "message": ...}``) naming the first problem of a request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from mori.emulator.config import Generation
from mori.models import iso_ms


class ApiError(Exception):
    """An API failure, answered in the error envelope of the emulator's generation."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.errors = dict(errors) if errors else None

    def body(self, generation: Generation = "g1") -> dict[str, Any]:
        """The error body in ``generation``'s envelope."""
        body: dict[str, Any] = (
            {"success": False, "message": self.message, "code": self.code}
            if generation == "g1"
            else {"code": self.code, "message": self.message}
        )
        if self.errors:
            body["errors"] = self.errors
        return body

    def response(self, generation: Generation = "g1") -> Response:
        """The error as an HTTP response."""
        return json_response(self.body(generation), self.status, self.headers)


def timestamp(seconds: float) -> datetime:
    """An aware UTC datetime from seconds since the epoch."""
    return datetime.fromtimestamp(seconds, UTC)


def iso(seconds: float) -> str:
    """Seconds since the epoch as MORI writes timestamps (``...T12:00:00.000Z``)."""
    return iso_ms(timestamp(seconds))


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


def answer(
    generation: Generation,
    data: BaseModel | dict[str, Any] | list[Any] | None,
    message: str = "ok",
) -> dict[str, Any]:
    """A success body in ``generation``'s envelope (``g3``: ``{"data": ...}`` only)."""
    payload = wire(data) if isinstance(data, BaseModel) else data
    if generation == "g1":
        body: dict[str, Any] = {"success": True, "message": message}
        if payload is not None:
            body["data"] = payload
        return body
    return {"data": payload}
