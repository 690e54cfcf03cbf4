"""What a ``protect`` run shows in the Prefect UI: its plan, a summary, its failures and its audit
files, and the one line a run that cannot start fails with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from pydantic import ValidationError

from mori.batch.audit import ImageStatus
from mori.batch.codes import ErrorCode
from mori.batch.estimate import PlanEstimate, markdown
from mori.batch.manifest import ManifestError
from mori.batch.outcomes import RunSummary
from mori.report import csv_safe

MAX_FAILURE_ROWS = 200
#: How to fix what a run cannot start with, by error code (shown after the error itself).
_FIXES: dict[str, str] = {
    ErrorCode.MANIFEST_NOT_FOUND: (
        "set the manifest parameter (a Custom run, or the deployment's default in prefect.yaml)"
        " to a CSV, Parquet or JSONL file that exists: a path relative to the checkout, an"
        " absolute path, or s3://bucket/key"
    ),
    ErrorCode.SOURCE_NOT_FOUND: (
        "set the source parameter (a Custom run, or the deployment's default in prefect.yaml)"
        " to a folder that exists or to an s3:// prefix of a bucket that exists"
    ),
}
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


def publish_run_artifacts(summary: RunSummary, rows: Sequence[Mapping[str, Any]]) -> None:
    """Markdown summary, a table of the first failed/pending rows and a link to the audit files.

    ``rows``: the run's first failed or pending rows, in row order (at least
    :data:`MAX_FAILURE_ROWS` of them when there are that many), each with the columns of the
    table.
    """
    create_markdown_artifact(
        summary_markdown(summary), key="protect-summary", description="Outcome of the protect run"
    )
    problems = [
        {col: _cell(row[col]) for col in _FAILURE_COLUMNS}
        for row in rows
        if row["status"] in (ImageStatus.FAILED, ImageStatus.PENDING)
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


def failure_message(error: ManifestError) -> str:
    """The one line a run that cannot start fails with: the problem (naming the file) and, when
    there is one, the fix."""
    fix = _FIXES.get(error.code)
    return " ".join((f"{error}; fix: {fix}" if fix else str(error)).split())


def invalid_parameters(error: ValidationError) -> str:
    """The one line a run with parameters that do not go together fails with."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "parameters"
    return " ".join(f"{where}: {first['msg']}".split())


def publish_plan(plan: PlanEstimate | None) -> None:
    """The plan as a markdown artifact (``protect-plan``), before any order is created."""
    if plan is not None:
        create_markdown_artifact(
            markdown(plan), key="protect-plan", description="What this run plans to do and spend"
        )
