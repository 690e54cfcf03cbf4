"""Request parsing and validation: every problem becomes 400 ``INVALID_REQUEST`` naming it.

Each such error carries ``errors = {"propertyName": ..., "message": ...}`` for the first problem
found (``files[0].fileName``, ``orderName``, ``orderId``, ``body`` for the body as a whole).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

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

#: Longest ``name`` of a ``g3`` webhook.
MAX_WEBHOOK_NAME = 100


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class MixedFileSpec(_Wire):
    """One file of a ``g3`` create: uploaded (no URL) or fetched from ``originalFileUrl``."""

    file_name: str = Field(alias="fileName")
    original_file_url: str | None = Field(
        default=None,
        alias="originalFileUrl",
        validation_alias=AliasChoices("originalFileUrl", "url", "fileUrl"),
    )


class MixedCreateRequest(_Wire):
    """A ``POST /api/v2/orders/anti-ai`` body (its ``idempotencyKey`` is read separately)."""

    files: list[MixedFileSpec]
    order_name: str | None = Field(default=None, alias="orderName")
    options: dict[str, Any] | None = None


def invalid(message: str, property_name: str = "body", detail: str | None = None) -> ApiError:
    """A 400 ``INVALID_REQUEST`` error naming ``property_name`` (``detail``: its own message)."""
    errors = {"propertyName": property_name, "message": detail or message}
    return ApiError(400, "INVALID_REQUEST", message, errors=errors)


def parse_json(raw: bytes) -> Any:
    """The JSON value of a request body."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid(f"request body is not valid JSON: {exc}") from exc


def json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body (400 for anything else)."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body


def body_idempotency_key(raw: bytes) -> str | None:
    """The body's ``idempotencyKey`` (G2/G3 style), if the body is a JSON object holding one."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return idempotency_key_of(body)


def idempotency_key_of(body: Any) -> str | None:
    """``body["idempotencyKey"]`` when ``body`` is an object holding a non-empty string there."""
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


def mixed_request(body: Any, allowlist: frozenset[str]) -> MixedCreateRequest:
    """A valid ``g3`` create body: files to upload and files by URL (on ``allowlist``)."""
    request = _model(MixedCreateRequest, body)
    _check_files([f.file_name for f in request.files])
    _check_order_name(request.order_name)
    for index, spec in enumerate(request.files):
        if spec.original_file_url is not None:
            _check_url(f"files[{index}].originalFileUrl", spec.original_file_url, allowlist)
    return request


def confirm_request(body: Any) -> ConfirmRequest:
    """A valid confirm body (``{"orderId": ...}``)."""
    request = _model(ConfirmRequest, body)
    if not request.order_id.strip():
        raise invalid("orderId must not be empty", "orderId")
    return request


def webhook_url(body: Any) -> str:
    """The ``url`` of a webhook registration body (an absolute http(s) URL)."""
    url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not _is_http_url(url):
        raise invalid("url must be an absolute http(s) URL", "url")
    return url


def webhook_name(body: Any) -> str | None:
    """The optional ``name`` of a ``g3`` webhook registration (at most 100 characters)."""
    name = body.get("name") if isinstance(body, dict) else None
    if name is None:
        return None
    if not isinstance(name, str):
        raise invalid("name must be a string", "name")
    if len(name) > MAX_WEBHOOK_NAME:
        detail = f"must be at most {MAX_WEBHOOK_NAME} characters, got {len(name)}"
        raise invalid(f"name {detail}", "name", detail)
    return name


def login_request(body: Any) -> tuple[str, str]:
    """The ``email`` and ``password`` of a login body."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    for name in ("email", "password"):
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise invalid(f"{name} is required and must be a non-empty string", name)
    return body["email"], body["password"]


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
        errors = exc.errors()
        problems = "; ".join(_describe(error) for error in errors[:5])
        first = errors[0]
        raise invalid(
            f"invalid request body: {problems}", _property(first["loc"]), first["msg"]
        ) from exc


def _property(loc: Sequence[Any]) -> str:
    """A pydantic error location as ``files[0].fileName`` (``body`` for the whole body)."""
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return where.lstrip(".") or "body"


def _describe(error: Any) -> str:
    """One pydantic error as ``files[0].fileName: Field required``."""
    return f"{_property(error['loc'])}: {error['msg']}"


def _check_files(names: Sequence[str]) -> None:
    """1..100 files, each a plain file name with an allowed extension."""
    if not 1 <= len(names) <= MAX_FILES_PER_ORDER:
        detail = f"must hold 1 to {MAX_FILES_PER_ORDER} items, got {len(names)}"
        raise invalid(f"files {detail}", "files", detail)
    for index, name in enumerate(names):
        where = f"files[{index}].fileName"
        if not name.strip():
            raise invalid(f"{where} must not be empty", where, "must not be empty")
        if "/" in name or "\\" in name:
            detail = f"must be a file name without a path: {name!r}"
            raise invalid(f"{where} {detail}", where, detail)
        extension = name.rsplit(".", 1)[1].lower() if "." in name else ""
        if extension not in ALLOWED_EXTENSIONS:
            allowed = ", ".join(sorted(ALLOWED_EXTENSIONS))
            detail = f"{name!r} has an unsupported extension (allowed: {allowed})"
            raise invalid(f"{where} {detail}", where, detail)


def _check_order_name(name: str | None) -> None:
    """``orderName`` of at most 64 characters."""
    if name is not None and len(name) > MAX_ORDER_NAME:
        detail = f"must be at most {MAX_ORDER_NAME} characters, got {len(name)}"
        raise invalid(f"orderName {detail}", "orderName", detail)


def _check_url(where: str, url: str, allowlist: frozenset[str]) -> None:
    """An absolute http(s) URL whose host (or host:port) is on the allowlist."""
    if not _is_http_url(url):
        detail = "must be an absolute http(s) URL"
        raise invalid(f"{where} {detail}", where, detail)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    host_port = f"{host}:{parts.port}" if parts.port is not None else host
    allowed = {entry.lower() for entry in allowlist}
    if host not in allowed and host_port not in allowed:
        detail = f"host {host_port} not allowed"
        raise invalid(f"{where}: {detail}", where, detail)


def _is_http_url(url: str) -> bool:
    """Whether ``url`` is an absolute http(s) URL with a host and a valid port."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
