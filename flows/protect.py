"""The ``protect`` flow: a manifest in, protected images and audit tables out.

Reads top to bottom: load the manifest (every row validated, keyed and filed by image key in a
local working folder) -> triage every row against the ledger and estimate the plan (refused
before anything is recorded when it sends too much) -> then a window of image keys at a time:
plan its orders (recording intent), drive them with bounded concurrency (one task run per order
of ≤ 100 images; with ``fan_out``, child runs on any worker drive groups of them), write its
audit rows -> publish the audit -> report. A run holds one window's rows and orders at a time.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger
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
from mori.batch.ledger import now_iso
from mori.batch.manifest import ManifestError
from mori.batch.outcomes import RunSummary, run_row
from mori.batch.parameters import MAX_CONCURRENT_ORDERS
from mori.batch.runtime import RunConfig, Runtime
from mori.batch.storage import Storage
from mori.batch.stream import RunAudit, StreamRun
from mori.client import MoriClient
from tasks._prefect import unwalked
from tasks.audit import publish_audit
from tasks.driving import OrderDriver, OrderProgress, drive_orders
from tasks.events import RunEvents
from tasks.fanout import with_children
from tasks.manifest import list_source, load_manifest
from tasks.planning import plan_window, triage_run
from tasks.preflight import CredentialsError, PreflightFailed, checked_client

__all__ = ["drive_orders", "protect"]

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
    # The run's working folder (its rows filed by key, its audit tables as they are written);
    # deleted when the run ends.
    with tempfile.TemporaryDirectory(prefix="mori-protect-") as scratch:
        work = Path(scratch)
        try:
            survey = (
                load_manifest(config.manifest_uri, storage, config.validation(), work / "rows")
                if config.source is None
                else list_source(
                    config.source, storage, config.validation(), config.ledger, work / "rows"
                )
            )
        except BaseException:
            client.close()
            raise
        if isinstance(survey, ManifestError):
            client.close()
            log.error("%s", failure_message(survey))
            return Failed(message=failure_message(survey))  # type: ignore[return-value]
        events = RunEvents(run_id)
        with Runtime(config, storage, client, observer=events.order) as rt:
            tables = RunAudit(work / "audit", run_id, config.manifest_uri, survey.extras)
            plan = StreamRun(
                survey,
                rt.ledger,
                work / "windows",
                order_size=config.order_size,
                retry_failed=retry_failed,
                output_uri=config.output_uri,
                images=tables.images,
            )
            estimate = triage_run(unwalked(plan), rt)
            publish_plan(estimate)  # before the first order is created
            if estimate.refusal is not None:
                log.error("%s", estimate.refusal)
                return Failed(message=estimate.refusal)  # type: ignore[return-value]
            orders, images = plan.images_to_drive()
            events.planned(orders, images)
            log.info(
                "%d rows: %d new images and %d failed before, in %d orders to drive; %d bad rows",
                estimate.rows,
                estimate.new_images,
                plan.counts.retried,
                orders,
                estimate.bad_rows,
            )
            # A window of image keys at a time: plan it, drive its orders (here, or with
            # fan-out through child runs on any worker: tasks/fanout.py), write its audit rows.
            progress = OrderProgress(orders, events)
            driver = OrderDriver(rt, run_id, config.orders_at_once, fan_out, progress)
            driven = 0
            for number in plan.windows():
                order_keys = plan_window(unwalked(plan), number)
                results, crashed = driver.drive(order_keys)
                tables.orders.add(plan.settle(results, crashed, run_id))
                driven += len(order_keys)
            summary = RunSummary(
                run_id,
                tables.images.rows,
                dict(tables.images.counts),
                dict(tables.images.failures),
                driven,
            )
            summary.wall_seconds = round(time.monotonic() - started, 3)
            summary.output_uri, summary.audit_uri = config.output_uri, config.audit_uri
            requests = with_children(_stats(rt.client), rt, run_id)  # and the child runs' requests
            run = run_row(summary, config.manifest_uri, started_at, requests)
            summary.audit_files = publish_audit(
                unwalked(tables), rt.storage, config.audit_uri, datetime.now(UTC).date(), run
            )
    publish_run_artifacts(summary, tables.images.problems())
    events.finished(summary)
    log.info("done: %s", summary.counts)
    return summary


def _stats(client: MoriClient) -> dict[str, int]:
    stats = client.stats
    return {
        "requests": sum(stats.requests.values()),
        "retries": sum(stats.retries.values()),
        "rate_limited": stats.rate_limited,
    }
