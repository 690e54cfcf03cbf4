"""Finish orders outside a ``protect`` run: find them in the ledger, audit what this run did.

Shared by the ``finalize`` flow (one order, started by its webhook) and the ``reconcile`` flow
(orders whose webhook never came). Orders are driven by the same resumable
:class:`~mori.batch.orders.OrderProcessor` as in ``protect`` (the ``process-order`` task), so
finishing an order twice downloads it once: the second time it is read back from the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from mori.batch.ledger import TERMINAL, Ledger, OrderRecord, now_iso
from mori.batch.orders import OrderResult
from mori.batch.outcomes import order_rows
from mori.batch.runtime import Completion, RunConfig, default_ledger
from mori.batch.storage import is_s3, join, parent


def order_config(
    audit: str,
    output: str | None = None,
    *,
    wait_timeout: float = 60.0,
    poll_interval: float = 2.0,
    completion: Completion = "webhook",
) -> RunConfig:
    """The run configuration of finishing orders recorded in the ledger of ``audit``.

    Without ``output`` each order's outputs go where the ``protect`` run that planned it writes
    (recorded in the ledger); orders planned by an earlier version, which did not record it,
    go to ``output`` beside the audit folder (``<m>/audit`` → ``<m>/output``), ``protect``'s
    default. An explicit ``output`` takes every order there. ``completion="webhook"`` with no
    grace: the webhook event already in the ledger is read first, then MORI is polled.
    """
    audit_uri = audit if is_s3(audit) else str(Path(audit).expanduser().resolve())
    output_uri = output or join(parent(audit_uri), "output")
    if not is_s3(output_uri):
        output_uri = str(Path(output_uri).expanduser().resolve())
    return RunConfig(
        manifest_uri="",
        output_uri=output_uri,
        audit_uri=audit_uri,
        ledger_path=default_ledger(audit_uri),
        wait_timeout=wait_timeout,
        poll_interval=poll_interval,
        webhook_grace=0.0,
        completion=completion,
        output_from_ledger=output is None,
    )


def ledger_exists(audit: str) -> bool:
    """Whether the ledger of ``audit`` exists yet (no run has used it otherwise)."""
    return Path(order_config(audit).ledger_path).exists()


def is_final(record: OrderRecord) -> bool:
    """The order needs nothing more (downloaded, failed or replaced)."""
    return record.status in TERMINAL


def audit_tables(
    run_id: str, results: Mapping[str, OrderResult], earlier: set[str], ledger: Ledger
) -> dict[str, list[dict[str, Any]]]:
    """``orders`` and ``images`` rows for the orders this run finished.

    ``earlier`` holds the keys of orders that were already final before this run: their rows say
    ``skipped`` (their images were processed in an earlier run) or ``failed`` with
    ``attempts = 0``, as in a ``protect`` rerun, so nothing is counted twice.
    """
    orders = order_rows(run_id, results, {}, ledger)
    for row in orders:
        if row["order_key"] in earlier:
            row["attempts"] = 0
            if row["status"] == "processed":
                row["status"] = "skipped"
    images = [
        row
        for key, result in results.items()
        for row in image_rows(run_id, result, ledger, earlier=key in earlier)
    ]
    return {"orders": orders, "images": images}


def image_rows(
    run_id: str, result: OrderResult, ledger: Ledger, *, earlier: bool = False
) -> list[dict[str, Any]]:
    """One ``images`` row per image of the order (there is no manifest row: the source is the
    ledger's location of the image, ``row_index`` and ``manifest_uri`` are empty)."""
    record = result.record or ledger.order(result.order_key)
    slots = ledger.slots(record.order_key)
    known = ledger.images(s.image_key for s in slots)
    now = now_iso()
    rows = []
    for slot in slots:
        img = result.images.get(slot.image_key)
        rec = known.get(slot.image_key)
        fingerprint = rec.fingerprint if rec else ""
        status = img.status if img else (rec.status if rec else "pending")
        error_code = img.error_code if img else None
        error_message = img.error_message if img else None
        if earlier and status == "processed":
            status = "skipped"
        elif earlier and status == "failed":
            error_message = f"failed in an earlier run (order {record.order_id}): {error_message}"
        rows.append(
            {
                "run_id": run_id,
                "manifest_uri": None,
                "row_index": None,
                "source": slot.location,
                "id": None,
                "file_name": slot.file_name,
                "image_key": slot.image_key,
                "sha256": fingerprint.removeprefix("sha256:")
                if fingerprint.startswith("sha256:")
                else None,
                "bytes": None,
                "width": slot.width,
                "height": slot.height,
                "order_key": record.order_key,
                "order_id": record.order_id,
                "status": status,
                "error_code": error_code,
                "error_message": error_message,
                "attempts": 0 if earlier else result.attempts,
                "output_uri": img.output_uri if img else (rec.output_uri if rec else None),
                "output_sha256": img.output_sha256 if img else None,
                "created_at": record.created_at,
                "confirmed_at": record.confirmed_at,
                "completed_at": record.completed_at,
                "downloaded_at": record.downloaded_at,
                "recorded_at": now,
            }
        )
    return rows


@task(name="find-order", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[2, 5, 10])
def lookup_order(ledger: Ledger, order_id: str) -> OrderRecord:
    """The ledger's order for a MORI order id; retried briefly in case its row is being written.

    Raises ``LookupError`` when this ledger does not know the order (another pipeline's order,
    or a receiver and deployment pointed at different audit locations).
    """
    record = ledger.order_by_id(order_id)
    if record is None:
        raise LookupError(f"order {order_id} is not in the ledger {ledger.path}")
    return record


@task(name="await-handoff", cache_policy=NO_CACHE)
def await_handoff(
    ledger: Ledger,
    record: OrderRecord,
    seconds: float,
    *,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> OrderRecord:
    """Let a live ``protect`` run finish an order it is already downloading.

    A ``protect`` run waiting on an order reads its webhook event from the ledger within a
    fraction of a second and marks the order ``complete`` before downloading it, long before a
    ``finalize`` run has started. So an order found ``complete`` (not yet ``downloaded``) is
    most likely being downloaded right now: wait up to ``seconds`` for it to become final, and
    only then drive it ourselves (safe either way: every step is resumable). An order still
    ``confirmed`` has nobody waiting on it (``protect`` ran with ``wait_timeout_seconds=0``, or
    ended): no wait.
    """
    deadline = clock() + seconds
    while record.status == "complete" and clock() < deadline:
        sleep(interval)
        record = ledger.order(record.order_key)
    return record
