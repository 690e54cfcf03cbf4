"""The ``mori-pipeline`` command.

Exit codes: 0 every row processed or skipped; 1 the run could not start (bad manifest, bad
arguments, no API key); 2 the run finished but some rows failed or are pending (see the audit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mori.batch.parameters import ProtectParameters, cli_options

DESCRIPTION = "Protect image collections with MORI's Anti-AI filter, exactly once per image."
#: Help of ``run`` options whose CLI default differs from the flow's.
_RUN_HELP = {
    "credentials": {
        "help": "also read MORI's credentials from this mori-credentials block (the environment"
        " wins; default: $MORI_CREDENTIALS_BLOCK, else the environment only)"
    }
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mori-pipeline", description=DESCRIPTION)
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an expected failure too"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="the whole path on the local emulator (no network)")
    demo.add_argument("--workdir", default="data/demo", help="where samples, outputs, audit go")
    demo.add_argument("--images", type=int, default=40, help="sample images to make")
    demo.add_argument("--fresh", action="store_true", help="delete the work folder first")

    run = sub.add_parser("run", help="protect a manifest (or a folder) against MORI_API_URL")
    for option in cli_options(ProtectParameters):
        run.add_argument(option.flag, **option.kwargs | _RUN_HELP.get(option.name, {}))
    run.add_argument("--quiet", action="store_true", help="print only the summary and errors")

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
        help="host[:port] the emulator may fetch URL files from (repeatable)",
    )
    emu.add_argument(
        "--login",
        action="append",
        default=[],
        metavar="EMAIL:PASSWORD",
        help="an account that may log in at /api/v2/auth/login (repeatable)",
    )
    emu.add_argument("--token-ttl", type=float, default=7200.0, help="access token lifetime (s)")
    emu.add_argument("--usage-limit", type=int, default=100_000, help="files per account")
    emu.add_argument(
        "--enforce-usage-limit", action="store_true", help="refuse creates past the usage limit"
    )
    emu.add_argument("--generation", choices=["g1", "g3"], default="g1", help="API dialect")
    emu.add_argument(
        "--processing-mode",
        choices=["filter", "copy"],
        default="filter",
        help="copy: outputs equal inputs, nothing decoded (cheap load tests)",
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
    from deployments import plan_cli

    plan = sub.add_parser("plan", help="a dry run: what a run would do and spend (nothing done)")
    plan_cli.add_arguments(plan)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: an expected failure is one line on stderr and exit
    code 1 (with its traceback under ``--debug``); see :mod:`deployments.console`."""
    from deployments import console

    args = _parser().parse_args(argv)
    try:
        return console.guarded(lambda: int(COMMANDS[args.command](args)), debug=args.debug)
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
    from deployments.checks import check_mori, cli_block, cli_settings
    from mori.settings import Settings

    env = Settings()
    given = {o.name: getattr(args, o.name) for o in cli_options(ProtectParameters)}
    given["credentials"] = cli_block(args.credentials, env)
    params = ProtectParameters(**{k: v for k, v in given.items() if v is not None})
    check_mori(cli_settings(params.credentials, env))  # before anything is planned
    from mori.batch.listing import check_source, source_root
    from mori.batch.manifest import read_manifest
    from mori.batch.storage import Storage, absolute

    # a whole-manifest (or source) problem: one line, before any Prefect run or server starts
    if params.manifest is not None:
        read_manifest(absolute(params.manifest), Storage())
    elif params.source is not None:
        check_source(source_root(params.source), Storage())
    from deployments.console import quiet_prefect_console
    from deployments.demo import print_summary
    from deployments.progress import RunDisplay
    from flows.protect import protect
    from tasks.events import listening

    with (
        quiet_prefect_console(not args.debug),
        RunDisplay.for_stdout(args.quiet) as display,
        listening(display),
    ):
        state = protect(**params.model_dump(), return_state=True)
    if not state.is_completed():
        print(f"error: {state.message}", file=sys.stderr)
        return 1
    summary = state.result()
    print_summary(summary)
    return _exit_code(summary)


def cmd_emulator(args: argparse.Namespace) -> int:
    from mori.emulator.cli import config_from_args
    from mori.emulator.server import run
    from mori.settings import Settings

    try:
        config = config_from_args(args, Settings.secret(Settings().api_key))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
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


def cmd_plan(args: argparse.Namespace) -> int:
    from deployments.plan_cli import run

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
    "plan": cmd_plan,
}

if __name__ == "__main__":
    sys.exit(main())
