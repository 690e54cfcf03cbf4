"""Hold the orders a process drives: claim them, renew the lease in the background, let go.

Every process that drives orders (a ``protect`` run, a child run of a fanned-out one, a
``finalize`` or ``reconcile`` run) claims each order before its first step and releases it
after its last, through a :class:`ClaimHolder` whose thread renews the leases meanwhile. When a
host dies its renewals stop, the leases run out, and whoever looks next (the parent run, the
next run) finds the orders free and drives them on. The MORI idempotency keys of an order never
change, so the new driver resumes it where the ledger says and MORI sees nothing twice.

A process need not wait for the lease of a process *of its own host* that no longer exists (a
run killed and started again): a claim records its owner's host (hostname, boot and process
namespace, :func:`host_id`) and process id, and such a claim is taken over at once.

A process that learns it lost a claim (another owner took it over after the lease ran out, e.g.
because the ledger was unreachable for longer than the lease) stops driving that order:
:meth:`ClaimHolder.check`, called between the steps of an order, raises :class:`ClaimLost`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from types import TracebackType

from mori.batch.ledger import Ledger

__all__ = ["ClaimHolder", "ClaimLost", "host_id", "owner_name", "process_exists"]

log = logging.getLogger(__name__)


def owner_name(worker: str | None = None) -> str:
    """Who this process is in a claim: ``host:pid``, and ``@worker`` when a worker started it."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    return f"{name}@{worker}" if worker else name


@cache
def host_id() -> str:
    """This host as claims know it: hostname, boot and process-id namespace, hashed.

    Two processes see each other's process ids only when all three agree (containers sharing a
    hostname have namespaces of their own; a reboot starts a new boot id).
    """
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(os.readlink(path) if path.endswith("/pid") else Path(path).read_text())
        except OSError:
            parts.append("")
    return hashlib.sha256("\0".join(p.strip() for p in parts).encode()).hexdigest()[:16]


def process_exists(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, killed but not reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class ClaimLost(RuntimeError):
    """Another process drives this order now: stop driving it."""


class ClaimHolder:
    """The claims of one process, renewed every third of the lease while it runs.

    :meth:`start` the renewing thread (or use it as a context manager); :meth:`stop` ends it
    and releases every claim still held (a claim that cannot be released simply lapses).
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
        self._held: dict[str, None] = {}
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
        are finished already). Claims of processes of this host that ended are taken over."""
        keys = list(order_keys)
        claims = self.ledger.claims(keys)
        gone = {
            c.owner
            for c in claims.values()
            if c.live and c.owner != self.owner and c.host_id == host_id() and c.pid is not None
            and not process_exists(c.pid)
        }  # fmt: skip
        got = self.ledger.claim(
            keys,
            self.owner,
            self.lease_seconds,
            self.ticket,
            host_id=host_id(),
            pid=os.getpid(),
            gone=sorted(gone),
        )
        with self._lock:
            self._held.update(dict.fromkeys(got))
            self._lost.difference_update(got)
            self._renewed_at = self._clock()
        return got

    def holder(self, order_key: str) -> str:
        """Who holds ``order_key`` now (for messages)."""
        claim = self.ledger.claims([order_key]).get(order_key)
        return claim.owner if claim and claim.live else "nobody"

    def check(self, order_key: str | None = None) -> None:
        """Raise :class:`ClaimLost` when this process lost the claim of ``order_key`` (or of
        any order, without a key): another process drives it now."""
        lost = self.lost if order_key is None else self.lost & {order_key}
        if lost:
            raise ClaimLost(
                f"{self.owner} lost its claim of order {min(lost)[:8]}"
                f"{f' and {len(lost) - 1} more' if len(lost) > 1 else ''}:"
                " another process drives it now"
            )

    def renew(self) -> None:
        """Extend every held claim once (the renewing thread's step).

        A claim missing from the answer was taken over: it is lost. When the ledger cannot be
        reached, the claims count as lost once a whole lease passed without a renewal, since
        another process may have taken them over by then.
        """
        keys = self.held
        if not keys:
            with self._lock:
                self._renewed_at = self._clock()
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
        with self._lock:  # a claim released while the renewal ran is not lost: it is done
            lost = [k for k in keys if k not in kept and k in self._held]
            self._lost.update(lost)
            self._renewed_at = self._clock()
        if lost:
            log.warning("%s: %d claims were taken over", self.owner, len(lost))

    def release(self, order_keys: Iterable[str] | None = None) -> None:
        """Let go of the claims of ``order_keys`` (default: every claim still held)."""
        with self._lock:
            keys = list(self._held) if order_keys is None else list(order_keys)
            mine = [k for k in keys if k in self._held and k not in self._lost]
            for key in keys:
                self._held.pop(key, None)
        if not mine:
            return
        try:
            self.ledger.release_claims(mine, self.owner)
        except Exception as exc:  # they lapse at the end of their lease instead
            log.warning("%s: releasing %d claims failed (%s)", self.owner, len(mine), exc)

    def start(self) -> ClaimHolder:
        """Start renewing in the background (every third of the lease)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._renew_until_stopped, name="claim-renewer", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing and release every claim still held."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.release()

    def _renew_until_stopped(self) -> None:
        interval = self.lease_seconds / 3
        while not self._stop.wait(interval):
            self.renew()

    def __enter__(self) -> ClaimHolder:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
