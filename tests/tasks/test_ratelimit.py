"""The rate-limit adapter: a Prefect global concurrency limit behind ``acquire()``."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from mori.settings import Settings
from tasks.ratelimit import ENV_VAR, GlobalRateLimit, client_for


def _create_limit(name: str, limit: int, decay: float) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=limit, slot_decay_per_second=decay)
        )


def test_missing_limit_raises_instead_of_letting_everything_through(prefect_api: Any) -> None:
    limiter = GlobalRateLimit(f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(Exception, match="must be created before acquiring") as caught:
        limiter.acquire()
    assert type(caught.value).__name__ == "ConcurrencySlotAcquisitionError"


def test_existing_limit_spaces_requests(prefect_api: Any) -> None:
    name = f"rl-{uuid.uuid4().hex[:8]}"
    _create_limit(name, limit=2, decay=4.0)  # a burst of 2, then 4 per second
    limiter = GlobalRateLimit(name)
    started = time.monotonic()
    waits = [limiter.acquire() for _ in range(6)]
    elapsed = time.monotonic() - started
    assert elapsed >= 0.7, (elapsed, waits)  # 4 slots past the burst at 4/s: ~1 s
    assert sum(waits) >= 0.5
    assert all(w >= 0 for w in waits)


def test_the_client_takes_the_global_limit_only_when_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MORI_API_KEY", "k")
    monkeypatch.setenv("MORI_RATE_LIMIT_RPM", "60")
    monkeypatch.setenv(ENV_VAR, "  ")
    with client_for(Settings()) as client:
        assert not isinstance(client.rate_limiter, GlobalRateLimit)
        assert client.rate_limiter is not None  # the in-process limiter
    monkeypatch.setenv(ENV_VAR, "mori-api")
    with client_for(Settings()) as client:
        assert isinstance(client.rate_limiter, GlobalRateLimit)
        assert client.rate_limiter.name == "mori-api"
