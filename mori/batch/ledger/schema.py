"""The ledger's tables, as numbered migrations per backend, applied when a ledger is opened.

``schema_migrations`` (version, applied_at) records which migrations a database has. Opening a
ledger applies every migration it does not record, in order (a missing version is applied even
below the highest one recorded), each in the transaction that records it, under a lock
held for the whole check-and-apply (SQLite: the write lock of ``BEGIN IMMEDIATE``; PostgreSQL:
``pg_advisory_xact_lock``), so two processes opening a fresh database at once apply each
migration once. A SQLite ledger written before migrations were recorded has the tables but no
``schema_migrations``: its migrations are idempotent (``IF NOT EXISTS``, a column added only
when missing), so it is brought up to date like a fresh one, without losing a row.

Timestamps are ISO-8601 text in both backends (the ledger writes them, in UTC); PostgreSQL
text columns use the ``C`` collation so that keys and timestamps sort as in SQLite. PostgreSQL's
``orders.seq`` keeps the planning order that SQLite's ``rowid`` keeps. The one exception is a
claim's ``lease_until``: seconds since the epoch by the *database's* clock (see
:mod:`mori.batch.ledger.claims`), so hosts whose clocks disagree still agree on whether a lease
ran out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mori.batch.ledger._store import Dialect, Store, Tx
from mori.batch.ledger.records import now_iso

__all__ = [
    "COORDINATION_TABLES",
    "DATA_TABLES",
    "MIGRATIONS",
    "SOURCE_OBJECTS_VERSION",
    "LedgerSchemaError",
    "Migration",
    "applied_versions",
    "migrate",
    "version",
]

#: The tables that hold the ledger's content (``schema_migrations`` is each database's own).
DATA_TABLES = ("orders", "order_images", "images", "webhook_events", "source_objects")
#: The tables that coordinate the runs of a scaled-out deployment (who drives which order now,
#: which groups of orders a run handed to child runs); transient, so never copied.
COORDINATION_TABLES = ("order_claims", "fanout_groups", "fanout_children")
#: ``pg_advisory_xact_lock`` key held while migrations are checked and applied ("morimigr").
MIGRATION_LOCK = 0x6D6F72696D696772


class LedgerSchemaError(RuntimeError):
    """The database's schema is newer than this version of mori-pipeline knows."""


@dataclass(frozen=True)
class Migration:
    """One numbered step of a backend's schema."""

    version: int
    name: str
    apply: Callable[[Tx], None]


def _statements(*sql: str) -> Callable[[Tx], None]:
    """A migration step that runs ``sql`` statements in order."""

    def run(tx: Tx) -> None:
        for statement in sql:
            tx.execute(statement)

    return run


def _add_output_uri(tx: Tx) -> None:
    """Add ``orders.output_uri`` unless the table has it (a ledger written before migrations)."""
    if "output_uri" not in {row[1] for row in tx.rows("PRAGMA table_info(orders)")}:
        tx.execute("ALTER TABLE orders ADD COLUMN output_uri TEXT")


