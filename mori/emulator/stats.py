"""Thread-safe counters behind ``GET /_emulator/stats``."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

#: Plain counters, always present in a snapshot (``0`` until something happens).
COUNTERS: tuple[str, ...] = (
    "orders_created",  # orders created by any create route (replays excluded)
    "orders_confirmed",  # orders that entered processing: confirm, or a URL-only create
    "orders_completed",
    "orders_failed",
    "files_processed",  # files of completed orders
    "files_failed",  # files that failed in processing (their order failed)
    "duplicate_files",  # processed files already processed in an earlier order
    "uploads",  # accepted presigned PUTs
    "downloads",  # served result archives
    "rate_limited",  # requests answered 429 by the rate limiter (not by fault injection)
    "idempotent_replays",
    "webhooks_sent",  # deliveries answered 2xx
    "webhooks_failed",  # deliveries that exhausted their retries
    "webhook_attempts",  # every POST to a receiver, retries included
    "webhooks_unregistered",  # finished orders whose account had no webhook registered
)


class Stats:
    """Counters plus per-endpoint request counts and per-``target:fault`` injected faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()

    def incr(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``name``."""
        with self._lock:
            self._counters[name] += amount

    def request(self, endpoint: str) -> None:
        """Count one request to ``endpoint`` (``create``, ``upload``, ``login``...)."""
        with self._lock:
            self._requests[endpoint] += 1

    def fault(self, key: str) -> None:
        """Count one injected fault (``"create:drop"``)."""
        with self._lock:
            self._faults[key] += 1

    def snapshot(self) -> dict[str, Any]:
        """All counters as a JSON-ready dict."""
        with self._lock:
            body: dict[str, Any] = {name: self._counters[name] for name in COUNTERS}
            body.update({k: v for k, v in self._counters.items() if k not in body})
            body["requests"] = dict(sorted(self._requests.items()))
            body["faults_injected"] = dict(sorted(self._faults.items()))
        return body
