"""A manifest's extra columns, a chunk at a time, typed as the audit types the whole column.

The audit keeps an extra column's numbers and booleans as such and makes anything else text
(:func:`mori.batch.audit.extra_column`), judging the column as a whole. A manifest read in
chunks has each chunk's values only, so :class:`ExtraColumns` turns each chunk's column into
an array as ``extra_column`` would, and keeps a few values of each Python type it met (for
integers, the smallest and the largest; a missing float apart from the others): from those,
:meth:`ExtraColumns.types` infers the type ``extra_column`` gives the whole column, and
:func:`conform` brings every chunk's array to it.

A chunk mixing integers and floats is kept as their text until the column's type is known (a
float column then, or text where an integer reads ``5``, not ``5.0``). A column mixing
booleans and numbers is text (Arrow's inference of such a mix depends on the order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from mori.batch.audit import as_text, extra_column

__all__ = ["ExtraColumns", "conform"]


class ExtraColumns:
    """The extra columns met so far (in the order first met) and their sample values."""

    def __init__(self) -> None:
        self._samples: dict[str, dict[Any, list[Any]]] = {}
        self._texts: set[str] = set()  # columns with a chunk made text

    @property
    def names(self) -> list[str]:
        """The extra columns' names, in the order first met."""
        return list(self._samples)

    def chunk(self, name: str, column: pd.Series | Sequence[Any]) -> pa.Array:
        """One chunk of column ``name``: its values as ``extra_column`` makes them. A string
        column of a CSV chunk is taken as it is (Arrow-backed: no Python values)."""
        samples = self._samples.setdefault(name, {})
        if isinstance(column, pd.Series) and _arrow_text(column):
            array = pa.array(column).cast(pa.string())
            if array.null_count < len(array):
                samples.setdefault(str, [""])
            return array
        values = list(column)
        kinds: set[Any] = set()
        for value in values:
            kind: Any = type(value)
            if kind is float and value != value:
                kind = "nan"  # a missing value: kept apart from the numbers
            kinds.add(kind)
            kept = samples.get(kind)
            if kept is None:
                samples[kind] = [value, value] if kind is int else [value]
            elif kind is int:
                kept[0], kept[1] = min(kept[0], value), max(kept[1], value)
        if bool in kinds and kinds & {int, float}:
            self._texts.add(name)  # Arrow's inference of such a mix depends on the order
        if kinds >= {int, float} or name in self._texts:
            return pa.array([as_text(v) for v in values], pa.string())  # conform casts back
        array = extra_column(values)
        if pa.types.is_string(array.type) and array.null_count < len(array):
            self._texts.add(name)
        return array

    def types(self) -> dict[str, pa.DataType]:
        """Each column's type in the audit: the one ``extra_column`` gives all its values; text
        when a chunk of it is text, or mixes booleans and numbers."""
        types = {}
        for name, samples in self._samples.items():
            if name in self._texts or (bool in samples and samples.keys() & {int, float}):
                types[name] = pa.string()
            else:
                types[name] = extra_column([v for kept in samples.values() for v in kept]).type
        return types


def conform(array: pa.Array, type_: pa.DataType) -> pa.Array:
    """A chunk's array (from :meth:`ExtraColumns.chunk`) as the whole column's ``type_``."""
    if array.type == type_:
        return array
    if array.null_count == len(array):
        return pa.nulls(len(array), type_)
    if pa.types.is_string(type_):
        return pa.array([as_text(v) for v in array.to_pylist()], pa.string())
    return array.cast(type_)


def _arrow_text(column: pd.Series) -> bool:
    """``True`` for a pandas string column backed by Arrow (a CSV chunk's columns)."""
    dtype = column.dtype
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"
