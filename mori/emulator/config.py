"""Settings of the local MORI API emulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mori.emulator.faults import parse_faults

_NON_NEGATIVE = (
    "processing_seconds",
    "upload_url_ttl",
    "download_url_ttl",
    "result_retention",
    "url_fetch_timeout",
    "webhook_timeout",
    "fault_hang_seconds",
    "webhook_delay_seconds",
    "webhook_reorder_hold",
)


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator lets a test, the demo or the CLI choose.

    Every expiry and rate-window decision reads :attr:`clock`, so tests advance a fake clock
    instead of sleeping. Processing delays and webhook retry spacing are real time.
    """

    #: Bearer values accepted on ``/api/v2/*``.
    api_keys: frozenset[str] = frozenset({"test-key"})
    #: Requests per minute per API key (fixed 60 s window); ``None`` = unlimited.
    rpm: int | None = None
    #: Real seconds between confirm (or create-with-urls) and the order's completion.
    processing_seconds: float = 2.0
    #: Lifetime of a presigned upload URL, in seconds.
    upload_url_ttl: float = 1800.0
    #: Lifetime of a presigned result (download) URL, in seconds.
    download_url_ttl: float = 1800.0
    #: Seconds after creation when a finished order becomes ``expired``.
    result_retention: float = 7 * 86400.0
    #: Hosts (``host`` or ``host:port``) that ``/orders/with-urls`` may fetch; empty = none.
    url_allowlist: frozenset[str] = frozenset()
    #: Timeout of one fetch of a with-urls source, in seconds.
    url_fetch_timeout: float = 10.0
    #: ``eventType`` of the order-finished webhook.
    webhook_event_type: str = "ORDER.ANTI_AI.PROCESSED"
    #: Waits before the retries of a failed webhook delivery (one retry per entry).
    webhook_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0)
    #: Timeout of one webhook delivery attempt, in seconds.
    webhook_timeout: float = 5.0
    #: Fault spec ``TARGET:FAULT=PROBABILITY,...`` (see :mod:`mori.emulator.faults`).
    faults: str = ""
    #: Seed of the fault injector's random decisions.
    seed: int = 0
    #: How long a ``timeout`` fault holds the request before closing the connection.
    fault_hang_seconds: float = 35.0
    #: ``Retry-After`` seconds of an injected ``429``.
    fault_retry_after: int = 1
    #: Extra wait of a ``delay``-ed webhook, in seconds.
    webhook_delay_seconds: float = 3.0
    #: Longest a ``reorder``-ed webhook waits for a later event before it is sent anyway.
    webhook_reorder_hold: float = 10.0
    #: The first order id handed out (later ones count up). Give each emulator started against
    #: the same ledger its own range (e.g. from the clock), as MORI never reuses an id.
    first_order_id: int = 100000001
    #: Orders with one of these names fail in processing (code ``PROCESSING_FAILED``).
    fail_order_names: frozenset[str] = frozenset()
    #: S3 endpoint holding uploads and results; ``None`` = boto3's default resolution.
    s3_endpoint_url: str | None = None
    #: Bucket for uploads (``temp/...``) and result archives (``results/...``).
    s3_bucket: str = "mori-emulator"
    #: Worker threads that process confirmed orders.
    processing_workers: int = 4
    #: The wall clock (seconds since the epoch) used for every timestamp and expiry.
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def __post_init__(self) -> None:
        """Reject settings that cannot work, with a ``ValueError`` naming the setting."""
        parse_faults(self.faults)
        if not self.api_keys:
            raise ValueError("api_keys must hold at least one key")
        if self.rpm is not None and self.rpm < 1:
            raise ValueError("rpm must be at least 1 (or None for no limit)")
        if self.processing_workers < 1:
            raise ValueError("processing_workers must be at least 1")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if any(delay < 0 for delay in self.webhook_retry_delays):
            raise ValueError("webhook_retry_delays must not be negative")
