"""Waiting for an order to finish: the webhook first, polling as the fallback.

With a webhook receiver in place, completion events land in the ledger (verified, deduplicated
by ``eventId``); the waiter reads them there and makes no API calls. If no event came within
``webhook_grace`` seconds of the wait starting (lost or late delivery), or no receiver is
configured, it polls ``GET /api/v2/orders/{id}`` every ``poll_interval`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mori.batch.ledger import Ledger
from mori.client import MoriClient

FINAL = frozenset({"complete", "failed", "expired"})


class CompletionWaiter:
    """Block until an order is complete or failed, or the timeout passes."""

    def __init__(
        self,
        client: MoriClient,
        ledger: Ledger,
        *,
        use_webhooks: bool,
        poll_interval: float = 2.0,
        webhook_grace: float = 30.0,
        event_check_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client, self.ledger = client, ledger
        self.use_webhooks = use_webhooks
        self.poll_interval, self.webhook_grace = poll_interval, webhook_grace
        self.event_check_interval = event_check_interval
        self.clock, self.sleep = clock, sleep
        self.polls = 0

    def wait(self, order_id: str, timeout: float) -> str:
        """The order's final status, or its last known status when ``timeout`` ran out."""
        start = self.clock()
        next_poll = start + (self.webhook_grace if self.use_webhooks else 0.0)
        status = "inProgress"
        while True:
            now = self.clock()
            if self.use_webhooks:
                event = self.ledger.event_status(order_id)
                if event in FINAL:
                    return event
            if now >= next_poll:
                self.polls += 1
                status = self.client.get_order(order_id).status
                if status in FINAL:
                    return status
                next_poll = now + self.poll_interval
            if now - start >= timeout:
                return status
            step = self.event_check_interval if self.use_webhooks else self.poll_interval
            self.sleep(max(0.0, min(step, next_poll - now, start + timeout - now)))
