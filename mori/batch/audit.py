"""The audit tables: hive-partitioned Parquet a data team can query.

Under the audit URI::

    images/run_date=YYYY-MM-DD/<run_id>.parquet   one row per manifest row per run
    orders/run_date=YYYY-MM-DD/<run_id>.parquet   one row per order per run
    runs/run_date=YYYY-MM-DD/<run_id>.parquet     one row per run (totals, API usage)

Each file is written whole and atomically (temp file + rename, or one S3 PutObject), so no
reader ever sees a partial file; a run's files are named by its ``run_id``, so writing them
again replaces them instead of adding rows. The rows are typed (:mod:`mori.batch.rows`), and
each table's schema is derived from its row type. ``schema_version`` is stored in every row:
columns are only ever added (never renamed or retyped) within a major version.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mori.batch.rows import (
    SCHEMA_VERSION,
    TS,
    AuditRow,
    ImageRow,
    OrderRow,
    RunRow,
    arrow_schema,
)
from mori.batch.storage import Storage, join

__all__ = [
    "IMAGES_SCHEMA",
    "ORDERS_SCHEMA",
    "RUNS_SCHEMA",
    "SCHEMAS",
    "SCHEMA_VERSION",
    "TS",
    "table_uri",
    "to_arrow",
    "write_table",
]

IMAGES_SCHEMA = arrow_schema(ImageRow)
ORDERS_SCHEMA = arrow_schema(OrderRow)
RUNS_SCHEMA = arrow_schema(RunRow)
SCHEMAS = {"images": IMAGES_SCHEMA, "orders": ORDERS_SCHEMA, "runs": RUNS_SCHEMA}


def table_uri(audit_uri: str, table: str, run_date: date, run_id: str) -> str:
    """Where one run's file of one table goes."""
    return join(audit_uri, table, f"run_date={run_date.isoformat()}", f"{run_id}.parquet")


def to_arrow(row_type: type[AuditRow], rows: Sequence[AuditRow]) -> pa.Table:
    """Rows as an Arrow table: the row type's columns, then any extra (manifest) columns.

    An extra column named like a fixed one is renamed ``manifest_<name>``.
    """
    schema = arrow_schema(row_type)
    arrays = [_column([getattr(r, f.name) for r in rows], f.type) for f in schema]
    fields = list(schema)
    extras: dict[str, None] = {}
    for row in rows:
        if isinstance(row, ImageRow) and row.extra:
            extras.update(dict.fromkeys(row.extra))
    for name in extras:
        values = [r.extra.get(name) if isinstance(r, ImageRow) else None for r in rows]
        array = _extra_column(values)
        column = f"manifest_{name}" if name in schema.names else name
        arrays.append(array)
        fields.append(pa.field(column, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _column(values: list[Any], type_: pa.DataType) -> pa.Array:
    """One fixed column; ISO-8601 strings become timestamps (finer than ms is truncated)."""
    if pa.types.is_timestamp(type_):
        if all(v is None for v in values):
            return pa.nulls(len(values), type_)
        parsed = pa.array(values)
        if pa.types.is_string(parsed.type):
            parsed = parsed.cast(pa.timestamp("us", tz="UTC"))
        return parsed.cast(type_, safe=False)
    return pa.array(values, type_)


def _extra_column(values: list[Any]) -> pa.Array:
    """Numbers and booleans keep their type; anything else (mixed, nested, text) is text."""
    try:
        inferred = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        inferred = None
    if inferred is not None:
        kind = inferred.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            return inferred
        if pa.types.is_null(kind):
            return pa.nulls(len(values), pa.string())
    return pa.array([_as_text(v) for v in values], pa.string())


def _as_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def write_table(
    storage: Storage,
    audit_uri: str,
    rows: Sequence[AuditRow],
    run_id: str,
    run_date: date,
    row_type: type[AuditRow] | None = None,
) -> str:
    """Write one run's rows of one table as one Parquet file, atomically; return its URI.

    The table is the rows' type's (``row_type`` names it when ``rows`` may be empty).
    """
    kind = row_type or type(rows[0])
    buffer = io.BytesIO()
    pq.write_table(to_arrow(kind, rows), buffer, compression="zstd")
    uri = table_uri(audit_uri, kind.TABLE, run_date, run_id)
    storage.write_bytes(uri, buffer.getvalue(), "application/vnd.apache.parquet")
    return uri
