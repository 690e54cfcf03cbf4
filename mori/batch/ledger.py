"""The ledger: durable intent and progress per image and per order (SQLite).

DESIGN invariant 3, *intent before side effect*: which images an order holds is committed here,
under the order's deterministic key, before the order is created at MORI; each later step
(created, uploaded, confirmed, complete, downloaded) is committed before the next begins. A
rerun after a crash at any point finds the order again by its key and resumes it, with the same
idempotency keys, instead of creating a new one.

It lives in one SQLite file (default ``<audit>/ledger.sqlite``) in WAL mode, so one machine
needs no server, and several processes on that machine (a batch run, the webhook receiver)
share it safely. Several machines must share one ledger file on one host (see README).

Nothing secret is stored: no API key, no presigned URL (a create replayed with the same
idempotency key hands the upload URLs back), no webhook signature.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_key     TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,              -- 'upload' | 'url'
    generation    INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL,              -- see ORDER_STATUSES
    order_id      TEXT,
    order_name    TEXT,
    error_code    TEXT,
    error_message TEXT,
    replaced_by   TEXT,
    planned_at    TEXT NOT NULL,
    created_at    TEXT,
    uploaded_at   TEXT,
    confirmed_at  TEXT,
    completed_at  TEXT,
    downloaded_at TEXT,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_id ON orders(order_id);
CREATE TABLE IF NOT EXISTS order_images (
    order_key  TEXT NOT NULL REFERENCES orders(order_key),
    position   INTEGER NOT NULL,
    image_key  TEXT NOT NULL,
    file_name  TEXT NOT NULL,
    location   TEXT NOT NULL,
    width      INTEGER,                     -- source dimensions, when known (files)
    height     INTEGER,
    PRIMARY KEY (order_key, position)
);
CREATE TABLE IF NOT EXISTS images (
    image_key     TEXT PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    status        TEXT NOT NULL,              -- 'planned' | 'processed' | 'failed'
    order_key     TEXT NOT NULL,
    output_uri    TEXT,
    output_sha256 TEXT,
    error_code    TEXT,
    error_message TEXT,
    updated_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_events (
    event_id    TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    status      TEXT NOT NULL,
    payload     TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_order ON webhook_events(order_id);
"""

#: Order progress, in order. ``failed`` and ``abandoned`` are terminal too.
ORDER_STATUSES = ("planned", "created", "uploaded", "confirmed", "complete", "downloaded")
TERMINAL = frozenset({"downloaded", "failed", "abandoned"})


def now_iso() -> str:
    """The current UTC time as ISO-8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class OrderRecord:
    order_key: str
    kind: str
    generation: int
    status: str
    order_id: str | None
    order_name: str | None
    error_code: str | None
    error_message: str | None
    replaced_by: str | None
    planned_at: str
    created_at: str | None
    uploaded_at: str | None
    confirmed_at: str | None
    completed_at: str | None
    downloaded_at: str | None

    def reached(self, status: str) -> bool:
        """``True`` when the order got at least as far as ``status``."""
        if self.status not in ORDER_STATUSES:
            return False
        return ORDER_STATUSES.index(self.status) >= ORDER_STATUSES.index(status)


@dataclass(frozen=True)
class ImageRecord:
    image_key: str
    fingerprint: str
    status: str
    order_key: str
    output_uri: str | None
    output_sha256: str | None
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True)
class Slot:
    """One image's place in an order."""

    position: int
    image_key: str
    file_name: str
    location: str
    width: int | None = None
    height: int | None = None


