"""CSV cells: Arrow-computed lines are the very text the cell-by-cell writer gives."""

from __future__ import annotations

import csv
import io

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from mori.report.cells import csv_lines, csv_safe, csv_text, table_csv_lines

# text that exercises quoting and formula prefixes: delimiters, quotes, line breaks, tabs
_TEXT = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from(list("ab ,\"\n\r\t=+-@'é<>")), max_size=8),
    st.text(max_size=6),
)
_INT = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_TEXT, _INT, _TEXT), max_size=12))
def test_table_csv_lines_are_the_cell_by_cell_text(rows: list[tuple[object, ...]]) -> None:
    columns = list(zip(*rows, strict=True)) if rows else [(), (), ()]
    table = pa.table(
        {
            "text": pa.array(columns[0], pa.string()),
            "number": pa.array(columns[1], pa.int64()),
            "more": pa.array(columns[2], pa.large_string()),
        }
    )
    assert table_csv_lines(table) == csv_lines(rows)


def test_other_column_types_go_cell_by_cell() -> None:
    table = pa.table({"x": [1.5, None, -2.0], "flag": [True, None, False]})
    assert table_csv_lines(table) == csv_lines([(1.5, True), (None, None), (-2.0, False)])
    assert table_csv_lines(table).decode() == "1.5,True\n,\n-2.0,False\n"


def test_lines_read_back_formula_safe() -> None:
    table = pa.table({"a": ["=1+2", "ok,comma", None, "-x"], "b": pa.array([-1, None, 3, 4])})
    rows = list(csv.reader(io.StringIO(table_csv_lines(table).decode())))
    assert rows == [["'=1+2", "-1"], ["ok,comma", ""], ["", "3"], ["'-x", "4"]]


def test_csv_text() -> None:
    from datetime import UTC, date, datetime

    assert csv_text(None) == "" and csv_text(float("nan")) == ""
    assert csv_text(date(2026, 1, 2)) == "2026-01-02"
    assert csv_text(datetime(2026, 1, 2, 3, tzinfo=UTC)) == "2026-01-02T03:00:00+00:00"
    assert csv_text([("A", 2), ("B", 1)]) == "A=2; B=1"
    assert csv_safe("@x") == "'@x" and csv_safe(-1) == -1
