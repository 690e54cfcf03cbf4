"""The planning lock across processes: overlapping plans never plan an image twice; readers and
webhook events do not wait for a planner on PostgreSQL, and on SQLite at most the busy timeout."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mori.batch.ledger import Ledger, LedgerOptions, Slot

from . import planner_child

PLANNERS = 3
ROUNDS = 12


def test_overlapping_planners_plan_every_image_in_exactly_one_order(ledger_url: str) -> None:
    """Three processes plan overlapping windows of 1,200 images at once, twelve rounds each."""
    Ledger(ledger_url).close()  # the schema first: the race under test is planning's
    script = Path(planner_child.__file__)
    children = [
        subprocess.Popen(
            [sys.executable, str(script), ledger_url, str(worker), str(ROUNDS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for worker in range(PLANNERS)
    ]
    try:
        for child in children:  # every planner has its ledger open ...
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:  # ... before any of them starts planning
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            out, _ = child.communicate(timeout=120)
            assert child.returncode == 0 and out.strip() == "done"
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()

    wanted = {
        key
        for worker in range(PLANNERS)
        for round_ in range(ROUNDS)
        for key in planner_child.window(worker, round_)
    }
    with Ledger(ledger_url) as ledger:
        holders = {o.order_key: ledger.slots(o.order_key) for o in ledger.orders()}
        planned = Counter(s.image_key for slots in holders.values() for s in slots)
        images = ledger.images(wanted)
    assert set(planned) == wanted
    assert [k for k, n in planned.items() if n > 1] == []  # no image in two orders
    assert {k: r.order_key for k, r in images.items()} == {
        s.image_key: key for key, slots in holders.items() for s in slots
    }
    by_worker = Counter(key.split("-")[0] for key in holders)
    print(f"\n{ledger.backend}: orders per planner {dict(sorted(by_worker.items()))}")


def timed(call: Callable[[], object], limit: float = 15.0) -> float:
    """Seconds ``call()`` took in another thread; fails when it is still waiting after
    ``limit`` (it would be blocked)."""
    took: list[float] = []
    errors: list[BaseException] = []

    def run() -> None:
        began = time.perf_counter()
        try:
            call()
        except BaseException as exc:
            errors.append(exc)
        took.append(time.perf_counter() - began)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still waiting after {limit} s"
    if errors:
        raise errors[0]
    return took[0]


class Holder:
    """A planner inside ``exclusive()`` in a thread of its own, until released."""

    def __init__(self, ledger: Ledger) -> None:
        self.held, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(ledger,), daemon=True)

    def _hold(self, ledger: Ledger) -> None:
        with ledger.exclusive():
            ledger.plan("held", "url", [Slot(0, "i-held", "h", "https://h/h")], {"i-held": "f"})
            self.held.set()
            self.release.wait(30)

    def __enter__(self) -> Holder:
        self.thread.start()
        assert self.held.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(30)


@contextmanager
def two_ledgers_on(url: str) -> Iterator[tuple[Ledger, Ledger]]:
    """Two ledger objects on one database (as two processes would have); the second's SQLite
    busy timeout is half a second."""
    a, b = Ledger(url), Ledger(url, options=LedgerOptions(busy_timeout=0.5))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
def two_ledgers(ledger_url: str) -> Iterator[tuple[Ledger, Ledger]]:
    """:func:`two_ledgers_on` the test's database, SQLite then PostgreSQL."""
    with two_ledgers_on(ledger_url) as pair:
        yield pair


def test_readers_never_wait_for_a_planner(two_ledgers: tuple[Ledger, Ledger]) -> None:
    planner, other = two_ledgers
    other.plan("before", "url", [Slot(0, "i-0", "a", "https://h/a")], {"i-0": "f"})
    with Holder(planner):
        took = [
            timed(other.order_count),
            timed(lambda: other.images(["i-0", "i-held"])),
            timed(other.open_orders),
            timed(lambda: other.event_status("o1")),
        ]
        assert other.order_count() == 1  # the planner's uncommitted order is not seen
    print(f"\n{other.backend}: reads during a held planning lock took {max(took):.4f} s at most")
    assert max(took) < 2.0


def test_webhook_events_never_wait_for_a_planner_on_postgres(postgres_url: str) -> None:
    with two_ledgers_on(postgres_url) as (planner, receiver), Holder(planner):
        took = timed(lambda: receiver.record_event("e1", "ORDER.PROCESSED", "o1", "complete", {}))
        assert receiver.event_status("o1") == "complete"
    print(f"\npostgresql: record_event during a held planning lock took {took:.4f} s")
    assert took < 2.0


def test_webhook_events_wait_at_most_the_busy_timeout_on_sqlite(tmp_path: Path) -> None:
    """A writer waits for the planner's commit, or gives up after its busy timeout."""
    url = str(tmp_path / "ledger.sqlite")
    with two_ledgers_on(url) as (planner, receiver), Ledger(url) as patient:
        done = threading.Event()

        def wait_for_planner() -> None:
            patient.record_event("e2", "ORDER.PROCESSED", "o2", "complete", {})
            done.set()

        with Holder(planner) as holder:
            began = time.perf_counter()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                receiver.record_event("e1", "ORDER.PROCESSED", "o1", "complete", {})
            gave_up = time.perf_counter() - began
            waiting = threading.Thread(target=wait_for_planner, daemon=True)
            waiting.start()
            assert not done.wait(0.2)  # the default busy timeout (30 s) waits ...
            holder.release.set()
        waiting.join(30)
        assert done.is_set()  # ... and goes on once the planner commits
        assert receiver.record_event("e1", "ORDER.PROCESSED", "o1", "complete", {}) is True
        assert {e.event_id for e in receiver.events()} == {"e1", "e2"}
    print(f"\nsqlite: record_event gave up after {gave_up:.3f} s (busy timeout 0.5 s)")
    assert 0.45 <= gave_up < 5.0


def test_another_planner_waits_for_the_lock(two_ledgers: tuple[Ledger, Ledger]) -> None:
    """A second plan starts while the first holds the lock and lands only after it."""
    planner, _ = two_ledgers
    with Ledger(str(planner.path)) as second:  # the tests' URLs hold no password
        finished = threading.Event()

        def plan_second() -> None:
            with second.exclusive():
                second.plan(
                    "second", "url", [Slot(0, "i-held", "h", "https://h/h")], {"i-held": "f"}
                )
            finished.set()

        with Holder(planner) as holder:
            thread = threading.Thread(target=plan_second, daemon=True)
            thread.start()
            assert not finished.wait(0.5)  # still waiting for the lock
            holder.release.set()
        thread.join(30)
        assert finished.is_set()
        # planned after the first committed: the still-planned image moved to the later order
        assert second.images(["i-held"])["i-held"].order_key == "second"
        assert {o.order_key for o in second.orders()} == {"held", "second"}
