"""The report as one self-contained HTML page (inline CSS, no script) beside its PNG charts.

Every value from the audit (sources, file names, error codes and messages, URIs) is escaped:
a manifest may hold ``<script>`` or formula text, and it must stay text. A Content-Security-Policy
forbids scripts outright, as a second line of defence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from html import escape
from typing import Any

import pandas as pd

from mori.report.charts import CHARTS, TITLES
from mori.report.rows import MAX_PROBLEM_ROWS
from mori.report.summary import Report

CSP = "default-src 'none'; img-src * data: file:; style-src 'unsafe-inline'"
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1b1b}
h1{margin-bottom:.2rem} .meta{color:#555;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.5rem .9rem;min-width:7rem}
.card b{display:block;font-size:1.4rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums} th{background:#f3f5f7}
img{max-width:100%;border:1px solid #eee;margin:.3rem 0 1rem}
.warn{color:#8a4b00}
"""

RUN_COLUMNS = (
    ("run_date", "run date"),
    ("run_id", "run"),
    ("started_at", "started"),
    ("images", "images"),
    ("processed", "processed"),
    ("skipped", "skipped"),
    ("failed", "failed"),
    ("pending", "pending"),
    ("failed_by_code", "failed by code"),
    ("orders", "orders"),
    ("latency_p50_seconds", "p50 s"),
    ("latency_p95_seconds", "p95 s"),
    ("api_requests", "API requests"),
    ("api_retries", "API retries"),
    ("rate_limited", "rate limited"),
)
DAY_COLUMNS = (
    ("run_date", "run date"),
    ("runs", "runs"),
    *(c for c in RUN_COLUMNS if c[0] not in ("run_date", "run_id", "started_at")),
)
PROBLEM_HEADERS = (
    ("run_date", "run date"),
    ("run_id", "run"),
    ("row_index", "row"),
    ("source", "source"),
    ("id", "id"),
    ("file_name", "file name"),
    ("status", "status"),
    ("error_code", "error code"),
    ("error_message", "message"),
)


def fmt(value: Any) -> str:
    """A cell's text (not yet escaped): blanks for nulls, short floats, ISO times."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:,.2f}"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, pd.Timestamp | datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(f"{code} {n}" for code, n in value)
    return str(value)


def table(frame: pd.DataFrame, columns: Sequence[tuple[str, str]], limit: int | None = None) -> str:
    """An HTML table of ``columns`` (name, header) of ``frame``, every cell escaped."""
    rows = frame.head(limit) if limit is not None else frame
    head = "".join(f"<th>{escape(h)}</th>" for _, h in columns)
    body = []
    for record in rows.to_dict("records"):
        cells = []
        for name, _ in columns:
            value = _scalar(record.get(name))
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            cls = ' class="n"' if numeric else ""
            cells.append(f"<td{cls}>{escape(fmt(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        return '<p class="meta">None.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _scalar(value: Any) -> Any:
    """numpy scalars as Python ones, so ``fmt`` formats them like numbers."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, list | pd.Timestamp):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def cards(totals: Mapping[str, Any]) -> str:
    """The headline figures, one small box each."""
    shown = (
        ("runs", "runs"),
        ("images", "images"),
        ("processed", "processed"),
        ("skipped", "skipped"),
        ("failed", "failed"),
        ("pending", "pending"),
        ("orders", "orders"),
        ("latency_p50_seconds", "p50 seconds"),
        ("latency_p95_seconds", "p95 seconds"),
        ("api_requests", "API requests"),
        ("api_retries", "API retries"),
    )
    boxes = (
        f'<div class="card"><b>{escape(fmt(totals.get(k)) or "-")}</b>{escape(label)}</div>'
        for k, label in shown
    )
    return '<div class="cards">' + "".join(boxes) + "</div>"


def render_html(report: Report, files: Iterable[str] = ()) -> str:
    """The whole page. ``files`` are the other outputs' names (linked relative to the page)."""
    totals = report.totals()
    period = f"last {report.days} days" if report.days else "every run_date"
    when = report.generated_at.strftime("%Y-%m-%d %H:%M UTC") if report.generated_at else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP, quote=False)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>MORI audit report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>MORI audit report</h1>",
        f'<p class="meta">Audit <code>{escape(report.audit_uri)}</code>, {escape(period)}: '
        f"{totals['days']} days, {report.files} files read. Generated {escape(when)}.</p>",
        cards(totals),
    ]
    if report.problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in report.problems)
        parts.append(f'<h2 class="warn">Files left out</h2><ul class="warn">{items}</ul>')
    for name in CHARTS:
        parts.append(f"<h2>{escape(TITLES[name])}</h2>")
        parts.append(f'<img src="{escape(name)}.png" alt="{escape(TITLES[name])}">')
    parts += [
        "<h2>Per day</h2>",
        table(report.per_day, DAY_COLUMNS),
        "<h2>Per run</h2>",
        table(report.per_run, RUN_COLUMNS),
        "<h2>Failed and pending rows</h2>",
    ]
    problems = report.problem_rows
    if report.failed_rows.count > MAX_PROBLEM_ROWS:
        parts.append(
            f'<p class="meta">The first {MAX_PROBLEM_ROWS} of {report.failed_rows.count:,}; '
            "every one is in <code>failed_rows.csv</code>.</p>"
        )
    parts.append(table(problems, PROBLEM_HEADERS, MAX_PROBLEM_ROWS))
    links = "".join(f'<li><a href="{escape(f)}">{escape(f)}</a></li>' for f in files)
    if links:
        parts.append(f"<h2>Files</h2><ul>{links}</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
