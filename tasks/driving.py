"""Drive a run's orders: one ``process-order`` task run per order, a bounded number at once.

:func:`drive_orders` drives some orders with at most ``limit`` task runs at once, and tells a
:class:`OrderProgress` each time one finishes. A ``protect`` run drives its orders a window at a
time (:class:`OrderDriver`): here, or through child runs when it fans out
(:func:`tasks.fanout.fan_out_orders`); its one progress bar counts every window's orders.
"""

from __future__ import annotations

from collections import deque
from typing import cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed

from mori.batch.orders import OrderResult
from mori.batch.progress import RunProgress
from mori.batch.runtime import Runtime
from tasks.fanout import fan_out_orders
from tasks.orders import process_order

__all__ = ["OrderDriver", "OrderProgress", "drive_orders"]

Outcome = tuple[dict[str, OrderResult], dict[str, str]]


class OrderProgress:
    """The ``Orders finished`` progress artifact of ``total`` orders (none when there are none)
    and, with ``listener``, the run's progress in images."""

    def __init__(self, total: int, listener: RunProgress | None = None) -> None:
        self.total, self.done, self.listener = total, 0, listener
        self._artifact = (
            cast(UUID, create_progress_artifact(0.0, description="Orders finished"))
            if total
            else None
        )

    def order_done(self, images: int) -> None:
        """One more order finished (holding ``images`` images)."""
        self.done += 1
        if self._artifact is not None:
            update_progress_artifact(
                self._artifact, 100.0 * min(self.done, self.total) / self.total
            )
        if self.listener is not None:
            self.listener.order_done(images)


def drive_orders(
    order_keys: list[str], rt: Runtime, limit: int, progress: RunProgress | None = None
) -> Outcome:
    """Run ``process_order`` for each key, at most ``limit`` at a time, with a progress bar.

    Returns the results by order key and, for orders whose task failed even after retries, the
    reason (their images end this run ``pending``; the ledger lets the next run resume them).
    """
    tracker = OrderProgress(len(order_keys), progress)
    return _drive(order_keys, rt, limit, tracker)


def _drive(order_keys: list[str], rt: Runtime, limit: int, progress: OrderProgress) -> Outcome:
    """:func:`drive_orders` reporting to ``progress``."""
    queue: deque[str] = deque(order_keys)
    running: dict[PrefectFuture[OrderResult], str] = {}
    results: dict[str, OrderResult] = {}
    crashed: dict[str, str] = {}
    while queue or running:
        while queue and len(running) < limit:
            key = queue.popleft()
            running[process_order.submit(key, rt.processor)] = key
        done = next(as_completed(list(running)))
        key = running.pop(done)
        try:
            results[key] = done.result()
        except Exception as exc:
            crashed[key] = f"order task failed: {type(exc).__name__}: {exc}"
        held = results[key].images if key in results else rt.ledger.slots(key)
        progress.order_done(len(held))
    return results, crashed


class OrderDriver:
    """A ``protect`` run's orders driven a window at a time (see the module docstring): here,
    ``limit`` at a time, or with ``fan_out`` > 0 through at most that many child runs."""

    def __init__(
        self,
        rt: Runtime,
        run_id: str,
        limit: int,
        fan_out: int,
        progress: OrderProgress,
    ) -> None:
        self.rt, self.run_id, self.limit, self.fan_out = rt, run_id, limit, fan_out
        self.progress = progress
        self._fanned = fan_out > 0

    def drive(self, order_keys: list[str]) -> Outcome:
        """Drive ``order_keys``; their results, and the reasons of those that crashed."""
        if not order_keys:
            return {}, {}
        if self._fanned:
            fanned = fan_out_orders(order_keys, self.rt, self.run_id, self.fan_out)
            if fanned is not None:
                for key in order_keys:
                    result = fanned[0].get(key)
                    self.progress.order_done(len(result.images) if result else 0)
                return fanned
            self._fanned = False  # no child deployment: drive here from now on
        return _drive(order_keys, self.rt, self.limit, self.progress)
