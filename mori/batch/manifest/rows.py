"""Row-wise validation: what a row's source is, where it points, and the name MORI is sent.

No I/O here beyond resolving local paths: a bad row becomes an :class:`Item` with an
``error_code`` and ``error_message`` and the rest of the batch goes on.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd

from mori import keys
from mori.batch.codes import ErrorCode
from mori.batch.manifest.masking import mask_url
from mori.batch.manifest.model import (
    MAX_FILE_NAME_BYTES,
    RESERVED_COLUMNS,
    Item,
    RowError,
    ValidationOptions,
    cell_text,
)
from mori.batch.manifest.urlguard import check_url
from mori.batch.storage import is_s3, split_s3
from mori.models import ALLOWED_EXTENSIONS

__all__ = [
    "LocalPaths",
    "check_file_name",
    "classify",
    "classify_with",
    "items_from_frame",
    "resolve_path",
    "source_scheme",
]

_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def items_from_frame(frame: pd.DataFrame) -> list[Item]:
    """One :class:`Item` per row, with the caller's fields and extra columns split out."""
    extras = [c for c in frame.columns if c not in RESERVED_COLUMNS]
    records = frame.to_dict(orient="records")
    items = []
    for index, rec in enumerate(records):
        items.append(
            Item(
                row_index=index,
                source=cell_text(rec.get("source")) or "",
                caller_id=cell_text(rec.get("id")),
                file_name=cell_text(rec.get("file_name")),
                extra={c: rec[c] for c in extras},
            )
        )
    return items


def classify(item: Item, base_dir: str, options: ValidationOptions) -> None:
    """Resolve the row's source and file name, or mark it failed. No I/O."""
    classify_with(item, base_dir, options, resolve_path)


def classify_with(
    item: Item,
    base_dir: str,
    options: ValidationOptions,
    resolve: Callable[[str, str], str],
) -> None:
    """:func:`classify`, resolving local paths with ``resolve(source, base_dir)``."""
    source = item.source
    if not source:
        item.fail(ErrorCode.EMPTY_SOURCE, "the 'source' column is empty")
        return
    scheme = source_scheme(source) if "://" in source or ":" in source[:12] else ""
    try:
        if scheme in ("http", "https"):
            item.source = mask_url(source)  # the audit and the UI never echo credentials
            item.kind, item.location = "url", check_url(source, options.allowed_private_hosts)
            item.fingerprint = keys.url_fingerprint(source)
            default_name = posixpath.basename(unquote(urlsplit(source).path))
        elif scheme == "s3":
            item.kind, item.location = "s3", _checked_object_uri(source)
            default_name = posixpath.basename(split_s3(source)[1])
        elif len(scheme) > 1:  # one letter is a Windows drive
            item.source = mask_url(source)
            raise RowError(
                ErrorCode.UNSUPPORTED_SCHEME,
                f"source scheme '{scheme}:' is not supported (use a path, s3:// or https://)",
            )
        else:
            item.kind, item.location = "file", resolve(source, base_dir)
            default_name = os.path.basename(source.replace("\\", "/"))
        item.file_name = check_file_name(item.file_name or default_name)
    except RowError as exc:
        item.fail(exc.code, exc.message)


def source_scheme(source: str) -> str:
    """The lower-case scheme ``urlsplit`` finds in ``source`` (``""`` for none); never raises."""
    text = source.lstrip(_C0_OR_SPACE)
    for unsafe in "\t\r\n":  # urlsplit drops these anywhere
        text = text.replace(unsafe, "")
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else ""


def _checked_object_uri(source: str) -> str:
    """``source`` when it names one object (``s3://bucket/key``), else ``INVALID_SOURCE``."""
    try:
        bucket, key = split_s3(source)
    except ValueError as exc:
        raise RowError(ErrorCode.INVALID_SOURCE, f"not an object URI: {exc}") from exc
    if not bucket or not key or key.endswith("/"):
        raise RowError(ErrorCode.INVALID_SOURCE, f"not an object URI: {source}")
    return source


def resolve_path(source: str, base_dir: str) -> str:
    """A local path row as an absolute path (or ``s3://`` URI beside an S3 manifest)."""
    if is_s3(base_dir):
        if os.path.isabs(source):
            raise RowError(ErrorCode.INVALID_SOURCE, "absolute paths need a local manifest")
        folder = split_s3(base_dir)[1].rstrip("/")
        joined = posixpath.normpath(posixpath.join(folder, source))
        if (folder and not joined.startswith(folder + "/")) or joined.startswith(".."):
            raise RowError(
                ErrorCode.PATH_TRAVERSAL, f"{source} points outside the manifest's folder"
            )
        return f"s3://{split_s3(base_dir)[0]}/{joined}"
    if "\x00" in source:
        raise RowError(ErrorCode.INVALID_SOURCE, "path contains a NUL byte")
    path = Path(source)
    if path.is_absolute():
        return str(path)
    base = Path(base_dir).resolve()
    resolved = (base / path).resolve()
    if not resolved.is_relative_to(base):
        raise RowError(ErrorCode.PATH_TRAVERSAL, f"{source} points outside the manifest's folder")
    return str(resolved)


class LocalPaths:
    """:func:`resolve_path` for many rows of one manifest: the same results, fewer syscalls.

    A plain relative path (no ``.``/``..``/empty parts) resolves as its folder's real path,
    cached per folder, plus its last part, unless that part is a symbolic link: then, and for
    every other spelling, the row goes through :func:`resolve_path` itself.
    """

    def __init__(self, base_dir: str) -> None:
        self._local = not is_s3(base_dir)
        self._base = str(Path(base_dir).resolve()) if self._local else ""
        self._inside = self._base.rstrip("/") + "/"
        self._folders: dict[str, str] = {}

    def resolve(self, source: str, base_dir: str) -> str:
        """:func:`resolve_path` of ``source``."""
        if not self._local or "\x00" in source or source.startswith("/"):
            return resolve_path(source, base_dir)
        folder, _, name = source.rpartition("/")
        parts = source.split("/")
        if "" in parts or "." in parts or ".." in parts:
            return resolve_path(source, base_dir)
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = (
                os.path.realpath(os.path.join(self._base, folder)) if folder else self._base
            )
        resolved = f"{real}/{name}" if real != "/" else f"/{name}"
        if os.path.islink(resolved):
            return resolve_path(source, base_dir)
        if resolved != self._base and not resolved.startswith(self._inside):
            raise RowError(
                ErrorCode.PATH_TRAVERSAL, f"{source} points outside the manifest's folder"
            )
        return resolved


def check_file_name(name: str) -> str:
    """``name`` stripped, when MORI can be sent it; else ``RowError``."""
    name = name.strip()
    if not name or name in (".", ".."):
        raise RowError(ErrorCode.INVALID_FILE_NAME, "no file name (set the 'file_name' column)")
    if any(ord(ch) < 32 or ch in '/\\"' for ch in name):
        raise RowError(
            ErrorCode.INVALID_FILE_NAME, f"file name {name!r} has control or path characters"
        )
    if len(name.encode("utf-8")) > MAX_FILE_NAME_BYTES:
        raise RowError(
            ErrorCode.FILE_NAME_TOO_LONG, f"file name is over {MAX_FILE_NAME_BYTES} bytes in UTF-8"
        )
    ext = posixpath.splitext(name)[1].lstrip(".").lower()
    if ext not in ALLOWED_EXTENSIONS:
        raise RowError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"extension '.{ext}' is not accepted by MORI "
            f"(allowed: {', '.join(sorted(ALLOWED_EXTENSIONS))})"
            if ext
            else f"file name {name!r} has no extension",
        )
    return name
