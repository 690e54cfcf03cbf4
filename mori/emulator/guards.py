"""Per-key request guards: the fixed-window rate limiter and the idempotency store."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


class RateLimiter:
    """A fixed 60 s window per API key, opened by the key's first request in it."""

    def __init__(self, rpm: int | None, clock: Callable[[], float]) -> None:
        self._rpm = rpm
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> int | None:
        """Count one request; ``None`` if allowed, else the whole seconds until the next window."""
        if self._rpm is None:
            return None
        now = self._clock()
        with self._lock:
            start, used = self._windows.get(key, (now, 0))
            if now - start >= WINDOW_SECONDS:
                start, used = now, 0
            if used >= self._rpm:
                return max(1, math.ceil(start + WINDOW_SECONDS - now))
            self._windows[key] = (start, used + 1)
        return None


@dataclass(frozen=True)
class StoredResponse:
    """A response recorded against an idempotency key, replayed byte for byte."""

    status: int
    body: bytes


class IdempotencyStore:
    """Runs a request once per (API key, path, idempotency key) and replays its answer.

    ``compute`` returns the success to record, or raises for a failure, which records nothing:
    a request that failed validation (or met a 404, 409...) may be corrected and sent again with
    the same key. Requests of one scope are serialised, so two concurrent creates with one key
    make one order.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._responses: dict[tuple[str, str, str], StoredResponse] = {}

    def run(
        self, scope: tuple[str, str, str], compute: Callable[[], StoredResponse]
    ) -> tuple[StoredResponse, bool]:
        """The recorded response of ``scope`` and ``True``, or ``compute()``'s and ``False``."""
        with self._lock_for(scope):
            stored = self._responses.get(scope)
            if stored is not None:
                return stored, True
            response = self._responses[scope] = compute()
            return response, False

    def _lock_for(self, scope: tuple[str, str, str]) -> threading.Lock:
        """The lock serialising requests of one scope."""
        with self._guard:
            return self._locks.setdefault(scope, threading.Lock())
