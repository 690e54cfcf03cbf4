"""Planning a run a window at a time: many images' records as columns, one window's intent.

A run too big to plan at once is planned in windows of image keys (see
:mod:`mori.batch.stream`). Functions of a :class:`~mori.batch.ledger._store.Tx`:

* :func:`image_records` and :func:`order_stamps`: the records of many images, and the times of
  their orders, as Arrow columns (no object per row), for keys given sorted (their probes then
  walk the index in order);
* :func:`record_window`: the intent of a window's new orders, each image new to the ledger.
  Its rows are inserted, never merged: an image or an order the ledger already holds (another
  run planned it since this run looked) raises :class:`WindowConflict` and leaves nothing of
  the window behind (a savepoint), so the caller looks again, under the planning lock it
  holds, and plans what is still new.

SQLite: one multi-row ``INSERT`` per order of ``order_images`` (in key order), and the
``images`` rows of a URL order copied from them by SQLite itself. PostgreSQL: ``COPY`` into two
temporary tables, then one ``INSERT ... SELECT`` per table.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import pyarrow as pa
import pyarrow.compute as pc

from mori.batch.bulk import gc_paused
from mori.batch.ledger._store import Tx
from mori.batch.ledger.intent import _values_sql

if TYPE_CHECKING:
    from mori.batch.ledger._postgres import PostgresTx

__all__ = [
    "RECORD_SCHEMA",
    "STAMP_SCHEMA",
    "WindowConflict",
    "WindowOrder",
    "image_records",
    "order_stamps",
    "record_window",
]

#: The columns :func:`image_records` gives (an ``images`` row without its fingerprint).
RECORD_SCHEMA = pa.schema(
    [
        (name, pa.string())
        for name in (
            "image_key",
            "status",
            "order_key",
            "output_uri",
            "output_sha256",
            "error_code",
            "error_message",
        )
    ]
)
#: The columns :func:`order_stamps` gives: what an audit row says of its order.
STAMP_SCHEMA = pa.schema(
    [
        (name, pa.string())
        for name in (
            "order_key",
            "order_id",
            "created_at",
            "confirmed_at",
            "completed_at",
            "downloaded_at",
        )
    ]
)
#: Slots turned into Python values at once while SQLite records a window.
_BATCH_ROWS = 8192
#: ``(order_key, kind, generation)`` of one new order of a window.
WindowOrder = tuple[str, str, int]
#: The ``slots`` columns :func:`record_window` takes, one row per image, by order and position.
SLOT_COLUMNS: tuple[str, ...] = ("order_key", "position", "image_key", "file_name", "location")
SLOT_COLUMNS += ("width", "height", "fingerprint")


class WindowConflict(Exception):
    """An image or order of the window is in the ledger already (nothing was recorded)."""


def image_records(tx: Tx, keys: Sequence[str]) -> pa.Table:
    """The ``images`` row of each key of ``keys`` the ledger holds (:data:`RECORD_SCHEMA`)."""
    names = ", ".join(RECORD_SCHEMA.names)
    return _columns(tx, f"SELECT {names} FROM images WHERE {{}}", "image_key", keys, RECORD_SCHEMA)


def order_stamps(tx: Tx, order_keys: Sequence[str]) -> pa.Table:
    """The ids and times of each order of ``order_keys`` the ledger holds (:data:`STAMP_SCHEMA`)."""
    names = ", ".join(STAMP_SCHEMA.names)
    sql = f"SELECT {names} FROM orders WHERE {{}}"
    return _columns(tx, sql, "order_key", sorted(order_keys), STAMP_SCHEMA)


def _columns(tx: Tx, sql: str, column: str, keys: Sequence[str], schema: pa.Schema) -> pa.Table:
    """The rows ``sql`` finds for ``keys`` (its ``{}`` is the condition on ``column``), each
    batch of keys' rows turned into columns at once (never a Python object per row of all)."""
    batches = []
    with gc_paused():
        for start in range(0, len(keys), tx.lookup_batch):
            condition, args = tx.matches(column, keys[start : start + tx.lookup_batch])
            found = tx.rows(sql.format(condition), args)
            if found:
                arrays = [pa.array(values, pa.string()) for values in zip(*found, strict=True)]
                batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return pa.Table.from_batches(batches, schema=schema)


def record_window(
    tx: Tx, orders: Sequence[WindowOrder], slots: pa.Table, output_uri: str | None, at: str
) -> None:
    """Record the intent of ``orders`` (new) and ``slots`` (their images, new), or nothing.

    ``slots`` has the columns :data:`SLOT_COLUMNS`; ``fingerprint`` is null where it is
    ``url:<location>`` (a URL row). Raises :class:`WindowConflict` when the ledger holds one
    of the orders or images already.
    """
    tx.lock_planning()
    tx.execute("SAVEPOINT mori_window")
    try:
        if tx.dialect == "postgresql":
            _record_postgres(cast("PostgresTx", tx), orders, slots, output_uri, at)
        else:
            _record_sqlite(tx, orders, slots, output_uri, at)
    except Exception as exc:
        tx.execute("ROLLBACK TO SAVEPOINT mori_window")
        tx.execute("RELEASE SAVEPOINT mori_window")
        if _unique_violation(exc):
            raise WindowConflict(str(exc)) from exc
        raise
    tx.execute("RELEASE SAVEPOINT mori_window")


def _unique_violation(exc: Exception) -> bool:
    """A row with the same key exists (SQLite's ``IntegrityError``, PostgreSQL's 23505)."""
    import sqlite3

    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE" in str(exc)
    return getattr(exc, "sqlstate", None) == "23505"


# -- SQLite ------------------------------------------------------------------------------------

