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

import functools
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from mori.batch.bulk import gc_paused

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
    updated_at    TEXT NOT NULL,
    output_uri    TEXT                        -- where the planning run writes its outputs
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
    #: The outputs folder of the run that planned the order (``None``: planned by an earlier
    #: version, which did not record it).
    output_uri: str | None = None

    def reached(self, status: str) -> bool:
        """``True`` when the order got at least as far as ``status``."""
        if self.status not in ORDER_STATUSES:
            return False
        return ORDER_STATUSES.index(self.status) >= ORDER_STATUSES.index(status)


class ImageRecord(NamedTuple):
    """The ledger's row of one image (a named tuple: a rerun builds a million of them)."""

    image_key: str
    fingerprint: str
    status: str
    order_key: str
    output_uri: str | None
    output_sha256: str | None
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class Slot:
    """One image's place in an order."""

    position: int
    image_key: str
    file_name: str
    location: str
    width: int | None = None
    height: int | None = None


_new_slot = object.__new__
_slot_setters = tuple(
    getattr(Slot, name).__set__
    for name in ("position", "image_key", "file_name", "location", "width", "height")
)


def make_slot(
    position: int,
    image_key: str,
    file_name: str,
    location: str,
    width: int | None = None,
    height: int | None = None,
) -> Slot:
    """``Slot(...)``, twice as fast: the frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` per field; this sets the slots directly (planning makes millions)."""
    slot: Slot = _new_slot(Slot)
    p, k, f, loc, w, h = _slot_setters
    p(slot, position)
    k(slot, image_key)
    f(slot, file_name)
    loc(slot, location)
    w(slot, width)
    h(slot, height)
    return slot


#: ``(order_key, kind, slots, generation)``: one order's intent for :meth:`Ledger.plan_many`.
PlannedIntent = tuple[str, str, Sequence[Slot], int]

_ORDER_COLUMNS = ", ".join(OrderRecord.__dataclass_fields__)
_IMAGE_COLUMNS = ", ".join(ImageRecord._fields)
#: Rows of one intent transaction from which its checkpoint goes to a background thread.
_BULK_ROWS = 20_000
_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default
#: Bytes of WAL file kept after a checkpoint reset it (a bulk intent may have grown it a lot).
_WAL_SIZE_LIMIT = 64 * 2**20
#: ``order_images`` rows per ``INSERT`` (7 parameters each: within the old 999 limit).
_ROWS_PER_INSERT = 100
#: Look up by scanning the whole ``images`` table once the keys are 1/4 of its rows or more
#: (a scan costs about 1.3 µs a row, a probe about 5 µs a key).
_SCAN_SHARE = 4
#: Image keys per ``IN (...)`` lookup (SQLite allows 32,766 parameters since 3.32, 999 before).
_LOOKUP_BATCH = 10_000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 900


_first = itemgetter(0)

_IMAGES_UPSERT = (
    "ON CONFLICT(image_key) DO UPDATE SET order_key=excluded.order_key, status='planned',"
    " updated_at=excluded.updated_at WHERE images.status = 'planned'"
)


#: An order's ``images`` rows from its ``order_images`` rows (fingerprint ``url:<location>``).
_COPY_IMAGES = (
    "INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
    " SELECT image_key, 'url:' || location, 'planned', order_key, ?2 FROM order_images"
    f" WHERE order_key = ?1 ORDER BY position {_IMAGES_UPSERT}"
)


def _split_for_copy(
    orders: list[PlannedIntent],
    fingerprints: Mapping[str, str],
    existing: set[str],
    url_fingerprints: bool = False,
) -> tuple[list[str], list[PlannedIntent]]:
    """The keys of the orders whose ``images`` rows SQLite can copy, and the other orders.

    An order qualifies when it is new (so its ``order_images`` rows are exactly its slots),
    its positions are ``0..n-1`` and every fingerprint is ``url:<location>`` (vouched for by
    the caller for ``url`` orders with ``url_fingerprints``, checked slot by slot otherwise).
    The result is the same as binding every row, in order, as long as no image is in two
    orders of the call; when one is (never from :func:`~mori.batch.plan.plan_orders`),
    nothing is copied.
    """
    copied: list[str] = []
    bound: list[PlannedIntent] = []
    for order in orders:
        key, kind, slots, _ = order
        if key not in existing and (
            _in_position(slots)
            if url_fingerprints and kind == "url"
            else _copyable(slots, fingerprints)
        ):
            copied.append(key)
        else:
            bound.append(order)
    if not copied:
        return [], bound
    if len(set(copied)) != len(copied) or (bound and _shared_images(copied, orders, bound)):
        return [], orders
    return copied, bound


