"""The audit tables under an audit URI, tolerantly: any schema version, local or ``s3://``.

:func:`load_audit` finds every ``<table>/run_date=YYYY-MM-DD/<run_id>.parquet`` file of the
period and reads its footer only (rows and columns), so it costs the same for a thousand rows as
for a billion; the report then streams the files it needs (:mod:`mori.report.scan`).
:attr:`AuditData.images` (and ``orders``, ``runs``) and :func:`load_table` read a whole table
into memory, for notebooks and small audits. Every file is conformed to one schema per table:

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
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mori.batch.audit import SCHEMAS
from mori.batch.storage import Storage
from mori.report.files import AuditFile, find_files, inspect, unreadable

TABLES = ("images", "orders", "runs")
_READERS = 16


@dataclass
class AuditData:
    """The audit's readable files per table, and what could not be read.

    ``images``, ``orders`` and ``runs`` read a whole table as a pandas frame on first use.
    """

    audit_uri: str
    storage: Storage
    tables: dict[str, list[AuditFile]]
    problems: list[str] = field(default_factory=list)
    _frames: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def files(self) -> int:
        """How many files are read (every table)."""
        return sum(len(found) for found in self.tables.values())

    @property
    def empty(self) -> bool:
        """``True`` when no table holds a single row."""
        return all(f.rows == 0 for found in self.tables.values() for f in found)

    @property
    def images(self) -> pd.DataFrame:
        """The whole ``images`` table (read on first use)."""
        return self.frame("images")

    @property
    def orders(self) -> pd.DataFrame:
        """The whole ``orders`` table (read on first use)."""
        return self.frame("orders")

    @property
    def runs(self) -> pd.DataFrame:
        """The whole ``runs`` table (read on first use)."""
        return self.frame("runs")

    def frame(self, table: str) -> pd.DataFrame:
        """One whole table as a pandas frame, nullable integers kept as integers."""
        if table not in self._frames:
            self._frames[table] = to_pandas(self.read(table))
        return self._frames[table]

    def schema(self, table: str) -> pa.Schema:
        """``table``'s unified schema over its files (see the module docstring)."""
        return unified_schema(table, [f.schema for f in self.tables[table]])

    def read(self, table: str) -> pa.Table:
        """One whole table as one Arrow table with the unified schema."""
        schema = self.schema(table)
        found = self.tables[table]
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            read = list(pool.map(lambda f: self._read(f, schema), found))
        self.drop(table, [f for f, t in zip(found, read, strict=True) if t is None])
        parts = [t for t in read if t is not None]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def _read(self, found: AuditFile, schema: pa.Schema) -> pa.Table | None:
        try:
            with found.open(self.storage) as parquet:
                table = parquet.read(use_threads=False)
        except Exception as exc:  # a damaged or foreign file must not stop the report
            self.problem(unreadable(found.uri, exc))
            return None
        return conform(table, schema, found.run_date, self.problems)

    def drop(self, table: str, unreadable_files: Iterable[AuditFile]) -> None:
        """Leave files out that turned out unreadable past their footer."""
        gone = {f.uri for f in unreadable_files}
        if gone:
            self.tables[table] = [f for f in self.tables[table] if f.uri not in gone]

    def problem(self, line: str) -> None:
        """Add a line to :attr:`problems`, once."""
        if line not in self.problems:
            self.problems.append(line)


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
    """The files of ``images``, ``orders`` and ``runs`` under ``audit_uri`` (last ``days`` days);
    only their footers are read."""
    storage = storage or Storage()
    since = first_day(days, today)
    problems: list[str] = []
    tables = {table: find_table(audit_uri, table, storage, since, problems) for table in TABLES}
    return AuditData(audit_uri, storage, tables, problems)


def find_table(
    audit_uri: str, table: str, storage: Storage, since: date | None, problems: list[str]
) -> list[AuditFile]:
    """``table``'s readable files from ``since`` on, footers read; the others in ``problems``."""
    wanted = find_files(audit_uri, table, storage, since, problems)
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        found = list(pool.map(lambda item: inspect(storage, item[0], item[1], problems), wanted))
    return [f for f in found if f is not None]


def load_table(
    audit_uri: str,
    table: str,
    days: int | None = None,
    storage: Storage | None = None,
    today: date | None = None,
) -> pa.Table:
    """One audit table (``images``, ``orders`` or ``runs``) as one Arrow table, unified schema."""
    storage = storage or Storage()
    found = find_table(audit_uri, table, storage, first_day(days, today), [])
    return AuditData(audit_uri, storage, {table: found}).read(table)


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
            columns.append(pa.repeat(pa.scalar(run_date, pa.string()), table.num_rows))
        elif fld.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, fld.type))
        else:
            columns.append(_cast(table.column(fld.name), fld, problems))
    return pa.Table.from_arrays(columns, schema=schema)


def _cast(column: pa.ChunkedArray, fld: pa.Field, problems: list[str] | None) -> pa.Array:
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if array.type == fld.type:
        return array
    try:
        return pc.cast(array, fld.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    if pa.types.is_string(fld.type):
        return pa.array([_text(v) for v in array.to_pylist()], pa.string())
    line = f"column {fld.name}: {array.type} does not cast to {fld.type}; nulls"
    if problems is not None and line not in problems:
        problems.append(line)
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
