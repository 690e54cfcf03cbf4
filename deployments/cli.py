"""The ``mori-pipeline`` command.

Exit codes: 0 every row processed or skipped; 1 the run could not start (bad manifest, bad
arguments, no API key); 2 the run finished but some rows failed or are pending (see the audit).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = "Protect image collections with MORI's Anti-AI filter, exactly once per image."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mori-pipeline", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="the whole path on the local emulator (no network)")
    demo.add_argument("--workdir", default="data/demo", help="where samples, outputs, audit go")
    demo.add_argument("--images", type=int, default=40, help="sample images to make")
    demo.add_argument("--fresh", action="store_true", help="delete the work folder first")

    run = sub.add_parser("run", help="protect a manifest against MORI_API_URL")
    run.add_argument("--manifest", required=True, help="CSV, Parquet or JSONL; path or s3://")
    run.add_argument("--output", help="outputs folder or s3:// prefix (default <manifest>/output)")
    run.add_argument("--audit", help="audit folder or s3:// prefix (default <manifest>/audit)")
    run.add_argument("--order-size", type=int, default=100, help="images per order (1..100)")
    run.add_argument("--max-concurrent-orders", type=int, default=4)
    run.add_argument("--wait-timeout", type=float, default=1800, help="seconds to wait per order")
    run.add_argument("--completion", choices=["auto", "webhook", "poll"], default="auto")
    run.add_argument(
        "--webhook-grace",
        type=float,
        default=30.0,
        help="seconds to wait for a webhook before polling",
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="send images that failed for good in earlier runs again (new orders)",
    )
    run.add_argument(
        "--allow-private-url-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="let URL rows name this internal host (e.g. a test server; repeatable)",
    )

    emu = sub.add_parser("emulator", help="run the local MORI API emulator")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8900)
    emu.add_argument("--api-key", action="append", help="accepted API key (repeatable)")
    emu.add_argument("--rpm", type=int, help="requests per minute per key (default unlimited)")
    emu.add_argument("--processing-seconds", type=float, default=2.0)
    emu.add_argument("--faults", default="", help="e.g. create:drop=0.05,any:429=0.05")
    emu.add_argument("--seed", type=int, default=0)
    emu.add_argument(
        "--allow-url-host",
        action="append",
        default=[],
        help="host[:port] the emulator may fetch for with-urls (repeatable)",
    )

    rep = sub.add_parser("report", help="the data-team report on the audit tables")
    rep.add_argument("--audit", default="data/demo/audit", help="audit folder or s3:// prefix")
    rep.add_argument("--out", help="report folder or s3:// prefix (default <audit>/../report)")
    rep.add_argument("--days", type=int, help="only the last N run dates (UTC)")

    from deployments import bootstrap, ledger_cli, receiver

    boot = sub.add_parser("bootstrap", help="create the Prefect work pool, rate limit, variables")
    bootstrap.add_arguments(boot)
    rec = sub.add_parser("receiver", help="run the webhook receiver; finalize once per order")
    receiver.add_arguments(rec)
    led = sub.add_parser("ledger", help="ledger maintenance: migrate SQLite to PostgreSQL")
    ledger_cli.add_arguments(led)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command](args))
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def cmd_demo(args: argparse.Namespace) -> int:
    import shutil

    from deployments.demo import run_demo

    workdir = Path(args.workdir)
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    summary, _ = run_demo(workdir, args.images)
    return _exit_code(summary)


def cmd_run(args: argparse.Namespace) -> int:
    if not os.environ.get("MORI_API_KEY"):
        print("error: MORI_API_KEY is not set", file=sys.stderr)
        return 1
    if not 1 <= args.order_size <= 100:
        print("error: --order-size must be 1..100", file=sys.stderr)
        return 1
    from mori.batch.manifest import ManifestError, read_manifest
    from mori.batch.runtime import RunConfig
    from mori.batch.storage import Storage

    try:  # a whole-manifest problem: one line, before any Prefect run or server starts
        read_manifest(RunConfig.resolve(args.manifest).manifest_uri, Storage())
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from deployments.demo import print_summary
    from flows.protect import protect

    state = protect(
        manifest=args.manifest,
        output=args.output,
        audit=args.audit,
        order_size=args.order_size,
        max_concurrent_orders=args.max_concurrent_orders,
        wait_timeout_seconds=args.wait_timeout,
        webhook_grace_seconds=args.webhook_grace,
        allowed_private_hosts=args.allow_private_url_host,
        completion=args.completion,
        retry_failed=args.retry_failed,
        return_state=True,
    )
    if not state.is_completed():
        print(f"error: {state.message}", file=sys.stderr)
        return 1
    summary = state.result()
    print_summary(summary)
    return _exit_code(summary)


def cmd_emulator(args: argparse.Namespace) -> int:
    from mori.emulator.config import EmulatorConfig
    from mori.emulator.server import run

    config = EmulatorConfig(
        api_keys=frozenset(args.api_key or [os.environ.get("MORI_API_KEY") or "test-key"]),
        rpm=args.rpm,
        processing_seconds=args.processing_seconds,
        faults=args.faults,
        seed=args.seed,
        url_allowlist=frozenset(args.allow_url_host),
        s3_endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
    )
    run(config, args.host, args.port)
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from deployments.bootstrap import run

    return run(args)


def cmd_receiver(args: argparse.Namespace) -> int:
    from deployments.receiver import run

    return run(args)


def cmd_ledger(args: argparse.Namespace) -> int:
    from deployments.ledger_cli import run

    return run(args)


def cmd_report(args: argparse.Namespace) -> int:
    from flows.report import main_report

    return main_report(args.audit, args.out, args.days)


def _exit_code(summary: Any) -> int:
    return 2 if summary.count("failed") or summary.count("pending") else 0


COMMANDS = {
    "demo": cmd_demo,
    "run": cmd_run,
    "emulator": cmd_emulator,
    "receiver": cmd_receiver,
    "report": cmd_report,
    "bootstrap": cmd_bootstrap,
    "ledger": cmd_ledger,
}

if __name__ == "__main__":
    sys.exit(main())
