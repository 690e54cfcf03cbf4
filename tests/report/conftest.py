"""Fixtures for the report tests: the synthetic audit, a Prefect harness, a moto S3 endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from mori.report import Report, build_report, load_audit

from .helpers import write_local

TODAY = date(2026, 3, 2)


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    """The synthetic audit (three runs over two days, plus an older-schema partition)."""
    return write_local(tmp_path, old=False)


@pytest.fixture
def report(audit: Path) -> Report:
    return build_report(load_audit(str(audit)))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto S3 server for the session, on a free port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server, with the AWS variables pointing at it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"report-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return bucket
