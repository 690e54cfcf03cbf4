"""Recording intent: many orders' ``orders``, ``order_images`` and ``images`` rows at once.

This is the hot path of planning a big manifest (a million URL rows), so each backend gets its
fastest bulk path, with one meaning:

* an order already recorded keeps its row (its status, times and output location: a rerun
  replaying the same intent changes nothing); a slot position already recorded keeps its row;
* an image is claimed by the order (``planned``, this order's key) unless it already finished
  (``processed`` or ``failed``); when one call names an image twice, the last order wins.

SQLite: one multi-row ``INSERT`` per 100 ``order_images`` rows, in key order, and the ``images``
rows of a new URL order copied from its ``order_images`` rows by SQLite itself (about twice as
fast as binding them again). PostgreSQL: ``COPY`` into two temporary tables, then one
``INSERT ... SELECT ... ON CONFLICT`` per table.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

from mori.batch.ledger import orders as orders_repo
from mori.batch.ledger._store import Tx
from mori.batch.ledger.records import PlannedIntent, Slot

if TYPE_CHECKING:
    from mori.batch.ledger._postgres import PostgresTx

__all__ = ["BULK_ROWS", "record_intents"]

#: Rows of one intent transaction from which SQLite's checkpoint goes to a background thread.
BULK_ROWS = 20_000
#: ``order_images`` rows per ``INSERT`` (7 parameters each: within the old 999 limit).
_ROWS_PER_INSERT = 100
_first = itemgetter(0)

_IMAGES_UPSERT = (
    "ON CONFLICT(image_key) DO UPDATE SET order_key=excluded.order_key, status='planned',"
    " updated_at=excluded.updated_at WHERE images.status = 'planned'"
)

#: SQLite: an order's ``images`` rows from its ``order_images`` rows (fingerprint
#: ``url:<location>``).
_COPY_IMAGES = (
    "INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
    " SELECT image_key, 'url:' || location, 'planned', order_key, ?2 FROM order_images"
    f" WHERE order_key = ?1 ORDER BY position {_IMAGES_UPSERT}"
)


def record_intents(
    tx: Tx,
    orders: list[PlannedIntent],
    fingerprints: Mapping[str, str],
    url_fingerprints: bool,
    output_uri: str | None,
    at: str,
) -> None:
    """Record ``orders`` (see ``Ledger.plan_many``) in ``tx``, under the planning lock."""
    tx.lock_planning()
    if tx.dialect == "postgresql":
        _record_postgres(
            cast("PostgresTx", tx), orders, fingerprints, url_fingerprints, output_uri, at
        )
    else:
        _record_sqlite(tx, orders, fingerprints, url_fingerprints, output_uri, at)


# -- SQLite ------------------------------------------------------------------------------------


def _record_sqlite(
    tx: Tx,
    orders: list[PlannedIntent],
    fingerprints: Mapping[str, str],
    url_fingerprints: bool,
    output_uri: str | None,
    at: str,
) -> None:
    """Bound rows where needed, rows copied inside SQLite where possible."""

    def fingerprint(kind: str, slot: Slot) -> str:
        if url_fingerprints and kind == "url":
            return "url:" + slot.location
        return fingerprints[slot.image_key]

    existing = orders_repo.existing(tx, [key for key, _, _, _ in orders])
    tx.executemany(
        "INSERT OR IGNORE INTO orders(order_key, kind, generation, status, planned_at,"
        " updated_at, output_uri) VALUES (?, ?, ?, 'planned', ?, ?, ?)",
        [(key, kind, generation, at, at, output_uri) for key, kind, _, generation in orders],
    )
    # In key order: the primary-key index of order_images then grows at the end only.
    for key, _, slots, _ in sorted(orders, key=_first):
        for start in range(0, len(slots), _ROWS_PER_INSERT):
            tx.execute(*_order_images_insert(key, slots[start : start + _ROWS_PER_INSERT]))
    copied, bound = _split_for_copy(orders, fingerprints, existing, url_fingerprints)
    tx.executemany(_COPY_IMAGES, [(key, at) for key in copied])
    tx.executemany(
        "INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
        f" VALUES (?, ?, 'planned', ?, ?) {_IMAGES_UPSERT}",
        (
            (s.image_key, fingerprint(kind, s), key, at)
            for key, kind, slots, _ in bound
            for s in slots
        ),
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
    """``INSERT OR IGNORE INTO order_images VALUES`` with ``rows`` copies of ``row``."""
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


# -- PostgreSQL --------------------------------------------------------------------------------

_STAGE = (
    'CREATE TEMP TABLE plan_orders (seq INTEGER, order_key TEXT COLLATE "C", kind TEXT,'
    " generation INTEGER) ON COMMIT DROP",
    'CREATE TEMP TABLE plan_slots (seq BIGINT, order_key TEXT COLLATE "C", position INTEGER,'
    ' image_key TEXT COLLATE "C", file_name TEXT, location TEXT, width INTEGER, height INTEGER,'
    " fingerprint TEXT) ON COMMIT DROP",
)


def _record_postgres(
    tx: PostgresTx,
    orders: list[PlannedIntent],
    fingerprints: Mapping[str, str],
    url_fingerprints: bool,
    output_uri: str | None,
    at: str,
) -> None:
    """``COPY`` the intent into staging tables, then merge it with ``INSERT ... SELECT``."""
    for statement in _STAGE:
        tx.execute(statement)
    tx.copy(
        "COPY plan_orders (seq, order_key, kind, generation) FROM STDIN",
        ((n, key, kind, generation) for n, (key, kind, _, generation) in enumerate(orders)),
    )
    tx.copy(
        "COPY plan_slots FROM STDIN",
        _slot_rows(orders, fingerprints, url_fingerprints),
    )
    tx.execute(
        "INSERT INTO orders(order_key, kind, generation, status, planned_at, updated_at,"
        " output_uri) SELECT order_key, kind, generation, 'planned', ?, ?, ? FROM plan_orders"
        " ORDER BY seq ON CONFLICT (order_key) DO NOTHING",
        (at, at, output_uri),
    )
    tx.execute(
        "INSERT INTO order_images(order_key, position, image_key, file_name, location, width,"
        " height) SELECT order_key, position, image_key, file_name, location, width, height"
        " FROM plan_slots ORDER BY seq ON CONFLICT (order_key, position) DO NOTHING"
    )
    tx.execute(
        "INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
        " SELECT DISTINCT ON (image_key) image_key, coalesce(fingerprint, 'url:' || location),"
        " 'planned', order_key, ? FROM plan_slots ORDER BY image_key, seq DESC " + _IMAGES_UPSERT,
        (at,),
    )
    tx.execute("DROP TABLE plan_orders, plan_slots")  # the transaction may plan again


def _slot_rows(
    orders: list[PlannedIntent], fingerprints: Mapping[str, str], url_fingerprints: bool
) -> Iterator[tuple[Any, ...]]:
    """The ``plan_slots`` rows: the fingerprint ``None`` where PostgreSQL derives it from the
    location (URL slots the caller vouched for)."""
    n = 0
    for key, kind, slots, _ in orders:
        vouched = url_fingerprints and kind == "url"
        for s in slots:
            fingerprint = None if vouched else fingerprints[s.image_key]
            yield (
                n,
                key,
                s.position,
                s.image_key,
                s.file_name,
                s.location,
                s.width,
                s.height,
                fingerprint,
            )
            n += 1
