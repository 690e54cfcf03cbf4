"""The emulator's order book: orders, their files and their status transitions."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mori.emulator.presign import S3Error
from mori.emulator.responses import ApiError
from mori.models import OrderError, OrderStatus

FIRST_ORDER_ID = 100000001
_FINISHED: frozenset[OrderStatus] = frozenset({"complete", "failed"})


@dataclass
class StoredFile:
    """One file of an order: uploaded through a presigned URL, or fetched from ``source_url``."""

    file_id: int
    index: int
    file_name: str
    file_key: str
    source_url: str | None = None
    uploaded: bool = False


@dataclass
class Order:
    """An order and its lifecycle timestamps (seconds since the epoch, by the config clock)."""

    order_id: str
    api_key: str
    order_name: str
    base_url: str
    created_at: float
    files: list[StoredFile]
    status: OrderStatus = "pending"
    updated_at: float = 0.0
    completed_at: float | None = None
    failed_at: float | None = None
    errors: list[OrderError] = field(default_factory=list)

    @property
    def result_key(self) -> str:
        """Storage key of the order's result archive."""
        return f"results/{self.order_id}.zip"


@dataclass(frozen=True)
class NewFile:
    """A file to put in a new order: a name, and for URL orders the address to fetch."""

    file_name: str
    source_url: str | None = None


class OrderBook:
    """Thread-safe store of every order; orders are visible only to the API key that made them."""

    def __init__(
        self, clock: Callable[[], float], retention: float, first_id: int = FIRST_ORDER_ID
    ) -> None:
        self._clock = clock
        self._retention = retention
        self._lock = threading.Lock()
        self._orders: dict[str, Order] = {}
        self._files: dict[str, tuple[Order, StoredFile]] = {}
        self._order_ids = itertools.count(first_id)
        self._file_ids = itertools.count(1)

    def create(
        self,
        api_key: str,
        order_name: str,
        base_url: str,
        files: Sequence[NewFile],
    ) -> Order:
        """A new order: ``pending`` for uploads, ``inProgress`` when every file has a URL."""
        now = self._clock()
        with self._lock:
            order_id = str(next(self._order_ids))
            stored = [
                StoredFile(
                    file_id=next(self._file_ids),
                    index=index,
                    file_name=spec.file_name,
                    file_key=f"temp/{order_id}/{index}/{spec.file_name}",
                    source_url=spec.source_url,
                )
                for index, spec in enumerate(files)
            ]
            by_url = all(f.source_url is not None for f in stored)
            order = Order(
                order_id=order_id,
                api_key=api_key,
                order_name=order_name,
                base_url=base_url,
                created_at=now,
                updated_at=now,
                files=stored,
                status="inProgress" if by_url else "pending",
            )
            self._orders[order_id] = order
            self._files.update({f.file_key: (order, f) for f in stored})
        return order

    def get(self, api_key: str, order_id: str) -> Order | None:
        """The order, if it exists and belongs to ``api_key``."""
        with self._lock:
            order = self._orders.get(order_id)
        return order if order is not None and order.api_key == api_key else None

    def by_id(self, order_id: str) -> Order | None:
        """The order with this id, whoever owns it (for storage URLs and processing)."""
        with self._lock:
            return self._orders.get(order_id)

    def status(self, order: Order) -> OrderStatus:
        """The order's status now: a finished order expires ``retention`` after creation."""
        if order.status in _FINISHED and self._clock() - order.created_at >= self._retention:
            return "expired"
        return order.status

    def check_upload(self, file_key: str) -> None:
        """Raise :class:`S3Error` unless ``file_key`` is a file of a pending order."""
        with self._lock:
            self._upload_target(file_key)

    def accept_upload(self, file_key: str) -> None:
        """Mark a file uploaded (:class:`S3Error` if its order no longer takes uploads)."""
        with self._lock:
            order, stored = self._upload_target(file_key)
            stored.uploaded = True
            order.updated_at = self._clock()

    def confirm(self, order: Order) -> None:
        """Move a pending order, every upload done, to ``inProgress`` (else :class:`ApiError`)."""
        with self._lock:
            if order.status != "pending":
                raise ApiError(
                    409,
                    "INVALID_ORDER_STATUS",
                    f"order {order.order_id} is {self.status(order)}; only a pending order "
                    "can be confirmed",
                )
            uploads = [f for f in order.files if f.source_url is None]
            missing = [f"{f.index}/{f.file_name}" for f in uploads if not f.uploaded]
            if missing:
                raise ApiError(
                    400,
                    "FILES_NOT_UPLOADED",
                    f"{len(missing)} of {len(uploads)} files are not uploaded yet: "
                    + ", ".join(missing[:10])
                    + (" ..." if len(missing) > 10 else ""),
                )
            order.status = "inProgress"
            order.updated_at = self._clock()

    def finish(self, order: Order, errors: Sequence[OrderError]) -> None:
        """Record the end of processing: ``complete`` without errors, else ``failed``."""
        now = self._clock()
        with self._lock:
            order.errors = list(errors)
            order.status = "failed" if errors else "complete"
            order.updated_at = now
            if errors:
                order.failed_at = now
            else:
                order.completed_at = now

    def _upload_target(self, file_key: str) -> tuple[Order, StoredFile]:
        """The order and file an upload is for; :class:`S3Error` when it is refused."""
        found = self._files.get(file_key)
        if found is None:
            raise S3Error("NoSuchUpload", "The specified upload does not exist")
        order, stored = found
        if stored.source_url is not None:
            raise S3Error("AccessDenied", "This file is fetched from its URL; it takes no upload")
        if order.status != "pending":
            raise S3Error(
                "AccessDenied", f"Order {order.order_id} is {order.status}; uploads are closed"
            )
        return found
