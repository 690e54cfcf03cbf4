"""Hold the orders a process drives: claim them, renew the lease in the background, let go.

A child run of a fanned-out ``protect`` run claims the orders it was handed
(:meth:`ClaimHolder.claim`), drives only those it got, and keeps their lease alive from a
background thread while it works. When its host dies the renewals stop, the leases run out, and
whoever looks next (the parent run, the next run) sees the orders free and hands them to another
process. The MORI idempotency keys of the orders never change, so the new driver resumes them
where the ledger says without MORI seeing anything twice.

A process that learns it lost a claim (another owner took it over after the lease ran out, e.g.
because the ledger was unreachable for longer than the lease) stops driving: :meth:`check`,
called between the steps of an order, raises :class:`ClaimLost`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType

from mori.batch.ledger import Ledger

__all__ = ["ClaimHolder", "ClaimLost", "owner_name"]

log = logging.getLogger(__name__)


def owner_name(worker: str | None = None) -> str:
    """Who this process is in a claim: ``host:pid``, and ``@worker`` when a worker started it."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    return f"{name}@{worker}" if worker else name


class ClaimLost(RuntimeError):
    """Another process drives this order now: stop driving it."""


class ClaimHolder:
    """The claims of one process, renewed every third of the lease until the block ends.

    Use it as a context manager: the renewing thread starts on entry; on exit it stops and
    every claim still held is released (a claim that cannot be released simply lapses).
    """

    def __init__(
        self,
        ledger: Ledger,
        owner: str,
        lease_seconds: float,
        ticket: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.ledger, self.owner, self.ticket = ledger, owner, ticket
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._held: list[str] = []
        self._lost: set[str] = set()
        self._renewed_at = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> list[str]:
        """The orders this process holds (claimed and not lost), in claiming order."""
        with self._lock:
            return [k for k in self._held if k not in self._lost]

    @property
    def lost(self) -> set[str]:
        """Orders whose claim this process lost."""
        with self._lock:
            return set(self._lost)

    def claim(self, order_keys: Iterable[str]) -> list[str]:
        """Claim ``order_keys``; the ones this process now holds (others hold the rest, or they
        are finished already)."""
        got = self.ledger.claim(list(order_keys), self.owner, self.lease_seconds, self.ticket)
        with self._lock:
            self._held += [k for k in got if k not in self._held]
            self._renewed_at = self._clock()
        return got

    def check(self, *_: object) -> None:
        """Raise :class:`ClaimLost` once a claim was lost (an ``on_progress`` hook of
        :class:`~mori.batch.orders.OrderProcessor`: it runs between an order's steps)."""
        lost = self.lost
        if lost:
            raise ClaimLost(
                f"{self.owner} lost its claim of {len(lost)} order(s), e.g. {min(lost)[:8]}:"
                " another process drives them now"
            )

    def renew(self) -> None:
        """Extend every held claim once (the renewing thread's step).

        A claim missing from the answer was taken over: it is lost. When the ledger cannot be
        reached, the claims count as lost once a whole lease passed without a renewal, since
        another process may have taken them over by then.
        """
        keys = self.held
        if not keys:
            return
        try:
            kept = set(self.ledger.renew_claims(keys, self.owner, self.lease_seconds))
        except Exception as exc:
            silent = self._clock() - self._renewed_at
            log.warning("%s: renewing %d claims failed (%s)", self.owner, len(keys), exc)
            if silent > self.lease_seconds:
                with self._lock:
                    self._lost.update(keys)
            return
        with self._lock:
            self._lost.update(k for k in keys if k not in kept)
            self._renewed_at = self._clock()
        if len(kept) < len(keys):
            log.warning("%s: %d claims were taken over", self.owner, len(keys) - len(kept))

    def release(self) -> None:
        """Let go of every claim still held."""
        keys = self.held
        if not keys:
            return
        try:
            self.ledger.release_claims(keys, self.owner)
        except Exception as exc:  # they lapse at the end of their lease instead
            log.warning("%s: releasing %d claims failed (%s)", self.owner, len(keys), exc)

    def _renew_until_stopped(self) -> None:
        interval = self.lease_seconds / 3
        while not self._stop.wait(interval):
            self.renew()

    def __enter__(self) -> ClaimHolder:
        self._thread = threading.Thread(
            target=self._renew_until_stopped, name="claim-renewer", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.release()
