"""Typed models of the MORI API's JSON (primary generation, see ``shared/mori-api.md``).

Field names follow the wire format (camelCase) through aliases; Python code uses snake_case.
Unknown fields are ignored so that additions on MORI's side never break a client. The emulator
builds its responses from these same models, which keeps client and emulator consistent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

OrderStatus = Literal["pending", "inProgress", "complete", "failed", "expired"]

#: File extensions MORI accepts (lower case, without the dot).
ALLOWED_EXTENSIONS: frozenset[str] = frozenset({"jpeg", "jpg", "png", "webp", "tiff", "bmp"})
MAX_FILES_PER_ORDER = 100
MAX_ORDER_NAME = 64

#: Both names MORI uses for "an order finished" (see mori-api.md §7).
PROCESSED_EVENT_TYPES: frozenset[str] = frozenset({"ORDER.ANTI_AI.PROCESSED", "ORDER.PROCESSED"})


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


def iso_ms(dt: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as MORI writes timestamps."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


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


# -- responses --------------------------------------------------------------------------------


class OrderFile(_Model):
    """A file of a created order, with the presigned URL to PUT its bytes to."""

    file_id: int = Field(alias="fileId")
    file_name: str = Field(alias="fileName")
    upload_url: str | None = Field(default=None, alias="uploadUrl", repr=False)
    file_key: str | None = Field(default=None, alias="fileKey")


class CreatedOrder(_Model):
    """``data`` of ``POST /api/v2/orders`` and ``/orders/with-urls``."""

    order_id: str = Field(alias="orderId")
    order_name: str = Field(alias="orderName")
    status: OrderStatus
    files: list[OrderFile] = Field(
        default_factory=list, validation_alias=AliasChoices("files", "orderFiles")
    )


class ConfirmedOrder(_Model):
    """``data`` of ``POST /api/v2/orders/confirm``."""

    order_id: str = Field(alias="orderId")
    status: OrderStatus


class OrderError(_Model):
    code: str | None = None
    message: str | None = None


class OrderInfo(_Model):
    """``data`` of ``GET /api/v2/orders/{orderId}``."""

    order_id: str = Field(alias="orderId")
    order_name: str | None = Field(default=None, alias="orderName")
    type: str = "antiAi"
    channel: str = "api"
    status: OrderStatus
    file_count: int = Field(default=0, alias="fileCount")
    thumbnail_image_url: str | None = Field(default=None, alias="thumbnailImageUrl")
    created_at: datetime | None = Field(default=None, alias="createdAt")
    updated_at: datetime | None = Field(default=None, alias="updatedAt")
    errors: list[OrderError] | None = None


class DownloadInfo(_Model):
    """``data`` of ``GET /api/v2/orders/{orderId}/download``."""

    download_url: str = Field(alias="downloadUrl", repr=False)
    expires_at: datetime | None = Field(default=None, alias="expiresAt")


class WebhookSecret(_Model):
    """``data`` of ``POST /api/v2/webhook``."""

    secret: str = Field(repr=False)


class WebhookInfo(_Model):
    """``data`` of ``GET /api/v2/webhook``."""

    url: str | None = None


class EventData(_Model):
    order_id: str = Field(alias="orderId")
    order_name: str | None = Field(default=None, alias="orderName")
    status: OrderStatus
    file_count: int | None = Field(default=None, alias="fileCount")
    created_at: datetime | None = Field(default=None, alias="createdAt")
    completed_at: datetime | None = Field(default=None, alias="completedAt")
    failed_at: datetime | None = Field(default=None, alias="failedAt")
    download_url: str | None = Field(default=None, alias="downloadUrl", repr=False)
    error: OrderError | None = None


class WebhookEvent(_Model):
    """A webhook delivery's body (``ORDER.ANTI_AI.PROCESSED`` or ``ORDER.PROCESSED``)."""

    event_id: str = Field(alias="eventId")
    event_type: str = Field(alias="eventType")
    occurred_at: datetime | None = Field(default=None, alias="occurredAt")
    data: EventData


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
