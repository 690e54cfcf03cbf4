"""Prefect events of a real ``protect`` run, read back from a real Prefect server; their cost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from deployments.stack import LocalStack
from mori.batch.ledger import Ledger, ledger_location
from mori.batch.outcomes import RunSummary
from mori.batch.plan import plan_orders
from mori.batch.progress import OrderEvent
from mori.settings import Settings
from tasks.events import RunEvents, emit_order_event, listening, run_status


def _events(run_id: str) -> list[Any]:
    """Every ``mori.*`` event the flow run ``run_id`` emitted (by the flow run related)."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    query = EventFilter(
        event=EventNameFilter(prefix=["mori."]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{run_id}"]),
    )
    with get_client(sync_client=True) as client:
        return list(client.read_events(filter=query, limit=50).events)


class Heard:
    """A progress listener that writes down what it heard."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def planned(self, orders: int, images: int) -> None:
        self.calls.append(("planned", orders, images))

    def order_done(self, images: int) -> None:
        self.calls.append(("order_done", images, 0))


def test_a_run_emits_its_orders_and_its_end(prefect_api: Any, support: Any, tmp_path: Path) -> None:
    from flows.protect import protect
    from mori.batch.manifest import load
    from mori.batch.storage import Storage

    manifest = support.make_manifest(tmp_path / "batch", 4, seed=21)
    first, _ = plan_orders(load(str(manifest), Storage()), 2)
    doomed = f"mori-pipeline-{first.order_key[:8]}"  # its name at MORI, which fails it
    ledger = Path(ledger_location(str(tmp_path / "batch" / "audit"), Settings()))
    heard = Heard()
    with (
        LocalStack(ledger, processing_seconds=0.1, fail_order_names=frozenset({doomed})),
        listening(heard),
    ):
        summary = protect(manifest=str(manifest), order_size=2, completion="poll")
    assert summary.counts == {"processed": 2, "failed": 2}

    # the in-process listener heard the plan and both orders
    assert heard.calls[0] == ("planned", 2, 4)
    assert sorted(heard.calls[1:]) == [("order_done", 2, 0), ("order_done", 2, 0)]

    def all_there() -> list[Any]:
        found = _events(summary.run_id)
        return found if len(found) == 5 else []

    events = support.wait_for(all_there, 30, what="the run's five mori.* events")
    by_name: dict[str, list[Any]] = {}
    for event in events:
        by_name.setdefault(event.event, []).append(event)
    assert {name: len(found) for name, found in by_name.items()} == {
        "mori.order.created": 2,
        "mori.order.completed": 1,
        "mori.order.failed": 1,
        "mori.run.finished": 1,
    }
    (failed,) = by_name["mori.order.failed"]
    assert failed.resource["mori.order-key"] == first.order_key
    assert failed.resource["mori.run-id"] == summary.run_id
    with Ledger(ledger) as book:
        order_id = book.order(first.order_key).order_id
    assert failed.resource.id == f"mori.order.{order_id}"
    assert failed.payload == {
        "files": 2,
        "processed": 0,
        "failed": 2,
        "error_code": "PROCESSING_FAILED",
    }
    (completed,) = by_name["mori.order.completed"]
    assert completed.payload["processed"] == 2 and completed.payload["failed"] == 0
    assert {e.payload["files"] for e in by_name["mori.order.created"]} == {2}
    (finished,) = by_name["mori.run.finished"]
    assert finished.resource.id == f"mori.run.{summary.run_id}"
    assert finished.resource["mori.run.status"] == "failed"
    payload = finished.payload
    assert (payload["rows"], payload["processed"], payload["failed"]) == (4, 2, 2)
    assert (payload["skipped"], payload["pending"], payload["orders"]) == (0, 0, 2)
    assert payload["failures"] == {"PROCESSING_FAILED": 2}


def test_run_status_label() -> None:
    def summary(**counts: int) -> RunSummary:
        return RunSummary("r", rows=sum(counts.values()), counts=counts)

    assert run_status(summary(processed=3, skipped=1)) == "completed"
    assert run_status(summary(processed=3, pending=1)) == "pending"
    assert run_status(summary(failed=1, pending=1)) == "failed"


def test_emitting_stays_cheap(prefect_api: Any) -> None:
    """emit_event only queues: a thousand order events take far less than one order's I/O."""
    events = RunEvents("cost-check")
    event = OrderEvent("completed", "k" * 64, "123", 100, processed=100)
    emit_order_event(event, "warm-up")  # the events worker starts on first use
    started = time.perf_counter()
    for _ in range(1000):
        events.order(event)
    per_event = (time.perf_counter() - started) / 1000
    assert per_event < 0.005, f"{per_event * 1e6:.0f} µs per event"


def test_a_listener_that_fails_never_fails_the_run() -> None:
    class Broken:
        def planned(self, orders: int, images: int) -> None:
            raise RuntimeError("display gone")

        def order_done(self, images: int) -> None:
            raise RuntimeError("display gone")

    heard = Heard()
    with listening(Broken()), listening(heard):
        events = RunEvents("r")
    events.planned(1, 3)
    events.order_done(3)
    assert heard.calls == [("planned", 1, 3), ("order_done", 3, 0)]
