"""PostgreSQL's bulk intent (COPY and INSERT ... SELECT) records exactly what SQLite's does."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from mori.batch.ledger import Ledger, PlannedIntent, Slot


def slot(i: int, key: str, location: str, size: int | None = None) -> Slot:
    return Slot(i, key, f"{key}.jpg", location, size, size)


URL_A = [slot(i, f"a{i}", f"https://h/a{i}.jpg") for i in range(3)]
URL_B = [slot(i, f"b{i}", f"https://h/b{i}.jpg") for i in range(2)]
FILES = [slot(i, f"f{i}", f"/data/f{i}.jpg", 10 + i) for i in range(3)]
LONG = [slot(i, f"l{i}", f"https://h/l{i}.jpg") for i in range(250)]
FINGERPRINTS = {
    **{s.image_key: "url:" + s.location for s in URL_A + URL_B + LONG},
    **{s.image_key: f"sha256:{i:064x}" for i, s in enumerate(FILES)},
    "w": "url:https://h/other.jpg",
    "g": "url:https://h/g.jpg",
}
CASES: dict[str, list[list[PlannedIntent]]] = {
    "url orders": [[("oa", "url", URL_A, 0), ("ob", "url", URL_B, 0)]],
    "mixed kinds": [[("oa", "url", URL_A, 0), ("of", "upload", FILES, 0), ("ob", "url", URL_B, 0)]],
    "planned again": [
        [("oa", "url", URL_A, 0)],
        [("oa", "url", URL_A, 0), ("ob", "url", URL_B, 0)],
    ],
    "image in two orders of one call": [[("oa", "url", URL_A, 0), ("ox", "url", URL_A[:1], 1)]],
    "one order twice in one call": [[("oa", "url", URL_A, 0), ("oa", "url", URL_B, 0)]],
    "one position twice": [[("od", "url", [slot(0, "a0", "https://h/a0.jpg"), URL_A[1]], 0)]],
    "image moves to a new order": [[("oa", "url", URL_A, 0)], [("oz", "url", URL_A[::-1], 1)]],
    "fingerprint is not url:location": [[("ow", "url", [slot(0, "w", "https://h/w.jpg")], 0)]],
    "gap in positions": [[("og", "url", [slot(1, "g", "https://h/g.jpg")], 0)]],
    "many images, an empty order": [[("ol", "url", LONG, 0), ("oe", "url", [], 0)]],
}


def dump(ledger: Ledger) -> list[Any]:
    """Every order, slot and image, timestamps left out."""
    orders = ledger.orders()
    slots = [
        (o.order_key, *dataclasses.astuple(s)) for o in orders for s in ledger.slots(o.order_key)
    ]
    images = ledger.images({row[2] for row in slots})
    return [
        [(o.order_key, o.kind, o.generation, o.status, o.output_uri) for o in orders],
        slots,
        sorted(tuple(r) for r in images.values()),
    ]


def vouchable(calls: list[list[PlannedIntent]]) -> bool:
    """Every url slot of the case has the fingerprint url:<location>."""
    return all(
        FINGERPRINTS[s.image_key] == "url:" + s.location
        for orders in calls
        for _, kind, slots, _ in orders
        if kind == "url"
        for s in slots
    )


@pytest.mark.parametrize(
    ("case", "vouched"),
    [(case, False) for case in CASES] + [(c, True) for c in CASES if vouchable(CASES[c])],
)
def test_postgres_intent_matches_sqlite(
    tmp_path: Path, postgres_url: str, case: str, vouched: bool
) -> None:
    given = FINGERPRINTS
    if vouched:  # url_fingerprints: the url slots' fingerprints are not passed at all
        given = {k: v for k, v in FINGERPRINTS.items() if not v.startswith("url:")}
    with Ledger(tmp_path / "ledger.sqlite") as sqlite, Ledger(postgres_url) as postgres:
        for n, calls in enumerate(CASES[case]):
            for ledger in (sqlite, postgres):
                ledger.plan_many(calls, given, url_fingerprints=vouched, output_uri=f"/out/{n}")
                if n == 0:  # an image finished in between stays finished
                    ledger.image_done("a1", "s3://out/a1.jpg", "0" * 64)
            assert dump(postgres) == dump(sqlite)
