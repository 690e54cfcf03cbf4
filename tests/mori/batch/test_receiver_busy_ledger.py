"""The receiver answers within MORI's 5 s while a plan holds the ledger's planning lock.

A second ledger object holds ``exclusive()`` (what a million-row plan does for several
seconds) for the whole delivery. Over real HTTP, on both backends: the delivery and
``/healthz`` are answered in time, and the event reaches the ledger exactly once (at once on
PostgreSQL, whose planning lock does not block event writes; through the receiver's spool on
SQLite, as soon as the plan commits).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deployments.receiver import Receiver
from mori.batch.ledger import open_ledger
from mori.settings import Settings
from mori.webhooks import SIGNATURE_HEADER, sign

SECRET = "whsec-busy-ledger"
DEADLINE = 5.0  # MORI's wait for an answer


def _event(event_id: str, order_id: str) -> bytes:
    return (
        f'{{"eventId":"{event_id}","eventType":"ORDER.ANTI_AI.PROCESSED",'
        f'"data":{{"orderId":"{order_id}","status":"complete"}}}}'
    ).encode()


class PlanningLock:
    """Hold a ledger's planning lock on a thread until released, as a long plan would."""

    def __init__(self, target: str) -> None:
        self._ledger = open_ledger(target)
        self._held, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        with self._ledger.exclusive():
            self._held.set()
            self._release.wait(60)

    def __enter__(self) -> PlanningLock:
        self._thread.start()
        assert self._held.wait(30), "the planning lock was never taken"
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._thread.join(30)
        self._ledger.close()


@pytest.fixture
def receiver(ledger_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    settings = Settings(webhook_secret=None, api_generation="g1")
    service = Receiver(ledger_url, settings, lambda: SECRET, spool_file=tmp_path / "spool.sqlite")
    try:
        with service.running() as url:
            yield url, ledger_url
    finally:
        service.close()


def _post(url: str, body: bytes) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        url, content=body, headers={SIGNATURE_HEADER: sign(body, SECRET)}, timeout=DEADLINE
    )
    return response, time.monotonic() - started


def test_deliveries_are_answered_in_time_while_a_plan_holds_the_lock(
    receiver: tuple[str, str],
) -> None:
    url, target = receiver
    health = url.rsplit("/webhooks/", 1)[0] + "/healthz"
    body = _event("0c6a4a8e-1d7e-4e8f-9d3a-5b1f2c3d4e5f", "ord-busy")
    with PlanningLock(target):
        response, elapsed = _post(url, body)
        assert response.status_code == 200, response.text
        assert elapsed < DEADLINE - 1, f"answered after {elapsed:.2f} s"
        started = time.monotonic()
        counts = httpx.get(health, timeout=DEADLINE).json()
        assert time.monotonic() - started < 1.0
        assert counts["received"] == 1
        # SQLite's planning lock blocks every writer: the event waits in the spool
        assert counts["spooled"] == (0 if target.startswith("postgresql") else 1)
    with open_ledger(target) as ledger:
        deadline = time.monotonic() + 30
        while not ledger.events("ord-busy") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [e.event_id for e in ledger.events("ord-busy")] == [
            "0c6a4a8e-1d7e-4e8f-9d3a-5b1f2c3d4e5f"
        ]
        assert ledger.event_status("ord-busy") == "complete"
    again, _ = _post(url, body)  # MORI's retry of the same event: recorded once
    assert again.status_code == 200
    with open_ledger(target) as ledger:
        assert len(ledger.events("ord-busy")) == 1
