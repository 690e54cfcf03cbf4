"""Fan-out without Prefect: groups, verdicts on children, hand-over of lost work, re-attaching.

The children are scripted (:class:`ScriptedChildren`): each claims its group's orders in a real
ledger (SQLite, then PostgreSQL) and then finishes them, dies holding them, fails, leaves them
pending, or never starts. Time passes through the injected ``sleep``: it advances the parent's
clock and ages every lease in the database by as much, so lapses happen without waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from mori.batch.fanout import (
    ENDED,
    FanOut,
    FanOutPolicy,
    Group,
    OrderView,
    judge,
    split,
)
from mori.batch.ledger import ClaimRecord, Ledger, Slot
from mori.batch.results import result_from_ledger
from tests.support.leases import lapse

LEASE = 10.0
POLICY = FanOutPolicy(fan_out=2, poll_interval=1.0, start_grace=5.0, start_timeout=30.0)


class Clock:
    """The parent's clock and the database's, advanced together by ``sleep``."""

    def __init__(self, url: str) -> None:
        self.url, self.now = url, 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        lapse(self.url, seconds)


@dataclass
class Child:
    group: Group
    script: str
    state: str = "SCHEDULED"
    looks: int = 0


@dataclass
class ScriptedChildren:
    """A dispatcher whose children follow a script per attempt: ``finish`` (claim, then finish
    and release), ``die`` (claim, then nothing: no renewal, no release), ``fail`` (claim, then
    end FAILED without releasing), ``pending`` (claim, end COMPLETED, release, orders left
    open), ``stuck`` (picked up, never claims), ``unpicked`` (stays SCHEDULED)."""

    ledger: Ledger
    scripts: Callable[[Group], str]
    children: dict[str, Child] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # idempotency key -> child
    abandoned: list[str] = field(default_factory=list)
    most_at_once: int = 0

    def start(self, group: Group) -> str:
        if group.idempotency_key in self.keys:
            return self.keys[group.idempotency_key]
        child = f"child-{len(self.children)}"
        self.keys[group.idempotency_key] = child
        self.children[child] = Child(group, self.scripts(group))
        running = sum(c.state not in ENDED for c in self.children.values())
        self.most_at_once = max(self.most_at_once, running)
        return child

    def state(self, run: str) -> str:
        child = self.children[run]
        child.looks += 1
        owner = f"host:{run}"
        keys, ticket = list(child.group.order_keys), child.group.ticket
        if child.state in ENDED or child.script == "unpicked":
            return child.state
        if child.script == "stuck":
            child.state = "RUNNING"
        elif child.looks == 1:
            child.state = "RUNNING"
            self.ledger.claim(keys, owner, LEASE, ticket)
        elif child.script == "finish":
            for key in self.ledger.claims(keys):
                if self.ledger.claims([key])[key].owner == owner:
                    finish(self.ledger, key)
            self.ledger.release_claims(keys, owner)
            child.state = "COMPLETED"
        elif child.script == "pending":
            self.ledger.release_claims(keys, owner)
            child.state = "COMPLETED"
        elif child.script == "fail":
            child.state = "FAILED"
        return child.state

    def abandon(self, run: str, reason: str) -> None:
        self.abandoned.append(run)
        self.children[run].state = "CRASHED"


def finish(ledger: Ledger, key: str) -> None:
    """What a child does to an order: process its images, download it."""
    for slot in ledger.slots(key):
        ledger.image_done(slot.image_key, f"/out/{slot.image_key}", "0" * 64)
    ledger.advance(key, "downloaded")


def planned(ledger: Ledger, count: int) -> list[str]:
    keys = [f"order-{n:02d}" for n in range(count)]
    for key in keys:
        image = f"img-{key}"
        ledger.plan(key, "url", [Slot(0, image, "a.jpg", f"https://h/{key}")], {image: "f"})
    return keys


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    led = Ledger(ledger_url)
    yield led
    led.close()


def fan_out(
    ledger: Ledger,
    url: str,
    scripts: Callable[[Group], str],
    policy: FanOutPolicy = POLICY,
    on_group_done: Callable[[int, int], None] | None = None,
) -> tuple[ScriptedChildren, FanOut]:
    clock = Clock(url)
    children = ScriptedChildren(ledger, scripts)
    fan = FanOut(
        ledger,
        children,
        "run-1",
        policy,
        clock=clock,
        sleep=clock.sleep,
        on_group_done=on_group_done,
    )
    return children, fan


def test_groups_hold_at_most_twenty_keys_and_spread_over_fan_out() -> None:
    keys = [f"k{n}" for n in range(50)]
    assert [len(g.order_keys) for g in split(keys, 2, "r")] == [20, 20, 10]
    assert [len(g.order_keys) for g in split(keys[:9], 4, "r")] == [3, 3, 3]
    groups = split(keys[:3], 8, "r", first=5)
    assert [(g.number, g.order_keys) for g in groups] == [(5, ("k0",)), (6, ("k1",)), (7, ("k2",))]
    assert {k for g in split(keys, 3, "r") for k in g.order_keys} == set(keys)
    group = Group("r", 5, ("a", "b"))
    assert (group.ticket, group.idempotency_key) == ("r/5/1", "protect-r-g5-a1")
    again = group.next(["b"])
    assert (again.ticket, again.idempotency_key, again.order_keys) == (
        "r/5/2",
        "protect-r-g5-a2",
        ("b",),
    )


def claim(ticket: str | None, *, live: bool = True, released: bool = False) -> ClaimRecord:
    return ClaimRecord("k", "h:1", "host", 1, ticket, live, released, 5.0 if live else -5.0, "t", 0)


G = Group("r", 0, ("k",))


@pytest.mark.parametrize(
    ("state", "view", "waited", "expected"),
    [
        ("RUNNING", OrderView("k", True), 1, "done"),
        ("RUNNING", OrderView("k", False, claim("r/0/1")), 1, "running"),
        ("RUNNING", OrderView("k", False, claim("r/0/1", live=False)), 1, "handoff"),
        ("COMPLETED", OrderView("k", False, claim("r/0/1", live=False, released=True)), 1, "done"),
        ("CRASHED", OrderView("k", False, claim("r/0/1")), 1, "running"),  # lease first
        ("FAILED", OrderView("k", False, claim("r/0/1", live=False)), 1, "handoff"),
        ("COMPLETED", OrderView("k", False, claim("other/0/1")), 1, "running"),
        ("COMPLETED", OrderView("k", False, claim("other/0/1", live=False)), 1, "handoff"),
        ("COMPLETED", OrderView("k", False, None), 1, "handoff"),
        ("PENDING", OrderView("k", False, None), 4, "running"),
        ("PENDING", OrderView("k", False, None), 6, "handoff"),
        ("SCHEDULED", OrderView("k", False, None), 29, "running"),
        ("SCHEDULED", OrderView("k", False, None), 31, "given up"),
        ("RUNNING", OrderView("k", False, claim("other/0/1")), 60, "running"),
    ],
)
def test_verdicts(state: str, view: OrderView, waited: float, expected: str) -> None:
    verdict = judge(G, state, [view], waited, POLICY)
    if verdict is None:
        found = "running"
    elif verdict.handoff:
        found = "handoff"
    elif verdict.given_up:
        found = "given up"
    else:
        found = "done"
    assert found == expected


def test_every_group_is_driven_with_at_most_fan_out_children(
    ledger: Ledger, ledger_url: str
) -> None:
    keys = planned(ledger, 9)
    progress: list[tuple[int, int]] = []
    children, fan = fan_out(
        ledger,
        ledger_url,
        lambda g: "finish",
        FanOutPolicy(fan_out=2),
        on_group_done=lambda done, total: progress.append((done, total)),
    )
    report = fan.run(keys)
    assert report.groups == 2 and len(report.children) == 2
    assert report.handed_on == [] and report.unfinished == {}
    assert progress == [(1, 2), (2, 2)]
    assert children.most_at_once <= 2
    assert all(result_from_ledger(ledger, k).status == "processed" for k in keys)
    recorded = ledger.dispatches("run-1")
    assert [(d.group, d.attempt, d.child_run_id) for d in recorded] == [
        (0, 1, "child-0"),
        (1, 1, "child-1"),
    ]


def test_a_child_whose_host_died_is_replaced_and_its_orders_keep_their_keys(
    ledger: Ledger, ledger_url: str
) -> None:
    keys = planned(ledger, 6)
    children, fan = fan_out(
        ledger, ledger_url, lambda g: "die" if (g.number, g.attempt) == (1, 1) else "finish"
    )
    report = fan.run(keys)
    assert children.abandoned == ["child-1"]  # its run marked crashed: it never reports again
    assert len(report.handed_on) == 1 and "lapsed unreleased" in report.handed_on[0]
    lost = children.children["child-1"].group
    again = children.children[children.keys[lost.next(lost.order_keys).idempotency_key]].group
    assert (again.number, again.attempt, again.order_keys) == (1, 2, lost.order_keys)
    assert report.unfinished == {}
    assert all(result_from_ledger(ledger, k).status == "processed" for k in keys)
    claims = ledger.claims(lost.order_keys)
    assert {c.takeovers for c in claims.values()} == {1}  # taken over, not planned anew
    assert ledger.order_count() == 6


def test_a_failed_child_is_replaced_once_its_leases_run_out(
    ledger: Ledger, ledger_url: str
) -> None:
    keys = planned(ledger, 2)
    children, fan = fan_out(
        ledger, ledger_url, lambda g: "fail" if g.attempt == 1 else "finish", FanOutPolicy(1)
    )
    report = fan.run(keys)
    assert len(report.children) == 2 and report.unfinished == {}
    assert children.abandoned == []  # it ended by itself
    assert all(result_from_ledger(ledger, k).status == "processed" for k in keys)


def test_orders_a_child_leaves_pending_are_not_driven_again(
    ledger: Ledger, ledger_url: str
) -> None:
    keys = planned(ledger, 3)
    children, fan = fan_out(ledger, ledger_url, lambda g: "pending")
    report = fan.run(keys)
    assert report.handed_on == [] and len(children.children) == 2
    result = result_from_ledger(ledger, keys[0], report.unfinished.get(keys[0]))
    assert result.status == "pending" and result.error_code == "ORDER_INCOMPLETE"
    assert "later run resumes it" in (result.error_message or "")


def test_a_group_lost_every_time_is_given_up_after_max_attempts(
    ledger: Ledger, ledger_url: str
) -> None:
    keys = planned(ledger, 2)
    policy = FanOutPolicy(fan_out=1, max_attempts=2)
    children, fan = fan_out(ledger, ledger_url, lambda g: "die", policy)
    report = fan.run(keys)
    assert len(report.children) == 2 and children.abandoned == ["child-0", "child-1"]
    assert set(report.unfinished) == set(keys)
    assert "given up after 2 child runs" in report.unfinished[keys[0]]
    result = result_from_ledger(ledger, keys[0], report.unfinished[keys[0]])
    assert result.status == "pending" and "given up" in (result.error_message or "")


def test_children_that_never_start_are_handed_on_or_given_up(
    ledger: Ledger, ledger_url: str
) -> None:
    keys = planned(ledger, 2)
    scripts = {1: "stuck", 2: "unpicked"}
    children, fan = fan_out(
        ledger,
        ledger_url,
        lambda g: scripts[g.attempt],
        FanOutPolicy(fan_out=1, start_grace=5, start_timeout=30),
    )
    report = fan.run(keys)
    assert "claimed nothing" in report.handed_on[0]
    assert "no worker started" in report.handed_on[1]
    assert children.abandoned == ["child-0", "child-1"]
    assert set(report.unfinished) == set(keys)


def test_a_retried_parent_reattaches_to_its_children(ledger: Ledger, ledger_url: str) -> None:
    keys = planned(ledger, 4)
    clock = Clock(ledger_url)
    children = ScriptedChildren(ledger, lambda g: "finish")

    class ParentDied(Exception):
        pass

    def die(seconds: float) -> None:
        raise ParentDied

    with pytest.raises(ParentDied):  # the first attempt starts its children, then dies
        FanOut(ledger, children, "run-1", POLICY, clock=clock, sleep=die).run(keys)
    started = dict(children.keys)
    assert len(started) == 2
    report = FanOut(ledger, children, "run-1", POLICY, clock=clock, sleep=clock.sleep).run(keys)
    assert children.keys == started  # the same idempotency keys: the same child runs
    assert sorted(report.children) == sorted(started.values())
    assert all(result_from_ledger(ledger, k).status == "processed" for k in keys)
