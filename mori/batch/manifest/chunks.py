"""Reading a manifest in frames of a bounded number of rows, never the whole file at once.

:class:`ManifestChunks` streams the file (a local file, or an S3 object as it downloads) and
parses it a chunk at a time, with the same parsers' options as :mod:`~.reading`: CSV and TSV
through ``pandas.read_csv(chunksize=...)`` (every cell a string, blanks kept, a UTF-8 BOM
dropped), Parquet a row group batch at a time (``iter_batches``, converted as
``pandas.read_parquet`` converts), JSON Lines through ``pandas.read_json(lines=True,
chunksize=...)``. A ``.json`` array is one document and is read whole.

A whole-manifest problem raises the same :class:`~.reading.ManifestError` (code and message) as
:func:`~.reading.read_manifest`: not found or unreadable and blank when the file is opened,
an unsupported suffix, a parse error at the chunk where it is met, and, once the last chunk is
read, no ``source`` column or no rows (a CSV, TSV or Parquet file states its columns up front,
so a missing ``source`` column is reported at its first chunk). Each chunk's column names are
cleaned as :func:`~.reading.checked_frame` cleans them and its index starts at 0.

A JSON Lines chunk has the columns and the types of its own lines: a column missing from some
chunks is missing from their frames, and a number column is typed per chunk.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mori.batch.codes import ErrorCode
from mori.batch.manifest.reading import (
    ManifestError,
    access_errors,
    check_source_type,
    manifest_format,
)
from mori.batch.storage import Storage

__all__ = ["CHUNK_ROWS", "ManifestChunks"]

#: Rows per chunk by default.
CHUNK_ROWS = 100_000
_BLOCK = 1 << 16
#: Formats whose columns are known from their start (the same in every chunk).
_FIXED_COLUMNS = frozenset({"", ".csv", ".txt", ".tsv", ".parquet", ".pq", ".json"})

Frames = Generator[pd.DataFrame, None, None]
Chunker = Callable[[IO[bytes], int], Frames]


class ManifestChunks:
    """The rows of the manifest at ``uri``, a frame of at most ``rows`` rows at a time.

    Iterate once. After the iteration, :attr:`columns` holds every column name seen (in the
    order first seen) and :attr:`rows` the number of rows.
    """

    def __init__(self, uri: str, storage: Storage, rows: int = CHUNK_ROWS) -> None:
        self.uri, self.storage, self.chunk_rows = uri, storage, rows
        self.columns: dict[str, None] = {}
        self.rows = 0

    def __iter__(self) -> Iterator[pd.DataFrame]:
        with ExitStack() as stack:
            stream = _nonblank(stack.enter_context(self._open()))
            suffix = manifest_format(self.uri)
            if suffix in (".parquet", ".pq"):
                frames = _parquet(stack.enter_context(_local_file(stream)), self.chunk_rows)
            else:
                frames = CHUNKERS[suffix](stream, self.chunk_rows)
            stack.callback(frames.close)  # before the stream closes
            has_source = False
            for frame in self._parsed(frames, suffix):
                frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
                self.columns.update(dict.fromkeys(frame.columns))
                if "source" in frame.columns:
                    has_source = True
                elif suffix in _FIXED_COLUMNS:
                    raise self._missing_source()
                if not frame.empty:
                    self.rows += len(frame)
                    yield frame.reset_index(drop=True)
            if not has_source:
                raise self._missing_source()
            if not self.rows:
                raise ManifestError(ErrorCode.MANIFEST_EMPTY, f"manifest {self.uri} has no rows")

    def _open(self) -> IO[bytes]:
        """The manifest's bytes as a stream; a missing or unreadable one as ``ManifestError``."""
        with access_errors(self.uri):
            return self.storage.open(self.uri)

    def _parsed(self, frames: Iterator[pd.DataFrame], suffix: str) -> Iterator[pd.DataFrame]:
        """``frames``, with a parse error as ``MANIFEST_UNREADABLE`` (as ``read_manifest``)."""
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except ManifestError:
                raise
            except Exception as exc:
                raise ManifestError(
                    ErrorCode.MANIFEST_UNREADABLE,
                    f"cannot parse {self.uri} as {suffix or 'CSV'}: {exc}",
                ) from exc
            yield frame

    def _missing_source(self) -> ManifestError:
        return ManifestError(
            ErrorCode.MANIFEST_MISSING_COLUMN,
            f"manifest {self.uri} has no 'source' column "
            f"(columns: {', '.join(self.columns) or '-'})",
        )


