"""The ledger fixture: one per backend (``ledger_url`` from tests/support/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mori.batch.ledger import Ledger


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """A fresh ledger: SQLite, then PostgreSQL."""
    led = Ledger(ledger_url)
    yield led
    led.close()
