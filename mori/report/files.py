"""Find the audit's Parquet files and open them for reading, local or ``s3://``.

A table's files are ``<audit>/<table>/run_date=YYYY-MM-DD/<run_id>.parquet``. Opening a file
reads only its footer; its columns are then read row group by row group, only those asked for.
An S3 object is read by byte ranges (``GetObject`` with ``Range``) through the storage's boto3
client, so the standard AWS variables (``AWS_ENDPOINT_URL`` included) apply and no object is
ever downloaded whole.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mori.batch.storage import Storage, is_s3, join, split_s3

_RUN_DATE = re.compile(r"(?:^|/)run_date=([^/]+)/")


@dataclass(frozen=True)
class AuditFile:
    """One readable file of a table: where it is, its partition date, rows and columns."""

    uri: str
    run_date: str
    rows: int
    schema: pa.Schema
    size: int  # bytes; needed to read an S3 object by ranges (0 for a local file)
    metadata: Any = None  # the footer (``pq.FileMetaData``), so opening it again reads none

    def open(self, storage: Storage) -> pq.ParquetFile:
        """The file, ready to read row groups (its footer is not read again)."""
        return open_parquet(storage, self.uri, self.size, self.metadata)


def find_files(
    audit_uri: str, table: str, storage: Storage, since: date | None, problems: list[str]
) -> list[tuple[str, str]]:
    """``(uri, run_date)`` of ``table``'s Parquet files from ``since`` on, sorted by URI.

    A Parquet file outside a ``run_date=YYYY-MM-DD`` folder is named in ``problems``; hidden
    files (an interrupted write's temp file) and other files are ignored.
    """
    prefix = join(audit_uri, table)
    wanted: list[tuple[str, str]] = []
    for uri in storage.list(prefix):
        rel = uri[len(prefix) :].replace("\\", "/")
        if not rel.startswith("/"):
            continue  # a sibling S3 prefix (``images_old/``), not this table
        name = rel.rsplit("/", 1)[-1]
        if name.startswith(".") or not name.endswith(".parquet"):
            continue  # a temp file of an interrupted write, or anything that is not a table
        run_date = partition_date(rel)
        if run_date is None:
            problems.append(f"{uri}: not under a run_date=YYYY-MM-DD folder; left out")
        elif since is None or date.fromisoformat(run_date) >= since:
            wanted.append((uri, run_date))
    return wanted


def partition_date(rel: str) -> str | None:
    """The ``YYYY-MM-DD`` of the ``run_date=`` folder in ``rel``; ``None`` without a valid one."""
    match = _RUN_DATE.search(rel)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1)).isoformat()
    except ValueError:
        return None


def inspect(storage: Storage, uri: str, run_date: str, problems: list[str]) -> AuditFile | None:
    """The file at ``uri`` from its footer; ``None`` (and a line in ``problems``) if unreadable."""
    try:
        size = storage.size(uri) if is_s3(uri) else 0
        with open_parquet(storage, uri, size) as parquet:
            meta = parquet.metadata
            return AuditFile(uri, run_date, meta.num_rows, parquet.schema_arrow, size, meta)
    except Exception as exc:  # a damaged or foreign file must not stop the report
        problems.append(unreadable(uri, exc))
        return None


def unreadable(uri: str, exc: BaseException) -> str:
    """The problem line of a file that could not be read."""
    return f"{uri}: unreadable ({type(exc).__name__}: {exc}); left out"


def open_parquet(storage: Storage, uri: str, size: int = 0, metadata: Any = None) -> pq.ParquetFile:
    """A Parquet reader of the local file or S3 object at ``uri`` (``size`` needed for S3)."""
    if not is_s3(uri):
        return pq.ParquetFile(uri, metadata=metadata, pre_buffer=False)
    bucket, key = split_s3(uri)
    ranged = RangedObject(lambda rng: _get_range(storage, bucket, key, rng), size)
    # pre-buffering merges a row group's column chunks into few range requests
    return pq.ParquetFile(ranged, metadata=metadata, pre_buffer=True)


def _get_range(storage: Storage, bucket: str, key: str, byte_range: str) -> bytes:
    return bytes(storage.s3.get_object(Bucket=bucket, Key=key, Range=byte_range)["Body"].read())


class RangedObject(io.RawIOBase):
    """A read-only, seekable file whose reads are HTTP range requests (``bytes=a-b``)."""

    def __init__(self, get: Callable[[str], bytes], size: int) -> None:
        super().__init__()
        self._get = get
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        """Always: reading is what it is for."""
        return True

    def seekable(self) -> bool:
        """Always: Parquet is read from the end first."""
        return True

    def tell(self) -> int:
        """The current position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (``SEEK_SET``, ``SEEK_CUR`` or ``SEEK_END``)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the position (to the end when negative), in one request."""
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        if end <= self._pos:
            return b""
        data = self._get(f"bytes={self._pos}-{end - 1}")
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the position; the number of bytes read."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
