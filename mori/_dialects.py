"""The two generations of MORI's order API: their paths, request bodies and idempotency keys.

========================  =================================  ====================================
                          G1 (default)                       G3
========================  =================================  ====================================
create (upload)           ``POST /api/v2/orders``            ``POST /api/v2/orders/anti-ai``
create (public URLs)      ``POST /api/v2/orders/with-urls``  the same, ``originalFileUrl`` per file
confirm                   ``POST /api/v2/orders/confirm``    ``POST /api/v2/orders/anti-ai/confirm``
idempotency key           ``X-Idempotency-Key`` header only  ``idempotencyKey`` body field only
webhooks                  one: ``/api/v2/webhook``           several: ``/api/v2/orders/webhooks``
========================  =================================  ====================================

``GET /api/v2/orders/{id}`` and ``GET /api/v2/orders/{id}/download`` are the same in both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from mori.errors import ConfigurationError
from mori.models import (
    AntiAiConfirmRequest,
    AntiAiCreateRequest,
    ConfirmRequest,
    CreateOrderRequest,
    CreateUrlOrderRequest,
    FileSpec,
    MixedFileSpec,
    UrlFileSpec,
    WebhookCreateRequest,
    wire,
)
from mori.settings import Generation

__all__ = ["API_PREFIX", "G1", "G3", "IDEMPOTENCY_HEADER", "Dialect", "dialect", "segment"]

IDEMPOTENCY_HEADER = "X-Idempotency-Key"
API_PREFIX = "/api/v2"

#: A file of a create call: a name, a spec, or a ``(file_name, public_url)`` pair.
FileLike = str | FileSpec | UrlFileSpec | MixedFileSpec | tuple[str, str]


def mixed(file: FileLike) -> MixedFileSpec:
    """Any accepted file form as a :class:`MixedFileSpec` (a URL only where one was given)."""
    if isinstance(file, MixedFileSpec):
        return file
    if isinstance(file, str):
        return MixedFileSpec.model_validate({"fileName": file})
    if isinstance(file, tuple):
        name, url = file
        return MixedFileSpec.model_validate({"fileName": name, "originalFileUrl": url})
    if isinstance(file, UrlFileSpec):
        return MixedFileSpec.model_validate(
            {"fileName": file.file_name, "originalFileUrl": file.original_file_url}
        )
    return MixedFileSpec.model_validate({"fileName": file.file_name})


def segment(value: str) -> str:
    """``value`` quoted as one URL path segment."""
    if not value:
        raise ValueError("an id in a path must not be empty")
    return quote(value, safe="")


@dataclass(frozen=True)
class Dialect:
    """Where one generation's calls go and what their bodies hold."""

    generation: Generation
    create_path: str
    url_create_path: str
    confirm_path: str
    webhook_path: str
    key_in_body: bool

    @property
    def many_webhooks(self) -> bool:
        """Several webhooks per account, each with an id (G3), or one URL per account (G1)."""
        return self.generation == "g3"

    def key_headers(self, key: str) -> dict[str, str]:
        """The headers carrying an idempotency key (none when it travels in the body)."""
        return {} if self.key_in_body else {IDEMPOTENCY_HEADER: key}

    def create_body(
        self,
        files: Sequence[MixedFileSpec],
        key: str,
        order_name: str | None,
        options: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """A create body; ``orderName`` and ``options`` only when given."""
        extra: dict[str, Any] = {"orderName": order_name}
        if options is not None:
            extra["options"] = dict(options)
        specs = [wire(f) for f in files]
        if self.key_in_body:
            payload = {"idempotencyKey": key, "files": specs, **extra}
            return wire(AntiAiCreateRequest.model_validate(payload))
        if all(f.original_file_url for f in files):
            return wire(CreateUrlOrderRequest.model_validate({"files": specs, **extra}))
        if any(f.original_file_url for f in files):
            raise ValueError("G1 has no order mixing uploads and URLs (use generation g3)")
        return wire(CreateOrderRequest.model_validate({"files": specs, **extra}))

    def confirm_body(self, order_id: str, key: str) -> dict[str, Any]:
        """A confirm body: ``orderId`` (and, in G3, ``idempotencyKey``)."""
        if self.key_in_body:
            payload = {"idempotencyKey": key, "orderId": order_id}
            return wire(AntiAiConfirmRequest.model_validate(payload))
        return wire(ConfirmRequest.model_validate({"orderId": order_id}))

    def webhook_body(self, url: str, name: str | None) -> dict[str, Any]:
        """A webhook registration: ``url`` (and, in G3, ``name`` when given)."""
        if self.many_webhooks:
            return wire(WebhookCreateRequest.model_validate({"url": url, "name": name}))
        return {"url": url}

    def webhook_item_path(self, webhook_id: str) -> str:
        """The path of one G3 webhook."""
        return f"{self.webhook_path}/{segment(webhook_id)}"


G1 = Dialect(
    generation="g1",
    create_path="/orders",
    url_create_path="/orders/with-urls",
    confirm_path="/orders/confirm",
    webhook_path="/webhook",
    key_in_body=False,
)
G3 = Dialect(
    generation="g3",
    create_path="/orders/anti-ai",
    url_create_path="/orders/anti-ai",
    confirm_path="/orders/anti-ai/confirm",
    webhook_path="/orders/webhooks",
    key_in_body=True,
)


def dialect(generation: str) -> Dialect:
    """The dialect of ``generation`` (``g1`` or ``g3``)."""
    if generation == "g1":
        return G1
    if generation == "g3":
        return G3
    raise ConfigurationError(f"unknown API generation {generation!r} (expected g1 or g3)")
