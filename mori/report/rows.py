"""The failed and pending image rows, kept as formula-safe CSV outside the Python heap.

The report lists every failed and pending row in ``failed_rows.csv`` and the first few on its
page. :class:`FailedRows` takes them in the order they are shown, writes them as CSV into a
temporary file (in memory while small, on disk beyond a few MiB), and keeps only the first
:data:`MAX_PROBLEM_ROWS` as a frame; the CSV is copied to the report folder as it is.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from typing import IO

import pandas as pd
import pyarrow as pa

from mori.report.cells import csv_lines, table_csv_lines
from mori.report.load import to_pandas

PROBLEM_COLUMNS = (
    "run_date",
    "run_id",
    "row_index",
    "source",
    "id",
    "file_name",
    "status",
    "error_code",
    "error_message",
)
MAX_PROBLEM_ROWS = 200
SPOOL_BYTES = 8 << 20
_CHUNK_ROWS = 65536


class FailedRows:
    """Rows added in display order: counted, written as CSV, the first ones kept as a frame."""

    def __init__(self, columns: Sequence[str] = PROBLEM_COLUMNS, keep: int = MAX_PROBLEM_ROWS):
        self.columns = tuple(columns)
        self.count = 0
        self._keep = keep
        self._head: list[pa.Table] = []
        # held open as long as the rows are: the report is written from it
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self._file.write(csv_lines([self.columns]))

    @property
    def on_disk(self) -> bool:
        """Whether the rows outgrew memory and moved to a temporary file."""
        return bool(getattr(self._file, "_rolled", True))

    def add(self, table: pa.Table) -> None:
        """Append ``table``'s rows (its columns named as :attr:`columns`), in order."""
        table = table.select(list(self.columns))
        room = self._keep - min(self.count, self._keep)
        if room and table.num_rows:
            # a copy, so that the kept rows do not hold the whole batch's buffers
            self._head.append(table.take(pa.array(range(min(room, table.num_rows)))))
        self._file.seek(0, io.SEEK_END)  # after the rows before, even once the CSV was read
        for start in range(0, table.num_rows, _CHUNK_ROWS):
            self._file.write(table_csv_lines(table.slice(start, _CHUNK_ROWS)))
        self.count += table.num_rows

    @property
    def head(self) -> pd.DataFrame:
        """The first rows (up to ``keep``) as a frame, nullable integers kept as integers."""
        if not self._head:
            return pd.DataFrame({name: pd.Series(dtype=object) for name in self.columns})
        return to_pandas(pa.concat_tables(self._head))

    def csv(self) -> IO[bytes]:
        """The whole CSV (header first), positioned at its start."""
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        """Drop the temporary file."""
        self._file.close()
