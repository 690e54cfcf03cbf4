"""Bulk intent: ``Ledger.plan_many`` and ``record_intent`` write what an order at a time would."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mori.batch.ledger import Ledger, PlannedIntent, Slot, make_slot
from mori.batch.manifest import load
from mori.batch.plan import plan_orders, record_intent, triage
from mori.batch.storage import Storage
from tests.support.images import write_image, write_manifest


def reference_plan(ledger: Ledger, orders: list[PlannedIntent], fp: dict[str, str]) -> None:
    """The reference: one transaction per order, every row bound from Python."""
    db = sqlite3.connect(ledger.path, isolation_level=None)
    at = "2000-01-01T00:00:00.000+00:00"
    for key, kind, slots, generation in orders:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT OR IGNORE INTO orders(order_key, kind, generation, status, planned_at,"
            " updated_at) VALUES (?, ?, ?, 'planned', ?, ?)",
            (key, kind, generation, at, at),
        )
        db.executemany(
            "INSERT OR IGNORE INTO order_images VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (key, s.position, s.image_key, s.file_name, s.location, s.width, s.height)
                for s in slots
            ],
        )
        db.executemany(
            "INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
            " VALUES (?, ?, 'planned', ?, ?) ON CONFLICT(image_key) DO UPDATE SET"
            " order_key=excluded.order_key, status='planned', updated_at=excluded.updated_at"
            " WHERE images.status = 'planned'",
            [(s.image_key, fp[s.image_key], key, at) for s in slots],
        )
        db.execute("COMMIT")
    db.close()


def dump(ledger: Ledger) -> list[list[tuple[Any, ...]]]:
    """Every table's rows, timestamps left out."""
    orders = sorted(ledger.orders(), key=lambda o: o.order_key)
    slots = [
        (o.order_key, *dataclasses.astuple(s)) for o in orders for s in ledger.slots(o.order_key)
    ]
    images = ledger.images(sorted({row[2] for row in slots})).values()
    return [
        slots,
        sorted((r.image_key, r.fingerprint, r.status, r.order_key) for r in images),
        [(o.order_key, o.kind, o.generation, o.status) for o in orders],
    ]


def slot(i: int, key: str, location: str, size: int | None = None) -> Slot:
    return Slot(i, key, f"{key}.jpg", location, size, size)


URL_A = [slot(i, f"a{i}", f"https://h/a{i}.jpg") for i in range(3)]
URL_B = [slot(i, f"b{i}", f"https://h/b{i}.jpg") for i in range(2)]
FILES = [slot(i, f"f{i}", f"/data/f{i}.jpg", 10 + i) for i in range(3)]
FINGERPRINTS = {
    **{s.image_key: "url:" + s.location for s in URL_A + URL_B},
    **{s.image_key: f"sha256:{i:064x}" for i, s in enumerate(FILES)},
}
LONG_URLS = [slot(i, f"l{i}", f"https://h/l{i}.jpg") for i in range(250)]
LONG_FILES = [slot(i, f"m{i}", f"/data/m{i}.jpg", i) for i in range(150)]
FINGERPRINTS.update({s.image_key: "url:" + s.location for s in LONG_URLS})
FINGERPRINTS.update({s.image_key: f"sha256:{i:064x}" for i, s in enumerate(LONG_FILES)})
BULK_CASES: dict[str, list[list[PlannedIntent]]] = {
    "url orders": [[("oa", "url", URL_A, 0), ("ob", "url", URL_B, 0)]],
    "mixed kinds": [[("oa", "url", URL_A, 0), ("of", "upload", FILES, 0), ("ob", "url", URL_B, 0)]],
    "planned again": [
        [("oa", "url", URL_A, 0)],
        [("oa", "url", URL_A, 0), ("ob", "url", URL_B, 0)],
    ],
    "image in two orders": [[("oa", "url", URL_A, 0), ("ox", "url", URL_A[:1], 1)]],
    "image in a copied and a bound order": [
        [("ox", "url", [slot(0, "a0", "https://h/elsewhere.jpg")], 1), ("oa", "url", URL_A, 0)]
    ],
    "image moves to a new order": [[("oa", "url", URL_A, 0)], [("oz", "url", URL_A[::-1], 1)]],
    "fingerprint is not url:location": [
        [("oa", "url", URL_A, 0)],
        [("ow", "url", [slot(0, "w", "https://h/w.jpg")], 0)],
    ],
    "gap in positions": [[("og", "url", [slot(1, "g", "https://h/g.jpg")], 0)]],
    "more than 100 images an order": [
        [("ol", "url", LONG_URLS, 0), ("om", "upload", LONG_FILES, 0), ("oe", "url", [], 0)]
    ],
}


