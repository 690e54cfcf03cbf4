"""The order-finished webhook event, serialised as each generation sends it.

``g1``: ``eventType`` from the config (``ORDER.ANTI_AI.PROCESSED``), ``data`` with ``orderId``,
``orderName``, ``status``, ``fileCount``, ``createdAt`` and ``completedAt`` + ``downloadUrl`` or
``failedAt`` + ``error``. ``g3``: ``order.antiAi.completed`` / ``order.antiAi.failed``, the same
``data`` plus ``updatedAt``. Bodies are compact UTF-8 JSON, serialised once; the signature
covers exactly these bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mori.emulator.orders import Order
from mori.emulator.responses import dumps, iso, timestamp, wire
from mori.models import EventData, OrderError, WebhookEvent

G3_COMPLETED = "order.antiAi.completed"
G3_FAILED = "order.antiAi.failed"


@dataclass(frozen=True)
class Event:
    """One event: its id (the same on every retry and every webhook) and its body."""

    event_id: str
    body: bytes


def g1_event(order: Order, event_type: str, occurred_at: float, download_url: str | None) -> Event:
    """The ``g1`` event of a finished order (``download_url`` for a complete one)."""
    complete = order.status == "complete"
    data = EventData(
        order_id=order.order_id,
        order_name=order.order_name,
        status=order.status,
        file_count=len(order.files),
        created_at=timestamp(order.created_at),
        completed_at=_optional_time(order.completed_at),
        failed_at=_optional_time(order.failed_at),
        download_url=download_url if complete else None,
        error=None if complete else summarise(order.errors),
    )
    event_id = str(uuid.uuid4())
    event = WebhookEvent(
        event_id=event_id, event_type=event_type, occurred_at=timestamp(occurred_at), data=data
    )
    return Event(event_id, dumps(wire(event)))


def g3_event(order: Order, occurred_at: float, download_url: str | None) -> Event:
    """The ``g3`` event of a finished order (``download_url`` for a complete one)."""
    complete = order.status == "complete"
    data: dict[str, Any] = {
        "orderId": order.order_id,
        "orderName": order.order_name,
        "createdAt": iso(order.created_at),
        "updatedAt": iso(order.updated_at),
    }
    finished_at = (order.completed_at if complete else order.failed_at) or order.updated_at
    data["completedAt" if complete else "failedAt"] = iso(finished_at)
    data["status"] = "complete" if complete else "failed"
    data["fileCount"] = len(order.files)
    if complete:
        data["downloadUrl"] = download_url
    else:
        error = summarise(order.errors)
        data["error"] = {"code": error.code, "message": error.message}
    event_type = G3_COMPLETED if complete else G3_FAILED
    event_id = str(uuid.uuid4())
    body = {"eventId": event_id, "eventType": event_type, "occurredAt": iso(occurred_at)}
    return Event(event_id, dumps({**body, "data": data}))


def summarise(errors: Sequence[OrderError]) -> OrderError:
    """One ``error`` for a failed order's webhook: the first code, every file's message."""
    messages = "; ".join(e.message or "" for e in errors)
    return OrderError(code=errors[0].code if errors else None, message=messages)


def _optional_time(seconds: float | None) -> datetime | None:
    """:func:`timestamp` of ``seconds``, if set."""
    return None if seconds is None else timestamp(seconds)
