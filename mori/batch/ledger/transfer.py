"""Copy a whole ledger into another (typically SQLite into a fresh PostgreSQL), then verify.

The source is read in one consistent snapshot; the target is written in one transaction
holding its planning lock, so a copy lands whole or not at all, and two copies into one target
cannot both land. Afterwards every table is counted and checksummed on both sides (rows in
primary-key order, the same canonical encoding for both backends). A target that already holds
rows is never written: when its content equals the source's the ledger was already migrated,
otherwise the copy is refused.

Every data table is copied with every column, and with the order in which orders were planned
(SQLite's ``rowid``, PostgreSQL's ``seq``). ``schema_migrations`` is each database's own.
The coordination tables (``order_claims``, ``fanout_groups``: who drives an order right now)
are not copied: they describe runs in flight, and a ledger is migrated with none running.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mori.batch.ledger._store import Row, Tx
from mori.batch.ledger.ledger import Ledger, LedgerOptions
from mori.batch.ledger.objects import SourceObject
from mori.batch.ledger.records import ORDER_FIELDS
from mori.batch.ledger.target import parse_target

__all__ = ["MigrationReport", "TableCopy", "TransferError", "migrate_ledger"]


class TransferError(RuntimeError):
    """The copy was refused (a different non-empty target) or did not verify."""


@dataclass(frozen=True)
class _Table:
    """One data table: its columns (``seq``: the planning order) and its primary key."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]

    def select(self, tx: Tx) -> str:
        """Every row, in primary-key order, in this backend's column names."""
        return (
            f"SELECT {', '.join(self._names(tx))} FROM {self.name} ORDER BY {', '.join(self.key)}"
        )

    def insert_columns(self, tx: Tx) -> str:
        return ", ".join(self._names(tx))

    def _names(self, tx: Tx) -> list[str]:
        return [tx.insertion_order if c == "seq" else c for c in self.columns]


_TABLES = (
    _Table("orders", (*ORDER_FIELDS, "updated_at", "seq"), ("order_key",)),
    _Table(
        "order_images",
        ("order_key", "position", "image_key", "file_name", "location", "width", "height"),
        ("order_key", "position"),
    ),
    _Table(
        "images",
        (
            "image_key",
            "fingerprint",
            "status",
            "order_key",
            "output_uri",
            "output_sha256",
            "error_code",
            "error_message",
            "updated_at",
        ),
        ("image_key",),
    ),
    _Table(
        "webhook_events",
        ("event_id", "event_type", "order_id", "status", "payload", "received_at"),
        ("event_id",),
    ),
    _Table(
        "source_objects",
        (*SourceObject._fields, "seen_at"),
        ("location",),
    ),
)


@dataclass(frozen=True)
class TableCopy:
    """One table's row count and content checksum (SHA-256 of its canonical rows)."""

    table: str
    rows: int
    checksum: str


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate_ledger` found or copied (locations with passwords masked)."""

    source: str
    target: str
    tables: tuple[TableCopy, ...]
    already_migrated: bool

    def lines(self) -> list[str]:
        """A human summary, one line per table."""
        head = "already migrated" if self.already_migrated else "copied and verified"
        return [
            f"{head}: {self.source} -> {self.target}",
            *(f"  {t.table:<15} {t.rows:>10} rows  sha256 {t.checksum[:16]}" for t in self.tables),
        ]


class _Digest:
    """Counts and hashes rows as they stream past."""

    def __init__(self) -> None:
        self.rows = 0
        self._hash = hashlib.sha256()

    def feed(self, rows: Iterable[Row]) -> Iterator[Row]:
        """``rows``, unchanged, counted and hashed on the way."""
        for row in rows:
            self.rows += 1
            self._hash.update(json.dumps(list(row), separators=(",", ":")).encode())
            self._hash.update(b"\n")
            yield row

    def result(self, table: str) -> TableCopy:
        return TableCopy(table, self.rows, self._hash.hexdigest())


def _digest(tx: Tx, table: _Table) -> TableCopy:
    """The count and checksum of one table in ``tx``."""
    digest = _Digest()
    for _ in digest.feed(tx.stream(table.select(tx))):
        pass
    return digest.result(table.name)


def _digests(ledger: Ledger) -> tuple[TableCopy, ...]:
    """Every table's count and checksum, in one snapshot."""
    with ledger._store.snapshot() as tx:
        return tuple(_digest(tx, table) for table in _TABLES)


def _copy_table(source: Tx, target: Tx, table: _Table) -> TableCopy:
    """Stream one table from ``source`` into ``target``; its count and checksum."""
    digest = _Digest()
    rows = digest.feed(source.stream(table.select(source)))
    columns = table.insert_columns(target)
    if target.dialect == "postgresql":
        from mori.batch.ledger._postgres import PostgresTx

        assert isinstance(target, PostgresTx)
        target.copy(f"COPY {table.name} ({columns}) FROM STDIN", rows)
    else:
        marks = ", ".join("?" * len(table.columns))
        target.executemany(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", rows)
    return digest.result(table.name)


def _copy_all(source: Tx, target: Tx) -> tuple[TableCopy, ...] | None:
    """Copy every table into an empty target (``None``: the target is not empty)."""
    target.lock_planning()
    if any(target.value(f"SELECT 1 FROM {table.name} LIMIT 1") for table in _TABLES):
        return None
    copied = tuple(_copy_table(source, target, table) for table in _TABLES)
    if target.dialect == "postgresql" and copied[0].rows:
        target.execute(
            "SELECT setval(pg_get_serial_sequence('orders', 'seq'), max(seq)) FROM orders"
        )
    return copied


def migrate_ledger(
    source: str | Path, target: str | Path, options: LedgerOptions | None = None
) -> MigrationReport:
    """Copy every table of the ledger at ``source`` into the one at ``target``, and verify.

    Opening either ledger brings its schema up to date. Raises :class:`TransferError` when the
    source is a SQLite file that does not exist (nothing is created then), when the target
    holds other content, or when the copy does not match the source.
    """
    origin = parse_target(source)
    if origin.path is not None and not origin.path.is_file():
        raise TransferError(f"no ledger at {origin.describe()}: check --from")
    with Ledger(source, options=options) as src, Ledger(target, options=options) as dst:
        if src.location == dst.location:
            raise TransferError(f"source and target are the same ledger: {src.location}")
        with src._store.snapshot() as snapshot:
            copied = dst._store.write(lambda tx: _copy_all(snapshot, tx), bulk=True)
            expected = copied or tuple(_digest(snapshot, table) for table in _TABLES)
        found = _digests(dst)
        if found != expected:
            if copied is None:
                raise TransferError(
                    f"the target {dst.location} already holds a different ledger"
                    f" ({_differences(expected, found)}): migrate into an empty database"
                )
            raise TransferError(
                f"the copy in {dst.location} does not match the source"
                f" ({_differences(expected, found)})"
            )
        return MigrationReport(src.location, dst.location, expected, copied is None)


def _differences(expected: tuple[TableCopy, ...], found: tuple[TableCopy, ...]) -> str:
    """Which tables differ, with their row counts."""
    return ", ".join(
        f"{want.table}: {want.rows} rows in the source, {got.rows} in the target"
        for want, got in zip(expected, found, strict=True)
        if want != got
    )
