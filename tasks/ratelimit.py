"""MORI's rate limit shared by every worker: a Prefect global concurrency limit.

:class:`GlobalRateLimit` has the ``acquire() -> float`` method :class:`mori.client.MoriClient`
expects of a rate limiter, and takes one slot of a Prefect global concurrency limit (GCL) per
API request through ``rate_limit(name, strict=True)``. The limit lives in the Prefect server's
database, so every process and machine talking to that server shares one budget.

``strict=True`` matters: without it a missing limit is a silent no-op (Prefect logs a warning
and lets every request through). With it a missing limit raises
``ConcurrencySlotAcquisitionError``, so a misconfigured worker fails loudly instead of
overrunning MORI's plan. ``mori-pipeline bootstrap`` creates the limit.

Which limiter a run uses (:func:`client_for`): when ``MORI_GLOBAL_RATE_LIMIT`` names a
limit, the GCL; otherwise the in-process sliding window of ``MORI_RATE_LIMIT_RPM``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from mori.client import MoriClient
from mori.settings import Settings

#: The environment variable naming the GCL to use (``mori-api`` after ``bootstrap``); the
#: work pool ``bootstrap`` creates sets it for every run.
ENV_VAR = "MORI_GLOBAL_RATE_LIMIT"
#: The GCL ``mori-pipeline bootstrap`` creates.
DEFAULT_LIMIT_NAME = "mori-api"


class GlobalRateLimit:
    """One slot of the Prefect GCL ``name`` per MORI request; raises if the limit is missing."""

    def __init__(
        self,
        name: str = DEFAULT_LIMIT_NAME,
        *,
        timeout_seconds: float | None = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.timeout_seconds = timeout_seconds
        self._clock = clock

    def acquire(self) -> float:
        """Block until the shared budget allows one more request; return the seconds waited.

        Raises ``ConcurrencySlotAcquisitionError`` when the limit does not exist and
        ``TimeoutError`` when no slot came within ``timeout_seconds``.
        """
        from prefect.concurrency.sync import rate_limit  # cached after the first call

        start = self._clock()
        rate_limit(self.name, occupy=1, timeout_seconds=self.timeout_seconds, strict=True)
        return max(0.0, self._clock() - start)

    def __repr__(self) -> str:
        return f"GlobalRateLimit({self.name!r})"


def client_for(settings: Settings, **kwargs: Any) -> MoriClient:
    """A MORI client configured by ``settings``, whose rate limiter is the shared GCL when
    ``settings.global_rate_limit`` names one, else the in-process limiter of
    ``settings.rate_limit_rpm`` (one process's budget)."""
    if settings.global_rate_limit and "rate_limiter" not in kwargs:
        kwargs["rate_limiter"] = GlobalRateLimit(settings.global_rate_limit)
    return MoriClient.from_settings(settings, **kwargs)


def gcl_settings(rpm: int, burst_seconds: float = 6.0) -> tuple[int, float]:
    """``(limit, slot_decay_per_second)`` of a GCL that never lets ``rpm`` through in 60 s.

    A GCL used with ``rate_limit`` is a token bucket: ``limit`` slots at once, refilled at
    ``slot_decay_per_second``. In any 60 s it admits at most ``limit + 60 * decay`` requests,
    so a bucket of ``limit = rpm`` and ``decay = rpm / 60`` could let through twice the plan
    in the first minute. Here the burst is ``burst_seconds`` worth of the plan and the refill
    fills the rest of the minute: ``limit + 60 * decay == rpm``.
    """
    if rpm < 1:
        raise ValueError("rpm must be >= 1")
    limit = max(1, min(rpm, round(rpm * burst_seconds / 60)))
    decay = (rpm - limit) / 60 if rpm > limit else rpm / 60
    return limit, math.floor(decay * 1e6) / 1e6  # rounded down: never above the plan
