"""Fixtures for the report tests: the synthetic audit and a bucket for it on S3."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from mori.report import Report, build_report, load_audit
from tests.support.s3 import S3

from .helpers import write_local

TODAY = date(2026, 3, 2)


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    """The synthetic audit (three runs over two days, plus an older-schema partition)."""
    return write_local(tmp_path, old=False)


@pytest.fixture
def report(audit: Path) -> Report:
    return build_report(load_audit(str(audit)))


@pytest.fixture
def s3_bucket(s3: S3) -> str:
    """A fresh bucket on the session's S3 server (tests/support/s3.py)."""
    return s3.bucket
