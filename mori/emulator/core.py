"""The emulator's state and background machinery, shared by its HTTP routes."""

from __future__ import annotations

import threading
from typing import Any

from mori.emulator.accounts import Accounts
from mori.emulator.config import EmulatorConfig
from mori.emulator.delivery import WebhookDispatcher
from mori.emulator.events import Event, g1_event, g3_event
from mori.emulator.faults import FaultInjector
from mori.emulator.guards import IdempotencyStore, RateLimiter
from mori.emulator.orders import Order, OrderBook, StoredFile
from mori.emulator.presign import RESULT, UPLOAD, Presigner
from mori.emulator.processing import Processor
from mori.emulator.responses import timestamp
from mori.emulator.stats import Stats
from mori.emulator.storage import Storage
from mori.models import CreatedOrder, OrderFile, OrderInfo


class Emulator:
    """Orders, accounts, storage, guards, processing workers and webhook delivery."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.stop_event = threading.Event()
        self.faults = FaultInjector(config.faults, config.seed, self.stats)
        self.accounts = Accounts(
            config.api_keys, config.logins, config.token_ttl, config.usage_limit, config.clock
        )
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
        """Create-order ``data``: an upload URL and ``fileKey`` for each file without a URL."""
        files = [self._created_file(order, f) for f in order.files]
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

    def event(self, order: Order) -> Event:
        """The order-finished webhook event of ``order``, in the emulator's generation."""
        url = self.download_url(order)[0] if order.status == "complete" else None
        now = self.config.clock()
        if self.config.generation == "g3":
            return g3_event(order, now, url)
        return g1_event(order, self.config.webhook_event_type, now, url)

    def start_processing(self, order: Order) -> None:
        """Count the order as confirmed, add its files to the account's usage, process it."""
        self.stats.incr("orders_confirmed")
        self.accounts.add_usage(order.api_key, len(order.files))
        self.processor.submit(order)

    def snapshot(self) -> dict[str, Any]:
        """The admin stats: every counter, and usage per account (no credentials)."""
        body = self.stats.snapshot()
        body["usage"] = self.accounts.usage_snapshot()
        return body

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

    def _created_file(self, order: Order, stored: StoredFile) -> OrderFile:
        """One file of a created order; a pending order's upload files get a presigned URL."""
        upload = order.status == "pending" and stored.source_url is None
        return OrderFile(
            file_id=stored.file_id,
            file_name=stored.file_name,
            upload_url=self._upload_url(order, stored.file_key) if upload else None,
            file_key=stored.file_key if upload else None,
        )

    def _upload_url(self, order: Order, file_key: str) -> str:
        """A presigned PUT URL for one file of ``order``."""
        url, _ = self.presigner.url(
            order.base_url, UPLOAD, file_key, "PUT", self.config.upload_url_ttl
        )
        return url

    def _finished(self, order: Order) -> None:
        """Called by the processor when an order completed or failed."""
        self.webhooks.emit(order.api_key, self.event(order))
