"""Read the audit tables back, tolerantly: any schema version, local or ``s3://``.

Every ``<table>/run_date=YYYY-MM-DD/<run_id>.parquet`` file under the audit URI is read on its
own and conformed to one schema per table before the files are stacked:

- the table's current columns (``mori.batch.audit.SCHEMAS``) come first, with their current
  types; a column an older partition lacks is filled with nulls, a column stored with another
  castable type (``int32`` for ``int64``, naive timestamps) is cast;
- any other column (manifest columns carried into ``images``, or columns a newer writer added)
  is kept: with its own type when every file agrees, as text when files disagree;
- ``run_date`` comes from the partition folder, as text ``YYYY-MM-DD``.

A file that cannot be read, or sits outside a ``run_date=`` folder, is left out and named in
:attr:`AuditData.problems` instead of stopping the report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mori.batch.audit import SCHEMAS
from mori.batch.storage import Storage, join

TABLES = ("images", "orders", "runs")
_RUN_DATE = re.compile(r"(?:^|/)run_date=([^/]+)/")
_READERS = 16


@dataclass
class AuditData:
    """The three audit tables as pandas frames, and what could not be read."""

    audit_uri: str
    images: pd.DataFrame
    orders: pd.DataFrame
    runs: pd.DataFrame
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """``True`` when no table holds a single row."""
        return bool(self.images.empty and self.runs.empty and self.orders.empty)


def first_day(days: int | None, today: date | None = None) -> date | None:
    """The earliest ``run_date`` kept when reporting on the last ``days`` days (UTC)."""
    if days is None:
        return None
    if days < 1:
        raise ValueError("days must be at least 1")
    return (today or datetime.now(UTC).date()) - timedelta(days=days - 1)


def load_audit(
    audit_uri: str,
    storage: Storage | None = None,
    days: int | None = None,
    today: date | None = None,
) -> AuditData:
    """The ``images``, ``orders`` and ``runs`` tables under ``audit_uri`` (last ``days`` days)."""
    storage = storage or Storage()
    since = first_day(days, today)
    problems: list[str] = []
    frames: dict[str, pd.DataFrame] = {}
    files = 0
    for table in TABLES:
        arrow, count = read_files(audit_uri, table, storage, since, problems)
        frames[table] = to_pandas(arrow)
        files += count
    return AuditData(audit_uri, frames["images"], frames["orders"], frames["runs"], files, problems)


def load_table(
    audit_uri: str,
    table: str,
    days: int | None = None,
    storage: Storage | None = None,
    today: date | None = None,
) -> pa.Table:
    """One audit table (``images``, ``orders`` or ``runs``) as one Arrow table, unified schema."""
    arrow, _ = read_files(audit_uri, table, storage or Storage(), first_day(days, today), [])
    return arrow


def read_files(
    audit_uri: str, table: str, storage: Storage, since: date | None, problems: list[str]
) -> tuple[pa.Table, int]:
    """``table``'s files from ``since`` on, conformed and stacked; and how many were read."""
    prefix = join(audit_uri, table)
    wanted: list[tuple[str, str]] = []
    for uri in storage.list(prefix):
        rel = uri[len(prefix) :].replace("\\", "/")
        if not rel.startswith("/"):
            continue  # a sibling S3 prefix (``images_old/``), not this table
        name = rel.rsplit("/", 1)[-1]
        if name.startswith(".") or not name.endswith(".parquet"):
            continue  # a temp file of an interrupted write, or anything that is not a table
        run_date = _partition_date(rel)
        if run_date is None:
            problems.append(f"{uri}: not under a run_date=YYYY-MM-DD folder; left out")
        elif since is None or date.fromisoformat(run_date) >= since:
            wanted.append((uri, run_date))
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        read = list(pool.map(lambda item: _read(storage, item[0], problems), wanted))
    parts = [(t, d) for t, (_, d) in zip(read, wanted, strict=True) if t is not None]
    schema = unified_schema(table, [t.schema for t, _ in parts])
    conformed = [conform(t, schema, run_date, problems) for t, run_date in parts]
    if not conformed:
        return schema.empty_table(), 0
    return pa.concat_tables(conformed), len(conformed)


def _partition_date(rel: str) -> str | None:
    match = _RUN_DATE.search(rel)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1)).isoformat()
    except ValueError:
        return None


def _read(storage: Storage, uri: str, problems: list[str]) -> pa.Table | None:
    try:
        # a native buffer, not a file object (see mori.batch.manifest.reading)
        return pq.read_table(pa.BufferReader(storage.read_bytes(uri)))
    except Exception as exc:  # a damaged or foreign file must not stop the report
        problems.append(f"{uri}: unreadable ({type(exc).__name__}: {exc}); left out")
        return None


def unified_schema(table: str, schemas: Sequence[pa.Schema]) -> pa.Schema:
    """The table's current columns, then every other column seen, then ``run_date``."""
    base = SCHEMAS[table]
    extras: dict[str, set[pa.DataType]] = {}
    for schema in schemas:
        for fld in schema:
            if fld.name not in base.names and fld.name != "run_date":
                extras.setdefault(fld.name, set()).add(fld.type)
    fields = list(base)
    for name, types in extras.items():
        fields.append(pa.field(name, _common_type(types)))
    fields.append(pa.field("run_date", pa.string()))
    return pa.schema(fields)


def _common_type(types: Iterable[pa.DataType]) -> pa.DataType:
    known = {t for t in types if not pa.types.is_null(t)}
    if len(known) == 1:
        return known.pop()
    if known and all(pa.types.is_integer(t) for t in known):
        return pa.int64()
    if known and all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in known):
        return pa.float64()
    return pa.string()


def conform(
    table: pa.Table, schema: pa.Schema, run_date: str, problems: list[str] | None = None
) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: missing ones null, others cast."""
    columns = []
    for fld in schema:
        if fld.name == "run_date":
            columns.append(pa.array([run_date] * table.num_rows, pa.string()))
        elif fld.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, fld.type))
        else:
            columns.append(_cast(table.column(fld.name), fld, problems))
    return pa.Table.from_arrays(columns, schema=schema)


def _cast(column: pa.ChunkedArray, fld: pa.Field, problems: list[str] | None) -> pa.Array:
    array = column.combine_chunks()
    if array.type == fld.type:
        return array
    try:
        return pc.cast(array, fld.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    if pa.types.is_string(fld.type):
        return pa.array([_text(v) for v in array.to_pylist()], pa.string())
    if problems is not None:
        problems.append(f"column {fld.name}: {array.type} does not cast to {fld.type}; nulls")
    return pa.nulls(len(array), fld.type)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


_PANDAS_TYPES: dict[pa.DataType, Any] = {
    pa.int64(): pd.Int64Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """A pandas frame keeping nullable integers as integers (``Int64``), not floats."""
    return table.to_pandas(types_mapper=_PANDAS_TYPES.get)
