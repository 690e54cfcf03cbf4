"""One streaming pass over the audit files: the small aggregates the report is computed from.

``images`` is read file by file, row group by row group, in batches of at most
:data:`BATCH_ROWS` rows and only the columns the report uses; each batch is conformed to the
current types (:func:`mori.report.load.conform`) and reduced at once to

- row counts and processed bytes per ``(run_id, status, error_code)``;
- the create-to-complete seconds of every processed image, per run (8 bytes per image: the
  quantiles are exact);
- the failed and pending rows, which go to :class:`~mori.report.rows.FailedRows` day by day,
  most recent day first, each day sorted by run and row.

So memory follows the number of runs, processed images (8 bytes each) and one day's failed
rows, never the size of the ``images`` table. ``orders`` is reduced to its distinct
``(run_id, order_key)`` pairs, and ``runs`` (one row per run) is read whole. A file that turns
out unreadable past its footer is left out whole and named in the problems.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby, islice
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mori.batch.audit import SCHEMAS
from mori.report.files import AuditFile, unreadable
from mori.report.load import AuditData, conform, to_pandas
from mori.report.rows import PROBLEM_COLUMNS, FailedRows

UNKNOWN = "(unknown)"
BATCH_ROWS = 128 * 1024
BAD = ("failed", "pending")
IMAGE_COLUMNS = (
    "run_id",
    "status",
    "error_code",
    "bytes",
    "created_at",
    "completed_at",
    *(c for c in PROBLEM_COLUMNS if c not in ("run_date", "run_id", "status", "error_code")),
)
COUNT_KEYS = ["run_id", "status", "error_code"]
_IMAGES = pa.schema([SCHEMAS["images"].field(c) for c in IMAGE_COLUMNS])
_ORDERS = pa.schema([SCHEMAS["orders"].field(c) for c in ("run_id", "order_key")])
_BAD = pa.array(BAD)
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Aggregates:
    """What the report is computed from (all small but the latencies, 8 bytes per image)."""

    counts: pd.DataFrame  # run_date, run_id, status, error_code, rows, bytes
    latencies: dict[tuple[str, str], np.ndarray]  # (run_date, run_id) -> seconds
    orders: pd.DataFrame  # run_date, run_id, order_key (distinct pairs per run)
    runs: pd.DataFrame  # the runs table, conformed
    failed_rows: FailedRows


@dataclass
class FileScan:
    """One ``images`` file reduced: counts, latencies per run, failed and pending rows."""

    counts: pa.Table
    latencies: dict[str, np.ndarray]
    rows: pa.Table | None


def scan_audit(data: AuditData, workers: int | None = None) -> Aggregates:
    """Every aggregate of the report from ``data``'s files, in one pass over each table."""
    workers = workers or min(4, os.cpu_count() or 1)
    counts: list[pa.Table] = []
    latencies: dict[tuple[str, str], np.ndarray] = {}
    failed_rows = FailedRows()
    files = sorted(data.tables["images"], key=lambda f: f.uri)
    files.sort(key=lambda f: f.run_date, reverse=True)  # most recent day first
    broken: list[AuditFile] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        scans = in_order(pool, lambda f: _scan_or_none(data, f), files, ahead=2 * workers)
        for day, day_scans in groupby(zip(files, scans, strict=True), key=lambda p: p[0].run_date):
            rows: list[pa.Table] = []
            for found, scan in day_scans:
                if scan is None:
                    broken.append(found)
                    continue
                counts.append(scan.counts.append_column("run_date", _repeat(day, len(scan.counts))))
                latencies.update({(day, run): v for run, v in scan.latencies.items()})
                if scan.rows is not None:
                    rows.append(scan.rows)
            if rows:
                failed_rows.add(_day_rows(rows))
        orders = _scan_orders(data, pool)
    data.drop("images", broken)
    return Aggregates(
        counts=_counts(counts),
        latencies=latencies,
        orders=orders,
        runs=data.runs,
        failed_rows=failed_rows,
    )


def in_order(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], ahead: int
) -> Iterator[R]:
    """``fn(item)`` for every item, in order, run on ``pool``: at most ``ahead`` results are
    being computed or waiting at any time, so memory is bounded however many items there are."""
    source = iter(items)
    pending = [pool.submit(fn, item) for item in islice(source, ahead)]
    while pending:
        yield pending.pop(0).result()
        pending.extend(pool.submit(fn, item) for item in islice(source, 1))


def _scan_or_none(data: AuditData, found: AuditFile) -> FileScan | None:
    try:
        return scan_images_file(data, found)
    except Exception as exc:  # a damaged file must not stop the report
        data.problem(unreadable(found.uri, exc))
        return None
    finally:
        # pyarrow's allocator (mimalloc) keeps what a thread freed for that thread: hand it
        # back after each file, or hundreds of files leave hundreds of MiB resident
        pa.default_memory_pool().release_unused()


