"""The ledger on both backends: intent, progress, replacement, outcomes and webhook events."""

from __future__ import annotations

import json
import threading
from datetime import datetime

import pytest

from mori import keys
from mori.batch.ledger import ORDER_STATUSES, TERMINAL, ImageOutcome, Ledger, Slot
from mori.batch.ledger import images as images_repo


def image_keys(n: int, salt: str = "") -> list[str]:
    return [keys.image_key(f"sha256:{salt}{i:064d}") for i in range(n)]


def slots_for(ikeys: list[str]) -> list[Slot]:
    return [Slot(i, k, f"f{i}.jpg", f"/data/f{i}.jpg", 10 + i, 20 + i) for i, k in enumerate(ikeys)]


def fps(ikeys: list[str]) -> dict[str, str]:
    return {k: f"fp:{k}" for k in ikeys}


def plan(ledger: Ledger, ikeys: list[str], kind: str = "upload", generation: int = 0) -> str:
    key = keys.order_key(ikeys, generation)
    ledger.plan(key, kind, slots_for(ikeys), fps(ikeys), generation)
    return key


def parse(ts: str | None) -> datetime:
    assert ts is not None
    parsed = datetime.fromisoformat(ts)
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
    return parsed


def test_plan_records_the_order_its_slots_and_its_images(ledger: Ledger) -> None:
    ik = image_keys(3)
    key = plan(ledger, ik)
    rec = ledger.order(key)
    assert (rec.status, rec.kind, rec.generation, rec.order_id) == ("planned", "upload", 0, None)
    parse(rec.planned_at)
    assert rec.created_at is None
    assert ledger.slots(key) == slots_for(ik)
    images = ledger.images(ik)
    assert set(images) == set(ik)
    assert all(r.status == "planned" and r.order_key == key for r in images.values())
    assert {k: r.fingerprint for k, r in images.items()} == fps(ik)


def test_plan_is_idempotent(ledger: Ledger) -> None:
    ik = image_keys(4)
    key = plan(ledger, ik)
    first = ledger.order(key)
    ledger.advance(key, "created", order_id="ord-1")
    plan(ledger, ik)  # a rerun replaying the same intent
    again = ledger.order(key)
    assert again.planned_at == first.planned_at
    assert (again.status, again.order_id) == ("created", "ord-1")  # not reset to planned
    assert ledger.slots(key) == slots_for(ik)  # no duplicated positions
    assert len(ledger.open_orders()) == 1


def test_plan_does_not_reclaim_finished_images(ledger: Ledger) -> None:
    ik = image_keys(2)
    first = plan(ledger, ik)
    ledger.image_done(ik[0], "out/0.jpg", "abc")
    other = plan(ledger, [ik[0], *image_keys(1, "x")])
    images = ledger.images(ik)
    assert images[ik[0]].status == "processed"
    assert images[ik[0]].order_key == first
    assert other != first


def test_unknown_order_raises_key_error(ledger: Ledger) -> None:
    with pytest.raises(KeyError):
        ledger.order("nope")
    assert ledger.images(["nope"]) == {}
    assert ledger.slots("nope") == []


def test_images_lookup_handles_many_keys(ledger: Ledger) -> None:
    ik = image_keys(1_234)
    for start in range(0, len(ik), 100):
        plan(ledger, ik[start : start + 100])
    found = ledger.images([*ik, *image_keys(5, "unknown")])
    assert set(found) == set(ik)


@pytest.mark.parametrize("share", [0.02, 0.2, 0.3, 1.0])
def test_images_lookup_by_probe_or_scan_agree(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, share: float
) -> None:
    """Few keys are probed, many scanned (1/4 of the table or more): the same records."""
    ik = image_keys(400)
    for start in range(0, len(ik), 100):
        plan(ledger, ik[start : start + 100])
    ledger.image_done(ik[3], "out/3.jpg", "f" * 64)
    ledger.image_done(ik[5], None, None, "SOURCE_GONE", "gone")
    asked = [*ik[: int(len(ik) * share)], *image_keys(3, "unknown")]
    found = ledger.images(iter(asked))  # any iterable, once
    monkeypatch.setattr(images_repo, "SCAN_SHARE", 10**9)  # always scan (SQLite)
    assert ledger.images(asked) == found
    monkeypatch.setattr(images_repo, "SCAN_SHARE", 0)  # never scan
    assert ledger.images(asked) == found
    assert set(found) == set(ik[: int(len(ik) * share)])
    assert found[ik[3]].status == "processed" and found[ik[3]].output_uri == "out/3.jpg"
    assert (found[ik[5]].status, found[ik[5]].error_code) == ("failed", "SOURCE_GONE")
    assert found[ik[0]] == (ik[0], f"fp:{ik[0]}", "planned", found[ik[0]].order_key, *[None] * 4)


