"""The SQLite store: one ledger file in WAL mode, shared by the processes of one machine.

One connection per :class:`SqliteStore`, guarded by a re-entrant lock, so a store is safe to
share between threads. Reads run outside any transaction (WAL readers never wait for the
writer); writes run in ``BEGIN IMMEDIATE`` transactions, which take the file's write lock at
once, so a read-then-write sequence in :meth:`SqliteStore.exclusive` is never interleaved with
another process's writes: other writers wait up to the busy timeout. ``synchronous=FULL``: a
committed transaction survives a power cut.

A very large write (``bulk``) leaves the copy of the WAL into the database file to a background
thread instead of SQLite's automatic checkpoint inside the commit, so the commit returns as soon
as the WAL is durable.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from mori.batch.ledger._store import Row, Store, Tx

__all__ = ["SqliteStore", "SqliteTx"]

T = TypeVar("T")

_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default
#: Bytes of WAL file kept after a checkpoint reset it (a bulk intent may have grown it a lot).
_WAL_SIZE_LIMIT = 64 * 2**20
#: Keys per ``IN (...)`` lookup (SQLite allows 32,766 parameters since 3.32, 999 before).
LOOKUP_BATCH = 10_000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 900


class SqliteTx(Tx):
    """Statements on the store's connection (inside or outside a transaction)."""

    dialect = "sqlite"
    lookup_batch = LOOKUP_BATCH
    insertion_order = "rowid"

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, args).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.db.execute(sql, args).fetchall()

    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[Row]:
        return self.db.execute(sql, args)  # a cursor fetches as it is iterated

    def matches(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def lock_planning(self) -> None:
        """Nothing to do: every write transaction holds the file's write lock."""


class SqliteStore(Store):
    """One ledger file; thread-safe."""

    dialect = "sqlite"

    def __init__(self, path: Path, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        self._db.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
        self._tx = SqliteTx(self._db)
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_later = False

    @property
    def background_checkpoint(self) -> threading.Thread | None:
        """The thread of the last checkpoint a large write left to the background, if any."""
        return self._checkpointer

    @property
    def description(self) -> str:
        return str(self.path)

    def read(self, work: Callable[[Tx], T]) -> T:
        with self._lock:
            return work(self._tx)

    def write(self, work: Callable[[Tx], T], *, bulk: bool = False) -> T:
        with self._transaction(checkpoint_later=bulk):
            return work(self._tx)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._transaction():
            yield

    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        """A deferred transaction: its first read fixes the WAL snapshot every later read sees."""
        with self._lock:
            if self._db.in_transaction:
                yield self._tx
                return
            self._db.execute("BEGIN")
            try:
                yield self._tx
            finally:
                self._db.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.join()
            self._db.close()

    @contextmanager
    def _transaction(self, checkpoint_later: bool = False) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction (or a part of the one this thread holds).

        ``checkpoint_later``: the commit (durable once the WAL is synced) does not copy the WAL
        into the database file itself; a background thread does (for very large transactions).
        """
        with self._lock:
            if checkpoint_later:  # also when nested: the outermost commit honours it
                self._db.execute("PRAGMA wal_autocheckpoint=0")
                self._checkpoint_later = True
            if self._db.in_transaction:  # inside exclusive(): part of its transaction
                yield
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                later, self._checkpoint_later = self._checkpoint_later, False
                if later:
                    self._db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
        if later:
            self._checkpoint_in_background()

    def _checkpoint_in_background(self) -> None:
        """A passive checkpoint on a connection of its own (never blocks readers or writers)."""

        def run() -> None:
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    db.close()
            except sqlite3.Error:  # maintenance only: the next commits checkpoint anyway
                pass

        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.join()
            self._checkpointer = threading.Thread(target=run, name="ledger-checkpoint", daemon=True)
            self._checkpointer.start()
