"""The ``protect`` flow: a manifest in, protected images and audit tables out.

Reads top to bottom: load the manifest -> plan orders (recording intent) -> drive every order
with bounded concurrency (one task run per order of ≤ 100 images) -> write the audit -> report.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from pydantic import Field

from flows.reporting import publish_run_artifacts
from mori.batch.ledger import now_iso
from mori.batch.manifest import ManifestError
from mori.batch.orders import OrderResult
from mori.batch.outcomes import RunSummary, image_rows, order_rows, run_row, summarise
from mori.batch.runtime import Completion, RunConfig, Runtime
from mori.batch.storage import Storage
from mori.client import MoriClient
from tasks.audit import write_audit
from tasks.manifest import load_manifest
from tasks.orders import process_order
from tasks.planning import plan_run
from tasks.ratelimit import client_from_env

MAX_CONCURRENT_ORDERS = 32


def _run_name() -> str:
    manifest = str(flow_run.parameters.get("manifest", "manifest"))
    return f"protect {manifest.rstrip('/').rsplit('/', 1)[-1]}"


@flow(
    name="protect",
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_CONCURRENT_ORDERS),
    log_prints=True,
)
def protect(
    manifest: Annotated[str, Field(min_length=1, description="Manifest: local path or s3://")],
    output: Annotated[str | None, Field(description="Outputs (default <manifest>/output)")] = None,
    audit: Annotated[
        str | None, Field(description="Audit tables (default <manifest>/audit)")
    ] = None,
    order_size: Annotated[int, Field(ge=1, le=100, description="Images per order")] = 100,
    max_concurrent_orders: Annotated[int, Field(ge=1, le=MAX_CONCURRENT_ORDERS)] = 4,
    wait_timeout_seconds: Annotated[
        float,
        Field(
            ge=0,
            le=7 * 86400,
            description="Seconds to wait per order for MORI; 0 = only submit "
            "(finalize/reconcile complete the orders)",
        ),
    ] = 1800,
    poll_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0,
    webhook_grace_seconds: Annotated[
        float, Field(ge=0, le=86400, description="Wait this long for a webhook, then poll")
    ] = 30.0,
    completion: Completion = "auto",
    allowed_private_hosts: Annotated[list[str], Field(max_length=64)] = [],  # noqa: B006
    retry_failed: Annotated[
        bool, Field(description="Send images that failed for good in earlier runs again")
    ] = False,
) -> RunSummary:
    """Protect every image of a manifest exactly once; write outputs and the audit tables."""
    log = get_run_logger()
    started, started_at = time.monotonic(), now_iso()
    run_id = str(flow_run.id or uuid.uuid4())
    config = RunConfig.resolve(
        manifest,
        output,
        audit,
        order_size=order_size,
        max_concurrent_orders=max_concurrent_orders,
        wait_timeout=wait_timeout_seconds,
        poll_interval=poll_interval_seconds,
        webhook_grace=webhook_grace_seconds,
        completion=completion,
        allowed_private_hosts=frozenset(allowed_private_hosts),
    )
    storage = Storage()
    items = load_manifest(config.manifest_uri, storage, config.validation())
    if isinstance(items, ManifestError):
        log.error("%s", items)
        return Failed(message=str(items))  # type: ignore[return-value]
    with Runtime(config, storage, client_from_env()) as rt:
        # quote(): Prefect would otherwise walk every row looking for futures (~114 µs a row)
        found, order_keys = plan_run(
            quote(items), rt.ledger, config.order_size, config.output_uri, retry_failed
        )
        log.info(
            "%d rows: %d new images and %d failed before, in %d orders to drive; %d bad rows",
            len(items),
            len(found.new),
            len(found.retried),
            len(order_keys),
            sum(not it.ok for it in items),
        )
        results, crashed = drive_orders(order_keys, rt, config.max_concurrent_orders)
        rows = image_rows(run_id, config.manifest_uri, items, found, results, crashed, rt.ledger)
        summary = summarise(run_id, rows, len(order_keys))
        summary.wall_seconds = round(time.monotonic() - started, 3)
        summary.output_uri, summary.audit_uri = config.output_uri, config.audit_uri
        tables = {
            "images": rows,
            "orders": order_rows(run_id, results, crashed, rt.ledger),
            "runs": [run_row(summary, config.manifest_uri, started_at, _stats(rt.client))],
        }
        summary.audit_files = write_audit(
            rt.storage, config.audit_uri, run_id, datetime.now(UTC).date(), quote(tables)
        )
    publish_run_artifacts(summary, rows)
    log.info("done: %s", summary.counts)
    return summary


def drive_orders(
    order_keys: list[str], rt: Runtime, limit: int
) -> tuple[dict[str, OrderResult], dict[str, str]]:
    """Run ``process_order`` for each key, at most ``limit`` at a time, with a progress bar.

    Returns the results by order key and, for orders whose task failed even after retries, the
    reason (their images end this run ``pending``; the ledger lets the next run resume them).
    """
    progress = create_progress_artifact(0.0, description="Orders finished") if order_keys else None
    queue: deque[str] = deque(order_keys)
    running: dict[PrefectFuture[OrderResult], str] = {}
    results: dict[str, OrderResult] = {}
    crashed: dict[str, str] = {}
    while queue or running:
        while queue and len(running) < limit:
            key = queue.popleft()
            running[process_order.submit(key, rt.processor)] = key
        done = next(as_completed(list(running)))
        key = running.pop(done)
        try:
            results[key] = done.result()
        except Exception as exc:
            crashed[key] = f"order task failed: {type(exc).__name__}: {exc}"
        if progress is not None:
            finished = len(results) + len(crashed)
            update_progress_artifact(progress, 100.0 * finished / len(order_keys))
    return results, crashed


def _stats(client: MoriClient) -> dict[str, int]:
    stats = client.stats
    return {
        "requests": sum(stats.requests.values()),
        "retries": sum(stats.retries.values()),
        "rate_limited": stats.rate_limited,
    }
