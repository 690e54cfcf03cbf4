"""The store core's interface: transactions over one ledger database, whichever the backend.

A :class:`Store` owns the connections (one SQLite file, or a PostgreSQL pool) and runs units of
work, each a function of a :class:`Tx`, in transactions: :meth:`Store.read`,
:meth:`Store.write` (which a PostgreSQL store repeats after a lost connection, so every unit of
work must be safe to run twice), :meth:`Store.exclusive` (the planning lock: the block's reads
and writes are one transaction, and other planners wait) and :meth:`Store.snapshot` (one
consistent read of every table). The repositories write their SQL once with ``?`` marks; the
:class:`Tx` of each backend translates them and says where the dialects differ.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, TypeVar

__all__ = ["Dialect", "Row", "Store", "Tx"]

Dialect = Literal["sqlite", "postgresql"]
Row = tuple[Any, ...]
T = TypeVar("T")


class Tx(ABC):
    """The statements of one transaction, in the repositories' SQL (``?`` parameter marks)."""

    #: Which SQL dialect the database speaks.
    dialect: Dialect
    #: Keys per ``IN`` lookup that the backend takes comfortably in one statement.
    lookup_batch: int
    #: The column that orders rows in the order they were inserted.
    insertion_order: str

    @abstractmethod
    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters."""

    @abstractmethod
    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Every row a query returns, as plain tuples."""

    @abstractmethod
    def stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[Row]:
        """The rows of a query, fetched in bounded chunks (for whole tables)."""

    @abstractmethod
    def matches(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A condition "``column`` is one of ``values``" and its parameters."""

    @abstractmethod
    def lock_planning(self) -> None:
        """Hold the planning lock until this transaction ends (other planners wait)."""

    def value(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first column of the first row of a query (``None`` for no row)."""
        rows = self.rows(sql, args)
        return rows[0][0] if rows else None


class Store(ABC):
    """One ledger database and the transactions that read and write it."""

    dialect: Dialect

    @property
    @abstractmethod
    def description(self) -> str:
        """Where the ledger lives, safe to print (a URL's password is masked)."""

    @abstractmethod
    def read(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` to read the ledger (inside :meth:`exclusive`: in its transaction)."""

    @abstractmethod
    def write(self, work: Callable[[Tx], T], *, bulk: bool = False) -> T:
        """Run ``work`` in one write transaction: all of its changes are committed, or none.

        ``work`` may run more than once (after a connection was lost, even during the commit):
        it must be idempotent. ``bulk`` tells the store the transaction is very large.
        """

    @abstractmethod
    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the planning lock for a read-then-write sequence of this thread."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[Tx]:
        """A read-only transaction that sees every table as of one moment."""

    @abstractmethod
    def close(self) -> None:
        """Release the connections (waiting for background maintenance)."""
