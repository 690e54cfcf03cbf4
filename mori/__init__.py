"""The MORI SDK: a typed, retrying, rate-limited client of MORI's Anti-AI filter API.

Quick start::

    from mori import MoriClient, Settings, keys

    data = open("photo.jpg", "rb").read()
    order_key = keys.order_key([keys.image_key(keys.sha256_fingerprint(data))])
    with MoriClient.from_settings(Settings()) as client:  # the MORI_* environment
        client.preflight()  # URL, credentials and API generation, before anything else
        order = client.create_order(["photo.jpg"], idempotency_key=order_key)
        client.upload(order.files[0].upload_url, data, content_type="image/jpeg")
        client.confirm_order(order.order_id, idempotency_key=keys.confirm_key(order_key))

Modules: :mod:`mori.client` (:class:`MoriClient`, G1 or G3), :mod:`mori.settings`
(:class:`Settings`), :mod:`mori.retry` (:class:`RetryPolicy`), :mod:`mori.ratelimit`
(:class:`RateLimiter`), :mod:`mori.errors` (the exception tree), :mod:`mori.models` (wire
models), :mod:`mori.keys` (deterministic idempotency keys) and :mod:`mori.webhooks` (signature
checks and event parsing). Modules whose name starts with ``_`` are internal. No Prefect,
pandas, pyarrow, boto3 or FastAPI imports here.
"""

from __future__ import annotations

from mori import errors, keys, models, webhooks
from mori.client import DEFAULT_BASE_URL, ClientStats, MoriClient, redact_url
from mori.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ErrorDetail,
    GoneError,
    InvalidEventError,
    MoriError,
    NotFoundError,
    PreflightError,
    PresignedURLError,
    RateLimitedError,
    ServerError,
    SignatureVerificationError,
    TimeoutError,
    TransportError,
    UnexpectedResponseError,
    URLExpiredError,
)
from mori.models import (
    AccountUsage,
    ConfirmedOrder,
    CreatedOrder,
    DownloadInfo,
    EventData,
    FileSpec,
    MixedFileSpec,
    OrderError,
    OrderFile,
    OrderInfo,
    OrderStatus,
    RegisteredWebhook,
    UrlFileSpec,
    WebhookEvent,
    WebhookInfo,
    WebhookSecret,
)
from mori.ratelimit import RateLimiter, SupportsAcquire
from mori.retry import DEFAULT_RETRY_POLICY, RetryPolicy, parse_retry_after
from mori.settings import Generation, Settings
from mori.webhooks import parse_event, verify_request

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRY_POLICY",
    "APIStatusError",
    "AccountUsage",
    "AuthenticationError",
    "BadRequestError",
    "ClientStats",
    "ConfigurationError",
    "ConfirmedOrder",
    "ConflictError",
    "CreatedOrder",
    "DownloadInfo",
    "ErrorDetail",
    "EventData",
    "FileSpec",
    "Generation",
    "GoneError",
    "InvalidEventError",
    "MixedFileSpec",
    "MoriClient",
    "MoriError",
    "NotFoundError",
    "OrderError",
    "OrderFile",
    "OrderInfo",
    "OrderStatus",
    "PreflightError",
    "PresignedURLError",
    "RateLimitedError",
    "RateLimiter",
    "RegisteredWebhook",
    "RetryPolicy",
    "ServerError",
    "Settings",
    "SignatureVerificationError",
    "SupportsAcquire",
    "TimeoutError",
    "TransportError",
    "URLExpiredError",
    "UnexpectedResponseError",
    "UrlFileSpec",
    "WebhookEvent",
    "WebhookInfo",
    "WebhookSecret",
    "errors",
    "keys",
    "models",
    "parse_event",
    "parse_retry_after",
    "redact_url",
    "verify_request",
    "webhooks",
]
