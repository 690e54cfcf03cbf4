"""Prefect events of a run, for automations, and its progress for local displays.

Events, each about one resource (``prefect.resource.id``), with the counts in the payload:

* ``mori.order.created`` -- ``mori.order.<order id>``; payload ``files``;
* ``mori.order.completed`` and ``mori.order.failed`` -- ``mori.order.<order id>`` (the order
  key when MORI never created it); payload ``files, processed, failed, error_code``;
* ``mori.run.finished`` -- ``mori.run.<run id>``; payload ``rows, processed, skipped, failed,
  pending, orders, failures, wall_seconds``.

An order's resource carries the labels ``mori.order-key`` and ``mori.run-id``; a run's carries
``mori.run.status`` (``failed`` when any image failed, else ``pending`` when any is pending,
else ``completed``), which a trigger can match. Prefect relates each event to the flow run
(and task run) that emitted it. ``emit_event`` only queues the event for a background thread,
so an order never waits for the Prefect API.

:class:`RunEvents` is what a flow hands out: its :meth:`~RunEvents.order` is the
:class:`~mori.batch.orders.OrderProcessor`'s observer, and its progress calls reach the
listeners registered with :func:`listening` (the CLI's progress bar, when the flow runs in the
CLI's process).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect.events import emit_event

from mori.batch.outcomes import RunSummary
from mori.batch.progress import OrderEvent, RunProgress

__all__ = ["RunEvents", "emit_order_event", "emit_run_finished", "listening", "run_status"]

log = logging.getLogger("mori.events")

_LISTENERS: contextvars.ContextVar[tuple[RunProgress, ...]] = contextvars.ContextVar(
    "mori_run_listeners", default=()
)


@contextmanager
def listening(listener: RunProgress) -> Iterator[RunProgress]:
    """Let ``listener`` hear the progress of the runs started in this context."""
    token = _LISTENERS.set((*_LISTENERS.get(), listener))
    try:
        yield listener
    finally:
        _LISTENERS.reset(token)


def emit_order_event(event: OrderEvent, run_id: str) -> None:
    """``mori.order.<kind>`` about the order, with its counts in the payload."""
    resource = {
        "prefect.resource.id": f"mori.order.{event.order_id or event.order_key}",
        "prefect.resource.name": f"MORI order {event.order_id or event.order_key[:8]}",
        "mori.order-key": event.order_key,
        "mori.run-id": run_id,
    }
    payload: dict[str, Any] = {"files": event.files}
    if event.kind != "created":
        payload.update(processed=event.processed, failed=event.failed, error_code=event.error_code)
    emit_event(f"mori.order.{event.kind}", resource=resource, payload=payload)


def run_status(summary: RunSummary) -> str:
    """``failed`` if any image failed, else ``pending`` if any is pending, else ``completed``."""
    if summary.count("failed"):
        return "failed"
    return "pending" if summary.count("pending") else "completed"


def emit_run_finished(summary: RunSummary) -> None:
    """``mori.run.finished`` about the run, with its counts in the payload."""
    resource = {
        "prefect.resource.id": f"mori.run.{summary.run_id}",
        "prefect.resource.name": f"mori-pipeline run {summary.run_id}",
        "mori.run.status": run_status(summary),
    }
    payload = {
        "rows": summary.rows,
        **{s: summary.count(s) for s in ("processed", "skipped", "failed", "pending")},
        "orders": summary.orders,
        "failures": dict(summary.failures),
        "wall_seconds": summary.wall_seconds,
    }
    emit_event("mori.run.finished", resource=resource, payload=payload)


class RunEvents:
    """One flow run's events and progress: Prefect events, and the local listeners."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._listeners = _LISTENERS.get()

    def order(self, event: OrderEvent) -> None:
        """The order processor's observer: one Prefect event per order step."""
        emit_order_event(event, self.run_id)

    def planned(self, orders: int, images: int) -> None:
        """Tell the listeners what the run will drive."""
        for listener in self._listeners:
            _quietly(listener.planned, orders, images)

    def order_done(self, images: int) -> None:
        """Tell the listeners an order finished."""
        for listener in self._listeners:
            _quietly(listener.order_done, images)

    def finished(self, summary: RunSummary) -> None:
        """``mori.run.finished``."""
        emit_run_finished(summary)


def _quietly(call: Callable[..., object], *args: int) -> None:
    """A display that fails must never fail the run."""
    try:
        call(*args)
    except Exception:
        log.exception("progress listener failed")
