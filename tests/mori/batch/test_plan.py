"""Planning: properties of the deterministic chunking, triage against the ledger, intent."""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mori import keys
from mori.batch.ledger import Ledger
from mori.batch.manifest import Item
from mori.batch.plan import plan_orders, record_intent, triage
from mori.models import MAX_FILES_PER_ORDER

KINDS = ("file", "s3", "url")


def make_item(row: int, ident: int, kind: str, error: str | None = None) -> Item:
    """A validated item (or a failed one) whose identity is ``ident``."""
    if kind == "url":
        fingerprint = keys.url_fingerprint(f"https://img.example.com/{ident}.jpg")
        location = fingerprint[4:]
    else:
        fingerprint = f"sha256:{ident:064x}"
        location = f"/data/{ident}.jpg" if kind == "file" else f"s3://b/{ident}.jpg"
    item = Item(
        row_index=row,
        source=location,
        file_name=f"{ident}.jpg",
        kind=kind,  # type: ignore[arg-type]
        location=location,
        fingerprint=fingerprint,
        width=ident % 97 + 1 if kind != "url" else None,
        height=ident % 89 + 1 if kind != "url" else None,
    )
    if error:
        item.fail(error, "bad row")
    else:
        item.image_key = keys.image_key(fingerprint)
    return item


@st.composite
def item_sets(draw: st.DrawFn, max_size: int = 260) -> list[Item]:
    idents = draw(st.lists(st.integers(0, 10**9), unique=True, max_size=max_size))
    items = []
    for row, ident in enumerate(idents):
        kind = draw(st.sampled_from(KINDS))
        error = draw(st.sampled_from([None, None, None, None, "FILE_NOT_FOUND"]))
        items.append(make_item(row, ident, kind, error))
    return items


max_sizes = st.one_of(st.integers(1, 12), st.just(MAX_FILES_PER_ORDER))


@contextmanager
def fresh_ledger() -> Iterator[Ledger]:
    with tempfile.TemporaryDirectory() as tmp:
        led = Ledger(Path(tmp) / "ledger.sqlite")
        try:
            yield led
        finally:
            led.close()


def planned_keys(orders: Sequence[object]) -> list[str]:
    return [s.image_key for o in orders for s in o.slots]  # type: ignore[attr-defined]


# -- plan_orders -------------------------------------------------------------------------------


@given(item_sets(), max_sizes, st.randoms(use_true_random=False))
def test_plan_is_a_function_of_the_set_of_items(
    items: list[Item], max_files: int, rnd: object
) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    first, second = plan_orders(items, max_files), plan_orders(shuffled, max_files)
    assert first == second
    assert [o.order_key for o in first] == [o.order_key for o in second]


@given(item_sets(), max_sizes)
def test_every_valid_image_is_in_exactly_one_order(items: list[Item], max_files: int) -> None:
    orders = plan_orders(items, max_files)
    planned = planned_keys(orders)
    assert Counter(planned) == Counter(it.image_key for it in items if it.ok)
    assert len({o.order_key for o in orders}) == len(orders)


@given(item_sets(), max_sizes)
def test_orders_respect_the_size_limit_and_are_tightly_packed(
    items: list[Item], max_files: int
) -> None:
    orders = plan_orders(items, max_files)
    for order in orders:
        assert 1 <= len(order.slots) <= max_files
        assert [s.position for s in order.slots] == list(range(len(order.slots)))
        assert order.order_key == keys.order_key(s.image_key for s in order.slots)
        assert order.generation == 0
    for kind in ("upload", "url"):
        n = sum(1 for it in items if it.ok and ("url" if it.kind == "url" else "upload") == kind)
        assert sum(1 for o in orders if o.kind == kind) == math.ceil(n / max_files)


@given(item_sets(), max_sizes)
def test_url_and_upload_images_are_never_mixed(items: list[Item], max_files: int) -> None:
    by_key = {it.image_key: it for it in items if it.ok}
    for order in plan_orders(items, max_files):
        assert order.kind in ("upload", "url")
        kinds = {by_key[s.image_key].kind for s in order.slots}
        assert kinds <= ({"url"} if order.kind == "url" else {"file", "s3"})


@given(item_sets(max_size=60), max_sizes)
def test_slots_carry_each_items_details(items: list[Item], max_files: int) -> None:
    by_key = {it.image_key: it for it in items if it.ok}
    for order in plan_orders(items, max_files):
        for slot in order.slots:
            it = by_key[slot.image_key]
            assert (slot.file_name, slot.location, slot.width, slot.height) == (
                it.file_name,
                it.location,
                it.width,
                it.height,
            )


