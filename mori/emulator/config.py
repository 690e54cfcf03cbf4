"""Settings of the local MORI API emulator."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

from mori.emulator.faults import parse_faults

#: The API dialect the emulator speaks: the primary generation, or the newer one.
Generation = Literal["g1", "g3"]
#: ``filter`` perturbs every image; ``copy`` hands the input bytes back unchanged (cheap).
ProcessingMode = Literal["filter", "copy"]

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
    "usage_limit",
)


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator lets a test, the demo or the CLI choose.

    Every expiry and rate-window decision reads :attr:`clock`, so tests advance a fake clock
    instead of sleeping. Processing delays and webhook retry spacing are real time.
    """

    #: Bearer values accepted on ``/api/v2/*``.
    api_keys: frozenset[str] = field(default=frozenset({"test-key"}), repr=False)
    #: Accounts that may log in (``POST /api/v2/auth/login``): email -> password. Each gets a
    #: generated API key; its access tokens act as that key.
    logins: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)
    #: Lifetime of an access token issued by login, in seconds (by :attr:`clock`).
    token_ttl: float = 7200.0
    #: ``contract.usageLimit`` of every account: files it may send to processing.
    usage_limit: int = 100_000
    #: Refuse (403 ``USAGE_LIMIT_EXCEEDED``) a create that would take an account past its limit.
    enforce_usage_limit: bool = False
    #: The API dialect served: ``g1`` (``/orders``, ``/orders/with-urls``, ``/webhook``) or
    #: ``g3`` (``/orders/anti-ai``, ``/orders/webhooks``, ``{"data": ...}`` envelope).
    generation: Generation = "g1"
    #: ``filter`` perturbs images; ``copy`` returns each input unchanged (outputs equal inputs).
    processing_mode: ProcessingMode = "filter"
    #: Requests per minute per account (fixed 60 s window); ``None`` = unlimited.
    rpm: int | None = None
    #: Real seconds between confirm (or a URL-only create) and the order's completion.
    processing_seconds: float = 2.0
    #: Lifetime of a presigned upload URL, in seconds.
    upload_url_ttl: float = 1800.0
    #: Lifetime of a presigned result (download) URL, in seconds.
    download_url_ttl: float = 1800.0
    #: Seconds after creation when a finished order becomes ``expired``.
    result_retention: float = 7 * 86400.0
    #: Hosts (``host`` or ``host:port``) that URL files may be fetched from; empty = none.
    url_allowlist: frozenset[str] = frozenset()
    #: Timeout of one fetch of a URL file, in seconds.
    url_fetch_timeout: float = 10.0
    #: ``eventType`` of the order-finished webhook (``g1``; ``g3`` uses ``order.antiAi.*``).
    webhook_event_type: str = "ORDER.ANTI_AI.PROCESSED"
    #: Waits before the retries of a failed webhook delivery (one retry per entry).
    webhook_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0)
    #: Longest one webhook delivery attempt may take as a whole (connect to last byte), seconds.
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
        object.__setattr__(self, "logins", MappingProxyType(dict(self.logins)))
        if not self.api_keys and not self.logins:
            raise ValueError("api_keys must hold at least one key (or give logins)")
        _check_logins(self.logins)
        if self.generation not in get_args(Generation):
            raise ValueError(f"generation must be g1 or g3, not {self.generation!r}")
        if self.processing_mode not in get_args(ProcessingMode):
            mode = self.processing_mode
            raise ValueError(f"processing_mode must be filter or copy, not {mode!r}")
        if self.token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        if self.rpm is not None and self.rpm < 1:
            raise ValueError("rpm must be at least 1 (or None for no limit)")
        if self.processing_workers < 1:
            raise ValueError("processing_workers must be at least 1")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if any(delay < 0 for delay in self.webhook_retry_delays):
            raise ValueError("webhook_retry_delays must not be negative")


def _check_logins(logins: Mapping[str, str]) -> None:
    """Every login has an email and a password; emails are unique ignoring case."""
    seen: set[str] = set()
    for email, password in logins.items():
        if not email.strip() or not password:
            raise ValueError("logins need a non-empty email and password")
        folded = email.strip().lower()
        if folded in seen:
            raise ValueError(f"logins: {email!r} is given twice")
        seen.add(folded)
