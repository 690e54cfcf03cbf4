"""Read and write bytes at a URI: a local path or ``s3://bucket/key``.

S3 goes through boto3 with the standard AWS variables (``AWS_ENDPOINT_URL`` for any
S3-compatible store). Writes are atomic: a local file is written beside its target and renamed
over it; an S3 ``PutObject`` is atomic by nature. No reader ever sees a partial file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit


def is_s3(uri: str) -> bool:
    """``True`` for ``s3://`` URIs."""
    return uri.startswith("s3://")


def absolute(uri: str) -> str:
    """``uri`` as stored and shown: an ``s3://`` URI unchanged, a local path made absolute
    (``~`` expanded, symbolic links resolved)."""
    return uri if is_s3(uri) else str(Path(uri).expanduser().resolve())


def link(uri: str) -> str:
    """A clickable form of ``uri``: ``file://`` for a local path."""
    return uri if is_s3(uri) else Path(absolute(uri)).as_uri()


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")``."""
    parts = urlsplit(uri)
    return parts.netloc, parts.path.lstrip("/")


def join(base: str, *parts: str) -> str:
    """Join path parts onto a local path or an S3 URI."""
    if is_s3(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))


def parent(uri: str) -> str:
    """The folder holding ``uri``."""
    if is_s3(uri):
        return uri.rsplit("/", 1)[0]
    return str(Path(uri).resolve().parent)


class NotFound(FileNotFoundError):
    """The object or file does not exist."""


class Storage:
    """Bytes in and out of local paths and S3 URIs (thread-safe)."""

    def __init__(self, s3_client: Any | None = None) -> None:
        self._s3 = s3_client
        self._lock = threading.Lock()

    @property
    def s3(self) -> Any:
        """A boto3 S3 client, made on first use from the environment."""
        with self._lock:
            if self._s3 is None:
                import boto3
                from botocore.config import Config

                # boto3 reads AWS_ENDPOINT_URL (any S3-compatible store) and the credentials
                self._s3 = boto3.client(
                    "s3", config=Config(max_pool_connections=64, retries={"mode": "standard"})
                )
            return self._s3

    def read_bytes(self, uri: str) -> bytes:
        """The bytes at ``uri``; :class:`NotFound` if there are none."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            try:
                return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            except self.s3.exceptions.NoSuchKey as exc:
                raise NotFound(uri) from exc
            except self.s3.exceptions.NoSuchBucket as exc:
                raise NotFound(uri) from exc
        try:
            return Path(uri).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(uri) from exc

    def open(self, uri: str) -> IO[bytes]:
        """The bytes at ``uri`` as a stream to read from the start (close it when done); a local
        file is seekable, an S3 object is read as it downloads. :class:`NotFound` if none."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            try:
                body: IO[bytes] = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
            except (self.s3.exceptions.NoSuchKey, self.s3.exceptions.NoSuchBucket) as exc:
                raise NotFound(uri) from exc
            return body
        try:
            return Path(uri).open("rb")
        except FileNotFoundError as exc:
            raise NotFound(uri) from exc

    def put_file(self, uri: str, local: Path, content_type: str | None = None) -> None:
        """Copy the local file ``local`` to ``uri`` atomically: beside a local target and renamed
        over it, or in one upload (in parts when it is large) to S3."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            extra = {"ExtraArgs": {"ContentType": content_type}} if content_type else {}
            self.s3.upload_file(str(local), bucket, key, **extra)
            return
        with local.open("rb") as source:
            _replace(Path(uri), lambda fh: shutil.copyfileobj(source, fh, 1 << 20))

    def size(self, uri: str) -> int:
        """The size in bytes of the object at ``uri``."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            try:
                return int(self.s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
            except Exception as exc:  # botocore raises a generic ClientError on HEAD 404
                raise NotFound(uri) from exc
        try:
            return Path(uri).stat().st_size
        except FileNotFoundError as exc:
            raise NotFound(uri) from exc

    def exists(self, uri: str) -> bool:
        """``True`` when something is stored at ``uri``."""
        try:
            self.size(uri)
        except NotFound:
            return False
        return True

    def write_bytes(self, uri: str, data: bytes, content_type: str | None = None) -> None:
        """Write ``data`` at ``uri`` atomically (creating local folders as needed)."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            extra = {"ContentType": content_type} if content_type else {}
            self.s3.put_object(Bucket=bucket, Key=key, Body=data, **extra)
            return
        _replace(Path(uri), lambda fh: fh.write(data))

    def list(self, prefix_uri: str) -> list[str]:
        """Every file (or object) below ``prefix_uri``, as URIs, sorted."""
        if is_s3(prefix_uri):
            bucket, prefix = split_s3(prefix_uri)
            out: list[str] = []
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                out.extend(f"s3://{bucket}/{obj['Key']}" for obj in page.get("Contents", []))
            return sorted(out)
        root = Path(prefix_uri)
        if not root.exists():
            return []
        return sorted(str(p) for p in root.rglob("*") if p.is_file())


def _replace(target: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``target`` atomically: ``write`` fills a temp file beside it (synced to disk), which
    is then renamed over it (creating folders as needed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs and reports are meant to be read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
