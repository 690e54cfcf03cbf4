"""Column-at-a-time checks for large manifests (Arrow compute, no Python loop per row).

A row is validated here only when it is *plainly* fine: a lower-case ``http(s)://`` URL whose
host is a dotted name of lower-case ASCII labels (the last one starting with a letter, so never
an IP address in any spelling; no ``xn--`` label; not an internal name), with a path, no port,
no user info, no fragment, no ``%`` escapes before the query, printable ASCII only, and a file
name MORI accepts. For such a row :func:`~mori.batch.manifest.urlguard.check_url` provably
returns the URL itself and the row-wise :func:`~mori.batch.manifest.rows.classify` gives the
same item (its file name is the last path segment or the ``file_name`` column); every other
row goes through ``classify`` unchanged, so errors, codes and messages never differ.

A plain row whose query may hold a credential-like parameter is shown through
:func:`~mori.batch.manifest.masking.mask_url`, as ``classify`` shows it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mori.batch.manifest.masking import CREDENTIAL_PARAMETERS, mask_url
from mori.batch.manifest.model import cell_text
from mori.batch.manifest.urlguard import INTERNAL_NAMES
from mori.models import ALLOWED_EXTENSIONS

__all__ = [
    "CREDENTIAL_HINT",
    "MAX_PLAIN_NAME",
    "NOT_PLAIN_HOST",
    "PLAIN_NAME",
    "PLAIN_URL",
    "arrow_strings",
    "masked_plain_urls",
    "plain_name_mask",
    "plain_names",
    "plain_url_arrays",
    "plain_url_mask",
    "plain_url_rows",
    "url_basenames",
]

#: Longest file name (ASCII, so bytes) the vectorised check accepts; longer names go row-wise.
MAX_PLAIN_NAME = 255

_LABEL = r"[a-z0-9_-]+"
# Path: printable ASCII except '#', '%' and '?'. Query: printable ASCII except '#', non-empty.
_PATH = r"[\x21\x22\x24\x26-\x3e\x40-\x7e]"
_QUERY = r"[\x21\x22\x24-\x7e]"
#: Lower-case scheme and a host of two labels or more (the last starts with a letter, so it
#: is never an IP address in any spelling), no user info, no port, a path, an optional
#: non-empty query, no fragment.
PLAIN_URL = rf"^https?://(?:{_LABEL}\.)+[a-z][a-z0-9_-]*/{_PATH}*(?:\?{_QUERY}+)?$"
#: Hosts that go row-wise all the same: internal names, and IDNA labels (``xn--``), which the
#: WHATWG parser decodes and checks.
NOT_PLAIN_HOST = (
    rf"^https?://(?:{_LABEL}\.)*(?:(?:{'|'.join(map(re.escape, INTERNAL_NAMES))})/|xn--)"
)
_NAMES = "|".join(map(re.escape, sorted(CREDENTIAL_PARAMETERS)))
#: Query parameters :func:`mask_url` may change: a credential-like name, or a name with a
#: ``%`` escape (a superset: every separator ``mask_url`` splits at is a parameter start here).
CREDENTIAL_HINT = rf"(?i)[?&;](?:[^=&;?]*%|(?:{_NAMES})=)"
_EXTENSIONS = "|".join(sorted(ALLOWED_EXTENSIONS))
#: A file name that passes ``check_file_name`` unchanged: printable ASCII without '"', '/'
#: or '\\', not starting with '.' or a space, ending in an accepted extension (any case).
PLAIN_NAME = (
    r"^[\x21\x23-\x2d\x30-\x5b\x5d-\x7e][\x20\x21\x23-\x2e\x30-\x5b\x5d-\x7e]*"
    rf"\.(?i:{_EXTENSIONS})$"
)
_SLICE_ROWS = 1 << 16


def plain_url_mask(sources: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Per row: ``True`` when the source is a plain public URL (see the module docstring)."""
    plain = pc.match_substring_regex(sources, PLAIN_URL)
    other = pc.match_substring_regex(sources, NOT_PLAIN_HOST)
    return pc.and_(pc.fill_null(plain, False), pc.invert(pc.fill_null(other, False)))


