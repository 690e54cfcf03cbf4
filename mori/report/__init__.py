"""The data-team report on the audit tables (no Prefect here; the ``report`` flow wraps it).

``load_audit`` finds the files of ``images/``, ``orders/`` and ``runs/`` under an audit URI
(local or ``s3://``), tolerating partitions written with older schema versions; ``build_report``
streams them once and computes the per-run and per-day figures, in memory that follows the number
of runs and processed images, not the size of the tables; ``write_report`` writes the summary
Parquet, CSVs, PNG charts and a self-contained HTML page. ``make_report`` does all three.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from mori.batch.storage import Storage
from mori.report.cells import csv_safe
from mori.report.load import AuditData, load_audit, load_table
from mori.report.summary import FAILURES_SCHEMA, SUMMARY_SCHEMA, Report, build_report
from mori.report.write import ReportFiles, default_out, write_report

__all__ = [
    "FAILURES_SCHEMA",
    "SUMMARY_SCHEMA",
    "AuditData",
    "Report",
    "ReportFiles",
    "build_report",
    "csv_safe",
    "default_out",
    "load_audit",
    "load_table",
    "make_report",
    "write_report",
]


def make_report(
    audit_uri: str,
    out_uri: str | None = None,
    days: int | None = None,
    storage: Storage | None = None,
    today: date | None = None,
) -> tuple[Report, ReportFiles]:
    """Load, build and write the report (``out_uri`` defaults to ``<audit>/../report``)."""
    storage = storage or Storage()
    data = load_audit(audit_uri, storage, days=days, today=today)
    report = build_report(data, days=days, generated_at=datetime.now(UTC))
    files = write_report(report, out_uri or default_out(audit_uri), storage)
    return report, files
