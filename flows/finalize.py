"""The ``finalize`` flow: one order is done at MORI; download it, write outputs and audit rows.

Started by the webhook receiver (``run_deployment`` with the idempotency key
``finalize-<order id>``, so MORI's duplicate or re-sent events never start a second run) or by
hand from the UI. Reads top to bottom: find the order by its MORI id in the ledger -> drive it
with the resumable order processor (the event is already in the ledger, so it does not wait) ->
write this run's ``orders/`` and ``images/`` audit rows.

Idempotent: an order the ledger already has as downloaded (or failed) is read back, not
downloaded again, and its rows say ``skipped`` (or ``failed``) with ``attempts = 0``. An order a
live ``protect`` run is downloading (ledger status ``complete``) is left to it for up to
``handoff_seconds`` first, so the two do not both download it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from pydantic import Field

from mori.batch import parameters as P
from mori.batch.audit import ImageRow, OrderRow
from mori.batch.runtime import RunConfig, Runtime
from mori.batch.storage import Storage
from tasks.audit import write_audit
from tasks.credentials import load_settings
from tasks.events import RunEvents
from tasks.finalizing import audit_tables, await_handoff, is_final, lookup_order
from tasks.orders import process_order
from tasks.ratelimit import client_for


@dataclass
class Finalized:
    """What one ``finalize`` run did."""

    order_id: str
    order_key: str | None = None
    status: str = "unknown"  # processed | failed | pending | skipped | replaced
    images: dict[str, int] = field(default_factory=dict)
    audit_files: list[str] = field(default_factory=list)


@flow(name="finalize", flow_run_name="finalize order {order_id}", log_prints=True)
def finalize(
    order_id: Annotated[
        str,
        Field(
            min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$", description="MORI order id"
        ),
    ],
    audit: Annotated[
        str, Field(min_length=1, description="Audit tables and ledger: folder or s3://")
    ],
    output: Annotated[
        str | None,
        Field(description="Outputs (default: where the protect run that planned it writes)"),
    ] = None,
    wait_timeout_seconds: Annotated[float, Field(ge=0, le=86400)] = 60.0,
    poll_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0,
    handoff_seconds: Annotated[
        float, Field(ge=0, le=3600, description="Grace for a protect run already downloading it")
    ] = 120.0,
    credentials: P.Credentials = P.DEFAULTS.credentials,
) -> Finalized:
    """Download one finished order, verify and write its outputs, and audit it.

    ``wait_timeout_seconds``: how long to wait for MORI if the order is not done after all
    (started by hand); ``handoff_seconds``: see :func:`tasks.finalizing.await_handoff`.
    """
    log = get_run_logger()
    run_id = str(flow_run.id or uuid.uuid4())
    settings = load_settings(credentials)
    config = RunConfig.for_orders(
        audit,
        output,
        settings,
        wait_timeout=wait_timeout_seconds,
        poll_interval=poll_interval_seconds,
    )
    outcome = Finalized(order_id)
    with Runtime(config, Storage(), client_for(settings), observer=RunEvents(run_id).order) as rt:
        record = lookup_order(rt.ledger, order_id)
        outcome.order_key = record.order_key
        if record.status == "abandoned":  # never confirmed, so MORI cannot have finished it
            log.warning("order %s was replaced by %s; nothing to do", order_id, record.replaced_by)
            outcome.status = "replaced"
            return outcome
        record = await_handoff(rt.ledger, record, handoff_seconds)
        earlier = {record.order_key} if is_final(record) else set()
        outputs = rt.processor.output_location(record)
        result = process_order(record.order_key, rt.processor)
        orders, images = audit_tables(run_id, {record.order_key: result}, earlier, rt.ledger)
        outcome.audit_files = write_audit(
            rt.storage,
            config.audit_uri,
            run_id,
            datetime.now(UTC).date(),
            {OrderRow: orders, ImageRow: images},
        )
    outcome.status = "skipped" if earlier and result.status == "processed" else result.status
    outcome.images = dict(Counter(str(row.status) for row in images))
    log.info("order %s: %s %s", order_id, outcome.status, outcome.images)
    create_markdown_artifact(
        _summary(outcome, outputs),
        key="finalize-summary",
        description=f"Order {order_id}",
    )
    return outcome


def _summary(outcome: Finalized, output_uri: str) -> str:
    counts = ", ".join(f"{status} {n}" for status, n in sorted(outcome.images.items()))
    files = "\n".join(f"- `{uri}`" for uri in outcome.audit_files)
    return (
        f"# order `{outcome.order_id}`: {outcome.status}\n\n"
        f"Images: {counts or 'none'}  \nOutputs: `{output_uri}`\n\nAudit files:\n{files}"
    )
