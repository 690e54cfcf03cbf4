"""The ``source_objects`` table: what was read from each object of a listed source.

A run whose input is a folder or an ``s3://`` prefix (not a manifest) lists it; for every object
it has read, this table remembers the object's ``(location, size, version)`` -- ``version`` is
the S3 ETag, or a local file's modification time in nanoseconds -- with the fingerprint and the
image facts its bytes gave. A later listing that finds the same location, size and version takes
them from here instead of reading the object again; an object whose size or version changed is
read again, and its row replaced.

The fingerprint (not the image key) is kept: the key is derived from it and the run's processing
options, so a row stays valid whatever options a later run uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from mori.batch.ledger._store import Tx

__all__ = ["SourceObject", "lookup", "remember"]


class SourceObject(NamedTuple):
    """One object of a listed source as it was read."""

    location: str  # the s3:// URI or the file's absolute path
    size: int
    version: str  # the S3 ETag, or the file's mtime in nanoseconds
    fingerprint: str  # sha256:<hex> of the bytes read
    width: int | None
    height: int | None
    format: str | None

    def same_object(self, size: int, version: str) -> bool:
        """``True`` when a listing's size and version are the ones this row was read at."""
        return self.size == size and self.version == version


_COLUMNS = ", ".join(SourceObject._fields)


def lookup(tx: Tx, locations: Sequence[str]) -> dict[str, SourceObject]:
    """The row of each known location of ``locations``."""
    found: dict[str, SourceObject] = {}
    for start in range(0, len(locations), tx.lookup_batch):
        condition, args = tx.matches("location", locations[start : start + tx.lookup_batch])
        for row in tx.rows(f"SELECT {_COLUMNS} FROM source_objects WHERE {condition}", args):
            found[row[0]] = SourceObject._make(row)
    return found


def remember(tx: Tx, objects: Iterable[SourceObject], at: str) -> None:
    """Insert or replace the rows of ``objects`` (idempotent)."""
    tx.executemany(
        f"INSERT INTO source_objects ({_COLUMNS}, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (location) DO UPDATE SET size = excluded.size,"
        " version = excluded.version, fingerprint = excluded.fingerprint,"
        " width = excluded.width, height = excluded.height, format = excluded.format,"
        " seen_at = excluded.seen_at",
        [(*obj, at) for obj in objects],
    )
