"""A receiver's buffer of verified webhook events the ledger could not take in time.

MORI waits 5 s for an answer. A receiver records each event in the ledger first, but the
ledger may be slow for a while: a SQLite ledger is write-locked while a large plan is
recorded, a PostgreSQL ledger is unreachable while it restarts. Rather than answer late (MORI
would count the delivery as failed) or wrongly, the receiver then writes the event here, in a
small SQLite file of its own that no planner ever locks, answers, and a background thread
moves the spooled events into the ledger as soon as it takes writes again. Events are keyed by
``eventId``, so a delivery that lands both here and in the ledger is still recorded once.

A spooled event waits only for the ledger; should the receiver's host be lost with events in
its spool, ``reconcile`` finishes their orders by asking MORI (as for any lost webhook).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mori.batch.ledger import now_iso

log = logging.getLogger("mori.receiver.spool")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spooled_events (
    event_id    TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    status      TEXT NOT NULL,
    payload     TEXT NOT NULL,
    spooled_at  TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class SpooledEvent:
    """One verified event waiting for the ledger."""

    event_id: str
    event_type: str
    order_id: str
    status: str
    payload: dict[str, Any]


#: Records one event in the ledger; ``True`` when it was new there.
Recorder = Callable[[str, str, str, str, dict[str, Any]], bool]


class EventSpool:
    """A durable queue of events (one SQLite file in WAL mode, synced on every put)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def put(self, event: SpooledEvent) -> None:
        """Keep ``event`` until it reaches the ledger (durable when this returns)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO spooled_events VALUES (?, ?, ?, ?, ?, ?)",
                (
                    event.event_id,
                    event.event_type,
                    event.order_id,
                    event.status,
                    json.dumps(event.payload),
                    now_iso(),
                ),
            )

    def pending(self) -> list[SpooledEvent]:
        """The events waiting, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, event_type, order_id, status, payload FROM spooled_events"
                " ORDER BY spooled_at"
            ).fetchall()
        return [SpooledEvent(row[0], row[1], row[2], row[3], json.loads(row[4])) for row in rows]

    def drain(self, record: Recorder) -> int:
        """Hand every waiting event to ``record`` (the ledger); return how many went.

        An event leaves the spool only once ``record`` returned, so a failure keeps it for the
        next attempt.
        """
        moved = 0
        for event in self.pending():
            record(event.event_id, event.event_type, event.order_id, event.status, event.payload)
            with self._lock:
                self._db.execute("DELETE FROM spooled_events WHERE event_id = ?", (event.event_id,))
            moved += 1
        return moved

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SpoolDrainer:
    """A daemon thread that moves spooled events into the ledger every ``interval`` seconds."""

    def __init__(self, spool: EventSpool, record: Recorder, interval: float = 1.0) -> None:
        self._spool, self._record, self._interval = spool, record, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-drainer", daemon=True)

    def start(self) -> SpoolDrainer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if moved := self._spool.drain(self._record):
                    log.info("moved %d spooled webhook events into the ledger", moved)
            except Exception as exc:  # the ledger is still unavailable: try again later
                log.warning("spooled webhook events wait for the ledger: %s", exc)

    def stop(self) -> None:
        """Stop after a last attempt to drain."""
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            self._spool.drain(self._record)
        except Exception as exc:
            log.warning("spooled webhook events kept for the next start: %s", exc)
