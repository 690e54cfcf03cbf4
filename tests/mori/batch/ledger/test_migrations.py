"""Versioned migrations: applied on open, once, also when processes open a fresh ledger at once,
and ledgers written before migrations were recorded brought up to date without losing a row."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from mori.batch.ledger import Ledger, LedgerSchemaError, Slot
from mori.batch.ledger.schema import MIGRATIONS, SOURCE_OBJECTS_VERSION, Migration

#: The SQLite schema of ledgers written before migrations were recorded (0.2: output_uri).
LEGACY_SCHEMA = """
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
#: The 0.1 schema: the same without orders.output_uri.
SCHEMA_0_1 = LEGACY_SCHEMA.replace(
    "    updated_at    TEXT NOT NULL,\n    output_uri    TEXT"
    "                        -- where the planning run writes its outputs",
    "    updated_at    TEXT NOT NULL",
)


def legacy_ledger(path: Path, schema: str) -> None:
    """A ledger file as mori-pipeline wrote it before migrations: one order, image, event."""
    db = sqlite3.connect(path)
    db.executescript(schema)
    db.execute(
        "INSERT INTO orders(order_key, kind, status, order_id, planned_at, updated_at)"
        " VALUES ('k-old', 'upload', 'created', 'ord-7', '2020-01-01', '2020-01-02')"
    )
    db.execute("INSERT INTO order_images VALUES ('k-old', 0, 'img-1', 'a.jpg', '/d/a.jpg', 3, 4)")
    db.execute(
        "INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
        " VALUES ('img-1', 'fp-1', 'planned', 'k-old', 't1')"
    )
    db.execute(
        "INSERT INTO webhook_events VALUES ('e-1', 'ORDER.PROCESSED', 'ord-7', 'complete',"
        " '{}', 't2')"
    )
    db.commit()
    db.close()


def applied(path: Path) -> list[int]:
    """The versions recorded in a SQLite ledger's ``schema_migrations``."""
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        db.close()


def test_a_fresh_ledger_is_at_the_latest_version(ledger: Ledger) -> None:
    latest = MIGRATIONS[ledger.backend][-1].version
    assert ledger.schema_version() == latest
    assert ledger.order_count() == 0 and ledger.events() == []


@pytest.mark.parametrize(
    ("schema", "output_uri_before"), [(SCHEMA_0_1, False), (LEGACY_SCHEMA, True)]
)
def test_a_ledger_written_before_migrations_is_brought_up_to_date(
    tmp_path: Path, schema: str, output_uri_before: bool
) -> None:
    path = tmp_path / "old.sqlite"
    legacy_ledger(path, schema)
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(orders)")}
    assert ("output_uri" in columns) is output_uri_before
    for _ in range(2):  # and opening it again changes nothing
        with Ledger(path) as ledger:
            old = ledger.order("k-old")
            assert (old.status, old.order_id, old.output_uri) == ("created", "ord-7", None)
            assert ledger.slots("k-old") == [Slot(0, "img-1", "a.jpg", "/d/a.jpg", 3, 4)]
            assert ledger.images(["img-1"])["img-1"].fingerprint == "fp-1"
            assert ledger.event_status("ord-7") == "complete"
            assert ledger.schema_version() == MIGRATIONS["sqlite"][-1].version
        assert applied(path) == [m.version for m in MIGRATIONS["sqlite"]]
    with Ledger(path) as ledger:
        ledger.plan("k-new", "upload", [Slot(0, "img-2", "b", "/b")], {"img-2": "fp-2"}, 0, "/o")
        assert ledger.order("k-new").output_uri == "/o"
        assert [o.order_key for o in ledger.open_orders()] == ["k-old", "k-new"]


def test_opening_applies_nothing_when_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        first = db.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version, applied_at FROM schema_migrations").fetchall() == first


def test_processes_opening_a_fresh_ledger_at_once_apply_each_migration_once(
    ledger_url: str,
) -> None:
    """Eight openers start together on an empty database: none fails, no step runs twice."""
    start = threading.Barrier(8)
    errors: list[BaseException] = []
    opened: list[Ledger] = []
    lock = threading.Lock()

    def open_one() -> None:
        start.wait()
        try:
            led = Ledger(ledger_url)
        except BaseException as exc:
            errors.append(exc)
            return
        with lock:
            opened.append(led)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert len(opened) == 8
        versions = [m.version for m in MIGRATIONS[opened[0].backend]]
        assert all(led.schema_version() == versions[-1] for led in opened)
        assert recorded_versions(ledger_url) == versions
    finally:
        for led in opened:
            led.close()


def recorded_versions(url: str) -> list[int]:
    """Every row of ``schema_migrations``, SQLite or PostgreSQL."""
    query = "SELECT version FROM schema_migrations ORDER BY version"
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as conn:
            return [r[0] for r in conn.execute(query)]
    with sqlite3.connect(url) as db:
        return [r[0] for r in db.execute(query)]


def test_a_newer_schema_is_refused(ledger_url: str) -> None:
    Ledger(ledger_url).close()
    insert = "INSERT INTO schema_migrations VALUES (99, 'later')"
    if ledger_url.startswith("postgresql://"):
        with psycopg.connect(ledger_url) as conn:
            conn.execute(insert)
    else:
        with sqlite3.connect(ledger_url) as db:
            db.execute(insert)
    with pytest.raises(LedgerSchemaError, match="version 99"):
        Ledger(ledger_url)


def test_a_migration_numbered_below_the_highest_recorded_one_is_applied(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrations numbered apart (developed side by side) are each applied once, also when a
    database already records a higher one."""
    Ledger(ledger_url).close()
    backend = "postgresql" if ledger_url.startswith("postgresql://") else "sqlite"
    assert SOURCE_OBJECTS_VERSION in recorded_versions(ledger_url)
    later = Migration(
        SOURCE_OBJECTS_VERSION - 1,
        "a table developed beside source_objects",
        lambda tx: tx.execute("CREATE TABLE side_by_side (x INTEGER)"),
    )
    known = MIGRATIONS[backend]
    monkeypatch.setitem(MIGRATIONS, backend, (*known[:-1], later, known[-1]))
    for _ in range(2):  # applied once, then recorded
        Ledger(ledger_url).close()
    assert recorded_versions(ledger_url) == sorted(
        [*(m.version for m in known), SOURCE_OBJECTS_VERSION - 1]
    )