def _in_position(slots: Sequence[Slot]) -> bool:
    """Every slot is at its index."""
    return all(slot.position == index for index, slot in enumerate(slots))


def _copyable(slots: Sequence[Slot], fingerprints: Mapping[str, str]) -> bool:
    """Every slot is at its index and has the fingerprint ``"url:" + slot.location``."""
    return _in_position(slots) and all(
        fingerprints[s.image_key] == "url:" + s.location for s in slots
    )


def _order_images_insert(order_key: str, slots: Sequence[Slot]) -> tuple[str, list[Any]]:
    """One ``INSERT`` of an order's ``order_images`` rows (one statement for up to 100 rows is
    about a third faster than a row at a time). Without dimensions (URL rows) two parameters
    fewer per row are bound."""
    args: list[Any] = []
    if all(s.width is None and s.height is None for s in slots):
        for s in slots:
            args += (order_key, s.position, s.image_key, s.file_name, s.location)
        return _values_sql(len(slots), "(?, ?, ?, ?, ?, NULL, NULL)"), args
    for s in slots:
        args += (order_key, s.position, s.image_key, s.file_name, s.location, s.width, s.height)
    return _values_sql(len(slots), "(?, ?, ?, ?, ?, ?, ?)"), args


@functools.lru_cache(maxsize=32)
def _values_sql(rows: int, row: str) -> str:
    return "INSERT OR IGNORE INTO order_images VALUES " + ", ".join([row] * rows)


def _shared_images(
    copied: list[str], orders: list[PlannedIntent], bound: list[PlannedIntent]
) -> bool:
    """``True`` when an image of a bound order is also in a copied order."""
    bound_keys = {s.image_key for _, _, slots, _ in bound for s in slots}
    chosen = set(copied)
    return any(
        s.image_key in bound_keys for key, _, slots, _ in orders if key in chosen for s in slots
    )


