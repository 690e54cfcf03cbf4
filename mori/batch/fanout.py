"""Spread one run's orders over child runs, watch them through the ledger, hand on lost work.

A ``protect`` run that fans out splits the keys of its planned orders into groups of at most
:data:`GROUP_SIZE` and hands each group to a child run (a :class:`Dispatcher` starts it; in
Prefect, ``run_deployment`` of the ``protect-orders`` deployment), at most ``fan_out`` at once.
A child claims its orders in the ledger (:mod:`mori.batch.claims`) and renews the claims while
it drives them. The parent watches two things every ``poll_interval``: the child run's state,
and the ledger (which orders are settled, which claims are alive). Nothing here trusts the
orchestrator to notice a dead host: a child whose claims lapsed without being released is lost,
whatever state its run still shows.

For each group the parent decides (:func:`judge`):

* every order settled (downloaded or failed), or left by its child as pending (the child
  released the claim, e.g. MORI is still processing): the group is **done**;
* the child's claims lapsed unreleased (its host died, or it hangs), or the child run ended
  without finishing orders it did not release (failed, crashed, cancelled), or it was picked up
  but claimed nothing within ``start_grace``: the group is **lost**; its unfinished orders go to
  a new child run (the next attempt: a new idempotency key for the child run, the same MORI
  idempotency keys for the orders), at most ``max_attempts`` times;
* otherwise it is still running.

Groups are recorded in the ledger before their child starts, and a child's idempotency key
derives from the run, the group and the attempt, so a retried parent finds its groups and
re-attaches to the same child runs instead of starting new ones.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mori.batch.ledger import ClaimRecord, Ledger

__all__ = [
    "GROUP_SIZE",
    "Dispatcher",
    "FanOut",
    "FanOutPolicy",
    "FanOutReport",
    "Group",
    "OrderView",
    "Verdict",
    "judge",
    "run_of",
    "split",
]

#: Most order keys handed to one child run (keys, never payloads: run parameters are capped).
GROUP_SIZE = 20
#: Prefect state types of a run that ended.
ENDED = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
#: Prefect state types of a run a worker has picked up.
PICKED_UP = frozenset({"PENDING", "RUNNING", "PAUSED", "CANCELLING"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Group:
    """Some order keys of one run, handed to one child run per attempt."""

    run_id: str
    number: int
    order_keys: tuple[str, ...]
    attempt: int = 1

    @property
    def ticket(self) -> str:
        """What the child's claims carry: ``<run>/<group>/<attempt>``."""
        return f"{self.run_id}/{self.number}/{self.attempt}"

    @property
    def idempotency_key(self) -> str:
        """The child run's idempotency key: one child run per attempt of a group."""
        return f"protect-{self.run_id}-g{self.number}-a{self.attempt}"

    def next(self, order_keys: Sequence[str]) -> Group:
        """The next attempt of this group, for ``order_keys``."""
        return Group(self.run_id, self.number, tuple(order_keys), self.attempt + 1)


def run_of(ticket: str) -> str:
    """The run a child's ticket (``<run>/<group>/<attempt>``) belongs to."""
    return ticket.rsplit("/", 2)[0]


def split(
    order_keys: Sequence[str], fan_out: int, run_id: str, first: int = 0, size: int = GROUP_SIZE
) -> list[Group]:
    """Consecutive groups numbered from ``first``: as many as ``fan_out`` when the keys allow,
    each of at most ``size`` keys."""
    if fan_out < 1:
        raise ValueError("fan_out must be >= 1")
    per_group = max(1, min(size, math.ceil(len(order_keys) / fan_out)))
    return [
        Group(run_id, first + n, tuple(order_keys[start : start + per_group]))
        for n, start in enumerate(range(0, len(order_keys), per_group))
    ]


