"""Claims with leases (who drives an order now) and fan-out groups, on both backends."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from mori.batch.ledger import Ledger, Slot
from tests.support.leases import lapse

LEASE = 30.0


def plan(ledger: Ledger, *keys: str) -> None:
    """One single-image URL order per key."""
    for key in keys:
        image = f"img-{key}"
        ledger.plan(key, "url", [Slot(0, image, "a.jpg", f"https://h/{key}")], {image: "fp"})


def test_a_claim_is_held_by_one_owner_until_its_lease_runs_out(
    ledger: Ledger, ledger_url: str
) -> None:
    plan(ledger, "k1", "k2")
    assert ledger.claim(["k1", "k2"], "host-a:1", LEASE, ticket="run/0/1") == ["k1", "k2"]
    assert ledger.claim(["k1", "k2"], "host-a:1", LEASE) == ["k1", "k2"]  # its owner again
    assert ledger.claim(["k1", "k2"], "host-b:2", LEASE) == []
    claims = ledger.claims(["k1", "k2", "unclaimed"])
    assert set(claims) == {"k1", "k2"}
    first = claims["k1"]
    assert (first.owner, first.live, first.released, first.takeovers) == (
        "host-a:1",
        True,
        False,
        0,
    )
    assert LEASE - 5 < first.lease_left <= LEASE

    lapse(ledger_url)
    assert not ledger.claims(["k1"])["k1"].live
    assert ledger.claim(["k1"], "host-b:2", LEASE, ticket="run/0/2") == ["k1"]  # taken over
    taken = ledger.claims(["k1"])["k1"]
    assert (taken.owner, taken.ticket, taken.live, taken.takeovers) == (
        "host-b:2",
        "run/0/2",
        True,
        1,
    )
    # the first owner finds out when it renews: it holds k2 only (lapsed, but nobody took it)
    assert ledger.renew_claims(["k1", "k2"], "host-a:1", LEASE) == ["k2"]
    assert ledger.claims(["k2"])["k2"].live


def test_a_released_claim_is_free_for_anyone_and_keeps_its_owner(ledger: Ledger) -> None:
    plan(ledger, "k1")
    ledger.claim(["k1"], "host-a:1", LEASE)
    ledger.release_claims(["k1"], "host-b:2")  # not its owner: nothing happens
    assert ledger.claims(["k1"])["k1"].live
    ledger.release_claims(["k1"], "host-a:1")
    released = ledger.claims(["k1"])["k1"]
    assert (released.owner, released.live, released.released) == ("host-a:1", False, True)
    assert ledger.renew_claims(["k1"], "host-a:1", LEASE) == []  # released is released
    assert ledger.claim(["k1"], "host-b:2", LEASE) == ["k1"]
    assert ledger.claims(["k1"])["k1"].takeovers == 0  # a hand-over, not a takeover


def test_renewing_extends_the_lease_by_the_database_clock(ledger: Ledger, ledger_url: str) -> None:
    plan(ledger, "k1")
    ledger.claim(["k1"], "host-a:1", 5.0)
    lapse(ledger_url, 4.0)
    assert ledger.claims(["k1"])["k1"].lease_left < 1.5
    assert ledger.renew_claims(["k1"], "host-a:1", 60.0) == ["k1"]
    assert 55.0 < ledger.claims(["k1"])["k1"].lease_left <= 60.0
    assert ledger.renew_claims([], "host-a:1", 60.0) == []


def test_only_open_orders_are_claimed(ledger: Ledger) -> None:
    plan(ledger, "done", "failed", "old", "open")
    ledger.advance("done", "downloaded")
    ledger.fail_order("failed", "REJECTED", "no")
    slots = ledger.slots("old")
    ledger.replace("old", "new", slots, 1)  # "old" now stands for its open replacement
    assert ledger.claim(["done", "failed", "old", "open", "missing"], "h:1", LEASE) == [
        "old",
        "open",
    ]
    ledger.advance("new", "downloaded")
    ledger.release_claims(["old"], "h:1")
    assert ledger.claim(["old"], "h:2", LEASE) == []  # its replacement is done


def test_owners_racing_for_the_same_orders_get_each_order_once(ledger_url: str) -> None:
    keys = [f"k{i}" for i in range(12)]
    with Ledger(ledger_url) as setup:
        plan(setup, *keys)
    ledgers = [Ledger(ledger_url) for _ in range(4)]
    start = threading.Barrier(len(ledgers))
    won: dict[str, list[str]] = {}

    def race(n: int) -> None:
        start.wait()
        won[f"h:{n}"] = ledgers[n].claim(keys, f"h:{n}", LEASE)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(ledgers))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        holders = Counter(key for held in won.values() for key in held)
        assert holders == dict.fromkeys(keys, 1)
        claims = ledgers[0].claims(keys)
        assert {k: c.owner for k, c in claims.items()} == {
            key: owner for owner, held in won.items() for key in held
        }
    finally:
        for led in ledgers:
            led.close()


def test_fanout_groups_are_found_again_by_run(ledger: Ledger) -> None:
    ledger.record_dispatch("run-1", 0, 1, ["k1", "k2"])
    ledger.record_dispatch("run-1", 1, 1, ["k3"])
    ledger.record_dispatch("run-2", 0, 1, ["k9"])
    ledger.set_dispatch_child("run-1", 0, 1, "child-a")
    ledger.record_dispatch("run-1", 0, 1, ["k1", "k2"])  # the same attempt again: child kept
    first, second = ledger.dispatches("run-1")
    assert (first.group, first.attempt, first.order_keys, first.child_run_id) == (
        0,
        1,
        ("k1", "k2"),
        "child-a",
    )
    assert (second.group, second.order_keys, second.child_run_id) == (1, ("k3",), None)
    ledger.record_dispatch("run-1", 0, 2, ["k2"])  # a new attempt: a new child to come
    ledger.set_dispatch_child("run-1", 0, 1, "late-answer-of-attempt-1")  # ignored
    again = ledger.dispatches("run-1")[0]
    assert (again.attempt, again.order_keys, again.child_run_id) == (2, ("k2",), None)
    assert ledger.dispatches("run-3") == []


@pytest.mark.parametrize("ticket", [None, "run/3/1"])
def test_a_claim_records_its_ticket(ledger: Ledger, ticket: str | None) -> None:
    plan(ledger, "k1")
    ledger.claim(["k1"], "h:1", LEASE, ticket=ticket)
    assert ledger.claims(["k1"])["k1"].ticket == ticket


def test_child_runs_stats_are_summed_per_run_and_recorded_once(ledger: Ledger) -> None:
    assert ledger.child_stats("run-1") == {"requests": 0, "retries": 0, "rate_limited": 0}
    ledger.record_child_stats("run-1/0/1", "run-1", {"requests": 30, "retries": 2})
    ledger.record_child_stats("run-1/1/1", "run-1", {"requests": 12, "rate_limited": 1})
    ledger.record_child_stats("run-1/1/1", "run-1", {"requests": 12, "rate_limited": 1})  # again
    ledger.record_child_stats("run-2/0/1", "run-2", {"requests": 99})
    assert ledger.child_stats("run-1") == {"requests": 42, "retries": 2, "rate_limited": 1}