@pytest.mark.parametrize("status", ["created", "uploaded", "confirmed", "downloaded"])
def test_advance_stamps_its_timestamp(ledger: Ledger, status: str) -> None:
    key = plan(ledger, image_keys(1))
    before = ledger.order(key)
    ledger.advance(key, status)
    rec = ledger.order(key)
    assert rec.status == status
    assert parse(getattr(rec, f"{status}_at")) >= parse(before.planned_at)
    assert rec.planned_at == before.planned_at


def test_advance_to_complete_stamps_completed_at(ledger: Ledger) -> None:
    key = plan(ledger, image_keys(1))
    ledger.advance(key, "complete")
    assert ledger.order(key).completed_at is not None


def test_advance_sets_fields_and_keeps_explicit_stamps(ledger: Ledger) -> None:
    key = plan(ledger, image_keys(1))
    ledger.advance(key, "created", order_id="ord-9", order_name="batch-1")
    ledger.advance(key, "confirmed", confirmed_at="2026-01-02T03:04:05.000+00:00")
    rec = ledger.order(key)
    assert (rec.order_id, rec.order_name) == ("ord-9", "batch-1")
    assert rec.confirmed_at == "2026-01-02T03:04:05.000+00:00"
    assert rec.created_at is not None


def test_reached_follows_the_status_order(ledger: Ledger) -> None:
    key = plan(ledger, image_keys(1))
    for n, status in enumerate(ORDER_STATUSES):
        ledger.advance(key, status)
        rec = ledger.order(key)
        assert [rec.reached(s) for s in ORDER_STATUSES] == [
            i <= n for i in range(len(ORDER_STATUSES))
        ]


@pytest.mark.parametrize("terminal", ["failed", "abandoned"])
def test_failed_or_abandoned_orders_reach_nothing(ledger: Ledger, terminal: str) -> None:
    key = plan(ledger, image_keys(1))
    ledger.advance(key, "confirmed")
    ledger.advance(key, terminal)
    assert not any(ledger.order(key).reached(s) for s in ORDER_STATUSES)


def test_fail_order_fails_only_planned_images(ledger: Ledger) -> None:
    ik = image_keys(3)
    key = plan(ledger, ik)
    ledger.image_done(ik[0], "out/0.jpg", "sha0")
    ledger.image_done(ik[1], None, None, "RESULT_MISSING", "no file")
    ledger.fail_order(key, "INVALID_REQUEST", "bad order")
    rec = ledger.order(key)
    assert (rec.status, rec.error_code, rec.error_message) == (
        "failed",
        "INVALID_REQUEST",
        "bad order",
    )
    images = ledger.images(ik)
    assert (images[ik[0]].status, images[ik[0]].error_code) == ("processed", None)
    assert (images[ik[1]].status, images[ik[1]].error_code) == ("failed", "RESULT_MISSING")
    assert (images[ik[2]].status, images[ik[2]].error_code) == ("failed", "INVALID_REQUEST")
    assert images[ik[2]].error_message == "bad order"
    assert key not in {o.order_key for o in ledger.open_orders()}


def test_replace_abandons_the_old_order_and_moves_its_images(ledger: Ledger) -> None:
    ik = image_keys(3)
    old = plan(ledger, ik)
    ledger.advance(old, "created", order_id="ord-old")
    ledger.image_done(ik[0], "out/0.jpg", "sha0")  # already done: must stay with the old order
    new = keys.order_key(ik, generation=1)
    assert new != old
    ledger.replace(old, new, slots_for(ik), generation=1)

    old_rec, new_rec = ledger.order(old), ledger.order(new)
    assert (old_rec.status, old_rec.replaced_by) == ("abandoned", new)
    assert (new_rec.status, new_rec.generation, new_rec.kind) == ("planned", 1, "upload")
    assert new_rec.order_id is None
    assert ledger.slots(new) == slots_for(ik)
    images = ledger.images(ik)
    assert images[ik[0]].order_key == old and images[ik[0]].status == "processed"
    assert all(images[k].order_key == new and images[k].status == "planned" for k in ik[1:])
    assert {k: r.fingerprint for k, r in images.items()} == fps(ik)
    assert [o.order_key for o in ledger.open_orders()] == [new]


def test_replace_keeps_the_kind_and_the_output_location(ledger: Ledger) -> None:
    ik = image_keys(2)
    old = keys.order_key(ik, 0)
    ledger.plan(old, "url", slots_for(ik), fps(ik), output_uri="s3://bucket/out")
    new = keys.order_key(ik, 1)
    ledger.replace(old, new, slots_for(ik), 1)
    assert ledger.order(new).kind == "url"
    assert ledger.order(new).output_uri == ledger.order(old).output_uri == "s3://bucket/out"