_ORDER_INSERT = (
    "INSERT INTO orders(order_key, kind, generation, status, planned_at, updated_at, output_uri)"
    " VALUES (?, ?, ?, 'planned', ?, ?, ?)"
)
_COPY_IMAGES = (
    "INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
    " SELECT image_key, 'url:' || location, 'planned', order_key, ?2 FROM order_images"
    " WHERE order_key = ?1 ORDER BY position"
)
_BIND_IMAGES = (
    "INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
    " VALUES (?, ?, 'planned', ?, ?)"
)


def _record_sqlite(
    tx: Tx, orders: Sequence[WindowOrder], slots: pa.Table, output_uri: str | None, at: str
) -> None:
    """Orders bound, ``order_images`` a multi-row ``INSERT`` per order, ``images`` copied."""
    tx.executemany(_ORDER_INSERT, [(k, kind, g, at, at, output_uri) for k, kind, g in orders])
    sized = slots.column("width").null_count < slots.num_rows or (
        slots.column("height").null_count < slots.num_rows
    )
    fields = SLOT_COLUMNS[:7] if sized else SLOT_COLUMNS[:5]
    row = "(?, ?, ?, ?, ?, ?, ?)" if sized else "(?, ?, ?, ?, ?, NULL, NULL)"
    unusual: set[str] = set()  # orders with a fingerprint other than url:<location>
    # Orders in key order (the primary-key index of order_images grows at its end), a batch of
    # them at a time (as Python values: never the whole window at once).
    by_key = slots.sort_by([("order_key", "ascending"), ("position", "ascending")])
    for start in range(0, by_key.num_rows, _BATCH_ROWS):
        batch = by_key.slice(start, _BATCH_ROWS)
        columns = {name: batch.column(name).to_pylist() for name in SLOT_COLUMNS}
        flat = list(itertools.chain.from_iterable(zip(*(columns[f] for f in fields), strict=True)))
        for key, (begin, end) in _spans(columns["order_key"]).items():
            tx.execute(_values_sql(end - begin, row), flat[begin * len(fields) : end * len(fields)])
            if any(f is not None for f in columns["fingerprint"][begin:end]):
                unusual.add(key)
    copied = [key for key, _, _ in orders if key not in unusual]  # image-key order
    tx.executemany(_COPY_IMAGES, [(key, at) for key in copied])
    if unusual:  # every image of those orders bound
        located = _fingerprinted(slots, unusual)
        tx.executemany(_BIND_IMAGES, [(k, f, o, at) for k, f, o in located])


def _fingerprinted(slots: pa.Table, order_keys: set[str]) -> list[tuple[str, str, str]]:
    """``(image_key, fingerprint, order_key)`` of every slot of ``order_keys``."""
    chosen = slots.filter(pc.is_in(slots.column("order_key"), pa.array(sorted(order_keys))))
    implied = pc.binary_join_element_wise("url:", chosen.column("location"), "")
    fingerprints = pc.coalesce(chosen.column("fingerprint"), implied)
    return list(
        zip(
            chosen.column("image_key").to_pylist(),
            fingerprints.to_pylist(),
            chosen.column("order_key").to_pylist(),
            strict=True,
        )
    )


def _spans(order_keys: list[str]) -> dict[str, tuple[int, int]]:
    """Where each order's rows start and end in ``order_keys`` (each order's rows together)."""
    spans: dict[str, tuple[int, int]] = {}
    start = 0
    for key, group in itertools.groupby(order_keys):
        end = start + sum(1 for _ in group)
        spans[key] = (start, end)
        start = end
    return spans


# -- PostgreSQL --------------------------------------------------------------------------------

_STAGE = (
    'CREATE TEMP TABLE window_orders (seq INTEGER, order_key TEXT COLLATE "C", kind TEXT,'
    " generation INTEGER) ON COMMIT DROP",
    'CREATE TEMP TABLE window_slots (seq BIGINT, order_key TEXT COLLATE "C", position INTEGER,'
    ' image_key TEXT COLLATE "C", file_name TEXT, location TEXT, width INTEGER, height INTEGER,'
    " fingerprint TEXT) ON COMMIT DROP",
)


def _record_postgres(
    tx: PostgresTx,
    orders: Sequence[WindowOrder],
    slots: pa.Table,
    output_uri: str | None,
    at: str,
) -> None:
    """``COPY`` the window into staging tables, then one ``INSERT ... SELECT`` per table."""
    for statement in _STAGE:
        tx.execute(statement)
    tx.copy(
        "COPY window_orders (seq, order_key, kind, generation) FROM STDIN",
        ((n, key, kind, g) for n, (key, kind, g) in enumerate(orders)),
    )
    columns = [slots.column(name).to_pylist() for name in SLOT_COLUMNS]
    tx.copy(
        "COPY window_slots FROM STDIN",
        ((n, *row) for n, row in enumerate(zip(*columns, strict=True))),
    )
    tx.execute(
        "INSERT INTO orders(order_key, kind, generation, status, planned_at, updated_at,"
        " output_uri) SELECT order_key, kind, generation, 'planned', ?, ?, ? FROM window_orders"
        " ORDER BY seq",
        (at, at, output_uri),
    )
    tx.execute(
        "INSERT INTO order_images(order_key, position, image_key, file_name, location, width,"
        " height) SELECT order_key, position, image_key, file_name, location, width, height"
        " FROM window_slots ORDER BY seq"
    )
    tx.execute(
        "INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
        " SELECT image_key, coalesce(fingerprint, 'url:' || location), 'planned', order_key, ?"
        " FROM window_slots ORDER BY seq",
        (at,),
    )
    tx.execute("DROP TABLE window_orders, window_slots")