_SQLITE_BASE = _statements(
    """CREATE TABLE IF NOT EXISTS orders (
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
)""",
    "CREATE INDEX IF NOT EXISTS orders_by_id ON orders(order_id)",
    """CREATE TABLE IF NOT EXISTS order_images (
    order_key  TEXT NOT NULL REFERENCES orders(order_key),
    position   INTEGER NOT NULL,
    image_key  TEXT NOT NULL,
    file_name  TEXT NOT NULL,
    location   TEXT NOT NULL,
    width      INTEGER,                     -- source dimensions, when known (files)
    height     INTEGER,
    PRIMARY KEY (order_key, position)
)""",
    """CREATE TABLE IF NOT EXISTS images (
    image_key     TEXT PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    status        TEXT NOT NULL,              -- 'planned' | 'processed' | 'failed'
    order_key     TEXT NOT NULL,
    output_uri    TEXT,
    output_sha256 TEXT,
    error_code    TEXT,
    error_message TEXT,
    updated_at    TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS webhook_events (
    event_id    TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    status      TEXT NOT NULL,
    payload     TEXT NOT NULL,
    received_at TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS events_by_order ON webhook_events(order_id)",
)

_POSTGRES_BASE = _statements(
    """CREATE TABLE orders (
    order_key     TEXT COLLATE "C" PRIMARY KEY,
    kind          TEXT NOT NULL,
    generation    INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL,
    order_id      TEXT COLLATE "C",
    order_name    TEXT,
    error_code    TEXT,
    error_message TEXT,
    replaced_by   TEXT COLLATE "C",
    planned_at    TEXT COLLATE "C" NOT NULL,
    created_at    TEXT COLLATE "C",
    uploaded_at   TEXT COLLATE "C",
    confirmed_at  TEXT COLLATE "C",
    completed_at  TEXT COLLATE "C",
    downloaded_at TEXT COLLATE "C",
    updated_at    TEXT COLLATE "C" NOT NULL,
    output_uri    TEXT,
    seq           BIGINT GENERATED BY DEFAULT AS IDENTITY UNIQUE
)""",
    "CREATE INDEX orders_by_id ON orders(order_id)",
    """CREATE TABLE order_images (
    order_key  TEXT COLLATE "C" NOT NULL REFERENCES orders(order_key),
    position   INTEGER NOT NULL,
    image_key  TEXT COLLATE "C" NOT NULL,
    file_name  TEXT NOT NULL,
    location   TEXT NOT NULL,
    width      INTEGER,
    height     INTEGER,
    PRIMARY KEY (order_key, position)
)""",
    """CREATE TABLE images (
    image_key     TEXT COLLATE "C" PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    status        TEXT NOT NULL,
    order_key     TEXT COLLATE "C" NOT NULL,
    output_uri    TEXT,
    output_sha256 TEXT,
    error_code    TEXT,
    error_message TEXT,
    updated_at    TEXT COLLATE "C" NOT NULL
)""",
    "CREATE INDEX images_by_order ON images(order_key)",
    """CREATE TABLE webhook_events (
    event_id    TEXT COLLATE "C" PRIMARY KEY,
    event_type  TEXT NOT NULL,
    order_id    TEXT COLLATE "C" NOT NULL,
    status      TEXT NOT NULL,
    payload     TEXT NOT NULL,
    received_at TEXT COLLATE "C" NOT NULL
)""",
    "CREATE INDEX events_by_order ON webhook_events(order_id)",
)

#: What was read from each object of a listed source (see :mod:`mori.batch.ledger.objects`).
_SOURCE_OBJECTS = """CREATE TABLE IF NOT EXISTS source_objects (
    location    TEXT{c} PRIMARY KEY,         -- the s3:// URI or the file's absolute path
    size        BIGINT NOT NULL,
    version     TEXT NOT NULL,              -- the S3 ETag, or the file's mtime in nanoseconds
    fingerprint TEXT NOT NULL,              -- sha256:<hex> of the bytes read
    width       INTEGER,
    height      INTEGER,
    format      TEXT,
    seen_at     TEXT{c} NOT NULL
)"""
#: The version of the ``source_objects`` migration in both backends (a number of its own, apart
#: from the sequence of the other migrations).
SOURCE_OBJECTS_VERSION = 10

_SQLITE_CLAIMS = _statements(
    """CREATE TABLE IF NOT EXISTS order_claims (
    order_key   TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,               -- host:pid[@worker] of the process driving it
    host_id     TEXT,                        -- its host and process namespace (see claims.py)
    pid         INTEGER,                     -- its process id on that host
    ticket      TEXT,                        -- the dispatch it was claimed for (run/group/attempt)
    lease_until REAL NOT NULL,               -- epoch seconds, the database's clock
    claimed_at  TEXT NOT NULL,
    released_at TEXT,                        -- set when its owner let go of it
    takeovers   INTEGER NOT NULL DEFAULT 0   -- times a lapsed claim was taken by another owner
)""",
    """CREATE TABLE IF NOT EXISTS fanout_groups (
    run_id        TEXT NOT NULL,
    group_no      INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    order_keys    TEXT NOT NULL,             -- space-separated
    child_run_id  TEXT,
    dispatched_at TEXT NOT NULL,
    PRIMARY KEY (run_id, group_no)
)""",
    """CREATE TABLE IF NOT EXISTS fanout_children (
    ticket       TEXT PRIMARY KEY,           -- run/group/attempt of one child run
    run_id       TEXT NOT NULL,
    requests     INTEGER NOT NULL,           -- the child's MORI requests, retries, 429s
    retries      INTEGER NOT NULL,
    rate_limited INTEGER NOT NULL,
    finished_at  TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS children_by_run ON fanout_children(run_id)",
)

_POSTGRES_CLAIMS = _statements(
    """CREATE TABLE order_claims (
    order_key   TEXT COLLATE "C" PRIMARY KEY REFERENCES orders(order_key),
    owner       TEXT NOT NULL,
    host_id     TEXT COLLATE "C",
    pid         INTEGER,
    ticket      TEXT COLLATE "C",
    lease_until DOUBLE PRECISION NOT NULL,
    claimed_at  TEXT COLLATE "C" NOT NULL,
    released_at TEXT COLLATE "C",
    takeovers   INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE TABLE fanout_groups (
    run_id        TEXT COLLATE "C" NOT NULL,
    group_no      INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    order_keys    TEXT NOT NULL,
    child_run_id  TEXT,
    dispatched_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, group_no)
)""",
    """CREATE TABLE fanout_children (
    ticket       TEXT COLLATE "C" PRIMARY KEY,
    run_id       TEXT COLLATE "C" NOT NULL,
    requests     INTEGER NOT NULL,
    retries      INTEGER NOT NULL,
    rate_limited INTEGER NOT NULL,
    finished_at  TEXT COLLATE "C" NOT NULL
)""",
    "CREATE INDEX children_by_run ON fanout_children(run_id)",
)

_CLAIMS = "order_claims, fanout_groups, fanout_children (a run's orders over child runs)"

#: Each backend's migrations, in order.
MIGRATIONS: dict[Dialect, tuple[Migration, ...]] = {
    "sqlite": (
        Migration(1, "orders, order_images, images, webhook_events", _SQLITE_BASE),
        Migration(2, "orders.output_uri", _add_output_uri),
        Migration(3, _CLAIMS, _SQLITE_CLAIMS),
        Migration(
            SOURCE_OBJECTS_VERSION,
            "source_objects",
            _statements(_SOURCE_OBJECTS.format(c="")),
        ),
    ),
    "postgresql": (
        Migration(1, "orders, order_images, images, webhook_events", _POSTGRES_BASE),
        Migration(2, _CLAIMS, _POSTGRES_CLAIMS),
        Migration(
            SOURCE_OBJECTS_VERSION,
            "source_objects",
            _statements(_SOURCE_OBJECTS.format(c=' COLLATE "C"')),
        ),
    ),
}


def version(tx: Tx) -> int:
    """The highest migration the database has (0: none, or no ``schema_migrations`` yet)."""
    if tx.dialect == "sqlite":
        exists = tx.value(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
    else:
        exists = tx.value("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(tx.value("SELECT coalesce(max(version), 0) FROM schema_migrations"))


def applied_versions(tx: Tx) -> set[int]:
    """The migrations the database records (none without ``schema_migrations``)."""
    if not version(tx):
        return set()
    return {int(row[0]) for row in tx.rows("SELECT version FROM schema_migrations")}


def migrate(store: Store) -> list[int]:
    """Apply the migrations ``store`` lacks; the versions applied (none when up to date)."""
    migrations = MIGRATIONS[store.dialect]
    if _checked(store.read(applied_versions), migrations) >= {m.version for m in migrations}:
        return []  # the common case: no lock taken
    return store.write(lambda tx: _apply(tx, migrations))


def _checked(have: set[int], migrations: Sequence[Migration]) -> set[int]:
    """``have``, unless the database records a migration this code does not know."""
    unknown = have - {m.version for m in migrations}
    if unknown:
        raise LedgerSchemaError(
            f"the ledger's schema is at version {max(unknown)}, newer than this mori-pipeline"
            f" knows ({migrations[-1].version}): upgrade mori-pipeline"
        )
    return have


def _apply(tx: Tx, migrations: Sequence[Migration]) -> list[int]:
    """Check and apply under the migration lock (one transaction: all of them, or none)."""
    if tx.dialect == "postgresql":
        tx.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    have = _checked(applied_versions(tx), migrations)
    applied = []
    for migration in migrations:
        if migration.version not in have:
            migration.apply(tx)
            tx.execute(
                "INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)",
                (migration.version, now_iso()),
            )
            applied.append(migration.version)
    return applied
