"""A client-side requests-per-minute limiter (docs/ARCHITECTURE.md, invariant 5).

:class:`RateLimiter` keeps one process's calls under MORI's plan budget (60 / 300 / 1,000
requests per minute) with a *sliding-log* window: a request may start only when fewer than
``rpm`` requests started in the ``window + margin`` seconds before it, so no ``window``-long
interval, sliding or fixed, ever holds more than ``rpm`` requests.

Each call of :meth:`RateLimiter.acquire` *reserves* the earliest slot that keeps the window
rule, under a lock, then sleeps until that slot outside the lock: callers are served first come,
first served, and many threads waiting together never stampede. :meth:`RateLimiter.block_for`
lets a 429's ``Retry-After`` pause every thread, not only the one that saw it.

Why not a library: ``limits``' ``MemoryStorage`` reads ``time.time()`` directly and expires
keys on a background timer thread, and ``pyrate-limiter``'s blocking path calls its module's
``time.sleep`` and runs a leaker thread; neither takes an injected clock *and* sleep, so tests
would have to patch their internals. The sliding log below is a deque and a lock.

Scope: one process. Across several workers, share the budget with a Prefect global
concurrency limit (``prefect.concurrency.sync.rate_limit``) wrapped in an object with the same
``acquire() -> float`` method (:class:`SupportsAcquire`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["DEFAULT_MARGIN", "RateLimiter", "SupportsAcquire"]

#: Seconds added to the window by default, for clock and network jitter between us and MORI.
DEFAULT_MARGIN = 0.5


@runtime_checkable
class SupportsAcquire(Protocol):
    """Anything that blocks until one more request may go and returns the seconds it waited."""

    def acquire(self) -> float:
        """Block until a request may be sent; return the seconds waited."""
        ...


class RateLimiter:
    """At most ``rpm`` acquisitions in any ``window``-second interval; thread-safe.

    ``rpm`` of ``None`` or ``0`` means unlimited (only :meth:`block_for` pauses then).
    ``margin`` seconds widen the window the limiter enforces, as a safety margin.
    ``clock`` (monotonic seconds) and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        rpm: int | None,
        *,
        window: float = 60.0,
        margin: float = DEFAULT_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rpm is not None and rpm < 0:
            raise ValueError("rpm must be >= 0 (0 or None = unlimited)")
        if window <= 0 or margin < 0:
            raise ValueError("window must be > 0 and margin >= 0")
        self._limit = rpm or 0
        self._window = window
        self._span = window + margin
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Start times of the last ``rpm`` grants (some may lie in the future: reserved slots).
        self._grants: deque[float] = deque(maxlen=max(self._limit, 1))
        self._not_before = float("-inf")
        self._waited = 0.0
        self._acquired = 0

    @property
    def rpm(self) -> int | None:
        """The budget per window, or ``None`` when unlimited."""
        return self._limit or None

    @property
    def window(self) -> float:
        """The window length in seconds the budget applies to."""
        return self._window

    @property
    def waited_seconds(self) -> float:
        """Total seconds callers were told to wait so far."""
        with self._lock:
            return self._waited

    @property
    def acquired(self) -> int:
        """Number of acquisitions granted so far."""
        with self._lock:
            return self._acquired

    def reserve(self) -> float:
        """Reserve the next slot without sleeping; return the seconds until it starts."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._not_before)
            if self._limit and len(self._grants) == self._limit:
                slot = max(slot, self._grants[0] + self._span)
            if self._limit:
                self._grants.append(slot)
            wait = slot - now
            self._waited += wait
            self._acquired += 1
            return wait

    def acquire(self) -> float:
        """Block until one more request may be sent; return the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def block_for(self, seconds: float) -> None:
        """Let no new acquisition start for ``seconds`` from now (e.g. after a 429)."""
        if not seconds > 0:
            return
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def __repr__(self) -> str:
        limit = f"{self._limit}/{self._window:g}s" if self._limit else "unlimited"
        return f"RateLimiter({limit}, margin={self._span - self._window:g}s)"
