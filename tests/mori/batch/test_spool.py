"""The receiver's event spool: durable, drained into the ledger once, kept while it fails."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from mori.batch.ledger import Ledger
from mori.batch.spool import EventSpool, SpoolDrainer, SpooledEvent


def _event(n: int) -> SpooledEvent:
    return SpooledEvent(f"evt-{n}", "ORDER.PROCESSED", f"ord-{n}", "complete", {"n": n})


def test_a_spooled_event_survives_a_restart_and_reaches_the_ledger_once(
    tmp_path: Path, ledger: Ledger
) -> None:
    spool = EventSpool(tmp_path / "spool.sqlite")
    spool.put(_event(1))
    spool.put(_event(1))  # MORI's retry of the same delivery
    spool.put(_event(2))
    spool.close()
    reopened = EventSpool(tmp_path / "spool.sqlite")  # a receiver restart
    assert [e.event_id for e in reopened.pending()] == ["evt-1", "evt-2"]
    ledger.record_event("evt-2", "ORDER.PROCESSED", "ord-2", "complete", {})  # it got there too
    assert reopened.drain(ledger.record_event) == 2
    assert reopened.pending() == []
    assert sorted(e.event_id for e in ledger.events()) == ["evt-1", "evt-2"]
    assert ledger.event_status("ord-1") == "complete"
    reopened.close()


def test_a_failing_ledger_keeps_the_event_for_the_next_attempt(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "spool.sqlite")
    spool.put(_event(1))

    def unavailable(*args: Any) -> bool:
        raise ConnectionError("ledger restarting")

    with pytest.raises(ConnectionError):
        spool.drain(unavailable)
    assert [e.event_id for e in spool.pending()] == ["evt-1"]
    spool.close()


def test_the_drainer_moves_events_in_the_background(tmp_path: Path, ledger: Ledger) -> None:
    spool = EventSpool(tmp_path / "spool.sqlite")
    recorded = threading.Event()

    def record(*args: Any) -> bool:
        new = ledger.record_event(*args)
        recorded.set()
        return new

    drainer = SpoolDrainer(spool, record, interval=0.01).start()
    spool.put(_event(3))
    assert recorded.wait(10)
    drainer.stop()
    assert [e.event_id for e in ledger.events("ord-3")] == ["evt-3"]
    assert spool.pending() == []
    spool.close()