def test_the_output_location_is_the_first_plans(ledger: Ledger) -> None:
    ik = image_keys(2)
    key = keys.order_key(ik, 0)
    ledger.plan(key, "upload", slots_for(ik), fps(ik), output_uri="/data/first")
    ledger.plan(key, "upload", slots_for(ik), fps(ik), output_uri="/data/second")  # a rerun
    assert ledger.order(key).output_uri == "/data/first"
    assert ledger.order(plan(ledger, image_keys(1, "x"))).output_uri is None


def test_images_done_records_an_order_s_outcomes_together(ledger: Ledger) -> None:
    ik = image_keys(3)
    plan(ledger, ik)
    ledger.images_done([])  # nothing to record: no transaction
    ledger.images_done(
        [
            ImageOutcome(ik[0], "s3://out/0.jpg", "a" * 64),
            ImageOutcome(ik[2], None, None, "OUTPUT_INVALID", "cut short"),
        ]
    )
    got = ledger.images(ik)
    assert [got[k].status for k in ik] == ["processed", "planned", "failed"]
    assert (got[ik[0]].output_uri, got[ik[0]].output_sha256) == ("s3://out/0.jpg", "a" * 64)
    assert (got[ik[2]].error_code, got[ik[2]].error_message) == ("OUTPUT_INVALID", "cut short")


def test_image_done(ledger: Ledger) -> None:
    ik = image_keys(2)
    plan(ledger, ik)
    ledger.image_done(ik[0], "s3://out/a.jpg", "d" * 64)
    ledger.image_done(ik[1], None, None, "DIMENSIONS_MISMATCH", "10x20 != 11x20")
    a, b = (ledger.images(ik)[k] for k in ik)
    assert (a.status, a.output_uri, a.output_sha256, a.error_code) == (
        "processed",
        "s3://out/a.jpg",
        "d" * 64,
        None,
    )
    assert (b.status, b.output_uri, b.error_code, b.error_message) == (
        "failed",
        None,
        "DIMENSIONS_MISMATCH",
        "10x20 != 11x20",
    )


def test_record_event_dedupes_by_event_id(ledger: Ledger) -> None:
    payload = {"eventId": "e1", "data": {"orderId": "o1", "status": "complete"}}
    assert ledger.record_event("e1", "ORDER.PROCESSED", "o1", "complete", payload) is True
    assert ledger.record_event("e1", "ORDER.PROCESSED", "o1", "failed", payload) is False
    assert ledger.event_status("o1") == "complete"  # the duplicate changed nothing
    (event,) = ledger.events()
    assert (event.event_id, event.event_type, event.order_id, event.status) == (
        "e1",
        "ORDER.PROCESSED",
        "o1",
        "complete",
    )
    assert json.loads(event.payload) == payload
    assert ledger.events("o1") == [event]
    assert ledger.events("o2") == []


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], None),
        (["inProgress"], "inProgress"),
        (["inProgress", "complete"], "complete"),
        (["complete", "inProgress"], "complete"),
        (["failed", "inProgress"], "failed"),
        (["inProgress", "failed", "expired"], "failed"),
        (["failed", "complete"], "complete"),
    ],
)
def test_event_status_prefers_terminal_statuses(
    ledger: Ledger, statuses: list[str], expected: str | None
) -> None:
    for n, status in enumerate(statuses):
        ledger.record_event(f"e{n}", "ORDER.PROCESSED", "o1", status, {})
    ledger.record_event("other", "ORDER.PROCESSED", "o2", "failed", {})
    assert ledger.event_status("o1") == expected


def test_two_ledgers_on_one_database_see_each_others_writes(ledger_url: str) -> None:
    a, b = Ledger(ledger_url), Ledger(ledger_url)
    try:
        ik = image_keys(2)
        key = plan(a, ik)
        assert b.order(key).status == "planned"
        assert set(b.images(ik)) == set(ik)
        b.advance(key, "created", order_id="ord-1")
        assert a.order(key).order_id == "ord-1"
        assert b.record_event("e1", "ORDER.PROCESSED", "ord-1", "complete", {}) is True
        assert a.record_event("e1", "ORDER.PROCESSED", "ord-1", "complete", {}) is False
        assert a.event_status("ord-1") == "complete"
    finally:
        a.close()
        b.close()


