"""The ``report`` flow: the audit tables in, a data-team report out.

Reads top to bottom: load the hive-partitioned audit (local or ``s3://``, any schema version)
-> compute per-run and per-day figures -> write the summary Parquet, CSVs, PNG charts and the
HTML page -> publish a markdown summary, a table of runs and a link to the page as artifacts.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Failed
from pydantic import Field

from mori.batch.storage import Storage
from mori.report import AuditData, Report, ReportFiles, build_report, load_audit, write_report
from mori.report.markdown import summary_markdown, table_rows
from mori.report.write import default_out

DEFAULT_AUDIT = "data/demo/audit"


def _run_name() -> str:
    params = flow_run.parameters
    audit = str(params.get("audit", "audit")).rstrip("/")
    days = params.get("days")
    return f"report {audit}" + (f" (last {days} days)" if days else "")


@task(cache_policy=NO_CACHE)
def read_audit(audit: str, days: int | None) -> AuditData:
    """The audit files of the period, their footers read (the report streams the rows)."""
    return load_audit(audit, Storage(), days=days)


@task(cache_policy=NO_CACHE)
def write_files(report: Report, out: str) -> ReportFiles:
    """The summary Parquet, CSVs, charts and HTML page under ``out``."""
    return write_report(report, out, Storage())


@flow(name="report", flow_run_name=_run_name, log_prints=True)
def report(
    audit: Annotated[str, Field(min_length=1, description="Audit tables: local folder or s3://")],
    out: Annotated[
        str | None, Field(description="Where the report goes (default <audit>/../report)")
    ] = None,
    days: Annotated[
        int | None, Field(ge=1, le=36600, description="Only the last N run dates (UTC)")
    ] = None,
) -> ReportFiles:
    """Summarise the audit tables: what was protected, what failed and why, how fast, API use."""
    log = get_run_logger()
    data = read_audit(audit, days)
    for problem in data.problems:
        log.warning("%s", problem)
    if data.empty:
        message = f"no audit rows under {audit}" + (f" in the last {days} days" if days else "")
        log.error("%s", message)
        return Failed(message=message)  # type: ignore[return-value]
    result = build_report(data, days=days, generated_at=datetime.now(UTC))
    files = write_files(result, out or default_out(audit))
    publish_report_artifacts(result, files)
    log.info("report written to %s", files.html)
    return files


def publish_report_artifacts(result: Report, files: ReportFiles) -> None:
    """Markdown summary, a table of runs and a link to the HTML page."""
    create_markdown_artifact(
        summary_markdown(result, files.html_link),
        key="audit-report-summary",
        description="What was protected, what failed and why, how fast, how many API calls",
    )
    create_table_artifact(
        table_rows(result),
        key="audit-report-runs",
        description="One row per run, most recent first",
    )
    create_link_artifact(
        files.html_link,
        link_text="Audit report (HTML)",
        key="audit-report",
        description=f"Charts and tables; summary Parquet at {files.summary}",
    )


def main_report(audit: str = DEFAULT_AUDIT, out: str | None = None, days: int | None = None) -> int:
    """``mori-pipeline report``: run the flow; 0 when the report was written, 1 otherwise."""
    if days is not None and days < 1:
        print("error: --days must be at least 1", file=sys.stderr)
        return 1
    state = report(audit=audit, out=out, days=days, return_state=True)
    if not state.is_completed():
        print(f"error: {state.message}", file=sys.stderr)
        return 1
    files: ReportFiles = state.result()
    print(f"report: {files.html}")
    print(f"summary: {files.summary}")
    return 0
