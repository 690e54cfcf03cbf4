"""Manifests: read them, validate every row, fingerprint every image.

A manifest (CSV, Parquet or JSONL; local or ``s3://``) has one row per image. Column ``source``
is required: a local path (relative to the manifest's folder, or absolute), ``s3://bucket/key``
or an ``http(s)://`` URL. Optional ``id`` and ``file_name``; any other column is carried into
the audit untouched.

A whole-manifest problem raises :class:`ManifestError` (one clear line, nothing processed). A bad
row never raises: it becomes an :class:`Item` with an ``error_code`` and ``error_message``, and
the rest of the batch goes on.
"""

from __future__ import annotations

import io
import ipaddress
import itertools
import os
import posixpath
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.core.dtypes.cast import maybe_box_native as _box_native
from PIL import Image, UnidentifiedImageError

from mori import keys
from mori.batch import bulk, vectorised
from mori.batch.storage import NotFound, Storage, is_s3, parent, split_s3
from mori.models import ALLOWED_EXTENSIONS

SourceKind = Literal["file", "s3", "url"]

#: Largest image the pipeline sends (ASSUMED: MORI's limit is undocumented).
MAX_FILE_BYTES = 30 * 1024 * 1024
#: Longest file name (in UTF-8 bytes) MORI is sent; file systems and S3 keys agree on 255.
MAX_FILE_NAME_BYTES = 255
#: Pillow format name → the extensions MORI accepts for it.
PIL_FORMATS: dict[str, str] = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "TIFF": "tiff",
    "BMP": "bmp",
}
RESERVED_COLUMNS = ("source", "id", "file_name")
_INTERNAL_HOST_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")

Image.MAX_IMAGE_PIXELS = 180_000_000  # decompression-bomb guard, above any real photo


class ManifestError(Exception):
    """The manifest as a whole cannot be used (not found, unreadable, wrong schema, empty)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class RowError(Exception):
    """One row is bad; ``code`` is stable, ``message`` says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(slots=True)
class Item:
    """One manifest row after validation and fingerprinting."""

    row_index: int
    source: str
    caller_id: str | None = None
    file_name: str | None = None
    kind: SourceKind | None = None
    location: str | None = None  # resolved path, s3:// URI or normalised URL
    fingerprint: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    image_key: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    #: The manifest's other columns, for the audit (read-only when it comes from ``load``).
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """``True`` when the row passed validation."""
        return self.error_code is None

    def fail(self, code: str, message: str) -> None:
        """Mark the row bad."""
        self.error_code, self.error_message = code, message


@dataclass(frozen=True)
class ValidationOptions:
    """What the validator accepts."""

    max_file_bytes: int = MAX_FILE_BYTES
    #: ``host`` or ``host:port`` values of private/loopback addresses that URL rows may name
    #: anyway (the demo serves its URL rows from 127.0.0.1). Empty by default: internal
    #: addresses are never handed to MORI's fetcher.
    allowed_private_hosts: frozenset[str] = frozenset()
    processing_options: Mapping[str, Any] | None = None
    threads: int = 8


# -- reading -----------------------------------------------------------------------------------


def read_manifest(uri: str, storage: Storage) -> pd.DataFrame:
    """Read a manifest into a DataFrame of strings; raise :class:`ManifestError` if unusable."""
    try:
        raw = storage.read_bytes(uri)
    except NotFound as exc:
        raise ManifestError("MANIFEST_NOT_FOUND", f"manifest not found: {uri}") from exc
    except IsADirectoryError as exc:
        raise ManifestError("MANIFEST_NOT_FOUND", f"manifest is a folder: {uri}") from exc
    except PermissionError as exc:
        raise ManifestError("MANIFEST_UNREADABLE", f"manifest not readable: {uri}") from exc
    suffix = posixpath.splitext(urlsplit(uri).path if is_s3(uri) else uri)[1].lower()
    try:
        frame = _parse(raw, suffix)
    except ManifestError:
        raise
    except Exception as exc:
        raise ManifestError(
            "MANIFEST_UNREADABLE", f"cannot parse {uri} as {suffix or 'CSV'}: {exc}"
        ) from exc
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    if "source" not in frame.columns:
        raise ManifestError(
            "MANIFEST_MISSING_COLUMN",
            f"manifest {uri} has no 'source' column (columns: {', '.join(frame.columns) or '-'})",
        )
    if frame.empty:
        raise ManifestError("MANIFEST_EMPTY", f"manifest {uri} has no rows")
    return frame.reset_index(drop=True)


