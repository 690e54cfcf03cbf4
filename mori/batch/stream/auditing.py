"""A run's audit tables written as its rows are settled, never all of them in memory at once.

:class:`ImagesTable` takes a window's rows (:mod:`mori.batch.manifest.columnar`) with their
outcome as columns (:data:`OUTCOME`) and writes them as Parquet row groups of the ``images``
table (:data:`mori.batch.audit.IMAGES_SCHEMA`, then the manifest's extra columns, typed for the
whole manifest) to a local file, each row group in row order. It counts the outcomes and
keeps the first failed or pending rows (by row number) for the run's artifact as it goes.
:class:`OrdersTable` does the same for the ``orders`` table. :class:`RunAudit` holds both and
then copies the finished files to the audit URI, each at once and atomically (a reader never
sees a partial file), as :func:`mori.batch.audit.write_table` writes a whole table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mori.batch.audit import (
    IMAGES_SCHEMA,
    ORDERS_SCHEMA,
    SCHEMA_VERSION,
    TS,
    ImageRow,
    ImageStatus,
    OrderRow,
    RunRow,
    table_uri,
    to_arrow,
    write_table,
)
from mori.batch.ledger import now_iso
from mori.batch.manifest.columnar import EXTRA
from mori.batch.storage import Storage

__all__ = ["OUTCOME", "PROBLEM_COLUMNS", "ImagesTable", "OrdersTable", "RunAudit"]

#: The outcome columns :meth:`ImagesTable.add` takes with a window's rows.
OUTCOME = (
    "image_key",
    "order_key",
    "order_id",
    "status",
    "error_code",
    "error_message",
    "attempts",
    "output_uri",
    "output_sha256",
    "created_at",
    "confirmed_at",
    "completed_at",
    "downloaded_at",
)
#: The columns of the failed and pending rows kept for the run's artifact.
PROBLEM_COLUMNS = ("row_index", "source", "id", "status", "error_code", "error_message")
#: Rows per row group of the ``images`` file (at most: a run's last one may be shorter).
ROW_GROUP = 65_536
_ARRAYS = (pa.Array, pa.ChunkedArray)
_FROM_ROWS = {"row_index": "row", "source": "source", "id": "id", "file_name": "file_name"}
_FROM_ROWS |= {"sha256": "sha256", "bytes": "bytes", "width": "width", "height": "height"}


class ImagesTable:
    """The ``images`` rows of one run, in ``path`` (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        run_id: str,
        manifest_uri: str,
        extras: Mapping[str, pa.DataType],
        *,
        problems: int = 200,
    ) -> None:
        self.path, self.run_id, self.manifest_uri = path, run_id, manifest_uri
        self.extras = dict(extras)
        fields = list(IMAGES_SCHEMA)
        for name, type_ in self.extras.items():
            shown = f"manifest_{name}" if name in IMAGES_SCHEMA.names else name
            fields.append(pa.field(shown, type_))
        self.schema = pa.schema(fields)
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.rows = 0
        self._limit = problems
        self._problems = pa.schema([self.schema.field(c) for c in PROBLEM_COLUMNS]).empty_table()
        self._held: list[pa.Table] = []
        self._held_rows = 0
        self._writer: pq.ParquetWriter | None = None

    def columns(self, rows: pa.Table) -> pa.Table:
        """Only the columns of ``rows`` the audit takes (select before taking some rows)."""
        return rows.select([*_FROM_ROWS.values(), *(EXTRA + name for name in self.extras)])

    def add(self, rows: pa.Table, outcome: Mapping[str, Any]) -> None:
        """Write ``rows`` with their ``outcome`` (each of :data:`OUTCOME`: an array, or one
        value for every row)."""
        step = ROW_GROUP // 2
        for start in range(0, rows.num_rows, step):
            part = {
                name: value.slice(start, step) if isinstance(value, _ARRAYS) else value
                for name, value in outcome.items()
            }
            self._add(rows.slice(start, step), part)

    def _add(self, rows: pa.Table, outcome: Mapping[str, Any]) -> None:
        """:meth:`add` for at most half a row group of rows."""
        table = self._table(rows, outcome)
        statuses = table.column("status")
        self.counts.update(_counts(statuses))
        failed = pc.equal(statuses, str(ImageStatus.FAILED))
        codes = pc.fill_null(table.column("error_code").filter(failed), "None")
        self.failures.update(_counts(codes))
        self._keep_problems(table)
        self.rows += table.num_rows
        self._held.append(table)
        self._held_rows += table.num_rows
        if self._held_rows >= ROW_GROUP:
            self._flush()

    def problems(self) -> list[dict[str, Any]]:
        """The first failed or pending rows, by row number (at most ``problems`` of them)."""
        rows: list[dict[str, Any]] = self._problems.to_pylist()
        return rows

    def finish(self) -> Path:
        """Write what is held and close the file (an empty table when no row came)."""
        self._flush()
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.path), self.schema, compression="zstd")
        self._writer.close()
        return self.path

    def _flush(self) -> None:
        """The held rows as one row group, in row order."""
        if not self._held:
            return
        group = pa.concat_tables(self._held).sort_by("row_index")
        self._held, self._held_rows = [], 0
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.path), self.schema, compression="zstd")
        self._writer.write_table(group, row_group_size=max(group.num_rows, 1))

    def _keep_problems(self, table: pa.Table) -> None:
        """Keep the failed and pending rows of ``table`` among the first by row number."""
        status = table.column("status")
        wanted = pc.or_(
            pc.equal(status, str(ImageStatus.FAILED)), pc.equal(status, str(ImageStatus.PENDING))
        )
        some = table.filter(wanted).select(list(PROBLEM_COLUMNS))
        if some.num_rows:
            both = pa.concat_tables([self._problems, some]).sort_by("row_index")
            self._problems = both.slice(0, self._limit)

    def _table(self, rows: pa.Table, outcome: Mapping[str, Any]) -> pa.Table:
        """The ``images`` rows of ``rows``: their own columns, the outcome, the constants."""
        count = rows.num_rows
        now = now_iso()
        given = {name: rows.column(column) for name, column in _FROM_ROWS.items()}
        given |= {
            "run_id": self.run_id,
            "manifest_uri": self.manifest_uri,
            "recorded_at": now,
            "schema_version": SCHEMA_VERSION,
        }
        given |= outcome
        arrays = []
        for field in IMAGES_SCHEMA:
            arrays.append(_column(given.get(field.name), field.type, count))
        for name, type_ in self.extras.items():
            arrays.append(rows.column(EXTRA + name).cast(type_))
        return pa.Table.from_arrays(arrays, schema=self.schema)