def scan_images_file(data: AuditData, found: AuditFile) -> FileScan:
    """One ``images`` file reduced batch by batch (see the module docstring)."""
    counts: list[pa.Table] = []
    seconds: dict[str, list[np.ndarray]] = {}
    rows: list[pa.Table] = []
    with found.open(data.storage) as parquet:
        present = [c for c in IMAGE_COLUMNS if c in parquet.schema_arrow.names]
        for group in range(parquet.num_row_groups):
            # one file per thread (``workers``), each decoded on its own thread
            batches = parquet.iter_batches(
                BATCH_ROWS, row_groups=[group], columns=present, use_threads=False
            )
            for batch in batches:
                batch_table = pa.Table.from_batches([batch])
                table = conform(batch_table, _IMAGES, found.run_date, data.problems)
                table = table.set_column(0, "run_id", pc.fill_null(table["run_id"], UNKNOWN))
                counts.append(_batch_counts(table))
                _batch_latencies(table, seconds)
                bad = pc.is_in(table["status"], value_set=_BAD)
                if pc.any(bad).as_py():
                    rows.append(table.filter(bad))
    joined = {run: np.concatenate(parts) for run, parts in seconds.items()}
    failed = None
    if rows:
        failed = pa.concat_tables(rows)
        failed = failed.append_column("run_date", _repeat(found.run_date, failed.num_rows))
    return FileScan(pa.concat_tables(counts) if counts else _EMPTY_COUNTS, joined, failed)


def _batch_counts(table: pa.Table) -> pa.Table:
    return table.group_by(COUNT_KEYS, use_threads=False).aggregate(
        [([], "count_all"), ("bytes", "sum")]
    )


_EMPTY_COUNTS = pa.table(
    {
        "run_id": pa.array([], pa.string()),
        "status": pa.array([], pa.string()),
        "error_code": pa.array([], pa.string()),
        "count_all": pa.array([], pa.int64()),
        "bytes_sum": pa.array([], pa.int64()),
    }
)


def _batch_latencies(table: pa.Table, seconds: dict[str, list[np.ndarray]]) -> None:
    """Add the batch's processed images' create-to-complete seconds, per run."""
    done = pc.and_(
        pc.equal(table["status"], "processed"),
        pc.and_(pc.is_valid(table["created_at"]), pc.is_valid(table["completed_at"])),
    )
    if not pc.any(done).as_py():
        return
    kept = table.filter(done)
    elapsed = pc.subtract(kept["completed_at"], kept["created_at"])
    # whole milliseconds / 1000: the float nearest the exact number of seconds
    values = pc.divide(pc.cast(elapsed, pa.int64()), 1000.0)
    runs = kept["run_id"]
    distinct = pc.unique(runs)
    if len(distinct) == 1:  # the usual case: one run per file
        seconds.setdefault(distinct[0].as_py(), []).append(values.to_numpy())
        return
    for run in distinct.to_pylist():
        seconds.setdefault(run, []).append(pc.filter(values, pc.equal(runs, run)).to_numpy())


def _day_rows(rows: list[pa.Table]) -> pa.Table:
    """A day's failed and pending rows, by run then row."""
    table = pa.concat_tables(rows)
    return table.sort_by([("run_id", "ascending"), ("row_index", "ascending")])


def _scan_orders(data: AuditData, pool: ThreadPoolExecutor) -> pd.DataFrame:
    """The distinct ``(run_date, run_id, order_key)`` of ``orders``."""
    found = data.tables["orders"]
    parts = list(pool.map(lambda f: _orders_or_none(data, f), found))
    data.drop("orders", [f for f, part in zip(found, parts, strict=True) if part is None])
    kept = [part for part in parts if part is not None]
    return to_pandas(pa.concat_tables(kept) if kept else _EMPTY_PAIRS)


def _orders_or_none(data: AuditData, found: AuditFile) -> pa.Table | None:
    try:
        with found.open(data.storage) as parquet:
            present = [c for c in _ORDERS.names if c in parquet.schema_arrow.names]
            table = conform(parquet.read(columns=present), _ORDERS, found.run_date, data.problems)
    except Exception as exc:  # a damaged file must not stop the report
        data.problem(unreadable(found.uri, exc))
        return None
    table = table.set_column(0, "run_id", pc.fill_null(table["run_id"], UNKNOWN))
    pairs = table.group_by(["run_id", "order_key"], use_threads=False).aggregate([])
    return pairs.append_column("run_date", _repeat(found.run_date, pairs.num_rows))


_EMPTY_PAIRS = pa.table({c: pa.array([], pa.string()) for c in ("run_id", "order_key", "run_date")})


def _counts(parts: list[pa.Table]) -> pd.DataFrame:
    if not parts:
        parts = [_EMPTY_COUNTS.append_column("run_date", _repeat("", 0))]
    counts = to_pandas(pa.concat_tables(parts))
    return counts.rename(columns={"count_all": "rows", "bytes_sum": "bytes"})


def _repeat(text: str, n: int) -> pa.Array:
    """``text`` ``n`` times, as a string column."""
    return pa.repeat(pa.scalar(text, pa.string()), n)
