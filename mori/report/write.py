"""Write the report's files under an output folder (local or ``s3://``), each atomically.

``summary.parquet`` (per run and per day), ``failures.parquet`` (failed/pending rows by error
code), ``summary.csv`` and ``failed_rows.csv`` for spreadsheets, one PNG per chart, and
``report.html`` last, once everything it links to exists. CSV cells that a spreadsheet would run
as a formula (starting with ``= + - @``, tab or carriage return) get a leading ``'``.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from mori.batch.storage import Storage, is_s3, join, parent, split_s3
from mori.report.cells import FORMULA_PREFIXES, csv_safe, to_csv
from mori.report.charts import render_all
from mori.report.html import render_html
from mori.report.summary import FAILURES_SCHEMA, SUMMARY_SCHEMA, Report, to_arrow

__all__ = [
    "FAILED_ROWS_CSV",
    "FAILURES_FILE",
    "FORMULA_PREFIXES",
    "HTML_FILE",
    "SUMMARY_CSV",
    "SUMMARY_FILE",
    "ReportFiles",
    "csv_safe",
    "default_out",
    "parquet_bytes",
    "to_csv",
    "write_report",
    "write_stream",
]

SUMMARY_FILE = "summary.parquet"
FAILURES_FILE = "failures.parquet"
SUMMARY_CSV = "summary.csv"
FAILED_ROWS_CSV = "failed_rows.csv"
HTML_FILE = "report.html"


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
    ]
    linked = [name for name, _, _ in outputs if not name.endswith(".png")]
    linked.append(FAILED_ROWS_CSV)
    written = _write_all(storage, out_uri, outputs)
    rows_uri = join(out_uri, FAILED_ROWS_CSV)
    write_stream(storage, rows_uri, report.failed_rows.csv(), _CSV)
    written.append(rows_uri)
    page = render_html(report, linked).encode("utf-8")
    written += _write_all(storage, out_uri, [(HTML_FILE, page, _HTML)])
    return ReportFiles(out_uri, join(out_uri, HTML_FILE), join(out_uri, SUMMARY_FILE), written)


def write_stream(storage: Storage, uri: str, source: IO[bytes], content_type: str) -> None:
    """Copy ``source`` to ``uri`` atomically without holding it in memory (S3: an upload in
    parts; local: a temporary file beside the target, renamed over it)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        storage.s3.upload_fileobj(source, bucket, key, ExtraArgs={"ContentType": content_type})
        return
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            while piece := source.read(_COPY_BYTES):
                fh.write(piece)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # as every output: meant to be read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_PARQUET = "application/vnd.apache.parquet"
_CSV = "text/csv; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_COPY_BYTES = 1 << 20


def _write_all(
    storage: Storage, out_uri: str, outputs: Iterable[tuple[str, bytes, str]]
) -> list[str]:
    written = []
    for name, data, content_type in outputs:
        uri = join(out_uri, name)
        storage.write_bytes(uri, data, content_type)
        written.append(uri)
    return written