def _nonblank(stream: IO[bytes]) -> IO[bytes]:
    """``stream`` from its start, once it holds more than whitespace (else ``MANIFEST_EMPTY``,
    as ``read_manifest`` says of a blank file)."""
    seen: list[bytes] = []
    while True:
        block = stream.read(_BLOCK)
        if not block:
            raise ManifestError(ErrorCode.MANIFEST_EMPTY, "manifest is empty")
        seen.append(block)
        if block.strip():
            break
    if stream.seekable():
        stream.seek(0)
        return stream
    return io.BufferedReader(_Replayed(b"".join(seen), stream), 1 << 20)


class _Replayed(io.RawIOBase):
    """``head`` then the rest of ``stream``: a stream whose first bytes were read already."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        super().__init__()
        self._head, self._stream = memoryview(head), stream

    def readable(self) -> bool:
        """Always: it is read from."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` with the next bytes: first the replayed ones, then the stream's."""
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@contextmanager
def _local_file(stream: IO[bytes]) -> Iterator[str]:
    """The path of a local file holding ``stream``'s bytes: the file itself when the stream is
    one, else a temporary copy (Parquet is read from its end first, by pyarrow's own I/O)."""
    name = getattr(stream, "name", None)
    if isinstance(name, str) and stream.seekable():
        yield name
        return
    with tempfile.NamedTemporaryFile(suffix=".parquet") as spill:
        shutil.copyfileobj(stream, spill, 1 << 20)
        spill.flush()
        yield spill.name


def _delimited(sep: str) -> Chunker:
    """CSV (``sep=","``) or TSV in chunks: every cell a string, blanks kept as ``""``."""

    def chunks(stream: IO[bytes], rows: int) -> Frames:
        """The rows of a delimited manifest."""
        with pd.read_csv(
            stream,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            sep=sep,
            skipinitialspace=True,
            chunksize=rows,
        ) as reader:
            yield from reader

    return chunks


def _parquet(path: str, rows: int) -> Frames:
    """A Parquet manifest in batches of rows; its ``source`` column must hold strings."""
    # A path, read by pyarrow's own I/O: a Python file object may still be closed from a
    # worker thread at interpreter exit, which aborts the process (apache/arrow#33975).
    with pq.ParquetFile(path) as parquet:
        checked = False
        for batch in parquet.iter_batches(batch_size=rows, use_pandas_metadata=True):
            frame = pa.Table.from_batches([batch]).to_pandas()
            if not checked:
                check_source_type(frame)
                checked = True
            yield frame
        if not checked:  # no rows: the columns still count
            yield check_source_type(parquet.schema_arrow.empty_table().to_pandas())


def _json_lines(stream: IO[bytes], rows: int) -> Frames:
    """A JSON Lines manifest, ``rows`` lines at a time."""
    with pd.read_json(stream, lines=True, dtype=False, chunksize=rows) as reader:
        yield from reader


def _json(stream: IO[bytes], rows: int) -> Frames:
    """A JSON manifest: one array of objects (read whole)."""
    yield pd.read_json(io.BytesIO(stream.read()), lines=False, dtype=False)


#: Manifest suffix → its chunked parser (as :data:`~.reading.PARSERS`; Parquet is read from a
#: local path, see :func:`_parquet`).
CHUNKERS: dict[str, Chunker] = {
    ".jsonl": _json_lines,
    ".ndjson": _json_lines,
    ".json": _json,
    "": _delimited(","),
    ".csv": _delimited(","),
    ".txt": _delimited(","),
    ".tsv": _delimited("\t"),
}