class OrdersTable:
    """The ``orders`` rows of one run, in ``path``, a window's orders at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._writer = pq.ParquetWriter(str(path), ORDERS_SCHEMA, compression="zstd")

    def add(self, rows: Sequence[OrderRow]) -> None:
        """Write the rows of some orders."""
        if rows:
            self._writer.write_table(to_arrow(OrderRow, rows))
            self.rows += len(rows)

    def finish(self) -> Path:
        """Close the file."""
        self._writer.close()
        return self.path


class RunAudit:
    """A run's ``images`` and ``orders`` tables, written in ``folder`` as the run goes, then
    published with its ``runs`` row (:meth:`publish`)."""

    def __init__(
        self, folder: Path, run_id: str, manifest_uri: str, extras: Mapping[str, pa.DataType]
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self.images = ImagesTable(folder / "images.parquet", run_id, manifest_uri, extras)
        self.orders = OrdersTable(folder / "orders.parquet")

    def publish(self, storage: Storage, audit_uri: str, run_date: date, run: RunRow) -> list[str]:
        """Finish the tables and copy them to ``audit_uri`` (each atomically), then write the
        ``runs`` row; the URIs of the three files."""
        files = []
        for table, local in (
            (ImageRow.TABLE, self.images.finish()),
            (OrderRow.TABLE, self.orders.finish()),
        ):
            uri = table_uri(audit_uri, table, run_date, self.run_id)
            storage.put_file(uri, local, "application/vnd.apache.parquet")
            files.append(uri)
        files.append(write_table(storage, audit_uri, [run], self.run_id, run_date, RunRow))
        return files


def _column(value: Any, type_: pa.DataType, count: int) -> pa.Array | pa.ChunkedArray:
    """One fixed column from an array or a constant (``None``: all missing); ISO-8601 text
    becomes a timestamp (finer than ms is truncated), as :func:`mori.batch.audit.to_arrow`."""
    if value is None:
        return pa.nulls(count, type_)
    if not isinstance(value, pa.Array | pa.ChunkedArray):
        value = pa.repeat(pa.scalar(value, type_ if type_ != TS else pa.string()), count)
    if pa.types.is_timestamp(type_):
        if value.null_count == len(value):
            return pa.nulls(count, type_)
        if pa.types.is_string(value.type) or pa.types.is_large_string(value.type):
            value = value.cast(pa.timestamp("us", tz="UTC"))
        return value.cast(type_, safe=False)
    return value.cast(type_)


def _counts(values: pa.Array | pa.ChunkedArray) -> dict[str, int]:
    """How often each value occurs."""
    counted = pc.value_counts(values)
    return {
        str(v): int(n)
        for v, n in zip(
            counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
        )
    }
