"""Reading a manifest (CSV, Parquet or JSONL; local or ``s3://``) into a frame of its rows.

Three steps, each its own function: the bytes (:func:`read_bytes`), a frame parsed by the
format the name's suffix gives (:func:`manifest_format`, :data:`PARSERS`), and the checks every
frame of rows must pass (:func:`checked_frame`). A whole-manifest problem raises
:class:`ManifestError`: one clear line, and nothing is processed.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pandas as pd
import pyarrow as pa

from mori.batch.codes import ErrorCode
from mori.batch.storage import NotFound, Storage, is_s3

__all__ = [
    "PARSERS",
    "ManifestError",
    "access_errors",
    "check_source_type",
    "checked_frame",
    "manifest_format",
    "read_bytes",
    "read_manifest",
]


class ManifestError(Exception):
    """The manifest as a whole cannot be used (not found, unreadable, wrong schema, empty)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


def read_manifest(uri: str, storage: Storage) -> pd.DataFrame:
    """Read a manifest into a DataFrame; raise :class:`ManifestError` if it is unusable."""
    raw = read_bytes(uri, storage)
    if not raw.strip():
        raise ManifestError(ErrorCode.MANIFEST_EMPTY, "manifest is empty")
    suffix = manifest_format(uri)
    try:
        frame = PARSERS[suffix](raw)
    except ManifestError:
        raise
    except Exception as exc:
        raise ManifestError(
            ErrorCode.MANIFEST_UNREADABLE, f"cannot parse {uri} as {suffix or 'CSV'}: {exc}"
        ) from exc
    return checked_frame(frame, uri)


def read_bytes(uri: str, storage: Storage) -> bytes:
    """The manifest's bytes; a missing or unreadable manifest as :class:`ManifestError`."""
    with access_errors(uri):
        return storage.read_bytes(uri)


@contextmanager
def access_errors(uri: str) -> Iterator[None]:
    """A missing or unreadable manifest met in the block, as :class:`ManifestError`."""
    try:
        yield
    except NotFound as exc:
        raise ManifestError(ErrorCode.MANIFEST_NOT_FOUND, f"manifest not found: {uri}") from exc
    except IsADirectoryError as exc:
        raise ManifestError(ErrorCode.MANIFEST_NOT_FOUND, f"manifest is a folder: {uri}") from exc
    except PermissionError as exc:
        raise ManifestError(ErrorCode.MANIFEST_UNREADABLE, f"manifest not readable: {uri}") from exc


def manifest_format(uri: str) -> str:
    """The manifest's lower-case suffix (a key of :data:`PARSERS`), or ``MANIFEST_UNSUPPORTED``."""
    suffix = posixpath.splitext(urlsplit(uri).path if is_s3(uri) else uri)[1].lower()
    if suffix not in PARSERS:
        raise ManifestError(
            ErrorCode.MANIFEST_UNSUPPORTED_FORMAT,
            f"unsupported manifest type {suffix!r}: use .csv, .parquet or .jsonl",
        )
    return suffix


def checked_frame(frame: pd.DataFrame, uri: str) -> pd.DataFrame:
    """``frame`` with clean column names, once it has a ``source`` column and a row."""
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    if "source" not in frame.columns:
        raise ManifestError(
            ErrorCode.MANIFEST_MISSING_COLUMN,
            f"manifest {uri} has no 'source' column (columns: {', '.join(frame.columns) or '-'})",
        )
    if frame.empty:
        raise ManifestError(ErrorCode.MANIFEST_EMPTY, f"manifest {uri} has no rows")
    return frame.reset_index(drop=True)


def _parquet(raw: bytes) -> pd.DataFrame:
    """A Parquet manifest; its ``source`` column must hold strings."""
    # A native buffer, not a Python file object: pyarrow may still close the latter from a
    # worker thread at interpreter exit, which aborts the process (apache/arrow#33975).
    return check_source_type(pd.read_parquet(pa.BufferReader(raw)))


def check_source_type(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``, once its ``source`` column (if any) holds strings (Parquet keeps types)."""
    if "source" in frame.columns and not (
        pd.api.types.is_string_dtype(frame["source"]) or frame["source"].dtype == object
    ):
        raise ManifestError(
            ErrorCode.MANIFEST_WRONG_SCHEMA,
            f"column 'source' must hold strings, not {frame['source'].dtype}",
        )
    return frame


def _json_lines(raw: bytes) -> pd.DataFrame:
    """A JSON Lines manifest: one object per line."""
    return pd.read_json(io.BytesIO(raw), lines=True, dtype=False)


def _json(raw: bytes) -> pd.DataFrame:
    """A JSON manifest: one array of objects."""
    return pd.read_json(io.BytesIO(raw), lines=False, dtype=False)


def _delimited(sep: str) -> Callable[[bytes], pd.DataFrame]:
    """A parser for CSV (``sep=","``) or TSV: every cell a string, blanks kept as ``""``."""

    def parse(raw: bytes) -> pd.DataFrame:
        """The rows of a delimited manifest."""
        return pd.read_csv(
            io.BytesIO(raw),
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            sep=sep,
            skipinitialspace=True,
        )

    return parse


#: Manifest suffix → the parser of its bytes ("" is a name without a suffix: CSV).
PARSERS: dict[str, Callable[[bytes], pd.DataFrame]] = {
    ".parquet": _parquet,
    ".pq": _parquet,
    ".jsonl": _json_lines,
    ".ndjson": _json_lines,
    ".json": _json,
    "": _delimited(","),
    ".csv": _delimited(","),
    ".txt": _delimited(","),
    ".tsv": _delimited("\t"),
}
