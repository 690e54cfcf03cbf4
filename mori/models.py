"""Typed models of the MORI API's JSON, for both generations (G1 and G3).

Field names follow the wire format (camelCase) through aliases; Python code uses snake_case.
Parsing is liberal: unknown fields are ignored, ids may be strings or numbers (always ``str``
here), a created order's files may be called ``files`` or ``orderFiles``, and an order status
the SDK does not know is kept as it came (and logged once) rather than rejected. Requests are
strict: :func:`wire` dumps only the fields that were set, by alias. The emulator builds its
responses from these same models, which keeps client and emulator consistent.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

logger = logging.getLogger("mori.models")

#: The order statuses MORI documents.
KnownOrderStatus = Literal["pending", "inProgress", "complete", "failed", "expired"]
#: An order status as MORI sent it: one of :data:`KNOWN_ORDER_STATUSES`, or a value the SDK
#: does not know, which callers treat as "still in progress, keep waiting".
OrderStatus = str
KNOWN_ORDER_STATUSES: frozenset[str] = frozenset(get_args(KnownOrderStatus))

#: File extensions MORI accepts (lower case, without the dot).
ALLOWED_EXTENSIONS: frozenset[str] = frozenset({"jpeg", "jpg", "png", "webp", "tiff", "bmp"})
MAX_FILES_PER_ORDER = 100
MAX_ORDER_NAME = 64

#: G1's two names for "an order finished" (its ``data.status`` says complete or failed).
PROCESSED_EVENT_TYPES: frozenset[str] = frozenset({"ORDER.ANTI_AI.PROCESSED", "ORDER.PROCESSED"})
#: G3's names for "an Anti-AI order finished" (the type says how: completed or failed).
G3_ORDER_EVENT_TYPES: frozenset[str] = frozenset({"order.antiAi.completed", "order.antiAi.failed"})

_warned_statuses: set[str] = set()
_warned_lock = threading.Lock()
_MAX_WARNED = 256


def _as_id(value: object) -> object:
    """An id sent as a number or a string, as a string (booleans are not ids)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _wire_id(value: str) -> int | str:
    """A numeric id back as the number MORI sends; any other id as the string it was."""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else value


