"""The SQLite store's own behaviour: WAL, the background checkpoint of a bulk intent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mori.batch.ledger import Ledger, Slot
from mori.batch.ledger._sqlite import SqliteStore

URL_A = [Slot(i, f"a{i}", f"a{i}.jpg", f"https://h/a{i}.jpg") for i in range(3)]
URL_B = [Slot(i, f"b{i}", f"b{i}.jpg", f"https://h/b{i}.jpg") for i in range(2)]
FINGERPRINTS = {s.image_key: "url:" + s.location for s in URL_A + URL_B}


@pytest.mark.parametrize("nested", [False, True])
def test_bulk_intent_checkpoints_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nested: bool
) -> None:
    monkeypatch.setattr("mori.batch.ledger.intent.BULK_ROWS", 5)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    store = ledger.store
    assert isinstance(store, SqliteStore)
    if nested:
        with ledger.exclusive():
            ledger.plan_many([("oa", "url", URL_A, 0), ("ob", "url", URL_B, 0)], FINGERPRINTS)
    else:
        ledger.plan_many([("oa", "url", URL_A, 0), ("ob", "url", URL_B, 0)], FINGERPRINTS)
    checkpoint = store.background_checkpoint
    assert checkpoint is not None  # the commit left the checkpoint to a thread
    checkpoint.join()
    assert store.read(lambda tx: tx.value("PRAGMA wal_autocheckpoint")) == 1000  # restored
    assert len(ledger.images(s.image_key for s in URL_A + URL_B)) == 5
    ledger.close()


def test_a_small_intent_checkpoints_as_usual(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.plan_many([("oa", "url", URL_A, 0)], FINGERPRINTS)
        store = ledger.store
        assert isinstance(store, SqliteStore) and store.background_checkpoint is None


def test_the_file_is_in_wal_mode_and_syncs_fully(tmp_path: Path) -> None:
    with Ledger(tmp_path / "deep" / "folder" / "ledger.sqlite") as ledger:
        store = ledger.store
        assert store.read(lambda tx: tx.value("PRAGMA synchronous")) == 2  # FULL
    db = sqlite3.connect(tmp_path / "deep" / "folder" / "ledger.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
