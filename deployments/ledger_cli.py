"""``mori-pipeline ledger``: maintenance of the ledger (``migrate`` copies one into another).

``mori-pipeline ledger migrate --from ./audit/ledger.sqlite --to postgresql://...`` copies every
table of a ledger, read in one consistent snapshot, into an empty one, verifies the copy (row
counts and a checksum per table) and says what to do next. Passwords in URLs are masked in
everything it prints.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``ledger`` subcommand's actions and options."""
    actions = parser.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    migrate = actions.add_parser(
        "migrate",
        help="copy a ledger (e.g. SQLite) into an empty one (e.g. PostgreSQL) and verify it",
        description="Copy every table of the ledger at --from into the empty ledger at --to, "
        "in one consistent snapshot, then verify row counts and checksums. Stop every run and "
        "webhook receiver that uses the source first: writes made during the copy are not in it.",
    )
    migrate.add_argument(
        "--from", dest="source", required=True, help="ledger to copy: a path, sqlite:///... or URL"
    )
    migrate.add_argument(
        "--to", dest="target", required=True, help="empty ledger to fill, e.g. postgresql://..."
    )


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``ledger`` action; the process exit code."""
    return _migrate(args.source, args.target)


def _migrate(source: str, target: str) -> int:
    """``ledger migrate``: 0 copied or already there, 1 refused or failed."""
    from mori.batch.ledger import TransferError, migrate_ledger, redact

    print(f"copying {redact(source)} -> {redact(target)} (keep runs stopped until it is done)")
    try:
        report = migrate_ledger(source, target)
    except (TransferError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a database error: its message, never the URL's password
        print(f"error: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return 1
    for line in report.lines():
        print(line)
    print(
        f"next: set MORI_LEDGER_URL={report.target} for every run, worker and webhook receiver"
        " (with its password), then start them again; keep the source as a backup"
    )
    return 0
