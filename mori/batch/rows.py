"""The audit tables' rows, typed: one dataclass per table, its Arrow schema derived from it.

A field's Python type gives its Parquet column (``str`` → string, ``int`` → int64, ``float`` →
float64, ``bool`` → bool, ``list[str]`` → list of strings); an ``Annotated`` Arrow type overrides
it (:data:`Timestamp` stores an ISO-8601 string as ``timestamp[ms, UTC]``). Fields are the
columns in order; columns are only ever added within a ``schema_version`` (docs/AUDIT.md).

Statuses and the pipeline's own error codes are :class:`~enum.StrEnum` members, so they are
written (and compared) as their plain string values.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
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

__all__ = [
    "SCHEMA_VERSION",
    "TS",
    "AuditRow",
    "ImageRow",
    "ImageStatus",
    "OrderRow",
    "RunRow",
    "Timestamp",
    "arrow_schema",
    "from_record",
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
ROW_TYPES: dict[str, type[AuditRow]] = {cls.TABLE: cls for cls in (ImageRow, OrderRow, RunRow)}


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
