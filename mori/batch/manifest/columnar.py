"""A chunk of manifest rows as one Arrow table of validated, fingerprinted, keyed rows.

:func:`frame_rows` is the columnar counterpart of :func:`~mori.batch.manifest.load` for one
chunk of a manifest (:mod:`~.chunks`): the plain public URL rows (:mod:`~.fastpath`) go
straight from the frame's columns to the table, and every other row is an
:class:`~mori.batch.manifest.Item` made, classified and fingerprinted as ``load`` makes it,
then turned into columns (:func:`items_rows`). A row is the same either way (tested against
``load``). Two rows of the same image are not told apart here: that needs every row of the
manifest (see :mod:`mori.batch.stream`).

The table's columns (:data:`ROW_SCHEMA`) are the fields of ``Item`` that the plan and the audit
need, with the image key as its 16 bytes (:func:`~.keying.key_digests`; null when the row has
none) and the fingerprint only when it is not the one its kind implies (``url:<location>``,
``sha256:<sha256>``; see :func:`fingerprints`). The manifest's other columns follow as
``+<name>`` (:data:`EXTRA`), each chunk's values typed by :class:`~.extras.ExtraColumns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mori.batch.manifest import fastpath
from mori.batch.manifest.extras import ExtraColumns
from mori.batch.manifest.frames import NO_EXTRA, ColumnRow, column_values, row_item
from mori.batch.manifest.keying import KEY_TYPE, key_digests, url_key_digests
from mori.batch.manifest.model import RESERVED_COLUMNS, Item, ValidationOptions, cell_text
from mori.batch.manifest.rows import LocalPaths, classify, items_from_frame
from mori.batch.storage import Storage

__all__ = ["EXTRA", "ROW_SCHEMA", "fingerprints", "frame_rows", "items_rows"]

#: The columns of a table of rows, before the extra ones.
ROW_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("source", pa.string()),
        ("id", pa.string()),
        ("file_name", pa.string()),
        ("kind", pa.string()),
        ("location", pa.string()),
        ("fingerprint", pa.string()),
        ("sha256", pa.string()),
        ("bytes", pa.int64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("key", KEY_TYPE),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
    ]
)
#: The prefix of an extra column's name in a table of rows.
EXTRA = "+"
#: A text that :func:`mori.batch.manifest.model.cell_text` returns as it is: no surrounding
#: whitespace (its first and last characters are printable ASCII other than the space).
_PLAIN_TEXT = r"^[\x21-\x7e](?:(?s:.)*[\x21-\x7e])?$"


def frame_rows(
    frame: pd.DataFrame,
    base_dir: str,
    options: ValidationOptions,
    storage: Storage,
    extras: ExtraColumns,
    first_row: int = 0,
) -> pa.Table:
    """The rows of one chunk of a manifest (``first_row``: the row number of its first row)."""
    columns = [str(c) for c in frame.columns]
    named = all(isinstance(c, str) for c in frame.columns)
    if not named or len(set(columns)) != len(columns) or "source" not in columns:
        items = items_from_frame(frame)  # odd column names: the record dicts decide
        for item in items:
            item.row_index += first_row
            classify(item, base_dir, options)
        fingerprint_all_items(items, storage, options)
        return items_rows(items, options, extras)
    at = {c: k for k, c in enumerate(columns)}

    def strings(name: str) -> pa.ChunkedArray:
        column = frame.iloc[:, at[name]]
        return fastpath.arrow_strings(column, _plain_values(column))

    sources = strings("source")
    names = strings("file_name") if "file_name" in at else None
    fast, fast_names, shown = fastpath.plain_url_arrays(sources, names)
    slow = np.setdiff1d(np.arange(len(frame), dtype=np.int64), fast, assume_unique=True)
    plain = sources.take(pa.array(fast))
    shown_sources = _patched(plain, shown)
    count = len(fast)
    quick = {
        "row": pa.array(fast + first_row, pa.int64()),
        "source": shown_sources,
        "id": _ids(frame.iloc[:, at["id"]], fast) if "id" in at else pa.nulls(count, pa.string()),
        "file_name": fast_names.cast(pa.string()),
        "kind": pa.repeat(pa.scalar("url"), count),
        "location": plain.cast(pa.string()),
        "key": url_key_digests(plain.to_pylist(), options.processing_options),
    }
    table = pa.table(
        [quick.get(f.name, pa.nulls(count, f.type)) for f in ROW_SCHEMA], schema=ROW_SCHEMA
    )
    if len(slow):
        items = _row_items(frame, slow, base_dir, options, first_row)
        fingerprint_all_items(items, storage, options)
        table = pa.concat_tables([table, items_rows(items, options, None)])
    order = pa.array(np.concatenate([fast, slow]))
    for name in (c for c in columns if c not in RESERVED_COLUMNS):
        array = extras.chunk(name, frame.iloc[:, at[name]])
        table = table.append_column(EXTRA + name, array.take(order))
    return table


def fingerprint_all_items(items: list[Item], storage: Storage, options: ValidationOptions) -> None:
    """Read and fingerprint the file and S3 rows of ``items`` (as ``load`` does)."""
    from mori.batch.manifest import fingerprint_items

    fingerprint_items(items, storage, options)


def items_rows(
    items: Sequence[Item], options: ValidationOptions, extras: ExtraColumns | None
) -> pa.Table:
    """Validated, fingerprinted items as a table of rows; their image keys derived from their
    fingerprints (rows that passed). With ``extras``, each item's extra columns follow."""
    keyed = [it.fingerprint if it.error_code is None else None for it in items]
    table = pa.table(
        {
            "row": pa.array([it.row_index for it in items], pa.int64()),
            "source": pa.array([it.source for it in items], pa.string()),
            "id": pa.array([it.caller_id for it in items], pa.string()),
            "file_name": pa.array([it.file_name for it in items], pa.string()),
            "kind": pa.array([it.kind for it in items], pa.string()),
            "location": pa.array([it.location for it in items], pa.string()),
            "fingerprint": pa.array([_unusual(it) for it in items], pa.string()),
            "sha256": pa.array([it.sha256 for it in items], pa.string()),
            "bytes": pa.array([it.bytes for it in items], pa.int64()),
            "width": pa.array([it.width for it in items], pa.int64()),
            "height": pa.array([it.height for it in items], pa.int64()),
            "key": key_digests(keyed, options.processing_options),
            "error_code": pa.array([it.error_code for it in items], pa.string()),
            "error_message": pa.array([it.error_message for it in items], pa.string()),
        },
        schema=ROW_SCHEMA,
    )
    if extras is not None:
        names: dict[Any, None] = {}
        for item in items:
            names.update(dict.fromkeys(item.extra))
        for name in names:
            values = [it.extra.get(name) for it in items]
            table = table.append_column(EXTRA + str(name), extras.chunk(str(name), values))
    return table