def _parse(raw: bytes, suffix: str) -> pd.DataFrame:
    if not raw.strip():
        raise ManifestError("MANIFEST_EMPTY", "manifest is empty")
    if suffix in (".parquet", ".pq"):
        # A native buffer, not a Python file object: pyarrow may still close the latter from a
        # worker thread at interpreter exit, which aborts the process (apache/arrow#33975).
        frame = pd.read_parquet(pa.BufferReader(raw))
        if "source" in frame.columns and not (
            pd.api.types.is_string_dtype(frame["source"]) or frame["source"].dtype == object
        ):
            raise ManifestError(
                "MANIFEST_WRONG_SCHEMA",
                f"column 'source' must hold strings, not {frame['source'].dtype}",
            )
        return frame
    if suffix in (".jsonl", ".ndjson", ".json"):
        return pd.read_json(io.BytesIO(raw), lines=suffix != ".json", dtype=False)
    if suffix in ("", ".csv", ".txt", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        return pd.read_csv(
            io.BytesIO(raw),
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            sep=sep,
            skipinitialspace=True,
        )
    raise ManifestError(
        "MANIFEST_UNSUPPORTED_FORMAT",
        f"unsupported manifest type {suffix!r}: use .csv, .parquet or .jsonl",
    )


# -- validating --------------------------------------------------------------------------------


def items_from_frame(frame: pd.DataFrame) -> list[Item]:
    """One :class:`Item` per row, with the caller's fields and extra columns split out."""
    extras = [c for c in frame.columns if c not in RESERVED_COLUMNS]
    records = frame.to_dict(orient="records")
    items = []
    for index, rec in enumerate(records):
        items.append(
            Item(
                row_index=index,
                source=_text(rec.get("source")) or "",
                caller_id=_text(rec.get("id")),
                file_name=_text(rec.get("file_name")),
                extra={c: rec[c] for c in extras},
            )
        )
    return items


def validated_items(frame: pd.DataFrame, base_dir: str, options: ValidationOptions) -> list[Item]:
    """``items_from_frame`` then ``classify`` on each item, column-wise where it can be.

    Plain public URL rows (see :mod:`mori.batch.vectorised`) are checked with Arrow compute
    and become items directly; every other row is classified one by one, exactly as before.
    """
    columns = [str(c) for c in frame.columns]
    named = all(isinstance(c, str) for c in frame.columns)
    if not named or len(set(columns)) != len(columns) or "source" not in columns:
        row_wise = items_from_frame(frame)  # odd column names: the record dicts decide
        for item in row_wise:
            classify(item, base_dir, options)
        return row_wise
    values = {c: _column_values(frame.iloc[:, k]) for k, c in enumerate(columns)}
    sources, names, ids = values["source"], values.get("file_name"), values.get("id")
    fast_names = _plain_url_names(frame, sources, names)
    del frame  # the caller's reference is its last one (see load): free it before the items
    pa.default_memory_pool().release_unused()
    caller_ids = [None] * len(sources) if ids is None else [_text(v) for v in ids]
    extras = [c for c in columns if c not in RESERVED_COLUMNS]
    extra_columns = {c: values[c] for c in extras}
    extra_rows: Iterable[Mapping[str, Any]] = (
        map(_ColumnRow, itertools.repeat(extra_columns), range(len(sources)))
        if extras
        else itertools.repeat(_NO_EXTRA, len(sources))
    )
    del values
    paths = _LocalPaths(base_dir)
    with bulk.gc_paused():  # a million small objects: no collector passes meanwhile
        items: list[Item] = [
            Item(i, s, cid, name, "url", s, "url:" + s, *_NO_FACTS, extra)
            if name is not None
            else _row_item(i, s, cid, names, extra, base_dir, options, paths)
            for i, s, cid, name, extra in zip(
                itertools.count(), sources, caller_ids, fast_names, extra_rows
            )
        ]
    return items


_NO_FACTS = (None,) * 8  # sha256 .. error_message: unset for a URL row


class _NoExtra(dict[str, Any]):
    """The shared, read-only ``extra`` of items from a manifest without extra columns."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this item's extra columns are read-only")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_NoExtra, ())


_NO_EXTRA = _NoExtra()


class _ColumnRow(Mapping[str, Any]):
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


def _row_item(
    index: int,
    source: Any,
    caller_id: str | None,
    names: list[Any] | None,
    extra: Mapping[str, Any],
    base_dir: str,
    options: ValidationOptions,
    paths: _LocalPaths,
) -> Item:
    """The row-wise path: an item as :func:`items_from_frame` makes it, then classified."""
    file_name = None if names is None else _text(names[index])
    item = Item(index, _text(source) or "", caller_id, file_name, extra=extra)
    _classify(item, base_dir, options, paths.resolve)
    return item


def _plain_url_names(
    frame: pd.DataFrame, sources: list[Any], names: list[Any] | None
) -> list[str | None]:
    """Per row: the file name of a plain public URL row that passes every check, else ``None``.

    Works through the rows in slices, so Arrow's scratch memory stays small.
    """
    out: list[str | None] = [None] * len(sources)
    columns = [str(c) for c in frame.columns]  # unique (checked by the caller)
    source_arr = _arrow_strings(frame.iloc[:, columns.index("source")], sources)
    name_arr = (
        None if names is None else _arrow_strings(frame.iloc[:, columns.index("file_name")], names)
    )
    for start in range(0, len(sources), _SLICE_ROWS):
        chunk = source_arr.slice(start, _SLICE_ROWS)
        rows = pc.indices_nonzero(vectorised.plain_url_mask(chunk))
        if len(rows) == 0:
            continue
        effective = vectorised.url_basenames(chunk.take(rows))
        if name_arr is not None:
            given = name_arr.slice(start, _SLICE_ROWS).take(rows)
            effective = pc.if_else(pc.fill_null(pc.not_equal(given, ""), False), given, effective)
        accepted = vectorised.plain_names(effective)
        for row, name, ok in zip(rows.to_pylist(), effective.to_pylist(), accepted, strict=True):
            if ok:
                out[start + row] = name
    return out


_SLICE_ROWS = 1 << 16


def _column_values(column: pd.Series) -> list[Any]:
    """A column's values exactly as ``DataFrame.to_dict(orient="records")`` gives them."""
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.na_value is np.nan:
        values: list[Any] = column.tolist()  # str or float NaN, as the records hold them
        return values
    if dtype == np.dtype(object) or isinstance(dtype, pd.api.extensions.ExtensionDtype):
        return [_box_native(v) for v in column]
    return list(column)


def _arrow_strings(column: pd.Series, values: list[Any]) -> pa.ChunkedArray:
    """The column as Arrow strings; a missing value is null, a non-string one ``"\x00"``.

    ``"\x00"`` fails every vectorised check, so such rows take the row-wise path.
    """
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.na_value is np.nan:
        arrow = pa.array(column)  # zero-copy for Arrow-backed strings
        return arrow if isinstance(arrow, pa.ChunkedArray) else pa.chunked_array([arrow])
    data = [v if v.__class__ is str else (None if _text(v) is None else "\x00") for v in values]
    return pa.chunked_array([pa.array(data, pa.large_string())])


def _text(value: Any) -> str | None:
    if value.__class__ is str:  # the common case first (a million ids)
        return value.strip() or None
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def classify(item: Item, base_dir: str, options: ValidationOptions) -> None:
    """Resolve the row's source and file name, or mark it failed. No I/O."""
    _classify(item, base_dir, options, _resolve_path)


def _classify(
    item: Item,
    base_dir: str,
    options: ValidationOptions,
    resolve_path: Callable[[str, str], str],
) -> None:
    """:func:`classify`, resolving local paths with ``resolve_path(source, base_dir)``."""
    source = item.source
    if not source:
        item.fail("EMPTY_SOURCE", "the 'source' column is empty")
        return
    scheme = urlsplit(source).scheme.lower() if "://" in source or ":" in source[:12] else ""
    try:
        if scheme in ("http", "https"):
            item.source = _without_credentials(source)  # the audit and the UI never echo them
            item.kind, item.location = "url", _check_url(source, options)
            item.fingerprint = keys.url_fingerprint(source)
            default_name = posixpath.basename(unquote(urlsplit(source).path))
        elif scheme == "s3":
            bucket, key = split_s3(source)
            if not bucket or not key or key.endswith("/"):
                raise RowError("INVALID_SOURCE", f"not an object URI: {source}")
            item.kind, item.location = "s3", source
            default_name = posixpath.basename(key)
        elif len(scheme) > 1:  # one letter is a Windows drive
            raise RowError(
                "UNSUPPORTED_SCHEME",
                f"source scheme '{scheme}:' is not supported (use a path, s3:// or https://)",
            )
        else:
            item.kind, item.location = "file", resolve_path(source, base_dir)
            default_name = os.path.basename(source.replace("\\", "/"))
        item.file_name = _check_file_name(item.file_name or default_name)
    except RowError as exc:
        item.fail(exc.code, exc.message)


def _without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` (unchanged without one)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _check_url(url: str, options: ValidationOptions) -> str:
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise RowError("URL_HAS_CREDENTIALS", "URLs with user:password@ are not sent to MORI")
    try:
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError as exc:
        raise RowError("INVALID_URL", f"malformed URL: {exc}") from exc
    if not host:
        raise RowError("INVALID_URL", "URL has no host")
    hostport = f"{host}:{port}" if port else host
    if host in options.allowed_private_hosts or hostport in options.allowed_private_hosts:
        return keys.normalise_url(url)
    if _is_internal_host(host):
        raise RowError(
            "URL_PRIVATE_ADDRESS",
            f"URL host {host} is internal (loopback, private or link-local); "
            "MORI fetches URLs itself, so only public hosts are allowed",
        )
    return keys.normalise_url(url)


def _is_internal_host(host: str) -> bool:
    host = host.rstrip(".")
    if host == "localhost" or host.endswith(_INTERNAL_HOST_SUFFIXES):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        try:  # shorthand, decimal, hex and octal spellings: 127.1, 2130706433, 0x7f.1, 0177.0.0.1
            address = ipaddress.ip_address(socket.inet_aton(host))
        except OSError:
            return False
    return not address.is_global or address.is_multicast


def _resolve_path(source: str, base_dir: str) -> str:
    if is_s3(base_dir):
        if os.path.isabs(source):
            raise RowError("INVALID_SOURCE", "absolute paths need a local manifest")
        folder = split_s3(base_dir)[1].rstrip("/")
        joined = posixpath.normpath(posixpath.join(folder, source))
        if (folder and not joined.startswith(folder + "/")) or joined.startswith(".."):
            raise RowError("PATH_TRAVERSAL", f"{source} points outside the manifest's folder")
        return f"s3://{split_s3(base_dir)[0]}/{joined}"
    if "\x00" in source:
        raise RowError("INVALID_SOURCE", "path contains a NUL byte")
    path = Path(source)
    if path.is_absolute():
        return str(path)
    base = Path(base_dir).resolve()
    resolved = (base / path).resolve()
    if not resolved.is_relative_to(base):
        raise RowError("PATH_TRAVERSAL", f"{source} points outside the manifest's folder")
    return str(resolved)


class _LocalPaths:
    """``_resolve_path`` for many rows of one manifest: the same results, fewer syscalls.

    A plain relative path (no ``.``/``..``/empty parts) resolves as its folder's real path,
    cached per folder, plus its last part, unless that part is a symbolic link: then, and for
    every other spelling, the row goes through ``_resolve_path`` itself.
    """

    def __init__(self, base_dir: str) -> None:
        self._local = not is_s3(base_dir)
        self._base = str(Path(base_dir).resolve()) if self._local else ""
        self._inside = self._base.rstrip("/") + "/"
        self._folders: dict[str, str] = {}

    def resolve(self, source: str, base_dir: str) -> str:
        if not self._local or "\x00" in source or source.startswith("/"):
            return _resolve_path(source, base_dir)
        folder, _, name = source.rpartition("/")
        parts = source.split("/")
        if "" in parts or "." in parts or ".." in parts:
            return _resolve_path(source, base_dir)
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = (
                os.path.realpath(os.path.join(self._base, folder)) if folder else self._base
            )
        resolved = f"{real}/{name}" if real != "/" else f"/{name}"
        if os.path.islink(resolved):
            return _resolve_path(source, base_dir)
        if resolved != self._base and not resolved.startswith(self._inside):
            raise RowError("PATH_TRAVERSAL", f"{source} points outside the manifest's folder")
        return resolved


def _check_file_name(name: str) -> str:
    name = name.strip()
    if not name or name in (".", ".."):
        raise RowError("INVALID_FILE_NAME", "no file name (set the 'file_name' column)")
    if any(ord(ch) < 32 or ch in '/\\"' for ch in name):
        raise RowError("INVALID_FILE_NAME", f"file name {name!r} has control or path characters")
    if len(name.encode("utf-8")) > MAX_FILE_NAME_BYTES:
        raise RowError(
            "FILE_NAME_TOO_LONG", f"file name is over {MAX_FILE_NAME_BYTES} bytes in UTF-8"
        )
    ext = posixpath.splitext(name)[1].lstrip(".").lower()
    if ext not in ALLOWED_EXTENSIONS:
        raise RowError(
            "UNSUPPORTED_FORMAT",
            f"extension '.{ext}' is not accepted by MORI "
            f"(allowed: {', '.join(sorted(ALLOWED_EXTENSIONS))})"
            if ext
            else f"file name {name!r} has no extension",
        )
    return name


# -- fingerprinting ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    """What the pipeline checked about an image's bytes."""

    sha256: str
    size: int
    width: int
    height: int
    format: str


def inspect_image(data: bytes, max_bytes: int = MAX_FILE_BYTES) -> ImageFacts:
    """Check that ``data`` is a whole image in a format MORI accepts; raise :class:`RowError`."""
    if not data:
        raise RowError("EMPTY_FILE", "the file is empty")
    if len(data) > max_bytes:
        raise RowError(
            "FILE_TOO_LARGE", f"{len(data):,} bytes is over the {max_bytes:,}-byte limit"
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            if fmt not in PIL_FORMATS:
                raise RowError(
                    "UNSUPPORTED_FORMAT",
                    f"the bytes are {fmt or 'an unknown format'}, not one "
                    "MORI accepts (JPEG, PNG, WEBP, TIFF, BMP)",
                )
            if fmt == "JPEG":
                # Every scan is still entropy-decoded (a truncated or damaged file fails as
                # before), but at 1/8 scale: the inverse DCT, most of the CPU, shrinks 64x.
                width, height = img.size
                img.draft(img.mode, (1, 1))
                img.load()
            else:
                img.load()  # decodes fully: catches truncated files
                width, height = img.size
    except RowError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise RowError("INVALID_IMAGE", f"not a readable image: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise RowError("INVALID_IMAGE", f"image is damaged or truncated: {exc}") from exc
    return ImageFacts(keys.sha256_fingerprint(data)[7:], len(data), width, height, fmt)


def fingerprint(item: Item, storage: Storage, options: ValidationOptions) -> None:
    """Read a file or S3 row's bytes, check them and set its fingerprint; URL rows need no I/O."""
    if not item.ok or item.kind == "url":
        return
    assert item.location is not None
    try:
        data = _read_source(item.location, storage, options.max_file_bytes)
        facts = inspect_image(data, options.max_file_bytes)
    except RowError as exc:
        item.fail(exc.code, exc.message)
        return
    item.sha256, item.bytes = facts.sha256, facts.size
    item.width, item.height, item.format = facts.width, facts.height, facts.format
    item.fingerprint = "sha256:" + facts.sha256


def _fingerprint_all(items: list[Item], storage: Storage, options: ValidationOptions) -> None:
    for item in items:
        fingerprint(item, storage, options)


def _read_source(location: str, storage: Storage, max_bytes: int) -> bytes:
    try:
        if storage.size(location) > max_bytes:
            raise RowError("FILE_TOO_LARGE", f"the file is over the {max_bytes:,}-byte limit")
        return storage.read_bytes(location)
    except NotFound as exc:
        raise RowError("FILE_NOT_FOUND", "no file at the source path") from exc
    except IsADirectoryError as exc:
        raise RowError("INVALID_SOURCE", "the source is a folder, not a file") from exc
    except PermissionError as exc:
        raise RowError("FILE_UNREADABLE", "permission denied reading the file") from exc
    except OSError as exc:
        raise RowError("FILE_UNREADABLE", f"cannot read the file: {exc.strerror or exc}") from exc


def assign_keys(items: Iterable[Item], options: ValidationOptions) -> None:
    """Derive image keys; a second row with the same image is a ``DUPLICATE_ROW``."""
    todo = [it for it in items if it.error_code is None and it.fingerprint is not None]
    derived = vectorised.image_keys(
        (it.fingerprint or "" for it in todo), options.processing_options
    )
    first_row: dict[str, int] = {}
    for item, key in zip(todo, derived, strict=True):
        if key in first_row:
            item.fail(
                "DUPLICATE_ROW",
                f"same image as row {first_row[key]}; it is processed once, for that row",
            )
            continue
        first_row[key] = item.row_index
        item.image_key = key


def load(uri: str, storage: Storage, options: ValidationOptions | None = None) -> list[Item]:
    """Read, validate, fingerprint and key a manifest: one :class:`Item` per row."""
    options = options or ValidationOptions()
    items = validated_items(read_manifest(uri, storage), parent(uri), options)
    files = [it for it in items if it.error_code is None and it.kind == "file"]
    objects = [[it] for it in items if it.error_code is None and it.kind == "s3"]
    if files or objects:
        # Local files go in batches per thread-pool task (a future per small local read costs
        # about as much as the read); S3 objects one per task, as their latency dominates.
        size = max(1, min(64, len(files) // (4 * options.threads)))
        batches = [files[i : i + size] for i in range(0, len(files), size)] + objects
        with ThreadPoolExecutor(max_workers=options.threads) as pool:
            for _ in pool.map(lambda batch: _fingerprint_all(batch, storage, options), batches):
                pass
    assign_keys(items, options)
    return items
