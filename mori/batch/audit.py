"""The audit tables: hive-partitioned Parquet a data team can query.

Under the audit URI::

    images/run_date=YYYY-MM-DD/<run_id>.parquet   one row per manifest row per run
    orders/run_date=YYYY-MM-DD/<run_id>.parquet   one row per order per run
    runs/run_date=YYYY-MM-DD/<run_id>.parquet     one row per run (totals, API usage)

Each file is written whole and atomically (temp file + rename, or one S3 PutObject), so no
reader ever sees a partial file; a run's files are named by its ``run_id``, so writing them
again replaces them instead of adding rows. ``schema_version`` is stored in every row: columns are
only ever added (never renamed or retyped) within a major version.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mori.batch.storage import Storage, join

SCHEMA_VERSION = 1
TS = pa.timestamp("ms", tz="UTC")

IMAGES_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("manifest_uri", pa.string()),
        ("row_index", pa.int64()),
        ("source", pa.string()),
        ("id", pa.string()),
        ("file_name", pa.string()),
        ("image_key", pa.string()),
        ("sha256", pa.string()),
        ("bytes", pa.int64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("order_key", pa.string()),
        ("order_id", pa.string()),
        ("status", pa.string()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        ("attempts", pa.int64()),
        ("output_uri", pa.string()),
        ("output_sha256", pa.string()),
        ("created_at", TS),
        ("confirmed_at", TS),
        ("completed_at", TS),
        ("downloaded_at", TS),
        ("recorded_at", TS),
        ("schema_version", pa.int32()),
    ]
)

ORDERS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("order_key", pa.string()),
        ("order_id", pa.string()),
        ("kind", pa.string()),
        ("generation", pa.int64()),
        ("status", pa.string()),
        ("file_count", pa.int64()),
        ("processed", pa.int64()),
        ("failed", pa.int64()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        ("attempts", pa.int64()),
        ("replaced_order_keys", pa.list_(pa.string())),
        ("planned_at", TS),
        ("created_at", TS),
        ("confirmed_at", TS),
        ("completed_at", TS),
        ("downloaded_at", TS),
        ("recorded_at", TS),
        ("schema_version", pa.int32()),
    ]
)

RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("manifest_uri", pa.string()),
        ("started_at", TS),
        ("finished_at", TS),
        ("wall_seconds", pa.float64()),
        ("rows", pa.int64()),
        ("processed", pa.int64()),
        ("skipped", pa.int64()),
        ("failed", pa.int64()),
        ("pending", pa.int64()),
        ("orders", pa.int64()),
        ("api_requests", pa.int64()),
        ("api_retries", pa.int64()),
        ("rate_limited", pa.int64()),
        ("schema_version", pa.int32()),
    ]
)

SCHEMAS = {"images": IMAGES_SCHEMA, "orders": ORDERS_SCHEMA, "runs": RUNS_SCHEMA}


def table_uri(audit_uri: str, table: str, run_date: date, run_id: str) -> str:
    """Where one run's file of one table goes."""
    return join(audit_uri, table, f"run_date={run_date.isoformat()}", f"{run_id}.parquet")


def to_arrow(table: str, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows as an Arrow table with the table's schema, plus any extra (manifest) columns."""
    schema = SCHEMAS[table]
    frame = pd.DataFrame(list(rows))
    for name in schema.names:
        if name not in frame.columns:
            frame[name] = None
    for fld in schema:
        if pa.types.is_timestamp(fld.type):
            frame[fld.name] = pd.to_datetime(frame[fld.name], utc=True, format="ISO8601")
    frame["schema_version"] = SCHEMA_VERSION
    extras = [c for c in frame.columns if c not in schema.names]
    for name in extras:
        if _extra_type(frame[name]) == pa.string():
            frame[name] = frame[name].map(_as_text)
    fields = list(schema) + [pa.field(c, _extra_type(frame[c])) for c in extras]
    full = pa.schema(fields)
    return pa.Table.from_pandas(frame[full.names], schema=full, preserve_index=False)


def _extra_type(column: pd.Series) -> pa.DataType:
    """Numbers and booleans keep their type; anything else (mixed, nested, text) is text."""
    try:
        inferred = pa.array(column, from_pandas=True).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pa.string()
    keep = pa.types.is_integer(inferred) or pa.types.is_floating(inferred)
    return inferred if keep or pa.types.is_boolean(inferred) else pa.string()


def _as_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def write_table(
    storage: Storage,
    audit_uri: str,
    table: str,
    rows: Sequence[dict[str, Any]],
    run_id: str,
    run_date: date,
) -> str:
    """Write one run's rows of ``table`` as one Parquet file, atomically; return its URI."""
    arrow = to_arrow(table, rows)
    buffer = io.BytesIO()
    pq.write_table(arrow, buffer, compression="zstd")
    uri = table_uri(audit_uri, table, run_date, run_id)
    storage.write_bytes(uri, buffer.getvalue(), "application/vnd.apache.parquet")
    return uri
