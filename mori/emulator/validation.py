"""Request parsing and validation: every problem becomes 400 ``INVALID_REQUEST`` naming it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from mori.emulator.responses import ApiError
from mori.models import (
    ALLOWED_EXTENSIONS,
    MAX_FILES_PER_ORDER,
    MAX_ORDER_NAME,
    ConfirmRequest,
    CreateOrderRequest,
    CreateUrlOrderRequest,
)

ModelT = TypeVar("ModelT", bound=BaseModel)


def invalid(message: str) -> ApiError:
    """A 400 ``INVALID_REQUEST`` error."""
    return ApiError(400, "INVALID_REQUEST", message)


def parse_json(raw: bytes) -> Any:
    """The JSON value of a request body."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid(f"request body is not valid JSON: {exc}") from exc


def body_idempotency_key(raw: bytes) -> str | None:
    """The body's ``idempotencyKey`` (G2/G3 style), if the body is a JSON object holding one."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    key = body.get("idempotencyKey") if isinstance(body, dict) else None
    return key if isinstance(key, str) and key else None


def create_request(body: Any) -> CreateOrderRequest:
    """A valid ``POST /api/v2/orders`` body."""
    request = _model(CreateOrderRequest, body)
    _check_files([f.file_name for f in request.files])
    _check_order_name(request.order_name)
    return request


def url_request(body: Any, allowlist: frozenset[str]) -> CreateUrlOrderRequest:
    """A valid ``POST /api/v2/orders/with-urls`` body whose URLs are all on ``allowlist``."""
    request = _model(CreateUrlOrderRequest, body)
    _check_files([f.file_name for f in request.files])
    _check_order_name(request.order_name)
    for index, spec in enumerate(request.files):
        _check_url(f"files[{index}].originalFileUrl", spec.original_file_url, allowlist)
    return request


def confirm_request(body: Any) -> ConfirmRequest:
    """A valid ``POST /api/v2/orders/confirm`` body."""
    request = _model(ConfirmRequest, body)
    if not request.order_id.strip():
        raise invalid("orderId must not be empty")
    return request


def webhook_url(body: Any) -> str:
    """The ``url`` of a ``POST /api/v2/webhook`` body (an absolute http(s) URL)."""
    url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not _is_http_url(url):
        raise invalid("url must be an absolute http(s) URL")
    return url


def order_name(requested: str | None, now: float) -> str:
    """The requested name, or MORI's default ``anti_ai_YYYY-MM-DD``."""
    if requested:
        return requested
    return "anti_ai_" + datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def _model(model: type[ModelT], body: Any) -> ModelT:
    """``body`` validated as ``model``."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors()[:5])
        raise invalid(f"invalid request body: {problems}") from exc


def _describe(error: Any) -> str:
    """One pydantic error as ``files[0].fileName: Field required``."""
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    return f"{where.lstrip('.') or 'body'}: {error['msg']}"


def _check_files(names: Sequence[str]) -> None:
    """1..100 files, each a plain file name with an allowed extension."""
    if not 1 <= len(names) <= MAX_FILES_PER_ORDER:
        raise invalid(f"files must hold 1 to {MAX_FILES_PER_ORDER} items, got {len(names)}")
    for index, name in enumerate(names):
        where = f"files[{index}].fileName"
        if not name.strip():
            raise invalid(f"{where} must not be empty")
        if "/" in name or "\\" in name:
            raise invalid(f"{where} must be a file name without a path: {name!r}")
        extension = name.rsplit(".", 1)[1].lower() if "." in name else ""
        if extension not in ALLOWED_EXTENSIONS:
            allowed = ", ".join(sorted(ALLOWED_EXTENSIONS))
            raise invalid(f"{where} {name!r} has an unsupported extension (allowed: {allowed})")


def _check_order_name(name: str | None) -> None:
    """``orderName`` of at most 64 characters."""
    if name is not None and len(name) > MAX_ORDER_NAME:
        raise invalid(f"orderName must be at most {MAX_ORDER_NAME} characters, got {len(name)}")


def _check_url(where: str, url: str, allowlist: frozenset[str]) -> None:
    """An absolute http(s) URL whose host (or host:port) is on the allowlist."""
    if not _is_http_url(url):
        raise invalid(f"{where} must be an absolute http(s) URL")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    host_port = f"{host}:{parts.port}" if parts.port is not None else host
    allowed = {entry.lower() for entry in allowlist}
    if host not in allowed and host_port not in allowed:
        raise invalid(f"{where}: host {host_port} not allowed")


def _is_http_url(url: str) -> bool:
    """Whether ``url`` is an absolute http(s) URL with a host and a valid port."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
