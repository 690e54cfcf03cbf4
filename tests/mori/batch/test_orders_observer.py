"""OrderProcessor's observer: one ``created`` per order made at MORI, then one ``completed`` or
``failed`` when the order reaches it in this call, never for an order already final.

Real emulator over HTTP, no Prefect (the processor is plain Python).
"""

from __future__ import annotations

import pytest

from mori.batch.ledger import Slot
from mori.batch.orders import OrderSettings
from mori.batch.progress import OrderEvent
from tests.mori.batch.test_orders import DOOMED, World, crash_after_create, world

__all__ = ["world"]  # the fixture this module borrows


def _observe(world: World) -> list[OrderEvent]:
    events: list[OrderEvent] = []
    world.processor.observer = events.append
    return events


def test_a_processed_order_is_created_then_completed(world: World) -> None:
    events = _observe(world)
    (key,) = world.plan()
    result = world.processor.process(key)
    order_id = result.order_id
    assert events == [
        OrderEvent("created", key, order_id, 5),
        OrderEvent("completed", key, order_id, 5, processed=5, failed=0),
    ]
    world.processor.process(key)  # already downloaded: read back, nothing happened now
    assert len(events) == 2


@pytest.mark.emulator(fail_order_names=frozenset({DOOMED}))
def test_an_order_mori_fails_is_created_then_failed_with_its_code(world: World) -> None:
    events = _observe(world)
    (key,) = world.plan()
    world.processor.settings = OrderSettings(
        str(world.out), wait_timeout=10, order_name_prefix=DOOMED
    )
    result = world.processor.process(key)
    assert [e.kind for e in events] == ["created", "failed"]
    assert events[1] == OrderEvent(
        "failed", key, result.order_id, 5, processed=0, failed=5, error_code="PROCESSING_FAILED"
    )
    world.processor.process(key)
    assert len(events) == 2


def test_an_order_mori_refuses_is_failed_without_being_created(world: World) -> None:
    events = _observe(world)
    world.ledger.plan(
        "bad-order", "upload", [Slot(0, "img-x", "photo.gif", "/nope")], {"img-x": "sha256:00"}
    )
    world.processor.process("bad-order")
    assert events == [
        OrderEvent("failed", "bad-order", None, 1, failed=1, error_code="INVALID_REQUEST")
    ]


def test_a_pending_order_completes_later_without_a_second_created(world: World) -> None:
    events = _observe(world)
    (key,) = world.plan()
    world.processor.settings = OrderSettings(str(world.out), wait_timeout=0)
    assert world.processor.process(key).status == "pending"
    assert [e.kind for e in events] == ["created"]
    world.processor.settings = OrderSettings(str(world.out), wait_timeout=10)
    assert world.processor.process(key).status == "processed"
    assert [e.kind for e in events] == ["created", "completed"]


def test_a_replaced_order_reports_both_creates_and_one_completion(world: World) -> None:
    events = _observe(world)
    (key,) = world.plan()
    crash_after_create(world, key)
    world.clock.advance(1801)  # the upload URLs lapse: the order is replaced
    result = world.processor.process(key)
    assert [(e.kind, e.order_key) for e in events] == [
        ("created", key),
        ("created", result.order_key),
        ("completed", result.order_key),
    ]
    assert events[-1].processed == 5


def test_an_observer_that_fails_never_fails_the_order(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: OrderEvent) -> None:
        raise RuntimeError("observer down")

    world.processor.observer = broken
    (key,) = world.plan()
    assert world.processor.process(key).status == "processed"
    assert "order observer failed" in caplog.text