class Ledger:
    """Thread-safe access to one ledger file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path, timeout=30, check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    # -- images --------------------------------------------------------------------------------

    def images(self, image_keys: Iterable[str]) -> dict[str, ImageRecord]:
        """The ledger's record of each known image key."""
        found: dict[str, ImageRecord] = {}
        batch: list[str] = []
        for key in image_keys:
            batch.append(key)
            if len(batch) == 500:
                found.update(self._images(batch))
                batch = []
        if batch:
            found.update(self._images(batch))
        return found

    def _images(self, batch: list[str]) -> dict[str, ImageRecord]:
        marks = ",".join("?" * len(batch))
        rows = self._query(
            "SELECT image_key, fingerprint, status, order_key, output_uri, output_sha256,"
            f" error_code, error_message FROM images WHERE image_key IN ({marks})",
            batch,
        )
        return {r["image_key"]: ImageRecord(**dict(r)) for r in rows}

    # -- orders --------------------------------------------------------------------------------

    def plan(
        self,
        order_key: str,
        kind: str,
        slots: Sequence[Slot],
        fingerprints: dict[str, str],
        generation: int = 0,
    ) -> None:
        """Record an order's intent: its images, before it exists at MORI. Idempotent."""
        at = now_iso()
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO orders(order_key, kind, generation, status, planned_at,"
                " updated_at) VALUES (?, ?, ?, 'planned', ?, ?)",
                (order_key, kind, generation, at, at),
            )
            db.executemany(
                "INSERT OR IGNORE INTO order_images VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (order_key, s.position, s.image_key, s.file_name, s.location, s.width, s.height)
                    for s in slots
                ],
            )
            db.executemany(
                "INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
                " VALUES (?, ?, 'planned', ?, ?) ON CONFLICT(image_key) DO UPDATE SET"
                " order_key=excluded.order_key, status='planned', updated_at=excluded.updated_at"
                " WHERE images.status = 'planned'",
                [(s.image_key, fingerprints[s.image_key], order_key, at) for s in slots],
            )

    def order(self, order_key: str) -> OrderRecord:
        """The record of one order."""
        rows = self._query(
            f"SELECT {', '.join(OrderRecord.__dataclass_fields__)} FROM orders WHERE order_key = ?",
            (order_key,),
        )
        if not rows:
            raise KeyError(order_key)
        return OrderRecord(**dict(rows[0]))

    def slots(self, order_key: str) -> list[Slot]:
        """An order's images, by position."""
        rows = self._query(
            "SELECT position, image_key, file_name, location, width, height FROM order_images"
            " WHERE order_key = ? ORDER BY position",
            (order_key,),
        )
        return [Slot(**dict(r)) for r in rows]

    def open_orders(self) -> list[OrderRecord]:
        """Orders that are neither downloaded, failed nor abandoned."""
        marks = ",".join("?" * len(TERMINAL))
        rows = self._query(
            f"SELECT order_key FROM orders WHERE status NOT IN ({marks}) ORDER BY planned_at",
            tuple(TERMINAL),
        )
        return [self.order(r["order_key"]) for r in rows]

    def advance(self, order_key: str, status: str, **fields: Any) -> None:
        """Move an order to ``status`` (stamping ``<status>_at``) and set ``fields``."""
        stamp = {"complete": "completed_at"}.get(status, f"{status}_at")
        at = now_iso()
        if stamp in OrderRecord.__dataclass_fields__:
            fields.setdefault(stamp, at)
        fields.update(status=status, updated_at=at)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._tx() as db:
            db.execute(
                f"UPDATE orders SET {assignments} WHERE order_key = ?",
                (*fields.values(), order_key),
            )

    def fail_order(self, order_key: str, code: str, message: str) -> None:
        """The order failed for good: it and its still-planned images are ``failed``."""
        at = now_iso()
        with self._tx() as db:
            db.execute(
                "UPDATE orders SET status='failed', error_code=?, error_message=?, updated_at=?"
                " WHERE order_key=?",
                (code, message, at, order_key),
            )
            db.execute(
                "UPDATE images SET status='failed', error_code=?, error_message=?, updated_at=?"
                " WHERE order_key=? AND status='planned'",
                (code, message, at, order_key),
            )

    def replace(self, old_key: str, new_key: str, slots: Sequence[Slot], generation: int) -> None:
        """Abandon a never-confirmed order and move its images to a new one (new key)."""
        fingerprints = {
            r["image_key"]: r["fingerprint"]
            for r in self._query(
                "SELECT image_key, fingerprint FROM images WHERE order_key = ?", (old_key,)
            )
        }
        kind = self.order(old_key).kind
        with self._lock:
            self.plan(new_key, kind, slots, fingerprints, generation)
            at = now_iso()
            with self._tx() as db:
                db.execute(
                    "UPDATE images SET order_key=?, updated_at=? WHERE order_key=?"
                    " AND status='planned'",
                    (new_key, at, old_key),
                )
                db.execute(
                    "UPDATE orders SET status='abandoned', replaced_by=?, updated_at=?"
                    " WHERE order_key=?",
                    (new_key, at, old_key),
                )

    def image_done(
        self,
        image_key: str,
        output_uri: str | None,
        output_sha256: str | None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """Record one image's final outcome (``processed`` unless an error code is given)."""
        status = "failed" if error_code else "processed"
        with self._tx() as db:
            db.execute(
                "UPDATE images SET status=?, output_uri=?, output_sha256=?, error_code=?,"
                " error_message=?, updated_at=? WHERE image_key=?",
                (
                    status,
                    output_uri,
                    output_sha256,
                    error_code,
                    error_message,
                    now_iso(),
                    image_key,
                ),
            )

    # -- webhook events ------------------------------------------------------------------------

    def record_event(
        self, event_id: str, event_type: str, order_id: str, status: str, payload: dict[str, Any]
    ) -> bool:
        """Store a verified webhook event once; ``False`` if its ``eventId`` was seen before."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO webhook_events VALUES (?, ?, ?, ?, ?, ?)",
                (event_id, event_type, order_id, status, json.dumps(payload), now_iso()),
            )
            return cur.rowcount == 1

    def event_status(self, order_id: str) -> str | None:
        """The terminal status a webhook reported for an order, if any arrived."""
        rows = self._query(
            "SELECT status FROM webhook_events WHERE order_id = ? ORDER BY received_at DESC",
            (order_id,),
        )
        statuses = [r["status"] for r in rows]
        for terminal in ("complete", "failed"):
            if terminal in statuses:
                return terminal
        return statuses[0] if statuses else None
