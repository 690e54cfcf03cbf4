"""The first pass over a run's rows: read, validate, fingerprint and key them, file them by key.

:func:`survey_manifest` reads a manifest a chunk at a time
(:class:`~mori.batch.manifest.chunks.ManifestChunks`), turns each chunk into a table of rows
(:func:`~mori.batch.manifest.columnar.frame_rows`) and files it in a
:class:`~.keyspool.KeySpool`; :func:`survey_items` does the same with items made elsewhere (the
pages of a listed source). Nothing is planned and nothing is written to the ledger here, so a
whole-manifest problem (raised once its last chunk is read, at the latest) stops a run before
anything happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from mori.batch.manifest import Item, ValidationOptions
from mori.batch.manifest.chunks import CHUNK_ROWS, ManifestChunks
from mori.batch.manifest.columnar import frame_rows, items_rows
from mori.batch.manifest.extras import ExtraColumns
from mori.batch.storage import Storage, parent
from mori.batch.stream.keyspool import KeySpool

__all__ = ["WINDOW_ROWS", "Survey", "survey_items", "survey_manifest"]

#: Rows of a window: what a run holds in memory at once (about 0.5 KB a row).
WINDOW_ROWS = 250_000


@dataclass
class Survey:
    """A run's rows, filed by key, and what the audit needs to know of their columns."""

    spool: KeySpool
    #: The manifest's extra columns (in the order first met) and their type in the audit.
    extras: dict[str, pa.DataType]

    @property
    def rows(self) -> int:
        """How many rows the run has."""
        return self.spool.rows

    def close(self) -> None:
        """Delete the rows filed on disk."""
        self.spool.close()


def survey_manifest(
    uri: str,
    storage: Storage,
    options: ValidationOptions,
    folder: Path,
    *,
    chunk_rows: int = CHUNK_ROWS,
    window_rows: int = WINDOW_ROWS,
) -> Survey:
    """Every row of the manifest at ``uri``, filed in ``folder`` (raises ``ManifestError``)."""
    extras = ExtraColumns()
    spool = KeySpool(folder, window_rows)
    try:
        first = 0
        for frame in ManifestChunks(uri, storage, chunk_rows):
            spool.add(frame_rows(frame, parent(uri), options, storage, extras, first))
            first += len(frame)
        spool.finish()
    except BaseException:
        spool.close()
        raise
    return Survey(spool, extras.types())


def survey_items(
    pages: Iterable[Sequence[Item]],
    options: ValidationOptions,
    folder: Path,
    *,
    window_rows: int = WINDOW_ROWS,
) -> Survey:
    """Items validated and fingerprinted elsewhere (a page at a time), filed in ``folder``."""
    extras = ExtraColumns()
    spool = KeySpool(folder, window_rows)
    try:
        for page in pages:
            if page:
                spool.add(items_rows(page, options, extras))
        spool.finish()
    except BaseException:
        spool.close()
        raise
    return Survey(spool, extras.types())
