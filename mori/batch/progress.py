"""What a run reports while it works, for whoever listens (no Prefect here).

* :class:`OrderEvent`: an order was created at MORI, completed (downloaded, verified, written)
  or failed. :class:`~mori.batch.orders.OrderProcessor` calls its observer with one; the Prefect
  glue (``tasks/events.py``) turns them into Prefect events.
* :class:`RunProgress`: how far a run is, in images, for a progress display (the CLI's bar).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["OrderEvent", "OrderEventKind", "OrderObserver", "RunProgress"]

OrderEventKind = Literal["created", "completed", "failed"]


@dataclass(frozen=True)
class OrderEvent:
    """One step of one order: ``created`` at MORI, ``completed`` or ``failed`` for good.

    ``files`` is the order's image count; ``processed`` and ``failed`` count its images by
    outcome once it is final; ``error_code`` is the order's when MORI (or verification) failed
    it as a whole.
    """

    kind: OrderEventKind
    order_key: str
    order_id: str | None
    files: int
    processed: int = 0
    failed: int = 0
    error_code: str | None = None


#: Called with every :class:`OrderEvent`, from the thread driving the order; it must be quick
#: and must not raise (an observer that fails is logged and ignored).
OrderObserver = Callable[[OrderEvent], None]


class RunProgress(Protocol):
    """Receives a run's progress: the planned total, then each order as it finishes."""

    def planned(self, orders: int, images: int) -> None:
        """The run will drive ``orders`` orders holding ``images`` images."""

    def order_done(self, images: int) -> None:
        """An order holding ``images`` images finished (in any outcome) in this run."""