class Dispatcher(Protocol):
    """Starts and inspects child runs (see :class:`tasks.fanout.DeploymentDispatcher`)."""

    def start(self, group: Group) -> str:
        """Start the child run of ``group`` (the same one again for the same idempotency key);
        its id."""

    def state(self, child: str) -> str:
        """The child run's state type (``SCHEDULED``, ``RUNNING``, ``COMPLETED``, ...)."""

    def abandon(self, child: str, reason: str) -> None:
        """Mark a lost child run as crashed (it may never report again)."""


@dataclass(frozen=True)
class FanOutPolicy:
    """How a run fans out."""

    #: Most child runs at once.
    fan_out: int
    #: Seconds between looks at the children and the ledger.
    poll_interval: float = 2.0
    #: Child runs per group, the first included, before its orders stay pending.
    max_attempts: int = 3
    #: A child picked up by a worker that holds no claim after this many seconds is lost.
    start_grace: float = 120.0
    #: A child no worker picked up after this many seconds is given up.
    start_timeout: float = 3600.0
    group_size: int = GROUP_SIZE


@dataclass(frozen=True)
class OrderView:
    """An order of a group as the ledger has it now."""

    order_key: str
    #: Downloaded or failed (its replacement, if it was replaced).
    settled: bool
    claim: ClaimRecord | None = None


@dataclass(frozen=True)
class Verdict:
    """What to do with a group whose child is no longer running."""

    #: Orders to hand to a new child run.
    handoff: tuple[str, ...] = ()
    #: Orders to give up on in this run (they stay pending), with ``reason``.
    given_up: tuple[str, ...] = ()
    reason: str = ""


def judge(
    group: Group, state: str, orders: Sequence[OrderView], waited: float, policy: FanOutPolicy
) -> Verdict | None:
    """The verdict on ``group`` whose child run is in ``state`` since its start ``waited``
    seconds ago; ``None`` while it is still running."""
    ticket = group.ticket
    open_ = [o for o in orders if not o.settled]
    left = [o for o in open_ if not (_mine(o, ticket) and o.claim and o.claim.released)]
    if not left:
        return Verdict()  # settled, or left pending by the child itself
    lapsed = [o for o in left if _mine(o, ticket) and o.claim and not o.claim.live]
    if lapsed:
        return Verdict(
            handoff=_unheld(left, ticket),
            reason=f"the claims of child {ticket} lapsed unreleased (its process is gone)",
        )
    if state in ENDED:
        if any(o.claim and o.claim.live for o in left):
            return None  # someone still drives them (or a dead child's lease runs out first)
        return Verdict(handoff=_unheld(left, ticket), reason=f"child {ticket} ended {state}")
    unheld = _unheld(left, ticket)
    if any(_mine(o, ticket) for o in orders) or not unheld:
        return None  # it drives them, or others do
    if state in PICKED_UP and waited > policy.start_grace:
        reason = f"child {ticket} was picked up but claimed nothing in {waited:.0f} s"
        return Verdict(handoff=unheld, reason=reason)
    if waited > policy.start_timeout:
        reason = f"no worker started child {ticket} in {waited:.0f} s"
        return Verdict(given_up=unheld, reason=reason)
    return None


def _mine(order: OrderView, ticket: str) -> bool:
    return order.claim is not None and order.claim.ticket == ticket


def _unheld(orders: Sequence[OrderView], ticket: str) -> tuple[str, ...]:
    """The keys of ``orders`` nobody else drives right now."""
    return tuple(
        o.order_key for o in orders if not (o.claim and o.claim.live and o.claim.ticket != ticket)
    )


@dataclass
class FanOutReport:
    """What a fan-out did."""

    groups: int = 0
    #: Child runs started (or re-attached), one per attempt of a group.
    children: list[str] = field(default_factory=list)
    #: Groups whose orders went to a new child run, with the reason.
    handed_on: list[str] = field(default_factory=list)
    #: Orders given up on in this run (they stay pending), with the reason.
    unfinished: dict[str, str] = field(default_factory=dict)


@dataclass
class _Child:
    group: Group
    run: str
    started: float


