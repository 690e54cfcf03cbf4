"""``migrate_ledger`` and ``mori-pipeline ledger migrate``: SQLite into PostgreSQL and back,
verified, idempotent, never into a different non-empty ledger."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from deployments.cli import main
from mori import keys
from mori.batch.ledger import (
    ORDER_STATUSES,
    Ledger,
    LedgerOptions,
    RetryPolicy,
    Slot,
    SourceObject,
    TransferError,
    migrate_ledger,
)

SECRET = "migr4te-Pw"
SOURCE_OBJECT = SourceObject("s3://in/a.jpg", 7, '"e-1"', "sha256:" + "c" * 64, 8, 6, "JPEG")


def slots_for(ikeys: list[str], files: bool) -> list[Slot]:
    if files:
        return [
            Slot(i, k, f"f{i}.jpg", f"/data/f{i}.jpg", 10 + i, 20 + i) for i, k in enumerate(ikeys)
        ]
    return [Slot(i, k, f"u{i}.jpg", f"https://h/{k}.jpg") for i, k in enumerate(ikeys)]


def fill(ledger: Ledger) -> None:
    """Orders in every status, images in every status, replaced orders, webhook events."""
    for n, status in enumerate([*ORDER_STATUSES, "failed"]):
        ikeys = [keys.image_key(f"sha256:{n:02d}{i:062d}") for i in range(3)]
        files = n % 2 == 0
        fps = {k: (f"fp:{k}" if files else f"url:https://h/{k}.jpg") for k in ikeys}
        key = keys.order_key(ikeys)
        ledger.plan(key, "upload" if files else "url", slots_for(ikeys, files), fps, 0, f"/out/{n}")
        if status == "failed":
            ledger.image_done(ikeys[0], "s3://out/0.jpg", "a" * 64)
            ledger.fail_order(key, "PROCESSING_FAILED", "the filter failed: ünïcode ✓")
        elif status != "planned":
            ledger.advance(key, status, order_id=f"ord-{n}", order_name=f"batch-{n}")
        if status == "downloaded":
            ledger.image_done(ikeys[0], "s3://out/a.jpg", "b" * 64)
            ledger.image_done(ikeys[1], None, None, "DIMENSIONS_MISMATCH", "10x20 != 11x20")
    doomed = [keys.image_key(f"sha256:{'d' * 63}{i}") for i in range(2)]
    ledger.plan_many([("k-doomed", "url", slots_for(doomed, False), 0)], {}, url_fingerprints=True)
    ledger.advance("k-doomed", "created", order_id="ord-doomed")
    ledger.replace("k-doomed", "k-doomed-1", slots_for(doomed, False), 1)  # abandoned
    payload = {"eventId": "e1", "data": {"orderId": "ord-4", "status": "complete", "x": "%s ?"}}
    ledger.record_event("e1", "ORDER.ANTI_AI.PROCESSED", "ord-4", "complete", payload)
    ledger.record_event("e2", "ORDER.PROCESSED", "ord-5", "failed", {"eventId": "e2"})
    ledger.remember_source_objects([SOURCE_OBJECT])


def dump(ledger: Ledger) -> list[Any]:
    """Everything the ledger holds, through its public methods."""
    orders = ledger.orders()
    slots = [
        (o.order_key, *dataclasses.astuple(s)) for o in orders for s in ledger.slots(o.order_key)
    ]
    images = ledger.images({row[2] for row in slots})
    objects = ledger.source_objects([SOURCE_OBJECT.location])
    return [orders, slots, sorted(images.items()), ledger.events(), ledger.open_orders(), objects]


@pytest.fixture
def source(tmp_path: Path) -> str:
    path = tmp_path / "audit" / "ledger.sqlite"
    with Ledger(path) as ledger:
        fill(ledger)
    return str(path)


def test_sqlite_to_postgres_round_trip(source: str, postgres_url: str, tmp_path: Path) -> None:
    report = migrate_ledger(source, postgres_url)
    assert not report.already_migrated
    rows = {t.table: t.rows for t in report.tables}
    assert rows == {
        "orders": 9,
        "order_images": 25,
        "images": 23,
        "webhook_events": 2,
        "source_objects": 1,
    }
    back = tmp_path / "back.sqlite"  # and PostgreSQL into SQLite gives the same ledger again
    assert migrate_ledger(postgres_url, back).tables == report.tables
    with Ledger(source) as before, Ledger(postgres_url) as after, Ledger(back) as again:
        expected = dump(before)
        assert dump(after) == expected
        assert dump(again) == expected
        assert {o.status for o in after.orders()} == {*ORDER_STATUSES, "failed", "abandoned"}
        assert after.image_statuses() == before.image_statuses()
        # the copies go on working: a new order is planned after the copied ones
        for ledger in (after, again):
            ikeys = [keys.image_key("sha256:" + "f" * 64)]
            new = [("k-next", "url", slots_for(ikeys, False), 0)]
            ledger.plan_many(new, {}, url_fingerprints=True)
            assert [o.order_key for o in ledger.orders()][-1] == "k-next"


def test_migrating_again_reports_already_migrated(source: str, postgres_url: str) -> None:
    first = migrate_ledger(source, postgres_url)
    second = migrate_ledger(source, postgres_url)
    assert second.already_migrated and second.tables == first.tables
    with Ledger(postgres_url) as target:
        assert target.order_count() == 9 and len(target.events()) == 2


def test_a_different_non_empty_target_is_refused(source: str, postgres_url: str) -> None:
    with Ledger(postgres_url) as target:
        target.record_event("other", "ORDER.PROCESSED", "ord-x", "complete", {})
    with pytest.raises(TransferError, match="already holds a different ledger") as raised:
        migrate_ledger(source, postgres_url)
    assert "webhook_events: 2 rows in the source, 1 in the target" in str(raised.value)
    assert "orders: 9 rows in the source, 0 in the target" in str(raised.value)
    with Ledger(postgres_url) as target:
        assert target.order_count() == 0 and len(target.events()) == 1


def test_a_ledger_is_not_migrated_into_itself(source: str) -> None:
    with pytest.raises(TransferError, match="same ledger"):
        migrate_ledger(source, source)


def test_a_missing_source_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    missing, target = tmp_path / "nope" / "ledger.sqlite", tmp_path / "target.sqlite"
    with pytest.raises(TransferError, match="no ledger at"):
        migrate_ledger(str(missing), str(target))
    assert not missing.exists() and not target.exists()


def test_the_cli_copies_verifies_and_says_what_next(
    source: str, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = postgres_url.replace("postgres@", f"postgres:{SECRET}@")
    assert main(["ledger", "migrate", "--from", source, "--to", target]) == 0
    out = capsys.readouterr().out
    assert "copied and verified" in out and "MORI_LEDGER_URL=" in out
    assert "orders" in out and "9 rows" in out and "keep runs stopped" in out
    assert main(["ledger", "migrate", "--from", source, "--to", target]) == 0
    again = capsys.readouterr()
    assert "already migrated" in again.out
    assert SECRET not in out + again.out + again.err
    assert "postgres:***@" in out


def test_the_cli_refuses_a_different_target(
    source: str, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.sqlite"
    with Ledger(other) as ledger:
        ledger.record_event("x", "ORDER.PROCESSED", "o", "complete", {})
    assert main(["ledger", "migrate", "--from", source, "--to", str(other)]) == 1
    err = capsys.readouterr().err
    assert "already holds a different ledger" in err and "migrate into an empty database" in err


def test_the_cli_reports_an_unreachable_target_without_its_password(
    source: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = LedgerOptions(retry=RetryPolicy(attempts=1, connect_timeout=0.5))
    monkeypatch.setattr("mori.batch.ledger.migrate_ledger", lambda s, t: migrate_ledger(s, t, fast))
    target = f"postgresql://mori:{SECRET}@127.0.0.1:1/ledger?connect_timeout=1"
    assert main(["ledger", "migrate", "--from", source, "--to", target]) == 1
    captured = capsys.readouterr()
    assert "error:" in captured.err
    assert SECRET not in captured.out + captured.err
