"""The MORI SDK: a typed, retrying, rate-limited client of MORI's Anti-AI filter API.

Quick start::

    from mori import MoriClient, keys

    data = open("photo.jpg", "rb").read()
    order_key = keys.order_key([keys.image_key(keys.sha256_fingerprint(data))])
    with MoriClient.from_env() as client:  # MORI_API_URL, MORI_API_KEY, MORI_RATE_LIMIT_RPM
        order = client.create_order(["photo.jpg"], idempotency_key=order_key)
        client.upload(order.files[0].upload_url, data, content_type="image/jpeg")
        client.confirm_order(order.order_id, idempotency_key=keys.confirm_key(order_key))

Modules: :mod:`mori.client` (:class:`MoriClient`), :mod:`mori.retry` (:class:`RetryPolicy`),
:mod:`mori.ratelimit` (:class:`RateLimiter`), :mod:`mori.errors` (the exception tree),
:mod:`mori.models` (wire models), :mod:`mori.keys` (deterministic idempotency keys) and
:mod:`mori.webhooks` (``X-Mori-Signature`` sign/verify). No Prefect imports here.
"""

from __future__ import annotations

from mori import errors, keys, models, webhooks
from mori.client import DEFAULT_BASE_URL, ClientStats, MoriClient, redact_url
from mori.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    GoneError,
    MoriError,
    NotFoundError,
    PresignedURLError,
    RateLimitedError,
    ServerError,
    SignatureVerificationError,
    TimeoutError,
    TransportError,
    URLExpiredError,
)
from mori.models import (
    ConfirmedOrder,
    CreatedOrder,
    DownloadInfo,
    EventData,
    FileSpec,
    OrderError,
    OrderFile,
    OrderInfo,
    OrderStatus,
    UrlFileSpec,
    WebhookEvent,
    WebhookInfo,
    WebhookSecret,
)
from mori.ratelimit import RateLimiter, SupportsAcquire
from mori.retry import DEFAULT_RETRY_POLICY, RetryPolicy, parse_retry_after

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRY_POLICY",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "ClientStats",
    "ConfirmedOrder",
    "ConflictError",
    "CreatedOrder",
    "DownloadInfo",
    "EventData",
    "FileSpec",
    "GoneError",
    "MoriClient",
    "MoriError",
    "NotFoundError",
    "OrderError",
    "OrderFile",
    "OrderInfo",
    "OrderStatus",
    "PresignedURLError",
    "RateLimitedError",
    "RateLimiter",
    "RetryPolicy",
    "ServerError",
    "SignatureVerificationError",
    "SupportsAcquire",
    "TimeoutError",
    "TransportError",
    "URLExpiredError",
    "UrlFileSpec",
    "WebhookEvent",
    "WebhookInfo",
    "WebhookSecret",
    "errors",
    "keys",
    "models",
    "parse_retry_after",
    "redact_url",
    "webhooks",
]