class FanOut:
    """Drive a run's orders through child runs (see the module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        dispatcher: Dispatcher,
        run_id: str,
        policy: FanOutPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_group_done: Callable[[int, int], None] | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.ledger, self.dispatcher, self.run_id, self.policy = ledger, dispatcher, run_id, policy
        self._clock, self._sleep = clock, sleep
        self._on_group_done = on_group_done or (lambda done, total: None)
        self._log = logger or log

    def run(self, order_keys: Sequence[str]) -> FanOutReport:
        """Hand every order of ``order_keys`` to child runs and wait until each group is done
        or given up. A group of these orders this run recorded before (a retried run) is
        re-attached; new groups are numbered after every group the run recorded."""
        report = FanOutReport()
        recorded = self.ledger.dispatches(self.run_id)
        wanted = set(order_keys)
        earlier = [  # groups of these orders (a run that fans out a window at a time has more)
            Group(d.run_id, d.group, d.order_keys, d.attempt)
            for d in recorded
            if wanted.intersection(d.order_keys)
        ]
        assigned = {key for group in earlier for key in group.order_keys}
        first = max((d.group for d in recorded), default=-1) + 1
        fresh = [k for k in order_keys if k not in assigned]
        waiting = deque(
            earlier + split(fresh, self.policy.fan_out, self.run_id, first, self.policy.group_size)
        )
        report.groups = len(waiting)
        running: dict[int, _Child] = {}
        finished = 0
        while waiting or running:
            while waiting and len(running) < self.policy.fan_out:
                child = self._start(waiting.popleft())
                running[child.group.number] = child
                report.children.append(child.run)
            self._sleep(self.policy.poll_interval)
            for number, child in list(running.items()):
                state = self.dispatcher.state(child.run)
                waited = self._clock() - child.started
                verdict = judge(child.group, state, self._views(child.group), waited, self.policy)
                if verdict is None:
                    continue
                del running[number]
                if verdict.handoff or verdict.given_up:
                    retry = self._after(child, state, verdict, report)
                    if retry is not None:
                        waiting.appendleft(retry)
                        continue
                finished += 1
                self._on_group_done(finished, report.groups)
        return report

    def _start(self, group: Group) -> _Child:
        """Record the group, then start (or re-attach to) its child run."""
        self.ledger.record_dispatch(group.run_id, group.number, group.attempt, group.order_keys)
        run = self.dispatcher.start(group)
        self.ledger.set_dispatch_child(group.run_id, group.number, group.attempt, run)
        self._log.info(
            "group %d (%d orders) -> child run %s, attempt %d",
            group.number,
            len(group.order_keys),
            run,
            group.attempt,
        )
        return _Child(group, run, self._clock())

    def _after(
        self, child: _Child, state: str, verdict: Verdict, report: FanOutReport
    ) -> Group | None:
        """Hand a lost group's orders on (its next attempt), or give them up."""
        group = child.group
        if state not in ENDED:
            self.dispatcher.abandon(child.run, verdict.reason)
        self._log.warning("group %d lost: %s", group.number, verdict.reason)
        report.handed_on.append(f"group {group.number}: {verdict.reason}")
        if verdict.handoff and group.attempt < self.policy.max_attempts:
            return group.next(verdict.handoff)
        reason = verdict.reason
        if verdict.handoff:
            reason += f"; given up after {group.attempt} child runs"
        for key in (*verdict.handoff, *verdict.given_up):
            report.unfinished[key] = f"{reason}; a later run resumes it"
        return None

    def _views(self, group: Group) -> list[OrderView]:
        """Each order of ``group`` as the ledger has it now."""
        claims = self.ledger.claims(group.order_keys)
        return [OrderView(k, self._settled(k), claims.get(k)) for k in group.order_keys]

    def _settled(self, order_key: str) -> bool:
        """Downloaded or failed (the replacement of an abandoned order counts)."""
        record = self.ledger.order(order_key)
        while record.status == "abandoned" and record.replaced_by:
            record = self.ledger.order(record.replaced_by)
        return record.status in ("downloaded", "failed")
