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
from pydantic import ValidationError

from flows.reporting import (
    failure_message,
    invalid_parameters,
    publish_plan,
    publish_run_artifacts,
)
from mori.batch import parameters as P
from mori.batch.audit import ImageRow, OrderRow, RunRow
from mori.batch.estimate import PlanGuard, PlanRefused
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
from mori.batch.plan import Triage
from mori.batch.progress import RunProgress
from mori.batch.runtime import RunConfig, Runtime
from mori.batch.storage import Storage
from mori.client import MoriClient
from tasks._prefect import unwalked
from tasks.audit import AuditTables, write_audit
from tasks.events import RunEvents
from tasks.fanout import fan_out_orders, with_children
from tasks.manifest import list_source, load_manifest
from tasks.orders import process_order
from tasks.planning import plan_run
from tasks.preflight import CredentialsError, PreflightFailed, checked_client

D = P.DEFAULTS


def _run_name() -> str:
    given = flow_run.parameters
    manifest = str(given.get("manifest") or given.get("source") or "manifest")
    return f"protect {manifest.rstrip('/').rsplit('/', 1)[-1]}"


@flow(
    name="protect",
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_CONCURRENT_ORDERS),  # type: ignore[arg-type]
    log_prints=True,
)
def protect(
    manifest: P.Manifest = None,
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
    source: P.Source = None,
    include: P.Include = D.include,
    exclude: P.Exclude = D.exclude,
    modified_since: P.ModifiedSince = None,
    max_new_images: P.MaxNewImages = D.max_new_images,
    credentials: P.Credentials = D.credentials,
    fan_out: P.FanOut = D.fan_out,
) -> RunSummary:
    """Protect every image of a manifest exactly once; write outputs and the audit tables."""
    try:
        params = P.ProtectParameters(**locals())  # exactly the parameters above, validated
    except ValidationError as exc:  # together they can be wrong (a manifest and a source)
        return Failed(message=invalid_parameters(exc))  # type: ignore[return-value]
    log = get_run_logger()
    started, started_at = time.monotonic(), now_iso()
    run_id = str(flow_run.id or uuid.uuid4())
    try:  # MORI must be usable before anything is planned
        settings, client = checked_client(credentials)
    except (CredentialsError, PreflightFailed) as exc:
        log.error("%s", exc)
        return Failed(message=str(exc))  # type: ignore[return-value]
    config = RunConfig.for_protect(params, settings)
    storage = Storage()
    try:
        items = (
            load_manifest(config.manifest_uri, storage, config.validation())
            if config.source is None
            else list_source(config.source, storage, config.validation(), config.ledger)
        )
    except BaseException:
        client.close()
        raise
    if isinstance(items, ManifestError):
        client.close()
        log.error("%s", failure_message(items))
        return Failed(message=failure_message(items))  # type: ignore[return-value]
    events = RunEvents(run_id)
    with Runtime(config, storage, client, observer=events.order) as rt:
        guard = PlanGuard.for_run(items, rt, retry_failed)
        planned = plan_run(
            unwalked(items),
            rt.ledger,
            config.order_size,
            config.output_uri,
            retry_failed,
            unwalked(guard),
        )
        publish_plan(guard.estimate)  # before the first order is created
        if isinstance(planned, PlanRefused):
            log.error("%s", planned.message)
            return Failed(message=planned.message)  # type: ignore[return-value]
        found, order_keys = planned
        events.planned(len(order_keys), _images_to_drive(found, rt))
        log.info(
            "%d rows: %d new images and %d failed before, in %d orders to drive, %d at once;"
            " %d bad rows",
            len(items),
            len(found.new),
            len(found.retried),
            len(order_keys),
            config.orders_at_once,
            sum(not it.ok for it in items),
        )
        # fan-out: groups of orders driven by child runs on any worker (tasks/fanout.py)
        fanned = fan_out_orders(order_keys, rt, run_id, fan_out) if fan_out else None
        results, crashed = fanned or drive_orders(order_keys, rt, config.orders_at_once, events)
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
    events.finished(summary)
    log.info("done: %s", summary.counts)
    return summary


def drive_orders(
    order_keys: list[str], rt: Runtime, limit: int, progress: RunProgress | None = None
) -> tuple[dict[str, OrderResult], dict[str, str]]:
    """Run ``process_order`` for each key, at most ``limit`` at a time, with a progress bar.

    Returns the results by order key and, for orders whose task failed even after retries, the
    reason (their images end this run ``pending``; the ledger lets the next run resume them).
    """
    artifact = (
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
        if artifact is not None:
            finished = len(results) + len(crashed)
            update_progress_artifact(artifact, 100.0 * finished / len(order_keys))
        if progress is not None:
            held = results[key].images if key in results else rt.ledger.slots(key)
            progress.order_done(len(held))
    return results, crashed


def _images_to_drive(found: Triage, rt: Runtime) -> int:
    """Images in the orders a run drives: its new and retried images, and the open orders'."""
    resumed = sum(len(rt.ledger.slots(key)) for key in found.resume)
    return len(found.new) + len(found.retried) + resumed


def _stats(client: MoriClient) -> dict[str, int]:
    stats = client.stats
    return {
        "requests": sum(stats.requests.values()),
        "retries": sum(stats.retries.values()),
        "rate_limited": stats.rate_limited,
    }
