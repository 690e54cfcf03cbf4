"""What the report shows in the Prefect UI: a markdown summary and the rows of a table artifact.

Values from the audit are escaped for markdown (a backslash before every punctuation character
markdown could act on, so ``<script>`` or ``[x](javascript:...)`` stays text) and table cells are
formula-safe, because the UI lets people download a table as CSV.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import pandas as pd

from mori.report.summary import Report
from mori.report.write import csv_safe

MAX_DAYS_SHOWN = 60
MAX_TABLE_ROWS = 500
_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~&$=")
TABLE_COLUMNS = (
    "run_date",
    "run_id",
    "started_at",
    "images",
    "processed",
    "skipped",
    "failed",
    "pending",
    "failed_by_code",
    "orders",
    "latency_p50_seconds",
    "latency_p95_seconds",
    "api_requests",
    "api_retries",
    "rate_limited",
)


def md_escape(value: Any) -> str:
    """``value`` as markdown text that renders literally, on one line."""
    text = " ".join(str(value).split())
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def _num(value: Any, digits: int = 2) -> str:
    if value is None or value is pd.NA:
        return "–"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:,.{digits}f}"
    return f"{int(value):,}"


def summary_markdown(report: Report, html_link: str) -> str:
    """Headline figures, failures by code and the last days, as markdown."""
    totals = report.totals()
    period = f"the last {report.days} days" if report.days else "every run date"
    lines = [
        f"# Audit report: {md_escape(report.audit_uri)}",
        "",
        f"{md_escape(period.capitalize())}: **{totals['runs']}** runs over **{totals['days']}** "
        f"days, {report.files} files read.",
        "",
        "| figure | value |",
        "|---|---:|",
    ]
    figures = (
        ("images (rows)", totals["images"]),
        ("processed", totals["processed"]),
        ("skipped (done earlier)", totals["skipped"]),
        ("failed", totals["failed"]),
        ("pending", totals["pending"]),
        ("orders", totals["orders"]),
        ("p50 create to complete (s)", totals["latency_p50_seconds"]),
        ("p95 create to complete (s)", totals["latency_p95_seconds"]),
        ("API requests", totals["api_requests"]),
        ("API retries", totals["api_retries"]),
        ("rate limited (429)", totals["rate_limited"]),
    )
    lines += [f"| {label} | {_num(value)} |" for label, value in figures]
    codes = _failed_codes(report)
    if codes:
        lines += ["", "## Failed rows by error code", "", "| error code | rows |", "|---|---:|"]
        lines += [f"| {md_escape(code)} | {n:,} |" for code, n in codes]
    lines += [
        "",
        "## Per day",
        "",
        "| run date | runs | images | processed | skipped | failed | pending | orders "
        "| p50 s | p95 s | API requests | API retries |",
        "|---|" + "---:|" * 11,
    ]
    for row in report.per_day.tail(MAX_DAYS_SHOWN).to_dict("records"):
        cells = [
            row[c]
            for c in ("runs", "images", "processed", "skipped", "failed", "pending", "orders")
        ]
        cells += [row["latency_p50_seconds"], row["latency_p95_seconds"]]
        cells += [row["api_requests"], row["api_retries"]]
        lines.append(f"| {row['run_date']} | " + " | ".join(_num(c) for c in cells) + " |")
    if report.problems:
        lines += ["", f"**{len(report.problems)} files could not be read**; see the HTML report."]
    lines += ["", f"Full report: {md_escape(html_link)}"]
    return "\n".join(lines)


def _failed_codes(report: Report) -> list[tuple[str, int]]:
    failures = report.failures
    failed = failures[(failures["grain"] == "day") & (failures["status"] == "failed")]
    counts = failed.groupby("error_code")["rows"].sum().sort_values(ascending=False)
    return [(str(code), int(n)) for code, n in counts.items()]


def table_rows(report: Report) -> list[dict[str, Any]]:
    """The per-run rows (most recent first) as JSON-safe, formula-safe cells."""
    runs = report.per_run.iloc[::-1].head(MAX_TABLE_ROWS)
    return [
        {col: csv_safe(_json_cell(record[col])) for col in TABLE_COLUMNS}
        for record in runs.to_dict("records")
    ]


def _json_cell(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return "; ".join(f"{code}={n}" for code, n in value)
    item = getattr(value, "item", None)
    return item() if callable(item) else value
