"""Finish orders outside a ``protect`` run: find them in the ledger, audit what this run did.

Shared by the ``finalize`` flow (one order, started by its webhook) and the ``reconcile`` flow
(orders whose webhook never came). Orders are driven by the same resumable
:class:`~mori.batch.orders.OrderProcessor` as in ``protect`` (the ``process-order`` task), so
finishing an order twice downloads it once: the second time it is read back from the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from prefect import task
from prefect.cache_policies import NO_CACHE

from mori.batch.audit import ImageRow, ImageStatus, OrderRow
from mori.batch.ledger import TERMINAL, ImageRecord, Ledger, OrderRecord, now_iso
from mori.batch.ledger.target import parse_target
from mori.batch.orders import OrderResult
from mori.batch.outcomes import image_rows, order_rows, slot_row
from mori.batch.runtime import RunConfig


def ledger_exists(config: RunConfig) -> bool:
    """Whether the run's ledger exists yet (a SQLite file no run has made yet does not; a
    PostgreSQL ledger always does)."""
    target = parse_target(config.ledger)
    return target.path is None or target.path.exists()


def is_final(record: OrderRecord) -> bool:
    """The order needs nothing more (downloaded, failed or replaced)."""
    return record.status in TERMINAL


def audit_tables(
    run_id: str, results: Mapping[str, OrderResult], earlier: set[str], ledger: Ledger
) -> tuple[list[OrderRow], list[ImageRow]]:
    """``orders`` and ``images`` rows for the orders this run finished.

    ``earlier`` holds the keys of orders that were already final before this run: their rows say
    ``skipped`` (their images were processed in an earlier run) or ``failed`` with
    ``attempts = 0``, as in a ``protect`` rerun, so nothing is counted twice.
    """
    orders = order_rows(run_id, results, {}, ledger)
    for row in orders:
        if row.order_key in earlier:
            row.attempts = 0
            if row.status == ImageStatus.PROCESSED:
                row.status = ImageStatus.SKIPPED
    now = now_iso()
    images: list[ImageRow] = []
    for key, result in results.items():
        record = result.record or ledger.order(result.order_key)
        slots = ledger.slots(record.order_key)
        recorded = ledger.images(s.image_key for s in slots)
        rows = [slot_row(run_id, s, _fingerprint(recorded.get(s.image_key)), now) for s in slots]
        if key in earlier:
            images += image_rows(rows, recorded, {}, {}, ledger)
        else:
            images += image_rows(rows, {}, {key: result}, {}, ledger)
    return orders, images


def _fingerprint(record: ImageRecord | None) -> str | None:
    return record.fingerprint if record else None


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
