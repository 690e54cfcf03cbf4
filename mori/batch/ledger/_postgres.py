"""The PostgreSQL store: one ledger database shared by every host, through a connection pool.

Every unit of work is one transaction on a connection of a ``psycopg_pool.ConnectionPool``,
retried (bounded, with backoff: :class:`~mori.batch.ledger._retry.RetryPolicy`) when the connection
is lost, so a run rides out a server restart. Readers never wait for writers (MVCC).

The planning lock is the transaction-level advisory lock :data:`PLANNING_LOCK`:
:meth:`PostgresStore.exclusive` takes it on one connection and pins that connection to the
calling thread, so every read and write of the block runs in that one transaction; the lock is
released when it commits or rolls back (also when the connection dies). A connection lost inside
the block fails the block, rolled back as a whole: the caller runs it again.

The password of the URL goes to libpq as a separate parameter, never in a connection string,
a pool name, a log line or an exception.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
import tenacity
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from mori.batch.ledger._retry import RetryPolicy
from mori.batch.ledger._store import Row, Store, Tx
from mori.batch.ledger.target import redact

__all__ = ["PLANNING_LOCK", "PostgresStore", "PostgresTx", "connection_lost"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: ``pg_advisory_xact_lock`` key of the planning lock ("moriledg").
PLANNING_LOCK = 0x6D6F72696C656467
_STREAM_ROWS = 10_000
_cursor_names = itertools.count()

#: SQLSTATEs after which the transaction is gone but a new one may succeed: the server shut
#: down, crashed or is starting (57P01-57P03), or rolled the transaction back to break a
#: deadlock or a serialization conflict (40P01, 40001). Class 08 (connection exception) too.
_RETRYABLE_STATES = frozenset({"57P01", "57P02", "57P03", "40P01", "40001"})


def connection_lost(exc: BaseException) -> bool:
    """``True`` for errors after which the same transaction may be run again on a new
    connection: no connection could be had, the connection broke, or the server ended it."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _RETRYABLE_STATES


@lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """The repositories' ``?`` marks as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresTx(Tx):
    """Statements on one pooled connection, inside its transaction."""

    dialect = "postgresql"
    lookup_batch = 50_000
    insertion_order = "seq"

    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self.conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.conn.execute(_pg(sql), tuple(args)).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_pg(sql), rows)

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(_pg(sql), tuple(args)).fetchall()

    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[Row]:
        """A server-side cursor: memory stays flat however large the table."""
        with self.conn.cursor(name=f"ledger_stream_{next(_cursor_names)}") as cur:
            cur.itersize = _STREAM_ROWS
            cur.execute(_pg(sql), tuple(args))
            yield from cur

    def matches(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    def lock_planning(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (PLANNING_LOCK,))

    def copy(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """``COPY ... FROM STDIN`` of ``rows`` (the fastest way in for many rows)."""
        with self.conn.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)


class PostgresStore(Store):
    """One ledger database behind a connection pool; thread-safe."""

    dialect = "postgresql"

    def __init__(self, url: str, retry: RetryPolicy | None = None, pool_size: int = 10) -> None:
        self._description = redact(url)
        self._retry = retry or RetryPolicy()
        self._local = threading.local()
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            "",
            kwargs=_connect_params(url),
            min_size=1,
            max_size=max(pool_size, 1),
            open=False,
            name="mori-ledger",
            timeout=self._retry.connect_timeout,
        )
        self._pool.open(wait=False)

    @property
    def description(self) -> str:
        return self._description

    def read(self, work: Callable[[Tx], T]) -> T:
        return self._run(work)

    def write(self, work: Callable[[Tx], T], *, bulk: bool = False) -> T:
        return self._run(work)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        if self._pinned() is not None:  # nested: part of the outer block
            yield
            return
        conn = self._retrying(self._locked_connection)
        self._local.tx = PostgresTx(conn)
        try:
            yield
        except BaseException:
            self._local.tx = None
            self._release(conn, commit=False)
            raise
        self._local.tx = None
        self._release(conn, commit=True)

    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        pinned = self._pinned()
        if pinned is not None:
            yield pinned
            return
        with self._pool.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PostgresTx(conn)

    def close(self) -> None:
        self._pool.close()

    def _pinned(self) -> PostgresTx | None:
        """The transaction of this thread's :meth:`exclusive` block, if it is in one."""
        tx: PostgresTx | None = getattr(self._local, "tx", None)
        return tx

    def _run(self, work: Callable[[Tx], T]) -> T:
        """``work`` in this thread's exclusive transaction, or in a new one (retried)."""
        pinned = self._pinned()
        if pinned is not None:
            return work(pinned)
        return self._retrying(lambda: self._once(work))

    def _once(self, work: Callable[[Tx], T]) -> T:
        """One try: a pooled connection, one transaction, committed when ``work`` returns."""
        with self._pool.connection() as conn:
            return work(PostgresTx(conn))

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, tried again after a lost connection, within the retry policy."""
        policy = self._retry
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(connection_lost),
            stop=tenacity.stop_after_attempt(max(policy.attempts, 1)),
            wait=tenacity.wait_exponential(multiplier=policy.first_delay, max=policy.max_delay),
            sleep=policy.sleep,
            before_sleep=self._before_retry,
            reraise=True,
        )
        return retrying(attempt)

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        """Log the lost connection and drop the pool's dead idle connections."""
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "ledger %s: connection lost (%s), try %d of %d again in %.1f s",
            self._description,
            type(exc).__name__,
            state.attempt_number + 1,
            self._retry.attempts,
            delay,
        )
        self._pool.check()

    def _locked_connection(self) -> psycopg.Connection[Row]:
        """A pooled connection in a transaction that holds the planning lock."""
        conn = self._pool.getconn()
        try:
            PostgresTx(conn).lock_planning()
        except BaseException:
            self._pool.putconn(conn)
            raise
        return conn

    def _release(self, conn: psycopg.Connection[Row], commit: bool) -> None:
        """End the exclusive transaction and give the connection back to the pool."""
        try:
            if commit:
                conn.commit()
            elif not conn.broken:
                conn.rollback()
        finally:
            self._pool.putconn(conn)


def _connect_params(url: str) -> dict[str, Any]:
    """libpq parameters of ``url`` (password included), with mori-pipeline's defaults."""
    try:
        params: dict[str, Any] = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ValueError(f"not a valid PostgreSQL URL: {redact(url)}") from None
    params.setdefault("application_name", "mori-pipeline-ledger")
    params.setdefault("connect_timeout", 10)
    return params
