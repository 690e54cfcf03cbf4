"""PostgreSQL ledger operations ride out lost connections and server restarts, bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors
from psycopg_pool import PoolTimeout

from mori.batch.ledger import Ledger, LedgerOptions, RetryPolicy, Slot
from mori.batch.ledger._postgres import connection_lost
from tests.support.postgres import PostgresServer


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (PoolTimeout("no connection in 5 s"), True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (errors.AdminShutdown("terminating connection due to administrator command"), True),
        (errors.CrashShutdown("crash"), True),
        (errors.CannotConnectNow("the database system is starting up"), True),
        (errors.ConnectionFailure("connection failure"), True),
        (errors.DeadlockDetected("deadlock"), True),
        (errors.SerializationFailure("could not serialize"), True),
        (errors.QueryCanceled("statement timeout"), False),
        (errors.UniqueViolation("duplicate key"), False),
        (errors.UndefinedTable("no such table"), False),
        (KeyError("fingerprint"), False),
    ],
)
def test_which_errors_are_retried(error: BaseException, retried: bool) -> None:
    assert connection_lost(error) is retried


class Naps:
    """An injected sleep: records each wait instead of sleeping (or also sleeps, ``real``)."""

    def __init__(self, real: bool = False) -> None:
        self.waits: list[float] = []
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.real:
            time.sleep(seconds)


def cut_connections(url: str) -> int:
    """Terminate every other session of the database ``url`` names (as a failover would)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


@pytest.fixture
def naps() -> Naps:
    return Naps()


@pytest.fixture
def ledger(postgres_url: str, naps: Naps) -> Iterator[Ledger]:
    """A PostgreSQL ledger whose retries record their waits instead of sleeping."""
    policy = RetryPolicy(attempts=4, first_delay=0.5, max_delay=2.0, sleep=naps)
    led = Ledger(postgres_url, options=LedgerOptions(retry=policy, pool_size=2))
    yield led
    led.close()


def test_an_operation_after_lost_connections_is_retried(
    ledger: Ledger, postgres_url: str, naps: Naps
) -> None:
    ledger.plan("k1", "url", [Slot(0, "i1", "a", "https://h/a")], {"i1": "url:https://h/a"})
    assert cut_connections(postgres_url) >= 1  # the pool's idle connection dies
    ledger.advance("k1", "created", order_id="ord-1")
    assert ledger.order("k1").order_id == "ord-1"
    assert naps.waits == [0.5]  # one lost try, one wait, then a fresh connection


def test_backoff_doubles_up_to_its_ceiling_then_gives_up(naps: Naps) -> None:
    policy = RetryPolicy(
        attempts=5, first_delay=0.5, max_delay=2.0, connect_timeout=0.2, sleep=naps
    )
    with pytest.raises(psycopg.OperationalError):
        Ledger("postgresql://mori@127.0.0.1:1/ledger", options=LedgerOptions(retry=policy))
    assert naps.waits == [0.5, 1.0, 2.0, 2.0]


def test_errors_of_the_operation_itself_are_not_retried(ledger: Ledger, naps: Naps) -> None:
    with pytest.raises(KeyError):
        ledger.plan("k1", "upload", [Slot(0, "i1", "a", "/a")], {})  # no fingerprint
    with pytest.raises(ValueError, match="not an order field"):
        ledger.advance("k1", "created", no_such_column="x")
    assert naps.waits == []
    assert ledger.order_count() == 0


def test_a_lost_connection_inside_exclusive_fails_the_whole_block(
    ledger: Ledger, postgres_url: str
) -> None:
    """Nothing of the block lands; the planning lock is free again; the caller reruns it."""
    with pytest.raises(psycopg.OperationalError), ledger.exclusive():
        ledger.plan("k1", "url", [Slot(0, "i1", "a", "https://h/a")], {"i1": "f"})
        cut_connections(postgres_url)
        ledger.plan("k2", "url", [Slot(0, "i2", "b", "https://h/b")], {"i2": "f"})
    assert ledger.order_count() == 0
    with ledger.exclusive():  # the rerun
        ledger.plan("k1", "url", [Slot(0, "i1", "a", "https://h/a")], {"i1": "f"})
    assert [o.order_key for o in ledger.orders()] == ["k1"]


def test_a_run_survives_a_server_restart(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """A loop of ledger operations in one thread, ``pg_ctl restart`` in another: every write
    of every iteration lands exactly once."""
    naps = Naps(real=True)
    policy = RetryPolicy(attempts=8, first_delay=0.2, max_delay=2.0, sleep=naps)
    ledger = Ledger(postgres_url, options=LedgerOptions(retry=policy))
    done: list[int] = []
    failure: list[BaseException] = []
    progress = threading.Condition()
    stop = threading.Event()

    def one(n: int) -> None:
        image = f"img-{n}"
        ledger.plan(f"k{n}", "url", [Slot(0, image, "a", f"https://h/{n}")], {image: "fp"})
        ledger.advance(f"k{n}", "created", order_id=f"ord-{n}")
        assert ledger.record_event(f"e{n}", "ORDER.PROCESSED", f"ord-{n}", "complete", {"n": n})
        ledger.image_done(image, f"s3://out/{n}.jpg", "0" * 64)
        ledger.advance(f"k{n}", "downloaded")

    def loop() -> None:
        try:
            n = 0
            while not stop.is_set():
                one(n)
                with progress:
                    done.append(n)
                    progress.notify_all()
                n += 1
        except BaseException as exc:
            failure.append(exc)
            with progress:
                progress.notify_all()

    def reach(count: int) -> None:
        with progress:
            assert progress.wait_for(lambda: len(done) >= count or failure, timeout=60)

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        reach(20)
        postgres_server.restart()
        restarted_at = len(done)
        reach(restarted_at + 20)
    finally:
        stop.set()
        worker.join(60)
    try:
        assert failure == []
        assert naps.waits, "the restart cut no connection"
        assert ledger.order_count() == len(done)
        assert all(o.status == "downloaded" for o in ledger.orders())
        assert len(ledger.events()) == len(done)
        assert ledger.image_statuses() == {"processed": len(done)}
        assert {e.event_id for e in ledger.events()} == {f"e{n}" for n in done}
    finally:
        ledger.close()
    print(f"\nrestart: {len(done)} iterations, retries waited {naps.waits}")
