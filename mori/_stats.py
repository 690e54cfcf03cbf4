"""Request counters of one client: requests and retries per endpoint, 429s, limiter waits."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ClientStats", "Counters"]


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of a client's counters (see :attr:`mori.client.MoriClient.stats`)."""

    requests: dict[str, int] = field(default_factory=dict)
    """HTTP requests sent (attempts, retries included), per endpoint."""
    retries: dict[str, int] = field(default_factory=dict)
    """Attempts after the first one, per endpoint."""
    rate_limited: int = 0
    """429 answers seen."""
    waited_seconds: float = 0.0
    """Seconds spent waiting for the client-side rate limiter."""


class Counters:
    """The thread-safe counters behind :class:`ClientStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._retries: Counter[str] = Counter()
        self._rate_limited = 0
        self._waited = 0.0

    def add(
        self, *, request: str = "", retry: str = "", rate_limited: int = 0, waited: float = 0.0
    ) -> None:
        """Count one request and/or retry of an endpoint, 429s and seconds waited."""
        with self._lock:
            if request:
                self._requests[request] += 1
            if retry:
                self._retries[retry] += 1
            self._rate_limited += rate_limited
            self._waited += waited

    def snapshot(self) -> ClientStats:
        """A consistent copy of every counter."""
        with self._lock:
            return ClientStats(
                dict(self._requests), dict(self._retries), self._rate_limited, self._waited
            )
