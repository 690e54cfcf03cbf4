"""Bounded retries of a PostgreSQL ledger transaction after the connection was lost.

A server restart, a failover or a dropped network path ends every open connection; the
transaction in flight is rolled back by the server, or committed if the connection broke during
the commit and the client never heard back. Every ledger operation is idempotent (``INSERT ...
ON CONFLICT``, ``UPDATE`` to a state), so running it again is safe either way. Errors that say
nothing about the connection (a constraint, a bug) are never retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg_pool import PoolTimeout

__all__ = ["RetryPolicy", "connection_lost"]

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


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a lost connection is retried (about 30 s in all by default)."""

    #: Tries of one transaction, the first included.
    attempts: int = 6
    #: The wait before the first retry; each next wait doubles, up to ``max_delay``.
    first_delay: float = 1.0
    max_delay: float = 15.0
    #: How long one try waits for a connection from the pool.
    connect_timeout: float = 5.0
    #: How to wait (tests pass a fake).
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
