"""The emulator's state and background machinery, shared by its HTTP routes."""

from __future__ import annotations

import threading
from datetime import datetime

from mori.emulator.config import EmulatorConfig
from mori.emulator.delivery import WebhookDispatcher
from mori.emulator.faults import FaultInjector
from mori.emulator.guards import IdempotencyStore, RateLimiter
from mori.emulator.orders import Order, OrderBook
from mori.emulator.presign import RESULT, UPLOAD, Presigner
from mori.emulator.processing import Processor
from mori.emulator.responses import timestamp
from mori.emulator.stats import Stats
from mori.emulator.storage import Storage
from mori.models import CreatedOrder, EventData, OrderError, OrderFile, OrderInfo


class Emulator:
    """Orders, storage, guards, processing workers and webhook delivery of one emulator."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.stop_event = threading.Event()
        self.faults = FaultInjector(config.faults, config.seed, self.stats)
        self.storage = Storage.connect(config.s3_endpoint_url, config.s3_bucket)
        self.orders = OrderBook(config.clock, config.result_retention, config.first_order_id)
        self.idempotency = IdempotencyStore()
        self.limiter = RateLimiter(config.rpm, config.clock)
        self.presigner = Presigner(config.clock)
        self.webhooks = WebhookDispatcher(config, self.faults, self.stats, self.stop_event)
        self.processor = Processor(
            config, self.orders, self.storage, self.stats, self._finished, self.stop_event
        )

    def created_order(self, order: Order) -> CreatedOrder:
        """Create-order ``data``: upload URLs for a pending order, bare files for a URL order."""
        uploads = order.status == "pending"
        files = [
            OrderFile(
                file_id=f.file_id,
                file_name=f.file_name,
                upload_url=self._upload_url(order, f.file_key) if uploads else None,
                file_key=f.file_key if uploads else None,
            )
            for f in order.files
        ]
        return CreatedOrder(
            order_id=order.order_id, order_name=order.order_name, status=order.status, files=files
        )

    def download_url(self, order: Order) -> tuple[str, int]:
        """A presigned GET URL of the order's result archive, and its expiry (unix seconds)."""
        return self.presigner.url(
            order.base_url,
            RESULT,
            f"{order.order_id}.zip",
            "GET",
            self.config.download_url_ttl,
        )

    def order_info(self, order: Order) -> OrderInfo:
        """``GET /api/v2/orders/{orderId}`` data for ``order``."""
        return OrderInfo(
            order_id=order.order_id,
            order_name=order.order_name,
            status=self.orders.status(order),
            file_count=len(order.files),
            created_at=timestamp(order.created_at),
            updated_at=timestamp(order.updated_at),
            errors=list(order.errors),
        )

    def event_data(self, order: Order) -> EventData:
        """The ``data`` of the order-finished webhook."""
        complete = order.status == "complete"
        return EventData(
            order_id=order.order_id,
            order_name=order.order_name,
            status=order.status,
            file_count=len(order.files),
            created_at=timestamp(order.created_at),
            completed_at=_optional_time(order.completed_at),
            failed_at=_optional_time(order.failed_at),
            download_url=self.download_url(order)[0] if complete else None,
            error=None if complete else summarise(order.errors),
        )

    def set_faults(self, spec: str, seed: int | None = None) -> None:
        """Swap the fault plan (e.g. another one for a rerun); orders and idempotency stay."""
        self.faults = FaultInjector(spec, self.config.seed if seed is None else seed, self.stats)
        self.webhooks.faults = self.faults

    def begin_shutdown(self) -> None:
        """Signal every wait (processing delays, webhook retries, ``timeout`` faults) to end."""
        self.stop_event.set()

    def close(self) -> None:
        """Stop background work and release clients."""
        self.begin_shutdown()
        self.processor.close()
        self.webhooks.close()

    def _upload_url(self, order: Order, file_key: str) -> str:
        """A presigned PUT URL for one file of ``order``."""
        url, _ = self.presigner.url(
            order.base_url, UPLOAD, file_key, "PUT", self.config.upload_url_ttl
        )
        return url

    def _finished(self, order: Order) -> None:
        """Called by the processor when an order completed or failed."""
        self.webhooks.emit(order.api_key, self.event_data(order))


def summarise(errors: list[OrderError]) -> OrderError:
    """One ``error`` for a failed order's webhook: the first code, every file's message."""
    messages = "; ".join(e.message or "" for e in errors)
    return OrderError(code=errors[0].code, message=messages)


def _optional_time(seconds: float | None) -> datetime | None:
    """:func:`timestamp` of ``seconds``, if set."""
    return None if seconds is None else timestamp(seconds)