def test_concurrent_event_recording_stores_each_event_once(ledger_url: str) -> None:
    ledgers = [Ledger(ledger_url) for _ in range(4)]
    results: list[bool] = []
    lock = threading.Lock()

    def deliver(led: Ledger) -> None:
        for n in range(25):
            new = led.record_event(f"e{n}", "ORDER.PROCESSED", f"o{n}", "complete", {})
            with lock:
                results.append(new)

    threads = [threading.Thread(target=deliver, args=(led,)) for led in ledgers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert results.count(True) == 25
        assert len(results) == 100
        assert len(ledgers[0].events()) == 25
    finally:
        for led in ledgers:
            led.close()


def test_open_orders(ledger: Ledger) -> None:
    keys_by_status = {}
    for n, status in enumerate([*ORDER_STATUSES, "failed", "abandoned"]):
        key = plan(ledger, image_keys(1, salt=f"s{n}"))
        if status != "planned":
            ledger.advance(key, status)
        keys_by_status[status] = key
    open_keys = [o.order_key for o in ledger.open_orders()]
    expected = {k for s, k in keys_by_status.items() if s not in TERMINAL}
    assert set(open_keys) == expected
    assert len(open_keys) == len(expected)
    assert open_keys == sorted(open_keys, key=lambda k: ledger.order(k).planned_at)


def test_ledger_survives_reopening(ledger_url: str) -> None:
    first = Ledger(ledger_url)
    ik = image_keys(2)
    key = plan(first, ik)
    first.advance(key, "confirmed")
    first.close()
    second = Ledger(ledger_url)
    try:
        assert second.order(key).status == "confirmed"
        assert set(second.images(ik)) == set(ik)
    finally:
        second.close()


def test_failed_transaction_rolls_back(ledger: Ledger) -> None:
    ik = image_keys(2)
    key = keys.order_key(ik)
    with pytest.raises(KeyError):
        ledger.plan(key, "upload", slots_for(ik), {ik[0]: "fp"})  # missing fingerprint
    with pytest.raises(KeyError):
        ledger.order(key)
    assert ledger.slots(key) == []
    plan(ledger, ik)  # the connection is usable again
    assert ledger.order(key).status == "planned"


def test_order_by_mori_order_id(ledger: Ledger) -> None:
    first = plan(ledger, image_keys(2))
    second = plan(ledger, image_keys(2, "b"), generation=1)
    ledger.advance(first, "created", order_id="ord-1")
    ledger.advance(second, "created", order_id="ord-2")
    assert ledger.order_by_id("ord-1") == ledger.order(first)
    assert ledger.order_by_id("ord-2") == ledger.order(second)
    assert ledger.order_by_id("ord-404") is None


def test_reopen_failed_images_for_a_retry(ledger: Ledger) -> None:
    ik = image_keys(3)
    old = plan(ledger, ik)
    replaced = keys.order_key(ik, 2)
    ledger.replace(old, replaced, slots_for(ik), 2)  # the images now sit in a generation-2 order
    ledger.image_done(ik[0], "out/0.jpg", "a" * 64)
    ledger.image_done(ik[1], None, None, "PROCESSING_FAILED", "the filter failed")
    other = plan(ledger, image_keys(1, "other"))
    ledger.image_done(image_keys(1, "other")[0], None, None, "OUTPUT_MISSING", "gone")

    assert ledger.reopen_failed([ik[0], ik[1]]) == 3  # above every order that held them
    records = ledger.images(ik)
    assert records[ik[1]][2:] == ("planned", replaced, None, None, None, None)  # error cleared
    assert records[ik[0]].status == "processed"  # only failed images are reopened
    assert ledger.images(image_keys(1, "other"))[image_keys(1, "other")[0]].status == "failed"
    assert ledger.order(other).generation == 0
    assert ledger.reopen_failed([]) == 1


def test_exclusive_blocks_nest_and_roll_back_as_one(ledger: Ledger) -> None:
    first, second = image_keys(2, "a"), image_keys(2, "b")
    with pytest.raises(RuntimeError), ledger.exclusive():
        plan(ledger, first)
        with ledger.exclusive():
            plan(ledger, second)
        assert ledger.order_count() == 2  # the block reads its own writes
        raise RuntimeError("the run fails before the block ends")
    assert ledger.order_count() == 0  # nothing of the block landed
    with ledger.exclusive():
        with ledger.exclusive():
            key = plan(ledger, first)
        assert ledger.reopen_failed(first) == 1
    assert [o.order_key for o in ledger.orders()] == [key]


def test_advance_refuses_unknown_fields(ledger: Ledger) -> None:
    key = plan(ledger, image_keys(1))
    with pytest.raises(ValueError, match="not an order field: nope"):
        ledger.advance(key, "created", nope="x")
    assert ledger.order(key).status == "planned"
