"""A run's rows on local disk, partitioned by image key, read back a range of keys at a time.

:class:`KeySpool` takes tables of rows (:mod:`mori.batch.manifest.columnar`) as a manifest is
read and files each row under the first byte of its image key (:data:`BUCKETS` buckets; rows
without a key apart). Every row of an image is then in one bucket, whatever its place in the
manifest, and a :class:`Window` of consecutive buckets holds a range of keys: the rows of a
window can be sorted, told apart from their duplicates, looked up in the ledger and planned
without any other window's rows.

Rows stay in memory until there are more than ``memory_rows`` of them (a small run never
touches the disk: it is one window); then every bucket gets an Arrow IPC file in ``folder``
(a new one whenever its columns change, as a JSON Lines manifest's may from chunk to chunk).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mori.batch.manifest.columnar import EXTRA, ROW_SCHEMA
from mori.batch.manifest.extras import conform

__all__ = ["BUCKETS", "KeySpool", "Window"]

#: Buckets of keyed rows, by the first byte of the key.
BUCKETS = 256
_UNKEYED = BUCKETS


@dataclass(frozen=True)
class Window:
    """Buckets ``first``..``end - 1`` of a spool (the rows without a key when ``keyed`` is
    false), holding ``rows`` rows."""

    first: int
    end: int
    rows: int
    keyed: bool = True

    @property
    def key_range(self) -> tuple[str, str]:
        """The window's keys as text: from ``low`` (included) to ``high`` (excluded)."""
        high = "g" if self.end >= BUCKETS else f"{self.end:02x}"
        return f"{self.first:02x}", high


@dataclass
class _Bucket:
    """The files of one bucket (the last one open for writing) and its row count."""

    files: list[Path] = field(default_factory=list)
    writer: pa.ipc.RecordBatchStreamWriter | None = None
    schema: pa.Schema | None = None
    rows: int = 0


class KeySpool:
    """Rows by image key range, in memory or in ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path, memory_rows: int) -> None:
        self.folder, self.memory_rows = folder, memory_rows
        self._held: list[pa.Table] = []
        self._buckets: list[_Bucket] | None = None
        self.rows = 0

    @property
    def on_disk(self) -> bool:
        """``True`` once the rows went to disk."""
        return self._buckets is not None

    def add(self, rows: pa.Table) -> None:
        """File the rows of one table by key."""
        self.rows += rows.num_rows
        if self._buckets is None:
            self._held.append(rows)
            if self.rows <= self.memory_rows:
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            self._buckets = [_Bucket() for _ in range(BUCKETS + 1)]
            held, self._held = self._held, []
            for table in held:
                self._write(table)
            return
        self._write(rows)

    def finish(self) -> None:
        """Close the files being written (call once every row is added)."""
        for bucket in self._buckets or ():
            if bucket.writer is not None:
                bucket.writer.close()
                bucket.writer = None

    def windows(self, rows: int) -> list[Window]:
        """Windows of about ``rows`` rows each (a bucket is never split), the rows without a
        key first; one window holding every row when they are all in memory."""
        if self._buckets is None:
            return [Window(0, BUCKETS, self.rows)] if self.rows else []
        out = []
        unkeyed = self._buckets[_UNKEYED].rows
        if unkeyed:
            out.append(Window(_UNKEYED, _UNKEYED + 1, unkeyed, keyed=False))
        first, held = 0, 0
        for number in range(BUCKETS):
            held += self._buckets[number].rows
            if held >= rows or number == BUCKETS - 1:
                if held:
                    out.append(Window(first, number + 1, held))
                first, held = number + 1, 0
        return out

    def read(self, window: Window, extras: Mapping[str, pa.DataType]) -> pa.Table:
        """The rows of ``window`` (not sorted), every extra column of ``extras`` as its type."""
        if self._buckets is None:
            tables = self._held
        else:
            tables = [
                table
                for number in range(window.first, window.end)
                for table in _read_files(self._buckets[number].files)
            ]
        conformed = [_conformed(table, extras) for table in tables if table.num_rows]
        if not conformed:
            return _conformed(ROW_SCHEMA.empty_table(), extras)
        return pa.concat_tables(conformed)

    def close(self) -> None:
        """Close and delete the files."""
        self.finish()
        self._held = []
        if self._buckets is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _write(self, rows: pa.Table) -> None:
        """Append each row to its bucket's file."""
        assert self._buckets is not None
        numbers = _bucket_numbers(rows.column("key"))
        order = np.argsort(numbers, kind="stable")
        counts = np.bincount(numbers, minlength=BUCKETS + 1)
        ordered = rows.take(pa.array(order))
        start = 0
        for number in np.flatnonzero(counts).tolist():
            count = int(counts[number])
            self._append(number, ordered.slice(start, count))
            start += count

    def _append(self, number: int, rows: pa.Table) -> None:
        """Write ``rows`` to bucket ``number``'s open file (a new file for other columns)."""
        assert self._buckets is not None
        bucket = self._buckets[number]
        if bucket.writer is None or bucket.schema != rows.schema:
            if bucket.writer is not None:
                bucket.writer.close()
            path = self.folder / f"{number:03d}-{len(bucket.files)}.arrow"
            bucket.files.append(path)
            bucket.writer = pa.ipc.new_stream(str(path), rows.schema)
            bucket.schema = rows.schema
        bucket.writer.write_table(rows)
        bucket.rows += rows.num_rows


def _bucket_numbers(keys: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Each key's bucket: its first byte (:data:`_UNKEYED` for no key)."""
    keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    count = len(keys)
    if count == 0:
        return np.zeros(0, np.int64)
    raw = np.frombuffer(keys.buffers()[1], np.uint8)[keys.offset * 16 :][: count * 16]
    numbers = raw.reshape(-1, 16)[:, 0].astype(np.int64)
    if keys.null_count:
        numbers[pc.is_null(keys).to_numpy(zero_copy_only=False)] = _UNKEYED
    return numbers


def _read_files(files: list[Path]) -> Iterator[pa.Table]:
    """The tables written to ``files``."""
    for path in files:
        with pa.ipc.open_stream(str(path)) as reader:
            yield reader.read_all()


def _conformed(table: pa.Table, extras: Mapping[str, pa.DataType]) -> pa.Table:
    """``table``'s fixed columns, then each of ``extras`` as its type (nulls where missing)."""
    columns = [table.column(name) for name in ROW_SCHEMA.names]
    fields = list(ROW_SCHEMA)
    for name, type_ in extras.items():
        if EXTRA + name in table.column_names:
            column = conform(table.column(EXTRA + name).combine_chunks(), type_)
        else:
            column = pa.nulls(table.num_rows, type_)
        columns.append(column)
        fields.append(pa.field(EXTRA + name, type_))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
