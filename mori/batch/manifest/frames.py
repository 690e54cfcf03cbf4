"""A frame of manifest rows as validated items: column-wise where it can be, row-wise otherwise.

The plain public URL rows (:mod:`mori.batch.manifest.fastpath`) become items directly; every
other row is classified on its own (:func:`mori.batch.manifest.rows.classify`). The items are
the same either way; the column-wise path is just much cheaper for a million URL rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mori.batch import bulk
from mori.batch.manifest import fastpath
from mori.batch.manifest.model import RESERVED_COLUMNS, Item, ValidationOptions, cell_text
from mori.batch.manifest.rows import LocalPaths, classify, classify_with, items_from_frame

__all__ = ["NO_EXTRA", "ColumnRow", "column_values", "native", "row_item", "validated_items"]

_NO_FACTS = (None,) * 8  # sha256 .. error_message: unset for a URL row


def validated_items(
    frame: pd.DataFrame, base_dir: str, options: ValidationOptions, first_row: int = 0
) -> list[Item]:
    """``items_from_frame`` then ``classify`` on each item, column-wise where it can be.

    ``first_row`` is the ``row_index`` of the frame's first row (a later slice of a manifest).
    """
    columns = [str(c) for c in frame.columns]
    named = all(isinstance(c, str) for c in frame.columns)
    if not named or len(set(columns)) != len(columns) or "source" not in columns:
        row_wise = items_from_frame(frame)  # odd column names: the record dicts decide
        for item in row_wise:
            item.row_index += first_row
            classify(item, base_dir, options)
        return row_wise
    values = {c: column_values(frame.iloc[:, k]) for k, c in enumerate(columns)}
    sources, names, ids = values["source"], values.get("file_name"), values.get("id")
    source_arr = fastpath.arrow_strings(frame.iloc[:, columns.index("source")], sources)
    name_arr = (
        None
        if names is None
        else fastpath.arrow_strings(frame.iloc[:, columns.index("file_name")], names)
    )
    fast_names, shown = fastpath.plain_url_rows(source_arr, name_arr)
    del frame, source_arr, name_arr  # the caller's frame reference is its last (see load)
    pa.default_memory_pool().release_unused()
    caller_ids = [None] * len(sources) if ids is None else [cell_text(v) for v in ids]
    extras = [c for c in columns if c not in RESERVED_COLUMNS]
    extra_columns = {c: values[c] for c in extras}
    extra_rows: Iterable[Mapping[str, Any]] = (
        map(ColumnRow, itertools.repeat(extra_columns), range(len(sources)))
        if extras
        else itertools.repeat(NO_EXTRA, len(sources))
    )
    del values
    paths = LocalPaths(base_dir)
    with bulk.gc_paused():  # a million small objects: no collector passes meanwhile
        items: list[Item] = [
            Item(
                i + first_row,
                shown.get(i, s) if shown else s,
                cid,
                name,
                "url",
                s,
                "url:" + s,
                *_NO_FACTS,
                extra,
            )
            if name is not None
            else row_item(i, s, cid, names, extra, base_dir, options, paths, first_row)
            for i, s, cid, name, extra in zip(
                itertools.count(), sources, caller_ids, fast_names, extra_rows
            )
        ]
    return items


def row_item(
    index: int,
    source: Any,
    caller_id: str | None,
    names: list[Any] | None,
    extra: Mapping[str, Any],
    base_dir: str,
    options: ValidationOptions,
    paths: LocalPaths,
    first_row: int,
) -> Item:
    """The row-wise path: an item as :func:`items_from_frame` makes it, then classified."""
    file_name = None if names is None else cell_text(names[index])
    item = Item(index + first_row, cell_text(source) or "", caller_id, file_name, extra=extra)
    classify_with(item, base_dir, options, paths.resolve)
    return item


class _NoExtra(dict[str, Any]):
    """The shared, read-only ``extra`` of items from a manifest without extra columns."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        """Every mutating method: refused."""
        raise TypeError("this item's extra columns are read-only")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_NoExtra, ())


NO_EXTRA = _NoExtra()


class ColumnRow(Mapping[str, Any]):
    """Row ``index`` of the manifest's extra columns, as a read-only mapping.

    The values stay in their columns (shared by every row), so a row costs one small object
    instead of a ``dict`` of its own: about 90 MiB less per million rows, and a million fewer
    containers for the garbage collector. Pickles as a plain ``dict`` of the row.
    """

    __slots__ = ("_columns", "_index")

    def __init__(self, columns: dict[str, list[Any]], index: int) -> None:
        self._columns, self._index = columns, index

    def __getitem__(self, name: str) -> Any:
        return self._columns[name][self._index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return repr(dict(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))


def column_values(column: pd.Series) -> list[Any]:
    """A column's values exactly as ``DataFrame.to_dict(orient="records")`` gives them."""
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.na_value is np.nan:
        values: list[Any] = column.tolist()  # str or float NaN, as the records hold them
        return values
    if dtype == np.dtype(object) or isinstance(dtype, pd.api.extensions.ExtensionDtype):
        return [native(v) for v in column]
    return list(column)


def native(value: Any) -> Any:
    """A NumPy or pandas scalar as the Python value ``to_dict`` gives for it (others as is)."""
    if pd.api.types.is_float(value):
        return float(value)
    if pd.api.types.is_integer(value):
        return int(value)
    if pd.api.types.is_bool(value):
        return bool(value)
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value)
    if isinstance(value, np.timedelta64):
        return pd.Timedelta(value)
    if value is pd.NA:
        return None
    return value
