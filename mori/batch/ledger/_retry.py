"""How a PostgreSQL ledger retries a transaction after the connection was lost (bounded).

A server restart, a failover or a dropped network path ends every open connection; the
transaction in flight is rolled back by the server, or committed if the connection broke during
the commit and the client never heard back. Every ledger operation is idempotent (``INSERT ...
ON CONFLICT``, ``UPDATE`` to a state), so running it again is safe either way. Which errors
count as a lost connection: ``mori.batch.ledger._postgres.connection_lost``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["RetryPolicy"]


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
