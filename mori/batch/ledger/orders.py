"""The ``orders`` and ``order_images`` tables: each order's intent, progress and slots.

Functions of a :class:`~mori.batch.ledger._store.Tx`, one statement each where they can,
written once for both backends. Every write sets rows to a state (never increments), so
running it twice leaves what running it once left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mori.batch.ledger._store import Tx
from mori.batch.ledger.records import ORDER_FIELDS, TERMINAL, OrderRecord, Slot

__all__ = [
    "abandon",
    "advance",
    "all_orders",
    "by_mori_id",
    "count",
    "existing",
    "fail",
    "get",
    "open_orders",
    "slots",
]

_COLUMNS = ", ".join(ORDER_FIELDS)
#: Columns ``advance`` may set: an order's fields other than its key, kind and generation.
_SETTABLE = frozenset(ORDER_FIELDS) - {"order_key", "kind", "generation"} | {"updated_at"}


def get(tx: Tx, order_key: str) -> OrderRecord | None:
    """The record of one order, if the ledger holds it."""
    rows = tx.rows(f"SELECT {_COLUMNS} FROM orders WHERE order_key = ?", (order_key,))
    return OrderRecord(*rows[0]) if rows else None


def by_mori_id(tx: Tx, order_id: str) -> OrderRecord | None:
    """The order MORI knows as ``order_id`` (the latest generation holding it), if any."""
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM orders WHERE order_id = ? ORDER BY generation DESC LIMIT 1",
        (order_id,),
    )
    return OrderRecord(*rows[0]) if rows else None


def slots(tx: Tx, order_key: str) -> list[Slot]:
    """An order's images, by position."""
    rows = tx.rows(
        "SELECT position, image_key, file_name, location, width, height FROM order_images"
        " WHERE order_key = ? ORDER BY position",
        (order_key,),
    )
    return [Slot(*r) for r in rows]


def open_orders(tx: Tx) -> list[OrderRecord]:
    """Orders that are neither downloaded, failed nor abandoned, in planning order."""
    terminal = sorted(TERMINAL)
    condition, args = tx.matches("status", terminal)
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM orders WHERE NOT ({condition})"
        f" ORDER BY planned_at, {tx.insertion_order}",
        args,
    )
    return [OrderRecord(*r) for r in rows]


def all_orders(tx: Tx) -> list[OrderRecord]:
    """Every order, in planning order."""
    rows = tx.rows(f"SELECT {_COLUMNS} FROM orders ORDER BY planned_at, {tx.insertion_order}")
    return [OrderRecord(*r) for r in rows]


def count(tx: Tx) -> int:
    """How many orders the ledger holds (any status)."""
    return int(tx.value("SELECT count(*) FROM orders"))


def existing(tx: Tx, order_keys: Sequence[str]) -> set[str]:
    """Which of ``order_keys`` the ledger already holds."""
    found: set[str] = set()
    for start in range(0, len(order_keys), tx.lookup_batch):
        condition, args = tx.matches("order_key", order_keys[start : start + tx.lookup_batch])
        found.update(r[0] for r in tx.rows(f"SELECT order_key FROM orders WHERE {condition}", args))
    return found


def advance(tx: Tx, order_key: str, fields: dict[str, Any]) -> None:
    """Set ``fields`` (column -> value) of one order; ``ValueError`` for an unknown column."""
    unknown = set(fields) - _SETTABLE
    if unknown:
        raise ValueError(f"not an order field: {', '.join(sorted(unknown))}")
    assignments = ", ".join(f"{name} = ?" for name in fields)
    tx.execute(
        f"UPDATE orders SET {assignments} WHERE order_key = ?", (*fields.values(), order_key)
    )


def fail(tx: Tx, order_key: str, code: str, message: str, at: str) -> None:
    """The order failed for good (its images: :func:`mori.batch.ledger.images.fail_planned`)."""
    tx.execute(
        "UPDATE orders SET status = 'failed', error_code = ?, error_message = ?, updated_at = ?"
        " WHERE order_key = ?",
        (code, message, at, order_key),
    )


def abandon(tx: Tx, old_key: str, new_key: str, at: str) -> None:
    """Mark a never-confirmed order abandoned in favour of ``new_key``."""
    tx.execute(
        "UPDATE orders SET status = 'abandoned', replaced_by = ?, updated_at = ?"
        " WHERE order_key = ?",
        (new_key, at, old_key),
    )