def fingerprints(rows: pa.Table) -> pa.Array:
    """Each row's fingerprint (null where it has none): the ``fingerprint`` column where it is
    set, else the one its kind implies."""
    kind, location = rows.column("kind"), rows.column("location")
    implied = pc.if_else(
        pc.equal(kind, "url"),
        pc.binary_join_element_wise("url:", location, ""),
        pc.binary_join_element_wise("sha256:", rows.column("sha256"), ""),
    )
    return pc.coalesce(rows.column("fingerprint"), implied).combine_chunks()


def _unusual(item: Item) -> str | None:
    """The item's fingerprint when its kind does not imply it, else ``None``."""
    fingerprint = item.fingerprint
    if fingerprint is None:
        return None
    if item.kind == "url" and fingerprint == "url:" + (item.location or ""):
        return None
    if item.kind in ("file", "s3") and item.sha256 and fingerprint == "sha256:" + item.sha256:
        return None
    return fingerprint


def _row_items(
    frame: pd.DataFrame,
    rows: np.ndarray[Any, np.dtype[np.int64]],
    base_dir: str,
    options: ValidationOptions,
    first_row: int,
) -> list[Item]:
    """Items of the rows ``rows`` of ``frame`` (not plain URLs), classified as ``load`` does."""
    part = frame.iloc[rows]
    columns = [str(c) for c in frame.columns]
    values = {c: column_values(part.iloc[:, k]) for k, c in enumerate(columns)}
    ids, names = values.get("id"), values.get("file_name")
    extra_columns = {c: values[c] for c in columns if c not in RESERVED_COLUMNS}
    paths = LocalPaths(base_dir)
    items = []
    for n, (row, source) in enumerate(zip(rows.tolist(), values["source"], strict=True)):
        extra = ColumnRow(extra_columns, n) if extra_columns else NO_EXTRA
        caller_id = None if ids is None else cell_text(ids[n])
        item = row_item(n, source, caller_id, names, extra, base_dir, options, paths, first_row)
        item.row_index = row + first_row
        items.append(item)
    return items


def _plain_values(column: pd.Series) -> list[Any]:
    """The column's values when :func:`~.fastpath.arrow_strings` needs them (not Arrow-backed)."""
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.na_value is np.nan:
        return []
    return column_values(column)


def _ids(column: pd.Series, rows: np.ndarray[Any, np.dtype[np.int64]]) -> pa.Array:
    """``cell_text`` of the ``id`` column at ``rows``: Arrow's text where it is plain."""
    arrow = fastpath.arrow_strings(column, _plain_values(column)).take(pa.array(rows))
    arrow = arrow.cast(pa.string()).combine_chunks()
    plain = pc.fill_null(pc.match_substring_regex(arrow, _PLAIN_TEXT), False)
    if pc.all(plain).as_py() is not False:
        return arrow
    odd = pc.indices_nonzero(pc.invert(plain)).to_numpy()
    values = column.iloc[rows[odd]].tolist()
    fixed = arrow.to_pylist()
    for position, value in zip(odd.tolist(), values, strict=True):
        fixed[position] = cell_text(value)
    return pa.array(fixed, pa.string())


def _patched(sources: pa.ChunkedArray, shown: dict[int, str]) -> pa.Array:
    """``sources`` as text, with the masked source at each position of ``shown``."""
    text = sources.cast(pa.string()).combine_chunks()
    if not shown:
        return text
    values = text.to_pylist()
    for position, masked in shown.items():
        values[position] = masked
    return pa.array(values, pa.string())
