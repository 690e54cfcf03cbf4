"""Write the report's files under an output folder (local or ``s3://``), each atomically.

``summary.parquet`` (per run and per day), ``failures.parquet`` (failed/pending rows by error
code), ``summary.csv`` and ``failed_rows.csv`` for spreadsheets, one PNG per chart, and
``report.html`` last, once everything it links to exists. CSV cells that a spreadsheet would run
as a formula (starting with ``= + - @``, tab or carriage return) get a leading ``'``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mori.batch.storage import Storage, is_s3, join, parent
from mori.report.charts import render_all
from mori.report.html import render_html
from mori.report.summary import FAILURES_SCHEMA, SUMMARY_SCHEMA, Report, to_arrow

SUMMARY_FILE = "summary.parquet"
FAILURES_FILE = "failures.parquet"
SUMMARY_CSV = "summary.csv"
FAILED_ROWS_CSV = "failed_rows.csv"
HTML_FILE = "report.html"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ReportFiles:
    """Where the report went: the folder, the page, the summary, and every file written."""

    out_uri: str
    html: str
    summary: str
    files: list[str] = field(default_factory=list)

    @property
    def html_link(self) -> str:
        """The page as a link a browser can open (``file://`` for a local path)."""
        return self.html if "://" in self.html else f"file://{self.html}"


def default_out(audit_uri: str) -> str:
    """``<audit>/../report``: the ``report`` folder beside the audit folder."""
    return join(parent(audit_uri.rstrip("/")), "report")


def csv_safe(value: Any) -> Any:
    """``value``, with text a spreadsheet would run as a formula prefixed by ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _csv_text(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "; ".join(f"{code}={n}" for code, n in value)
    return str(value)


def to_csv(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> bytes:
    """``frame`` as UTF-8 CSV, every cell formula-safe."""
    names = list(columns or frame.columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_safe(n) for n in names])
    for record in frame[names].itertuples(index=False, name=None):
        writer.writerow([_csv_text(csv_safe(v)) for v in record])
    return buffer.getvalue().encode("utf-8")


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as Parquet (zstd), in memory."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def write_report(report: Report, out_uri: str, storage: Storage | None = None) -> ReportFiles:
    """Write every file of ``report`` under ``out_uri``; the page is written last."""
    storage = storage or Storage()
    if not is_s3(out_uri):
        out_uri = str(Path(out_uri).resolve())
    outputs: list[tuple[str, bytes, str]] = [
        (f"{name}.png", png, "image/png") for name, png in render_all(report).items()
    ]
    outputs += [
        (SUMMARY_FILE, parquet_bytes(to_arrow(report.summary, SUMMARY_SCHEMA)), _PARQUET),
        (FAILURES_FILE, parquet_bytes(to_arrow(report.failures, FAILURES_SCHEMA)), _PARQUET),
        (SUMMARY_CSV, to_csv(report.summary), _CSV),
        (FAILED_ROWS_CSV, to_csv(report.problem_rows), _CSV),
    ]
    linked = [name for name, _, _ in outputs if not name.endswith(".png")]
    outputs.append((HTML_FILE, render_html(report, linked).encode("utf-8"), _HTML))
    written = _write_all(storage, out_uri, outputs)
    return ReportFiles(out_uri, join(out_uri, HTML_FILE), join(out_uri, SUMMARY_FILE), written)


_PARQUET = "application/vnd.apache.parquet"
_CSV = "text/csv; charset=utf-8"
_HTML = "text/html; charset=utf-8"


def _write_all(
    storage: Storage, out_uri: str, outputs: Iterable[tuple[str, bytes, str]]
) -> list[str]:
    written = []
    for name, data, content_type in outputs:
        uri = join(out_uri, name)
        storage.write_bytes(uri, data, content_type)
        written.append(uri)
    return written
