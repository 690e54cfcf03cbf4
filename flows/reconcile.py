"""The ``reconcile`` flow: finish orders whose webhook never came (runs every few minutes).

Webhooks can be lost, and a ``finalize`` run can fail. Reads top to bottom: take every open
order in the ledger that MORI confirmed more than ``grace_minutes`` ago -> ask MORI for its
status (``GET /orders/{id}``) -> drive the complete and failed ones to the end with the same
resumable order processor as ``protect`` (download, verify, write outputs) -> write this run's
``orders/`` and ``images/`` audit rows and a summary artifact. Orders still processing are left
for the next round; orders never confirmed belong to the next ``protect`` run, which resumes them.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from mori.batch import parameters as P
from mori.batch.audit import ImageRow, OrderRow
from mori.batch.codes import ErrorCode
from mori.batch.ledger import Ledger, OrderRecord
from mori.batch.orders import OrderResult
from mori.batch.runtime import RunConfig, Runtime
from mori.batch.storage import Storage
from mori.client import MoriClient
from mori.settings import Settings
from tasks.audit import write_audit
from tasks.credentials import load_settings
from tasks.events import RunEvents
from tasks.finalizing import audit_tables, ledger_exists
from tasks.orders import process_order
from tasks.ratelimit import client_for

FINAL_AT_MORI = frozenset({"complete", "failed"})


@dataclass
class Reconciled:
    """What one ``reconcile`` run did."""

    checked: int = 0
    finished: dict[str, int] = field(default_factory=dict)  # order status -> orders
    still_processing: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    unconfirmed: int = 0
    audit_files: list[str] = field(default_factory=list)


@task(name="overdue-orders", cache_policy=NO_CACHE)
def overdue_orders(ledger: Ledger, grace: timedelta) -> tuple[list[OrderRecord], int]:
    """Open orders confirmed (or seen complete) before ``now - grace``; and how many orders are
    not confirmed yet."""
    cutoff = datetime.now(UTC) - grace
    overdue, unconfirmed = [], 0
    for record in ledger.open_orders():
        if not record.order_id or not record.reached("confirmed"):
            unconfirmed += 1
            continue
        # an order marked complete recently is probably being downloaded by a protect run
        stamp = record.completed_at or record.confirmed_at or record.created_at
        stamp = stamp or record.planned_at
        if datetime.fromisoformat(stamp) <= cutoff:
            overdue.append(record)
    return overdue, unconfirmed


@task(name="order-status", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def order_status(client: MoriClient, record: OrderRecord) -> str:
    """MORI's status of the order (``complete`` without asking when the ledger says so)."""
    if record.status == "complete":
        return "complete"
    assert record.order_id is not None
    return str(client.get_order(record.order_id).status)


@flow(
    name="reconcile",
    flow_run_name="reconcile {audit}",
    task_runner=ThreadPoolTaskRunner(max_workers=8),  # type: ignore[arg-type]  # prefect's generics
    log_prints=True,
)
def reconcile(
    audit: Annotated[
        str, Field(min_length=1, description="Audit tables and ledger: folder or s3://")
    ],
    output: Annotated[
        str | None,
        Field(description="Outputs (default: where the protect run that planned each writes)"),
    ] = None,
    grace_minutes: Annotated[float, Field(ge=0, le=7 * 1440)] = 10.0,
    max_orders: Annotated[int, Field(ge=1, le=10_000)] = 500,
    credentials: P.Credentials = P.DEFAULTS.credentials,
) -> Reconciled:
    """Finish the orders whose completion never arrived; audit what was finished."""
    log = get_run_logger()
    done = Reconciled()
    env = Settings()  # where the ledger is; credentials only when there is work
    config = RunConfig.for_orders(audit, output, env, wait_timeout=0.0, completion="poll")
    if not ledger_exists(config):
        log.info("no ledger under %s yet: nothing to reconcile", audit)
        return done
    settings = load_settings(credentials, env)
    config = dataclasses.replace(config, settings=settings)
    run_id = str(flow_run.id or uuid.uuid4())
    with Runtime(config, Storage(), client_for(settings), observer=RunEvents(run_id).order) as rt:
        overdue, done.unconfirmed = overdue_orders(rt.ledger, timedelta(minutes=grace_minutes))
        overdue = overdue[:max_orders]
        done.checked = len(overdue)
        statuses = {r.order_key: order_status.submit(rt.client, r) for r in overdue}
        running: dict[str, PrefectFuture[OrderResult]] = {}
        for record in overdue:
            status = statuses[record.order_key].result()
            if status in FINAL_AT_MORI:
                running[record.order_key] = process_order.submit(record.order_key, rt.processor)
            elif status == "expired":  # MORI dropped the result before anyone downloaded it
                message = f"MORI expired order {record.order_id} before it was downloaded"
                rt.ledger.fail_order(record.order_key, ErrorCode.ORDER_EXPIRED, message)
                running[record.order_key] = process_order.submit(record.order_key, rt.processor)
                done.expired.append(str(record.order_id))
            else:
                done.still_processing.append(str(record.order_id))
        wait(list(running.values()))
        results: dict[str, OrderResult] = {}
        for key, future in running.items():
            try:
                results[key] = future.result()
            except Exception as exc:  # its task failed even after retries: next round
                log.warning("order %s not finished: %s", key, exc)
        for result in results.values():
            done.finished[result.status] = done.finished.get(result.status, 0) + 1
        if results:
            orders, images = audit_tables(run_id, results, set(), rt.ledger)
            done.audit_files = write_audit(
                rt.storage,
                config.audit_uri,
                run_id,
                datetime.now(UTC).date(),
                {OrderRow: orders, ImageRow: images},
            )
    log.info(
        "checked %d overdue orders: finished %s, %d still processing, %d not confirmed yet",
        done.checked,
        done.finished,
        len(done.still_processing),
        done.unconfirmed,
    )
    create_markdown_artifact(_summary(done), key="reconcile-summary", description=audit)
    return done


def _summary(done: Reconciled) -> str:
    finished = ", ".join(f"{s} {n}" for s, n in sorted(done.finished.items())) or "none"
    lines = [
        "# reconcile",
        "",
        f"Overdue orders checked: **{done.checked}**  ",
        f"Finished now: {finished}  ",
        f"Still processing at MORI: {len(done.still_processing)}  ",
        f"Expired at MORI: {len(done.expired)}  ",
        f"Not confirmed yet (left to the next protect run): {done.unconfirmed}",
    ]
    if done.audit_files:
        lines += ["", "Audit files:", *(f"- `{uri}`" for uri in done.audit_files)]
    return "\n".join(lines)