@pytest.mark.parametrize("bad", [0, -1, MAX_FILES_PER_ORDER + 1])
def test_max_files_must_be_within_the_api_limit(bad: int) -> None:
    with pytest.raises(ValueError):
        plan_orders([], bad)


def test_no_items_no_orders() -> None:
    assert plan_orders([]) == []
    assert plan_orders([make_item(0, 1, "file", "EMPTY_FILE")]) == []


def test_default_chunks_are_one_hundred() -> None:
    items = [make_item(n, n, "file") for n in range(250)]
    assert [len(o.slots) for o in plan_orders(items)] == [100, 100, 50]


# -- triage and record_intent ------------------------------------------------------------------

ledger_settings = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@ledger_settings
@given(item_sets(max_size=120), max_sizes, st.randoms(use_true_random=False))
def test_recorded_intent_makes_every_image_known(
    items: list[Item], max_files: int, rnd: object
) -> None:
    with fresh_ledger() as ledger:
        orders = plan_orders(items, max_files)
        record_intent(orders, items, ledger)

        shuffled = list(items)
        rnd.shuffle(shuffled)  # type: ignore[attr-defined]
        second = triage(shuffled, ledger)

        valid = {it.image_key for it in items if it.ok}
        assert second.new == []
        assert set(second.known) == valid
        assert sorted(second.resume) == sorted(o.order_key for o in orders)
        assert plan_orders(second.new, max_files) == []
        # Each image sits in the order that planned it, with its fingerprint.
        where = {s.image_key: o.order_key for o in orders for s in o.slots}
        by_key = {it.image_key: it for it in items if it.ok}
        for key, rec in second.known.items():
            assert (rec.status, rec.order_key) == ("planned", where[key])
            assert rec.fingerprint == by_key[key].fingerprint
        for order in orders:
            assert tuple(ledger.slots(order.order_key)) == order.slots
            assert ledger.order(order.order_key).kind == order.kind


@ledger_settings
@given(
    item_sets(max_size=80),
    st.integers(1, 10),
    st.integers(0, 80),
    st.sets(st.integers(0, 20)),
    st.sets(st.integers(0, 20)),
)
def test_triage_skips_done_images_and_reattaches_planned_ones(
    items: list[Item], max_files: int, cut: int, done_orders: set[int], failed_orders: set[int]
) -> None:
    valid = [it for it in items if it.ok]
    earlier = valid[: min(cut, len(valid))]
    with fresh_ledger() as ledger:
        orders = plan_orders(earlier, max_files)
        record_intent(orders, earlier, ledger)
        finished, failed = set(), set()
        for n, order in enumerate(orders):
            if n in done_orders:
                for slot in order.slots:
                    ledger.image_done(slot.image_key, f"out/{slot.image_key}.jpg", "x")
                ledger.advance(order.order_key, "downloaded")
                finished.add(order.order_key)
            elif n in failed_orders:
                ledger.fail_order(order.order_key, "INVALID_REQUEST", "no")
                failed.add(order.order_key)

        result = triage(items, ledger)

        earlier_keys = {it.image_key for it in earlier}
        assert [it.image_key for it in result.new] == [
            it.image_key for it in valid if it.image_key not in earlier_keys
        ]
        assert set(result.known) == earlier_keys
        still_open = [o.order_key for o in orders if o.order_key not in finished | failed]
        assert sorted(result.resume) == sorted(still_open)
        for order in orders:
            expected = (
                "processed"
                if order.order_key in finished
                else "failed"
                if order.order_key in failed
                else "planned"
            )
            for slot in order.slots:
                assert result.known[slot.image_key].status == expected
                assert result.known[slot.image_key].order_key == order.order_key
        # Planning the new rows never touches an image the ledger already holds.
        assert not set(planned_keys(plan_orders(result.new, max_files))) & earlier_keys


def test_triage_ignores_failed_rows(ledger: Ledger) -> None:
    good, bad = make_item(0, 1, "file"), make_item(1, 2, "file", "EMPTY_FILE")
    result = triage([good, bad], ledger)
    assert result.new == [good]
    assert result.known == {} and result.resume == []


def test_triage_resumes_a_replacement_order(ledger: Ledger) -> None:
    items = [make_item(n, n, "file") for n in range(3)]
    (order,) = plan_orders(items)
    record_intent([order], items, ledger)
    new_key = keys.order_key((s.image_key for s in order.slots), generation=1)
    ledger.replace(order.order_key, new_key, order.slots, generation=1)
    result = triage(items, ledger)
    assert result.new == []
    assert result.resume == [new_key]
