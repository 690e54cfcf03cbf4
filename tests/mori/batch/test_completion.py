"""The completion waiter: webhook events from the ledger first, polling as the fallback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from mori.batch.completion import FINAL, CompletionWaiter
from mori.batch.ledger import Ledger
from tests.support.clock import FakeTime

ORDER_ID = "ord-123"


@dataclass
class FakeClient:
    """``get_order`` answers with ``statuses`` in turn (the last repeats) and logs call times."""

    statuses: list[str]
    clock: Callable[[], float]
    calls: list[float] = field(default_factory=list)

    def get_order(self, order_id: str) -> Any:
        assert order_id == ORDER_ID
        self.calls.append(self.clock())
        status = self.statuses[min(len(self.calls) - 1, len(self.statuses) - 1)]
        return SimpleNamespace(order_id=order_id, status=status)


class EventAt:
    """A sleep that records a webhook event in the ledger once the clock passes ``at``."""

    def __init__(self, time: FakeTime, ledger: Ledger, at: float, status: str) -> None:
        self.time, self.ledger, self.at, self.status = time, ledger, at, status

    def __call__(self, seconds: float) -> None:
        self.time.sleep(seconds)
        if self.time.now >= self.at:
            self.ledger.record_event("evt-1", "ORDER.PROCESSED", ORDER_ID, self.status, {})


def waiter(
    client: FakeClient,
    ledger: Ledger,
    time: FakeTime,
    *,
    use_webhooks: bool,
    sleep: Callable[[float], None] | None = None,
    **kwargs: Any,
) -> CompletionWaiter:
    return CompletionWaiter(
        client,  # type: ignore[arg-type]
        ledger,
        use_webhooks=use_webhooks,
        clock=time.clock,
        sleep=sleep or time.sleep,
        **kwargs,
    )


@pytest.mark.parametrize("status", ["complete", "failed"])
def test_a_recorded_event_ends_the_wait_without_polling(
    ledger: Ledger, fake_time: FakeTime, status: str
) -> None:
    ledger.record_event("evt-0", "ORDER.PROCESSED", ORDER_ID, status, {})
    client = FakeClient(["inProgress"], fake_time.clock)
    w = waiter(client, ledger, fake_time, use_webhooks=True)
    start = fake_time.now
    assert w.wait(ORDER_ID, timeout=600) == status
    assert client.calls == [] and w.polls == 0
    assert fake_time.now == start


def test_an_event_arriving_during_the_grace_period_ends_the_wait(
    ledger: Ledger, fake_time: FakeTime
) -> None:
    start = fake_time.now
    client = FakeClient(["inProgress"], fake_time.clock)
    sleep = EventAt(fake_time, ledger, start + 5.0, "complete")
    w = waiter(
        client,
        ledger,
        fake_time,
        use_webhooks=True,
        sleep=sleep,
        webhook_grace=30.0,
        event_check_interval=0.5,
    )
    assert w.wait(ORDER_ID, timeout=600) == "complete"
    assert client.calls == []
    assert start + 5.0 <= fake_time.now <= start + 5.5  # noticed within one check interval
    assert max(fake_time.sleeps) <= 0.5


def test_an_event_for_another_order_or_not_final_is_ignored(
    ledger: Ledger, fake_time: FakeTime
) -> None:
    ledger.record_event("evt-a", "ORDER.PROCESSED", "other-order", "complete", {})
    ledger.record_event("evt-b", "ORDER.PROCESSED", ORDER_ID, "inProgress", {})
    client = FakeClient(["complete"], fake_time.clock)
    w = waiter(client, ledger, fake_time, use_webhooks=True, webhook_grace=10.0)
    start = fake_time.now
    assert w.wait(ORDER_ID, timeout=600) == "complete"
    assert client.calls == [start + 10.0]


def test_without_an_event_it_polls_after_the_grace_period(
    ledger: Ledger, fake_time: FakeTime
) -> None:
    start = fake_time.now
    client = FakeClient(["inProgress", "inProgress", "complete"], fake_time.clock)
    w = waiter(
        client,
        ledger,
        fake_time,
        use_webhooks=True,
        webhook_grace=30.0,
        poll_interval=2.0,
        event_check_interval=0.25,
    )
    assert w.wait(ORDER_ID, timeout=600) == "complete"
    assert client.calls == pytest.approx([start + 30.0, start + 32.0, start + 34.0])
    assert w.polls == 3
    assert max(fake_time.sleeps) <= 0.25  # still watching the ledger between polls


def test_an_event_after_the_grace_period_still_wins_over_the_next_poll(
    ledger: Ledger, fake_time: FakeTime
) -> None:
    start = fake_time.now
    client = FakeClient(["inProgress"], fake_time.clock)
    sleep = EventAt(fake_time, ledger, start + 31.0, "failed")
    w = waiter(
        client,
        ledger,
        fake_time,
        use_webhooks=True,
        sleep=sleep,
        webhook_grace=30.0,
        poll_interval=5.0,
    )
    assert w.wait(ORDER_ID, timeout=600) == "failed"
    assert client.calls == pytest.approx([start + 30.0])


@pytest.mark.parametrize("interval", [1.0, 2.5, 7.0])
def test_poll_mode_polls_at_once_then_every_interval(
    ledger: Ledger, fake_time: FakeTime, interval: float
) -> None:
    ledger.record_event("evt-0", "ORDER.PROCESSED", ORDER_ID, "complete", {})  # not consulted
    start = fake_time.now
    client = FakeClient(
        ["pending", "inProgress", "inProgress", "inProgress", "expired"], fake_time.clock
    )
    w = waiter(client, ledger, fake_time, use_webhooks=False, poll_interval=interval)
    assert w.wait(ORDER_ID, timeout=600) == "expired"
    assert client.calls == pytest.approx([start + n * interval for n in range(5)])
    assert fake_time.sleeps == pytest.approx([interval] * 4)


@pytest.mark.parametrize("use_webhooks", [False, True])
def test_timeout_returns_the_last_status(
    ledger: Ledger, fake_time: FakeTime, use_webhooks: bool
) -> None:
    start = fake_time.now
    client = FakeClient(["pending", "inProgress"], fake_time.clock)
    w = waiter(
        client,
        ledger,
        fake_time,
        use_webhooks=use_webhooks,
        poll_interval=3.0,
        webhook_grace=10.0,
        event_check_interval=1.0,
    )
    assert w.wait(ORDER_ID, timeout=20.0) == "inProgress"
    assert fake_time.now == pytest.approx(start + 20.0)  # never sleeps past the deadline
    first = start + (10.0 if use_webhooks else 0.0)
    expected = [first + 3.0 * n for n in range(100) if first + 3.0 * n <= start + 20.0]
    assert client.calls == pytest.approx(expected)
    assert w.polls == len(expected)


def test_timeout_inside_the_grace_period_never_polls(ledger: Ledger, fake_time: FakeTime) -> None:
    client = FakeClient(["complete"], fake_time.clock)
    w = waiter(client, ledger, fake_time, use_webhooks=True, webhook_grace=30.0)
    start = fake_time.now
    assert w.wait(ORDER_ID, timeout=5.0) == "inProgress"
    assert client.calls == []
    assert fake_time.now == pytest.approx(start + 5.0)


def test_final_statuses() -> None:
    assert {"complete", "failed", "expired"} == FINAL