def _time_or_none(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """A timestamp, or ``None`` when MORI sent one this SDK cannot read (never an error)."""
    try:
        return handler(value)
    except ValidationError:
        return None


#: A timestamp that never fails parsing (unreadable values become ``None``).
Timestamp = Annotated[datetime | None, WrapValidator(_time_or_none)]
#: An id MORI sends as a string or a number (order ids, webhook ids): always ``str`` here.
Id = Annotated[str, BeforeValidator(_as_id)]
#: A file id: ``str`` here, a number again on the wire when it is numeric.
FileId = Annotated[str, BeforeValidator(_as_id), PlainSerializer(_wire_id)]


def note_status(status: str) -> str:
    """``status`` unchanged; an unknown value is logged once per process (then kept)."""
    if status in KNOWN_ORDER_STATUSES:
        return status
    with _warned_lock:
        first = status not in _warned_statuses and len(_warned_statuses) < _MAX_WARNED
        if first:
            _warned_statuses.add(status)
    if first:
        logger.warning(
            "MORI sent an order status this SDK does not know (%r): treated as in progress",
            status[:40],
        )
    return status


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        """A ``null`` field reads as a missing one (its default applies)."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class _StatusModel(_Model):
    """A model with an order ``status`` that accepts values the SDK does not know."""

    @field_validator("status", mode="after", check_fields=False)
    @classmethod
    def _known_or_noted(cls, value: str | None) -> str | None:
        return note_status(value) if value is not None else None


def iso_ms(dt: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as MORI writes timestamps."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def wire(model: BaseModel) -> dict[str, Any]:
    """``model`` as wire JSON (camelCase aliases, ``None`` fields omitted)."""
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


# -- requests ---------------------------------------------------------------------------------


class FileSpec(_Model):
    """One file of a create-order request."""

    file_name: str = Field(alias="fileName")


class UrlFileSpec(_Model):
    """One file of a create-with-urls request: MORI fetches ``original_file_url`` itself."""

    file_name: str = Field(alias="fileName")
    original_file_url: str = Field(
        alias="originalFileUrl", validation_alias=AliasChoices("originalFileUrl", "url", "fileUrl")
    )


class MixedFileSpec(_Model):
    """One file of a G3 create request: uploaded (no URL) or fetched by MORI (with a URL)."""

    file_name: str = Field(alias="fileName")
    original_file_url: str | None = Field(
        default=None,
        alias="originalFileUrl",
        validation_alias=AliasChoices("originalFileUrl", "url", "fileUrl"),
    )


class CreateOrderRequest(_Model):
    files: list[FileSpec]
    order_name: str | None = Field(default=None, alias="orderName")
    options: dict[str, Any] | None = None


class CreateUrlOrderRequest(_Model):
    files: list[UrlFileSpec]
    order_name: str | None = Field(default=None, alias="orderName")
    options: dict[str, Any] | None = None


class ConfirmRequest(_Model):
    order_id: str = Field(alias="orderId")


class AntiAiCreateRequest(_Model):
    """G3 ``POST /api/v2/orders/anti-ai``: the idempotency key travels in the body."""

    idempotency_key: str = Field(alias="idempotencyKey")
    files: list[MixedFileSpec]
    order_name: str | None = Field(default=None, alias="orderName")
    options: dict[str, Any] | None = None


class AntiAiConfirmRequest(_Model):
    """G3 ``POST /api/v2/orders/anti-ai/confirm``."""

    idempotency_key: str = Field(alias="idempotencyKey")
    order_id: str = Field(alias="orderId")


class WebhookCreateRequest(_Model):
    """G3 ``POST /api/v2/orders/webhooks``."""

    url: str
    name: str | None = None


class LoginRequest(_Model):
    """``POST /api/v2/auth/login`` (G1 integration guide)."""

    email: str
    password: str = Field(repr=False)


# -- responses --------------------------------------------------------------------------------


class OrderFile(_Model):
    """A file of a created order, with the presigned URL to PUT its bytes to."""

    file_id: FileId | None = Field(default=None, alias="fileId")
    file_name: str | None = Field(default=None, alias="fileName")
    upload_url: str | None = Field(default=None, alias="uploadUrl", repr=False)
    file_key: str | None = Field(default=None, alias="fileKey")
    original_file_url: str | None = Field(default=None, alias="originalFileUrl", repr=False)


class CreatedOrder(_StatusModel):
    """``data`` of a create call (G1 ``/orders`` and ``/orders/with-urls``, G3 ``/anti-ai``)."""

    order_id: Id = Field(alias="orderId")
    order_name: str | None = Field(default=None, alias="orderName")
    status: OrderStatus | None = None
    files: list[OrderFile] = Field(
        default_factory=list, validation_alias=AliasChoices("files", "orderFiles")
    )


class ConfirmedOrder(_StatusModel):
    """``data`` of a confirm call."""

    order_id: Id = Field(alias="orderId")
    status: OrderStatus | None = None


class OrderError(_Model):
    code: str | None = None
    message: str | None = None


class OrderInfo(_StatusModel):
    """``data`` of ``GET /api/v2/orders/{orderId}``."""

    order_id: Id = Field(alias="orderId")
    order_name: str | None = Field(default=None, alias="orderName")
    type: str = "antiAi"
    channel: str = "api"
    status: OrderStatus
    file_count: int = Field(default=0, alias="fileCount")
    thumbnail_image_url: str | None = Field(default=None, alias="thumbnailImageUrl")
    created_at: Timestamp = Field(default=None, alias="createdAt")
    updated_at: Timestamp = Field(default=None, alias="updatedAt")
    errors: list[OrderError] | None = None

    @field_validator("errors", mode="before")
    @classmethod
    def _errors_as_list(cls, value: object) -> object:
        """A single error object is read as a list of one."""
        return [value] if isinstance(value, dict) else value


class DownloadInfo(_Model):
    """``data`` of ``GET /api/v2/orders/{orderId}/download``."""

    download_url: str = Field(alias="downloadUrl", repr=False)
    expires_at: Timestamp = Field(default=None, alias="expiresAt")


class WebhookSecret(_Model):
    """``data`` of registering a webhook: the signing secret (G3 adds the webhook's id and name).

    A G3 secret keeps its ``whsec_`` prefix: the whole string is the HMAC key.
    """

    secret: str = Field(repr=False)
    id: Id | None = None
    name: str | None = None


class WebhookInfo(_Model):
    """``data`` of ``GET /api/v2/webhook`` (G1): the registered URL, ``None`` when there is none."""

    url: str | None = None


class RegisteredWebhook(_Model):
    """One webhook of G3's ``GET /api/v2/orders/webhooks`` (G1: the account's one URL)."""

    id: Id | None = None
    name: str | None = None
    url: str | None = None


class AccountUsage(_Model):
    """The account's contract as the login answer reports it (``data.contract``)."""

    plan_type: str | None = Field(default=None, alias="planType")
    plan_start_date: str | None = Field(default=None, alias="planStartDate")
    plan_end_date: str | None = Field(default=None, alias="planEndDate")
    current_usage: int | None = Field(default=None, alias="currentUsage")
    usage_limit: int | None = Field(default=None, alias="usageLimit")

    @property
    def remaining(self) -> int | None:
        """Units left under the plan's limit, when both numbers are known."""
        if self.current_usage is None or self.usage_limit is None:
            return None
        return max(self.usage_limit - self.current_usage, 0)


class EventData(_Model):
    order_id: Id = Field(alias="orderId")
    order_name: str | None = Field(default=None, alias="orderName")
    status: OrderStatus
    file_count: int | None = Field(default=None, alias="fileCount")
    created_at: Timestamp = Field(default=None, alias="createdAt")
    updated_at: Timestamp = Field(default=None, alias="updatedAt")
    completed_at: Timestamp = Field(default=None, alias="completedAt")
    failed_at: Timestamp = Field(default=None, alias="failedAt")
    download_url: str | None = Field(default=None, alias="downloadUrl", repr=False)
    error: OrderError | None = None


class WebhookEvent(_Model):
    """A webhook delivery's body, either generation (read one with
    :func:`mori.webhooks.parse_event`, which fills ``data.status`` in from a G3 event type)."""

    event_id: Id = Field(alias="eventId")
    event_type: str = Field(alias="eventType")
    occurred_at: Timestamp = Field(default=None, alias="occurredAt")
    data: EventData

    @property
    def is_order_finished(self) -> bool:
        """The type says an Anti-AI order finished: G1 ``ORDER.ANTI_AI.PROCESSED`` or
        ``ORDER.PROCESSED`` (``data.status`` tells how), G3 ``order.antiAi.completed|failed``."""
        return self.event_type in PROCESSED_EVENT_TYPES or self.event_type in G3_ORDER_EVENT_TYPES


class ErrorEnvelope(_Model):
    """A failure body: ``{"success": false, "message": ..., "code": ...}``."""

    success: Literal[False] = False
    message: str = ""
    code: str | None = None


def envelope(data: BaseModel | dict[str, Any] | None, message: str = "ok") -> dict[str, Any]:
    """A success envelope around ``data`` (serialised by alias, as on the wire)."""
    body: dict[str, Any] = {"success": True, "message": message}
    if data is not None:
        body["data"] = (
            data.model_dump(by_alias=True, mode="json", exclude_none=True)
            if isinstance(data, BaseModel)
            else data
        )
    return body
