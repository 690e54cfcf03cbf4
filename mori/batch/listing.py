"""A folder or an ``s3://`` prefix listed as the images of a run: streamed, filtered, in pages.

:func:`pages` yields the objects below a :class:`SourceSpec` a page at a time: S3 through
``list_objects_v2`` (one request per page of up to 1,000 keys), a local folder through an
``os.scandir`` walk. Nothing holds the whole listing: a page is made, handed on, and dropped.

What is listed: every object whose path below the source matches one of ``include`` (``fnmatch``
globs, case-sensitive, ``*`` crossing folders; without any, every name with an extension MORI
accepts, in any case), matches none of ``exclude``, and was modified at or after
``modified_since`` (when given). Folders in ``skip`` (the run's own outputs and audit, when they
lie below the source) are never listed, nor are symbolic links, S3 folder markers (keys ending in
``/``) or hidden folders of a local walk (``.name``).

A source that cannot be listed raises :class:`~mori.batch.manifest.ManifestError`
(``SOURCE_NOT_FOUND``, ``SOURCE_UNREADABLE``): one clear line, as for a bad manifest.
"""

from __future__ import annotations

import itertools
import os
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from mori.batch.codes import ErrorCode
from mori.batch.manifest import ManifestError
from mori.batch.storage import Storage, absolute, is_s3, split_s3
from mori.models import ALLOWED_EXTENSIONS

__all__ = ["PAGE_SIZE", "ListedObject", "SourceSpec", "check_source", "pages", "source_root"]

#: Objects per page: S3's largest ``list_objects_v2`` page, and the local walk's batch.
PAGE_SIZE = 1000


def source_root(uri: str) -> str:
    """The source as stored and shown: an absolute folder, or ``s3://bucket/prefix/``."""
    if not is_s3(uri):
        return absolute(uri)
    bucket, prefix = split_s3(uri)
    return f"s3://{bucket}/{prefix.rstrip('/') + '/' if prefix.strip('/') else ''}"