def _marks(n: int) -> str:
    """``?,?,...`` with ``n`` marks."""
    return ",".join("?" * n)


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
        self._db.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
        self._db.executescript(SCHEMA)
        self._migrate()
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_later = False

    def _migrate(self) -> None:
        """Bring a ledger written by an earlier version up to :data:`SCHEMA` (columns added)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(orders)")}
        if "output_uri" not in have:
            try:
                self._db.execute("ALTER TABLE orders ADD COLUMN output_uri TEXT")
            except sqlite3.OperationalError as exc:  # another process added it meanwhile
                if "duplicate column" not in str(exc):
                    raise

    def close(self) -> None:
        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.join()
            self._db.close()

    @contextmanager
    def _tx(self, checkpoint_later: bool = False) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction. ``checkpoint_later``: the commit (durable once
        the WAL is synced) does not copy the WAL into the database file itself, as SQLite's
        automatic checkpoint would; a background thread does (for very large transactions)."""
        with self._lock:
            if checkpoint_later:  # also when nested: the outermost commit honours it
                self._db.execute("PRAGMA wal_autocheckpoint=0")
                self._checkpoint_later = True
            if self._db.in_transaction:  # inside exclusive(): part of its transaction
                yield self._db
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                later, self._checkpoint_later = self._checkpoint_later, False
                if later:
                    self._db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
        if later:
            self._checkpoint_in_background()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the ledger's write lock (against every process) for a read-then-write sequence.

        Planning reads which images are known, then records new orders for the others; two runs
        doing that at once would both plan the same images. Inside this block every read and
        write of this ledger object is one transaction; other writers wait (busy timeout).
        """
        with self._tx():
            yield

    def _checkpoint_in_background(self) -> None:
        """A passive checkpoint on a connection of its own (never blocks readers or writers)."""

        def run() -> None:
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    db.close()
            except sqlite3.Error:  # maintenance only: the next commits checkpoint anyway
                pass

        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.join()
            self._checkpointer = threading.Thread(target=run, name="ledger-checkpoint", daemon=True)
            self._checkpointer.start()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    def _tuples(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """:meth:`_query` with plain tuples (no ``sqlite3.Row``: faster for many rows)."""
        with self._lock:
            cursor = self._db.cursor()
            cursor.row_factory = None
            return cursor.execute(sql, args).fetchall()

    # -- images --------------------------------------------------------------------------------

    def images(self, image_keys: Iterable[str]) -> dict[str, ImageRecord]:
        """The ledger's record of each known image key.

        Few keys are looked up by index; when they are a good share of the table (a rerun of
        a big manifest) one pass over the table is several times faster than the probes.
        """
        keys = list(image_keys)
        found: dict[str, ImageRecord] = {}
        rows = self._tuples("SELECT max(rowid) FROM images")[0][0]  # ≥ the row count
        if not keys or not rows:
            return found  # e.g. a new ledger: a first run of a big manifest looks up nothing
        if len(keys) * _SCAN_SHARE >= rows:
            wanted = set(keys)
            with self._lock, gc_paused():
                cursor = self._db.cursor()
                cursor.row_factory = None
                for row in cursor.execute(f"SELECT {_IMAGE_COLUMNS} FROM images"):
                    if row[0] in wanted:
                        found[row[0]] = ImageRecord._make(row)
            return found
        with gc_paused():
            for start in range(0, len(keys), _LOOKUP_BATCH):
                batch = keys[start : start + _LOOKUP_BATCH]
                for row in self._tuples(
                    f"SELECT {_IMAGE_COLUMNS} FROM images"
                    f" WHERE image_key IN ({_marks(len(batch))})",
                    batch,
                ):
                    found[row[0]] = ImageRecord._make(row)
        return found

    def reopen_failed(self, image_keys: Sequence[str]) -> int:
        """Set images that failed for good back to ``planned``, to send them again.

        Returns the generation their new orders need: one above every order that held them
        (each image's current order is its latest: replacements only raise the generation), so
        the new orders' keys, and MORI idempotency keys, are new. Call it in the transaction
        that records the new orders (see :func:`mori.batch.plan.plan_and_record`).
        """
        highest, at = 0, now_iso()
        with self._tx() as db:
            for start in range(0, len(image_keys), _LOOKUP_BATCH):
                batch = list(image_keys[start : start + _LOOKUP_BATCH])
                marks = _marks(len(batch))
                (top,) = db.execute(
                    "SELECT max(o.generation) FROM images i JOIN orders o USING (order_key)"
                    f" WHERE i.image_key IN ({marks})",
                    batch,
                ).fetchone()
                highest = max(highest, top or 0)
                db.execute(
                    "UPDATE images SET status='planned', output_uri=NULL, output_sha256=NULL,"
                    " error_code=NULL, error_message=NULL, updated_at=?"
                    f" WHERE status='failed' AND image_key IN ({marks})",
                    (at, *batch),
                )
        return highest + 1

    # -- orders --------------------------------------------------------------------------------

    def plan(
        self,
        order_key: str,
        kind: str,
        slots: Sequence[Slot],
        fingerprints: Mapping[str, str],
        generation: int = 0,
        output_uri: str | None = None,
    ) -> None:
        """Record an order's intent: its images, before it exists at MORI. Idempotent."""
        self.plan_many([(order_key, kind, slots, generation)], fingerprints, output_uri=output_uri)

    def plan_many(
        self,
        orders: Iterable[PlannedIntent],
        fingerprints: Mapping[str, str],
        *,
        url_fingerprints: bool = False,
        output_uri: str | None = None,
    ) -> None:
        """:meth:`plan` for many orders in one transaction: all of them are recorded, or none.

        ``orders`` holds ``(order_key, kind, slots, generation)``; ``fingerprints`` maps every
        slot's image key to its fingerprint; ``output_uri`` is where the planning run writes
        the orders' outputs (``finalize`` and ``reconcile`` write there too). With
        ``url_fingerprints`` the caller vouches that every slot of a ``url`` order has the
        fingerprint ``url:<location>`` (as every URL row of a manifest has), and those slots
        need no entry in ``fingerprints``.

        ``order_images`` rows go in with one multi-row ``INSERT`` per order; the ``images``
        rows of a new URL order are copied from its ``order_images`` rows by SQLite itself,
        about twice as fast as binding them again. A very large plan leaves its checkpoint to
        a background thread.
        """
        orders = list(orders)

        def fingerprint(kind: str, slot: Slot) -> str:
            if url_fingerprints and kind == "url":
                return "url:" + slot.location
            return fingerprints[slot.image_key]

        bulk = sum(len(slots) for _, _, slots, _ in orders) >= _BULK_ROWS
        at = now_iso()
        with self._tx(checkpoint_later=bulk) as db:
            existing = self._existing_orders([key for key, _, _, _ in orders])
            db.executemany(
                "INSERT OR IGNORE INTO orders(order_key, kind, generation, status, planned_at,"
                " updated_at, output_uri) VALUES (?, ?, ?, 'planned', ?, ?, ?)",
                [
                    (key, kind, generation, at, at, output_uri)
                    for key, kind, _, generation in orders
                ],
            )
            # In key order: the primary-key index of order_images then grows at the end only.
            for key, _, slots, _ in sorted(orders, key=_first):
                for start in range(0, len(slots), _ROWS_PER_INSERT):
                    db.execute(*_order_images_insert(key, slots[start : start + _ROWS_PER_INSERT]))
            copied, bound = _split_for_copy(orders, fingerprints, existing, url_fingerprints)
            db.executemany(_COPY_IMAGES, [(key, at) for key in copied])
            db.executemany(
                f"INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
                f" VALUES (?, ?, 'planned', ?, ?) {_IMAGES_UPSERT}",
                (
                    (s.image_key, fingerprint(kind, s), key, at)
                    for key, kind, slots, _ in bound
                    for s in slots
                ),
            )

    def _existing_orders(self, order_keys: list[str]) -> set[str]:
        """Which of ``order_keys`` the ledger already holds."""
        found: set[str] = set()
        for i in range(0, len(order_keys), _LOOKUP_BATCH):
            batch = order_keys[i : i + _LOOKUP_BATCH]
            rows = self._tuples(
                f"SELECT order_key FROM orders WHERE order_key IN ({_marks(len(batch))})", batch
            )
            found.update(r[0] for r in rows)
        return found

    def order(self, order_key: str) -> OrderRecord:
        """The record of one order."""
        rows = self._tuples(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_key = ?",
            (order_key,),
        )
        if not rows:
            raise KeyError(order_key)
        return OrderRecord(*rows[0])

    def order_by_id(self, order_id: str) -> OrderRecord | None:
        """The order MORI knows as ``order_id`` (the latest generation holding it), if any."""
        rows = self._tuples(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?"
            " ORDER BY generation DESC LIMIT 1",
            (order_id,),
        )
        return OrderRecord(*rows[0]) if rows else None

    def slots(self, order_key: str) -> list[Slot]:
        """An order's images, by position."""
        rows = self._tuples(
            "SELECT position, image_key, file_name, location, width, height FROM order_images"
            " WHERE order_key = ? ORDER BY position",
            (order_key,),
        )
        return [Slot(*r) for r in rows]

    def open_orders(self) -> list[OrderRecord]:
        """Orders that are neither downloaded, failed nor abandoned."""
        marks = ",".join("?" * len(TERMINAL))
        rows = self._tuples(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE status NOT IN ({marks})"
            " ORDER BY planned_at",
            tuple(TERMINAL),
        )
        return [OrderRecord(*r) for r in rows]

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
        old = self.order(old_key)
        with self._lock:
            self.plan(new_key, old.kind, slots, fingerprints, generation, old.output_uri)
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
