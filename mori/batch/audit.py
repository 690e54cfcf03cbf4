"""The audit tables: typed rows, their Parquet schema, and hive-partitioned files a data team
can query.

Under the audit URI::

    images/run_date=YYYY-MM-DD/<run_id>.parquet   one row per manifest row per run
    orders/run_date=YYYY-MM-DD/<run_id>.parquet   one row per order per run
    runs/run_date=YYYY-MM-DD/<run_id>.parquet     one row per run (totals, API usage)

Each table has one dataclass row (:class:`ImageRow`, :class:`OrderRow`, :class:`RunRow`), and
its Arrow schema is derived from it: a field's Python type gives its column (``str`` → string,
``int`` → int64, ``float`` → float64, ``bool`` → bool, ``list[str]`` → list of strings); an
``Annotated`` Arrow type overrides it (:data:`Timestamp` stores an ISO-8601 string as
``timestamp[ms, UTC]``). Statuses are :class:`~enum.StrEnum` members, written as their values.

Each file is written whole and atomically (temp file + rename, or one S3 PutObject), so no
reader ever sees a partial file; a run's files are named by its ``run_id``, so writing them
again replaces them instead of adding rows. ``schema_version`` is stored in every row: columns
are only ever added (never renamed or retyped) within a major version (docs/AUDIT.md).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import types
from collections.abc import Mapping, Sequence
from datetime import date
from enum import StrEnum
from typing import (
    Annotated,
    Any,
    ClassVar,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

import pyarrow as pa
import pyarrow.parquet as pq

from mori.batch.storage import Storage, join

__all__ = [
    "IMAGES_SCHEMA",
    "ORDERS_SCHEMA",
    "RUNS_SCHEMA",
    "SCHEMAS",
    "SCHEMA_VERSION",
    "TS",
    "AuditRow",
    "ImageRow",
    "ImageStatus",
    "OrderRow",
    "RunRow",
    "Timestamp",
    "arrow_schema",
    "as_text",
    "extra_column",
    "from_record",
    "table_uri",
    "to_arrow",
    "write_table",
]

#: Version of the audit tables' schema, stored in every row.
SCHEMA_VERSION = 1
#: How the audit stores a point in time.
TS = pa.timestamp("ms", tz="UTC")
#: An ISO-8601 time (as the ledger records it), stored as :data:`TS`.
Timestamp = Annotated[str | None, TS]


class ImageStatus(StrEnum):
    """A manifest row's outcome in one run: exactly one per row, every run."""

    PROCESSED = "processed"  # protected in this run
    SKIPPED = "skipped"  # protected in an earlier run: order_id and output_uri point at it
    FAILED = "failed"  # error_code and error_message say why
    PENDING = "pending"  # not finished yet: the reason is in error_code; a later run resumes


@dataclasses.dataclass(slots=True)
class ImageRow:
    """``images``: one row per manifest row (or per image of an order finished later) per run."""

    TABLE: ClassVar[str] = "images"

    run_id: str
    manifest_uri: str | None = None
    row_index: int | None = None
    source: str | None = None
    id: str | None = None
    file_name: str | None = None
    image_key: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    order_key: str | None = None
    order_id: str | None = None
    status: str = ImageStatus.PENDING
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 1
    output_uri: str | None = None
    output_sha256: str | None = None
    created_at: Timestamp = None
    confirmed_at: Timestamp = None
    completed_at: Timestamp = None
    downloaded_at: Timestamp = None
    recorded_at: Timestamp = None
    schema_version: Annotated[int, pa.int32()] = SCHEMA_VERSION
    #: The manifest's other columns, appended after the fixed ones (not a column itself).
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class OrderRow:
    """``orders``: one row per order a run worked on."""

    TABLE: ClassVar[str] = "orders"

    run_id: str
    order_key: str
    order_id: str | None = None
    kind: str | None = None
    generation: int = 0
    status: str = ImageStatus.PENDING
    file_count: int = 0
    processed: int = 0
    failed: int = 0
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 1
    replaced_order_keys: list[str] = dataclasses.field(default_factory=list)
    planned_at: Timestamp = None
    created_at: Timestamp = None
    confirmed_at: Timestamp = None
    completed_at: Timestamp = None
    downloaded_at: Timestamp = None
    recorded_at: Timestamp = None
    schema_version: Annotated[int, pa.int32()] = SCHEMA_VERSION


@dataclasses.dataclass(slots=True)
class RunRow:
    """``runs``: one row per run, with its totals and API usage."""

    TABLE: ClassVar[str] = "runs"

    run_id: str
    manifest_uri: str | None = None
    started_at: Timestamp = None
    finished_at: Timestamp = None
    wall_seconds: float = 0.0
    rows: int = 0
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    pending: int = 0
    orders: int = 0
    api_requests: int = 0
    api_retries: int = 0
    rate_limited: int = 0
    schema_version: Annotated[int, pa.int32()] = SCHEMA_VERSION


AuditRow = ImageRow | OrderRow | RunRow
AuditRowT = TypeVar("AuditRowT", ImageRow, OrderRow, RunRow)


def from_record(row_type: type[AuditRowT], record: Mapping[str, Any]) -> AuditRowT:
    """A row from a mapping of column values; other keys become an ``images`` row's ``extra``
    columns (any other table refuses them)."""
    names = set(columns(row_type))
    fixed = {k: v for k, v in record.items() if k in names}
    extra = {k: v for k, v in record.items() if k not in names}
    if extra and row_type is not ImageRow:
        raise TypeError(f"{row_type.TABLE} has no columns {sorted(extra)}")
    if extra:
        fixed["extra"] = extra
    return row_type(**fixed)


def columns(row_type: type[AuditRow]) -> list[str]:
    """The column names of a row type, in order (``extra`` is not a column)."""
    return [f.name for f in dataclasses.fields(row_type) if f.name != "extra"]


def arrow_schema(row_type: type[AuditRow]) -> pa.Schema:
    """The Parquet schema of a row type's fixed columns."""
    hints = get_type_hints(row_type, include_extras=True)
    return pa.schema([(name, arrow_type(hints[name])) for name in columns(row_type)])


_SCALARS: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
}


def arrow_type(hint: Any) -> pa.DataType:
    """The Arrow type of a field's type hint (see the module docstring)."""
    if get_origin(hint) is Annotated:
        for meta in hint.__metadata__:
            if isinstance(meta, pa.DataType):
                return meta
        hint = get_args(hint)[0]
    if get_origin(hint) in (Union, types.UnionType):
        (hint,) = [a for a in get_args(hint) if a is not type(None)]
    if get_origin(hint) is list:
        return pa.list_(arrow_type(get_args(hint)[0]))
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return pa.string()
    return _SCALARS[hint]


# -- writing ---------------------------------------------------------------------------------

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
        array = extra_column(values)
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


def extra_column(values: Sequence[Any]) -> pa.Array:
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
    return pa.array([as_text(v) for v in values], pa.string())


def as_text(value: Any) -> str | None:
    """An extra column's value as text (``None`` for a missing one; JSON for nested ones)."""
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