@dataclass(frozen=True)
class SourceSpec:
    """What to list: the source, its filters, and the folders never listed."""

    uri: str  # as :func:`source_root` gives it
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    modified_since: datetime | None = None
    skip: tuple[str, ...] = ()

    def wanted(self, relative: str, modified: datetime) -> bool:
        """``True`` when an object at ``relative`` (below the source) is to be listed."""
        if self.include:
            if not any(fnmatchcase(relative, glob) for glob in self.include):
                return False
        elif posixpath.splitext(relative)[1].lstrip(".").lower() not in ALLOWED_EXTENSIONS:
            return False
        if any(fnmatchcase(relative, glob) for glob in self.exclude):
            return False
        since = self.modified_since
        return since is None or modified >= (since if since.tzinfo else since.replace(tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One object of the listing."""

    location: str  # the s3:// URI or the absolute path
    relative: str  # below the source, '/'-separated
    size: int
    version: str  # the S3 ETag, or the file's mtime in nanoseconds
    modified: datetime


def pages(
    spec: SourceSpec, storage: Storage, page_size: int = PAGE_SIZE
) -> Iterator[list[ListedObject]]:
    """The listed objects, a page (of at most ``page_size``) at a time; S3 in key order, a
    local folder in name order within each folder.

    The first page is listed before this returns, so a source that cannot be listed at all
    raises :class:`ManifestError` here; a later page that fails raises it while iterating.
    """
    objects = _s3_objects(spec, storage, page_size) if is_s3(spec.uri) else _local_files(spec)
    listed = _paged(objects, page_size)
    first = next(listed, None)
    return itertools.chain([first] if first else [], listed)


def check_source(uri: str, storage: Storage) -> None:
    """Raise :class:`ManifestError` unless the source (as :func:`source_root` gives it) can be
    listed: a local folder that exists, or a prefix of a bucket that exists (one request)."""
    if is_s3(uri):
        bucket, prefix = split_s3(uri)
        first = storage.s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"MaxItems": 1, "PageSize": 1}
        )
        for _ in _s3_pages(first, uri):
            break
    else:
        _check_folder(uri)


def _check_folder(uri: str) -> None:
    """``SOURCE_NOT_FOUND`` unless ``uri`` is a local folder."""
    if not Path(uri).is_dir():
        reason = "is not a folder" if Path(uri).exists() else "not found"
        raise ManifestError(ErrorCode.SOURCE_NOT_FOUND, f"source folder {reason}: {uri}")


def _paged(objects: Iterable[ListedObject], page_size: int) -> Iterator[list[ListedObject]]:
    """``objects`` in lists of ``page_size`` (the last one shorter)."""
    page: list[ListedObject] = []
    for obj in objects:
        page.append(obj)
        if len(page) >= page_size:
            yield page
            page = []
    if page:
        yield page


def _s3_objects(spec: SourceSpec, storage: Storage, page_size: int) -> Iterator[ListedObject]:
    """The wanted objects below an ``s3://`` prefix, one ``list_objects_v2`` page at a time."""
    bucket, prefix = split_s3(spec.uri)
    skip = tuple(split_s3(s)[1].rstrip("/") + "/" for s in spec.skip if _below(s, spec.uri))
    paginator = storage.s3.get_paginator("list_objects_v2")
    listing = paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    )
    for page in _s3_pages(listing, spec.uri):
        for entry in page.get("Contents", []):
            key: str = entry["Key"]
            if key.endswith("/") or key.startswith(skip):
                continue
            relative = key[len(prefix) :]
            modified: datetime = entry["LastModified"]
            if spec.wanted(relative, modified):
                yield ListedObject(
                    f"s3://{bucket}/{key}", relative, int(entry["Size"]), entry["ETag"], modified
                )


def _s3_pages(listing: Iterable[dict[str, Any]], uri: str) -> Iterator[dict[str, Any]]:
    """The pages of a listing; a missing bucket or refused listing as :class:`ManifestError`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield from listing
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            raise ManifestError(
                ErrorCode.SOURCE_NOT_FOUND, f"source bucket not found: {uri}"
            ) from exc
        raise ManifestError(
            ErrorCode.SOURCE_UNREADABLE, f"cannot list {uri}: {code or exc}"
        ) from exc
    except BotoCoreError as exc:
        raise ManifestError(ErrorCode.SOURCE_UNREADABLE, f"cannot list {uri}: {exc}") from exc


def _local_files(spec: SourceSpec) -> Iterator[ListedObject]:
    """The wanted files below a local folder: a depth-first ``os.scandir`` walk."""
    _check_folder(spec.uri)
    root = Path(spec.uri)
    skip = {absolute(s) for s in spec.skip if not is_s3(s)}
    folders = [str(root)]
    while folders:
        folder = folders.pop()
        for entry in _entries(folder):
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if not entry.name.startswith(".") and entry.path not in skip:
                    folders.append(entry.path)
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            relative = os.path.relpath(entry.path, root).replace(os.sep, "/")
            if spec.wanted(relative, modified):
                yield ListedObject(
                    entry.path, relative, stat.st_size, str(stat.st_mtime_ns), modified
                )


def _entries(folder: str) -> list[os.DirEntry[str]]:
    """One folder's entries: files by name, then its folders in reverse (so that the walk's
    stack visits them by name)."""
    try:
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda e: e.name)
    except PermissionError as exc:
        raise ManifestError(
            ErrorCode.SOURCE_UNREADABLE, f"permission denied listing {folder}"
        ) from exc
    folders = [e for e in entries if e.is_dir(follow_symlinks=False)]
    return [e for e in entries if not e.is_dir(follow_symlinks=False)] + folders[::-1]


def _below(location: str, source: str) -> bool:
    """``True`` when ``location`` is an S3 prefix inside the ``s3://`` source."""
    return is_s3(location) and (location.rstrip("/") + "/").startswith(source)