BULK_FINGERPRINTS = {**FINGERPRINTS, "w": "url:https://h/other.jpg", "g": "url:https://h/g.jpg"}


def vouchable(case: str) -> bool:
    """Every url slot of the case has the fingerprint url:<location> (see url_fingerprints)."""
    calls = [order for orders in BULK_CASES[case] for order in orders]
    return all(
        BULK_FINGERPRINTS[s.image_key] == "url:" + s.location
        for _, kind, slots, _ in calls
        if kind == "url"
        for s in slots
    )


@pytest.mark.parametrize(
    ("case", "vouched"),
    [(case, False) for case in BULK_CASES] + [(c, True) for c in BULK_CASES if vouchable(c)],
)
def test_plan_many_matches_one_transaction_per_order(
    tmp_path: Path, case: str, vouched: bool
) -> None:
    fingerprints = given = BULK_FINGERPRINTS
    if vouched:  # url_fingerprints: the url slots' fingerprints are not passed at all
        given = {k: v for k, v in fingerprints.items() if not v.startswith("url:")}
    bulk, reference = Ledger(tmp_path / "bulk.sqlite"), Ledger(tmp_path / "ref.sqlite")
    for n, calls in enumerate(BULK_CASES[case]):
        bulk.plan_many(calls, given, url_fingerprints=vouched)
        reference_plan(reference, calls, fingerprints)
        if n == 0:  # an image processed in between must stay processed
            for ledger in (bulk, reference):
                ledger.image_done("a1", "s3://out/a1.jpg", "0" * 64)
        assert dump(bulk) == dump(reference)


@pytest.mark.parametrize("odd_url_fingerprint", [False, True])
def test_bulk_intent_of_a_manifest(tmp_path: Path, odd_url_fingerprint: bool) -> None:
    rows = [{"source": f"https://cdn.example.com/p/{i}.jpg"} for i in range(450)]
    rows += [{"source": f"images/{i}.jpg"} for i in range(30)]
    for i in range(30):
        write_image(tmp_path / "images" / f"{i}.jpg", seed=i)
    manifest = write_manifest(tmp_path / "m.csv", rows)
    items = load(str(manifest), Storage())
    if odd_url_fingerprint:  # record_intent must not vouch for URL fingerprints, and check
        items[7].fingerprint = "url:https://elsewhere.example.com/x.jpg"
    orders = plan_orders(triage(items, Ledger(tmp_path / "a.sqlite")).new)

    bulk, reference = Ledger(tmp_path / "bulk.sqlite"), Ledger(tmp_path / "ref.sqlite")
    record_intent(orders, items, bulk)
    fingerprints = {it.image_key or "": it.fingerprint or "" for it in items}
    reference_plan(
        reference, [(o.order_key, o.kind, o.slots, o.generation) for o in orders], fingerprints
    )
    assert dump(bulk) == dump(reference)
    assert [o.order_key for o in bulk.open_orders()] == [o.order_key for o in orders]
    assert triage(items, bulk).new == []


def test_make_slot_is_a_slot() -> None:
    made = make_slot(3, "k", "n.jpg", "https://h/n.jpg", 4, 5)
    assert made == Slot(3, "k", "n.jpg", "https://h/n.jpg", 4, 5)
    assert hash(made) == hash(Slot(3, "k", "n.jpg", "https://h/n.jpg", 4, 5))
    assert make_slot(0, "k", "n", "l") == Slot(0, "k", "n", "l")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.position = 1  # type: ignore[misc]