def url_basenames(sources: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """The last path segment of each URL (query dropped); meaningful for plain URLs only."""
    path = pc.list_element(pc.split_pattern(sources, "?", max_splits=1), 0)
    return pc.list_element(pc.split_pattern(path, "/", max_splits=1, reverse=True), 1)


def plain_names(names: pa.Array | pa.ChunkedArray) -> list[bool]:
    """Per name: ``True`` when it passes the file-name checks exactly as it is."""
    return plain_name_mask(names).to_pylist()  # type: ignore[no-any-return]


def plain_name_mask(names: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """:func:`plain_names` as an Arrow boolean array (never null)."""
    ok = pc.and_(
        pc.match_substring_regex(names, PLAIN_NAME),
        pc.less_equal(pc.utf8_length(names), MAX_PLAIN_NAME),
    )
    return pc.fill_null(ok, False)


def plain_url_rows(
    source_arr: pa.ChunkedArray, name_arr: pa.ChunkedArray | None
) -> tuple[list[str | None], dict[int, str]]:
    """The plain public URL rows that pass every check: per row its file name (else ``None``),
    and the rows whose source is shown masked, with that masked source.

    ``source_arr`` and ``name_arr`` are the ``source`` and ``file_name`` columns as
    :func:`arrow_strings` gives them.
    """
    rows, fast_names, shown = plain_url_arrays(source_arr, name_arr)
    names: list[str | None] = [None] * len(source_arr)
    for row, name in zip(rows.tolist(), fast_names.to_pylist(), strict=True):
        names[row] = name
    return names, {int(rows[position]): text for position, text in shown.items()}


def plain_url_arrays(
    source_arr: pa.ChunkedArray, name_arr: pa.ChunkedArray | None
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], pa.ChunkedArray, dict[int, str]]:
    """:func:`plain_url_rows` as arrays: the numbers of the plain public URL rows that pass
    every check (ascending), their file names, and by position among them the masked source
    of those shown masked.

    Works through the rows in slices, so Arrow's scratch memory stays small.
    """
    numbers: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    names: list[pa.Array] = []
    shown: dict[int, str] = {}
    found = 0
    for start in range(0, len(source_arr), _SLICE_ROWS):
        chunk = source_arr.slice(start, _SLICE_ROWS)
        rows = pc.indices_nonzero(plain_url_mask(chunk))
        if len(rows) == 0:
            continue
        plain = chunk.take(rows)
        effective = url_basenames(plain)
        if name_arr is not None:
            given = name_arr.slice(start, _SLICE_ROWS).take(rows)
            effective = pc.if_else(pc.fill_null(pc.not_equal(given, ""), False), given, effective)
        kept = pc.indices_nonzero(plain_name_mask(effective)).to_numpy()
        for position, text in masked_plain_urls(plain).items():
            at = int(np.searchsorted(kept, position))
            if at < len(kept) and kept[at] == position:
                shown[found + at] = text
        numbers.append(rows.to_numpy()[kept].astype(np.int64) + start)
        names.extend(effective.take(kept).cast(pa.large_string()).chunks)
        found += len(kept)
    rows_out = np.concatenate(numbers) if numbers else np.zeros(0, np.int64)
    return rows_out, pa.chunked_array(names, pa.large_string()), shown


def masked_plain_urls(urls: pa.ChunkedArray) -> dict[int, str]:
    """Per plain URL that :func:`mask_url` changes, by position: the URL as it is shown."""
    hinted = pc.indices_nonzero(pc.match_substring_regex(urls, CREDENTIAL_HINT))
    out: dict[int, str] = {}
    for position, url in zip(hinted.to_pylist(), urls.take(hinted).to_pylist(), strict=True):
        shown = mask_url(url)
        if shown != url:
            out[position] = shown
    return out


def arrow_strings(column: pd.Series, values: Sequence[Any]) -> pa.ChunkedArray:
    """The column as Arrow strings; a missing value is null, a non-string one ``"\x00"``.

    ``"\x00"`` fails every vectorised check, so such rows take the row-wise path.
    """
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.na_value is np.nan:
        arrow = pa.array(column)  # zero-copy for Arrow-backed strings
        return arrow if isinstance(arrow, pa.ChunkedArray) else pa.chunked_array([arrow])
    data = [v if v.__class__ is str else (None if cell_text(v) is None else "\x00") for v in values]
    return pa.chunked_array([pa.array(data, pa.large_string())])
