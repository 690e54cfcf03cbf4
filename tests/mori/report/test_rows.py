"""The failed and pending rows: kept as CSV outside the heap, the first ones as a frame."""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pytest

from mori.report import rows as rows_module
from mori.report.cells import csv_lines
from mori.report.rows import PROBLEM_COLUMNS, FailedRows


def _table(start: int, n: int) -> pa.Table:
    values = {c: [f"{c}-{i}" for i in range(start, start + n)] for c in PROBLEM_COLUMNS}
    values["row_index"] = list(range(start, start + n))
    values["source"] = [f"=HYPERLINK({i})" for i in range(start, start + n)]
    table = pa.table(values)
    return table.select(list(reversed(PROBLEM_COLUMNS)))  # any column order


def test_rows_are_counted_written_in_order_and_the_first_kept() -> None:
    failed = FailedRows(keep=5)
    failed.add(_table(0, 3))
    failed.add(_table(3, 0))
    failed.add(_table(3, 4))
    assert failed.count == 7
    head = failed.head
    assert list(head.columns) == list(PROBLEM_COLUMNS) and list(head["row_index"]) == [
        0,
        1,
        2,
        3,
        4,
    ]
    text = failed.csv().read()
    expected = [list(PROBLEM_COLUMNS)] + [
        [str(r[c]) for c in PROBLEM_COLUMNS]
        for t in (_table(0, 3), _table(3, 4))
        for r in t.to_pylist()
    ]
    assert text == csv_lines(expected)
    parsed = list(csv.reader(io.StringIO(text.decode())))
    assert parsed[1][PROBLEM_COLUMNS.index("source")] == "'=HYPERLINK(0)"
    assert failed.csv().read() == text  # it can be read again (the report may be written twice)
    failed.add(_table(7, 1))  # rows added after a read go after the others
    assert failed.csv().read().decode().splitlines()[-1].startswith("run_date-7,run_id-7,7,")


def test_no_rows() -> None:
    failed = FailedRows()
    assert failed.count == 0 and failed.head.empty
    assert list(failed.head.columns) == list(PROBLEM_COLUMNS)
    assert failed.csv().read().decode() == ",".join(PROBLEM_COLUMNS) + "\n"


def test_many_rows_go_to_disk_and_read_back_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_module, "SPOOL_BYTES", 4096)
    failed = FailedRows(keep=2)
    for start in range(0, 3000, 1000):
        failed.add(_table(start, 1000))
    assert failed.on_disk  # not in memory
    lines = failed.csv().read().decode().splitlines()
    assert len(lines) == 3001 and lines[-1].startswith("run_date-2999,")
    assert len(failed.head) == 2
    failed.close()
