"""One local S3 endpoint (moto's server) for the whole test session, and a fresh bucket per
test with the standard AWS variables pointing at it. A pytest plugin (see tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from mori.batch.storage import Storage
from mori.emulator.s3server import LocalS3


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalS3]:
    """moto's S3 server on a free loopback port, shared by every test of the session."""
    with LocalS3() as server:
        yield server


@pytest.fixture(scope="session")
def moto_endpoint(s3_server: LocalS3) -> str:
    """The session S3 server's URL."""
    return s3_server.endpoint_url


@dataclass
class S3:
    """A test's bucket on the session S3 server, and a boto3 client and a Storage for it."""

    endpoint: str
    bucket: str
    client: Any
    storage: Storage

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"


def aws_environment(endpoint: str, env: pytest.MonkeyPatch) -> None:
    """Point boto3 (and so the pipeline) at ``endpoint`` with dummy credentials."""
    env.setenv("AWS_ENDPOINT_URL", endpoint)
    env.setenv("AWS_ACCESS_KEY_ID", "testing")
    env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    env.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A fresh bucket on the session's S3 server, with the AWS variables pointing at it."""
    aws_environment(moto_endpoint, monkeypatch)
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3(moto_endpoint, bucket, client, Storage())
