"""Fixtures for the batch tests: a ledger in tmp_path, fake time, storage (S3 comes from
tests/support/s3.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mori.batch.ledger import Ledger
from mori.batch.storage import Storage
from tests.support.clock import FakeTime


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(tmp_path / "audit" / "ledger.sqlite")
    yield led
    led.close()


@pytest.fixture
def storage() -> Storage:
    return Storage()
