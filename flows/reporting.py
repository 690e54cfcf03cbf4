"""What a ``protect`` run shows in the Prefect UI: a summary, its failures and its audit files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from mori.batch.audit import ImageRow, ImageStatus
from mori.batch.outcomes import RunSummary
from mori.report import csv_safe

MAX_FAILURE_ROWS = 200
_FAILURE_COLUMNS = ("row_index", "source", "id", "status", "error_code", "error_message")


def summary_markdown(summary: RunSummary) -> str:
    """The run's totals as a markdown table."""
    lines = [
        f"# protect run `{summary.run_id}`",
        "",
        "| outcome | rows |",
        "|---|---:|",
        *(
            f"| {status} | {summary.count(status)} |"
            for status in ("processed", "skipped", "failed", "pending")
        ),
        f"| **total** | **{summary.rows}** |",
        "",
        f"Orders driven: **{summary.orders}**, wall time **{summary.wall_seconds:.1f} s**.",
        "",
        f"Outputs: `{summary.output_uri}`  ",
        f"Audit: `{summary.audit_uri}`",
    ]
    if summary.failures:
        lines += ["", "| error code | rows |", "|---|---:|"]
        lines += [f"| `{code}` | {n} |" for code, n in sorted(summary.failures.items())]
    return "\n".join(lines)


def publish_run_artifacts(summary: RunSummary, rows: Sequence[ImageRow]) -> None:
    """Markdown summary, a table of failed/pending rows and a link to the audit files."""
    create_markdown_artifact(
        summary_markdown(summary), key="protect-summary", description="Outcome of the protect run"
    )
    problems = [
        {col: _cell(getattr(row, col)) for col in _FAILURE_COLUMNS}
        for row in rows
        if row.status in (ImageStatus.FAILED, ImageStatus.PENDING)
    ][:MAX_FAILURE_ROWS]
    if problems:
        create_table_artifact(
            problems,
            key="protect-failures",
            description=f"Failed or pending rows (first {MAX_FAILURE_ROWS})",
        )
    link = summary.audit_uri if "://" in summary.audit_uri else f"file://{summary.audit_uri}"
    create_link_artifact(
        link,
        link_text="Audit tables (Parquet)",
        key="protect-audit",
        description="images/, orders/ and runs/ partitioned by run_date",
    )


def _cell(value: Any) -> Any:
    """A table cell: at most 300 characters, safe from spreadsheet formulas."""
    return csv_safe(value[:300] if isinstance(value, str) else value)
