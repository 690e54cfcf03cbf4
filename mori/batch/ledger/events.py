"""The ``webhook_events`` table: verified webhook events, stored once per ``eventId``.

Recording an event never takes the planning lock: a receiver stores events while runs plan.
"""

from __future__ import annotations

import json
from typing import Any

from mori.batch.ledger._store import Tx
from mori.batch.ledger.records import EventRecord

__all__ = ["list_events", "record", "status"]

_COLUMNS = ", ".join(EventRecord.__dataclass_fields__)


def record(
    tx: Tx,
    event_id: str,
    event_type: str,
    order_id: str,
    status: str,
    payload: dict[str, Any],
    at: str,
) -> bool:
    """Store an event once; ``False`` when its ``event_id`` is already stored."""
    changed = tx.execute(
        f"INSERT INTO webhook_events({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (event_id) DO NOTHING",
        (event_id, event_type, order_id, status, json.dumps(payload), at),
    )
    return changed == 1


def status(tx: Tx, order_id: str) -> str | None:
    """The terminal status a webhook reported for an order (else the latest), if any."""
    statuses = [
        row[0]
        for row in tx.rows(
            "SELECT status FROM webhook_events WHERE order_id = ? ORDER BY received_at DESC",
            (order_id,),
        )
    ]
    for terminal in ("complete", "failed"):
        if terminal in statuses:
            return terminal
    return statuses[0] if statuses else None


def list_events(tx: Tx, order_id: str | None = None) -> list[EventRecord]:
    """The stored events (of one order, when given), in the order they arrived."""
    where, args = ("WHERE order_id = ?", (order_id,)) if order_id is not None else ("", ())
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM webhook_events {where} ORDER BY received_at, event_id", args
    )
    return [EventRecord(*row) for row in rows]
