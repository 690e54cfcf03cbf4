"""CSV text of the report's cells, safe to open in a spreadsheet.

A cell that a spreadsheet would run as a formula (text starting with ``= + - @``, a tab or a
carriage return) gets a leading ``'``; nulls are empty cells, times ISO-8601, error-code lists
``CODE=n; ...``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA = "^[=+\\-@\t\r]"


def csv_safe(value: Any) -> Any:
    """``value``, with text a spreadsheet would run as a formula prefixed by ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_text(value: Any) -> str:
    """One cell's text: empty for a null, ISO-8601 for a time, ``CODE=n; ...`` for a list."""
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


def csv_lines(records: Iterable[Sequence[Any]]) -> bytes:
    """``records`` as UTF-8 CSV lines, every cell formula-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for record in records:
        writer.writerow([csv_text(csv_safe(v)) for v in record])
    return buffer.getvalue().encode("utf-8")


def table_csv_lines(table: pa.Table) -> bytes:
    """``table``'s rows as UTF-8 CSV lines, the same text as :func:`csv_lines` gives for them.

    Text and integer columns are made safe and turned into text by Arrow compute; any other
    column goes through :func:`csv_text` cell by cell.
    """
    columns = [_text_column(column).to_pylist() for column in table.columns]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(zip(*columns, strict=True))
    return buffer.getvalue().encode("utf-8")


def _text_column(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        quote, nothing = pa.scalar("'", column.type), pa.scalar("", column.type)
        risky = pc.match_substring_regex(column, _FORMULA)
        text = pc.if_else(risky, pc.binary_join_element_wise(quote, column, nothing), column)
    elif pa.types.is_integer(column.type):
        text = pc.cast(column, pa.string())
    else:
        return pa.array([csv_text(csv_safe(v)) for v in column.to_pylist()], pa.string())
    return pc.fill_null(text, "")


def to_csv(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> bytes:
    """``frame`` as UTF-8 CSV with a header row, every cell formula-safe."""
    names = list(columns or frame.columns)
    return csv_lines([names]) + csv_lines(frame[names].itertuples(index=False, name=None))
