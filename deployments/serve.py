"""Serve every flow from one process: the simplest way to run mori-pipeline with Prefect.

    prefect server start                                   # terminal 1 (UI on :4200)
    mori-pipeline bootstrap                                # once: pool, rate limit, variables
    python -m deployments.serve --manifest data/nightly/manifest.csv    # terminal 2

No work pool and no worker: this process creates the four deployments and runs their flow runs
itself (each in a subprocess), until stopped (their schedules pause on shutdown).

* ``protect/protect``     nightly at 02:00 (``--cron``), manifest from ``--manifest``;
* ``finalize/finalize``   no schedule: the webhook receiver starts it, once per order;
* ``reconcile/reconcile`` every 5 minutes: orders whose webhook never came;
* ``report/report``       daily at 06:00, over the audit tables.

``--only NAME`` (repeatable) serves a subset, e.g. only ``finalize`` beside a worker pool.
``--receiver PORT`` also runs the webhook receiver in this process (``--register-url URL``
registers its public URL with MORI first), so one process is the whole setup.
Set ``MORI_GLOBAL_RATE_LIMIT=mori-api`` to make every run share the rate limit ``bootstrap``
created (needed as soon as a second process talks to MORI with the same key).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

NAMES = ("protect", "finalize", "reconcile", "report")
DEFAULT_AUDIT = "data/nightly/audit"
RECONCILE_EVERY = timedelta(minutes=5)


def _absolute(uri: str | None) -> str | None:
    if uri is None or "://" in uri:
        return uri
    return str(Path(uri).expanduser().resolve())


def build(
    *,
    manifest: str | None,
    audit: str,
    output: str | None = None,
    cron: str = "0 2 * * *",
    report_cron: str = "0 6 * * *",
    timezone: str = "UTC",
    only: Sequence[str] = NAMES,
) -> list[Any]:
    """The runner deployments to serve (``RunnerDeployment`` objects), in :data:`NAMES` order."""
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    audit_uri = _absolute(audit) or audit
    output_uri = _absolute(output)
    makers: dict[str, Callable[[], Any]] = {}

    def protect() -> Any:
        from flows.protect import protect as flow

        params: dict[str, Any] = {}
        if manifest:
            params = {"manifest": _absolute(manifest), "audit": audit_uri}
            if output_uri:
                params["output"] = output_uri
        return flow.to_deployment(
            "protect",
            schedules=[CronSchedule(cron=cron, timezone=timezone)] if manifest else None,
            parameters=params,
            description="Protect every image of a manifest (nightly).",
            tags=["mori"],
        )

    def finalize() -> Any:
        from flows.finalize import finalize as flow

        params: dict[str, Any] = {"audit": audit_uri}
        if output_uri:
            params["output"] = output_uri
        return flow.to_deployment(
            "finalize",
            parameters=params,
            description="Finish one order; started by the webhook receiver, once per order.",
            tags=["mori"],
        )

    def reconcile() -> Any:
        from flows.reconcile import reconcile as flow

        params: dict[str, Any] = {"audit": audit_uri}
        if output_uri:
            params["output"] = output_uri
        return flow.to_deployment(
            "reconcile",
            schedules=[IntervalSchedule(interval=RECONCILE_EVERY)],
            parameters=params,
            description="Finish orders whose webhook never came.",
            tags=["mori"],
        )

    def report() -> Any:
        from flows.report import report as flow

        return flow.to_deployment(
            "report",
            schedules=[CronSchedule(cron=report_cron, timezone=timezone)],
            parameters={"audit": audit_uri},
            description="Daily report over the audit tables.",
            tags=["mori"],
        )

    makers.update(protect=protect, finalize=finalize, reconcile=reconcile, report=report)
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown flow(s) {unknown}; choose from {list(NAMES)}")
    return [makers[name]() for name in NAMES if name in only]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.serve", description="Serve every mori-pipeline flow."
    )
    parser.add_argument(
        "--manifest", help="the nightly protect run's manifest (no schedule if unset)"
    )
    parser.add_argument("--audit", default=DEFAULT_AUDIT, help="audit tables and ledger")
    parser.add_argument(
        "--output", help="outputs of every flow (default: each protect run's; finalize follows it)"
    )
    parser.add_argument("--cron", default="0 2 * * *", help="protect's schedule")
    parser.add_argument("--report-cron", default="0 6 * * *", help="report's schedule")
    parser.add_argument("--timezone", default="UTC")
    parser.add_argument("--only", action="append", choices=NAMES, help="serve only these flows")
    parser.add_argument("--limit", type=int, help="most flow runs at once (default 5)")
    parser.add_argument(
        "--receiver",
        type=int,
        metavar="PORT",
        help="also run the webhook receiver on this port (starts finalize once per order)",
    )
    parser.add_argument("--receiver-host", default="127.0.0.1")
    parser.add_argument(
        "--register-url", metavar="URL", help="register the receiver's public URL with MORI first"
    )
    return parser


def start_receiver(
    audit: str, output: str | None, host: str, port: int, register_url: str | None
) -> Any:
    """The webhook receiver on a background thread, recording into ``audit``'s ledger."""
    from deployments.receiver import FinalizeDispatcher, register, secret_source
    from mori.batch.ledger import Ledger
    from mori.batch.runtime import default_ledger
    from mori.receiver import PATH, create_app
    from mori.serving import ThreadedServer

    audit_uri = _absolute(audit) or audit
    ledger_path = Path(default_ledger(audit_uri))
    secret_file = ledger_path.parent / "webhook-secret"
    if register_url:
        register(register_url, secret_file)
    secret = secret_source(secret_file)
    if not secret():
        raise SystemExit("error: no webhook secret: set MORI_WEBHOOK_SECRET or --register-url URL")
    params = {"audit": audit_uri, **({"output": _absolute(output)} if output else {})}
    app = create_app(Ledger(ledger_path), secret, FinalizeDispatcher(parameters=params))
    server = ThreadedServer(app, host=host, port=port).start()
    print(f"receiving MORI webhooks on {server.url}{PATH}")
    return server


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from prefect import serve

    deployments = build(
        manifest=args.manifest,
        audit=args.audit,
        output=args.output,
        cron=args.cron,
        report_cron=args.report_cron,
        timezone=args.timezone,
        only=args.only or NAMES,
    )
    if args.receiver:
        start_receiver(
            args.audit, args.output, args.receiver_host, args.receiver, args.register_url
        )
    serve(*deployments, limit=args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
