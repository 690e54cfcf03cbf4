"""The emulator's object storage: uploaded bytes and result archives, in S3 via boto3."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from mori.emulator.s3server import s3_client

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class Storage:
    """A thin wrapper around one S3 bucket."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    @classmethod
    def connect(cls, endpoint_url: str | None, bucket: str) -> Storage:
        """Storage on ``bucket`` at ``endpoint_url``; the bucket is created if missing."""
        storage = cls(s3_client(endpoint_url), bucket)
        storage.ensure_bucket()
        return storage

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._client.create_bucket(Bucket=self.bucket)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key``."""
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key`` (``KeyError`` when there are none)."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise KeyError(key) from exc
            raise
        body: bytes = response["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return False
            raise
        return True


def _error_code(exc: ClientError) -> str:
    """The S3 error code of a botocore error."""
    return str(exc.response.get("Error", {}).get("Code", ""))
