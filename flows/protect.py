"""The ``protect`` flow: a manifest in, protected images and audit tables out.

Reads top to bottom: load the manifest -> plan orders (recording intent) -> drive every order
with bounded concurrency (one task run per order of ≤ 100 images; with ``fan_out``, child runs
on any worker drive groups of them) -> write the audit -> report.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.reporting import publish_run_artifacts
from mori.batch import parameters as P
from mori.batch.ledger import now_iso
from mori.batch.manifest import ManifestError
from mori.batch.orders import OrderResult
from mori.batch.outcomes import (
    RunSummary,
    manifest_rows,
    order_rows,
    run_row,
    summarise,
)
from mori.batch.parameters import MAX_CONCURRENT_ORDERS
from mori.batch.rows import ImageRow, OrderRow, RunRow
from mori.batch.runtime import RunConfig, Runtime
from mori.batch.storage import Storage
from mori.client import MoriClient
from tasks._prefect import unwalked
from tasks.audit import AuditTables, write_audit
from tasks.credentials import load_settings
from tasks.fanout import fan_out_orders, with_children
from tasks.manifest import load_manifest
from tasks.orders import process_order
from tasks.planning import plan_run
from tasks.ratelimit import client_for

D = P.DEFAULTS


def _run_name() -> str:
    manifest = str(flow_run.parameters.get("manifest", "manifest"))
    return f"protect {manifest.rstrip('/').rsplit('/', 1)[-1]}"


@flow(
    name="protect",
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_CONCURRENT_ORDERS),  # type: ignore[arg-type]
    log_prints=True,
)
def protect(
    manifest: P.Manifest,
    output: P.Output = None,
    audit: P.Audit = None,
    order_size: P.OrderSize = D.order_size,
    max_concurrent_orders: P.MaxConcurrentOrders = D.max_concurrent_orders,
    wait_timeout_seconds: P.WaitTimeout = D.wait_timeout_seconds,
    poll_interval_seconds: P.PollInterval = D.poll_interval_seconds,
    webhook_grace_seconds: P.WebhookGrace = D.webhook_grace_seconds,
    completion: P.CompletionMode = D.completion,
    allowed_private_hosts: P.AllowedPrivateHosts = D.allowed_private_hosts,
    retry_failed: P.RetryFailed = D.retry_failed,
    fan_out: P.FanOut = D.fan_out,
) -> RunSummary:
    """Protect every image of a manifest exactly once; write outputs and the audit tables."""
    params = P.ProtectParameters(**locals())  # exactly the parameters above, validated
    log = get_run_logger()
    started, started_at = time.monotonic(), now_iso()
    run_id = str(flow_run.id or uuid.uuid4())
    settings = load_settings()
    config = RunConfig.for_protect(params, settings)
    storage = Storage()
    items = load_manifest(config.manifest_uri, storage, config.validation())
    if isinstance(items, ManifestError):
        log.error("%s", items)
        return Failed(message=str(items))  # type: ignore[return-value]
    with Runtime(config, storage, client_for(settings)) as rt:
        found, order_keys = plan_run(
            unwalked(items), rt.ledger, config.order_size, config.output_uri, retry_failed
        )
        log.info(
            "%d rows: %d new images and %d failed before, in %d orders to drive; %d bad rows",
            len(items),
            len(found.new),
            len(found.retried),
            len(order_keys),
            sum(not it.ok for it in items),
        )
        # fan-out: groups of orders driven by child runs on any worker (tasks/fanout.py)
        fanned = fan_out_orders(order_keys, rt, run_id, fan_out) if fan_out else None
        results, crashed = fanned or drive_orders(order_keys, rt, config.max_concurrent_orders)
        rows = manifest_rows(
            run_id, config.manifest_uri, items, found.known, results, crashed, rt.ledger
        )
        summary = summarise(run_id, rows, len(order_keys))
        summary.wall_seconds = round(time.monotonic() - started, 3)
        summary.output_uri, summary.audit_uri = config.output_uri, config.audit_uri
        requests = with_children(_stats(rt.client), rt, run_id)  # and the child runs' requests
        tables: AuditTables = {
            ImageRow: rows,
            OrderRow: order_rows(run_id, results, crashed, rt.ledger),
            RunRow: [run_row(summary, config.manifest_uri, started_at, requests)],
        }
        summary.audit_files = write_audit(
            rt.storage, config.audit_uri, run_id, datetime.now(UTC).date(), unwalked(tables)
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
    progress = (
        cast(UUID, create_progress_artifact(0.0, description="Orders finished"))
        if order_keys
        else None
    )
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
