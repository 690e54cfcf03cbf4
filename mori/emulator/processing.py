"""Background processing of confirmed orders: fetch inputs, filter them, store a result zip.

Rules (ASSUMED, see the package docstring): an order is ``failed`` as soon as one of its files
fails (undecodable image ``INVALID_IMAGE``, upload missing ``MISSING_UPLOAD``, URL fetch failed
``FETCH_FAILED``, or a name in ``fail_order_names`` ``PROCESSING_FAILED``); ``errors`` then lists
one entry per failed file and no archive is written. A complete order's archive holds one entry
per file, named ``{index}/{fileName}``, in file order, stored uncompressed.

In ``copy`` processing mode (for load tests on small machines) nothing is decoded or perturbed:
each output is its input, byte for byte, and only an empty file fails. Outputs then equal inputs;
they are still stored, archived and counted (``files_processed``, ``duplicate_files``).
"""

from __future__ import annotations

import heapq
import io
import itertools
import logging
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from mori.emulator.config import EmulatorConfig
from mori.emulator.imaging import InvalidImageError, perturb
from mori.emulator.orders import Order, OrderBook, StoredFile
from mori.emulator.responses import timestamp
from mori.emulator.stats import Stats
from mori.emulator.storage import Storage
from mori.keys import sha256_fingerprint, url_fingerprint
from mori.models import OrderError

log = logging.getLogger(__name__)

#: Longest the scheduler sleeps before re-checking for shutdown, in seconds.
_TICK = 0.1


class FileFailure(Exception):
    """One file of an order could not be processed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Processed:
    """A filtered file and the fingerprints of its input (content, and URL if any)."""

    file: StoredFile
    output: bytes
    fingerprints: frozenset[str]


class Processor:
    """Processes confirmed orders on worker threads, ``processing_seconds`` after confirmation.

    A scheduler thread keeps the confirmed orders by due time and hands each to the worker
    pool when it is due, so waiting orders occupy no worker.
    """

    def __init__(
        self,
        config: EmulatorConfig,
        orders: OrderBook,
        storage: Storage,
        stats: Stats,
        on_finished: Callable[[Order], None],
        stop: threading.Event,
    ) -> None:
        self._config = config
        self._orders = orders
        self._storage = storage
        self._stats = stats
        self._on_finished = on_finished
        self._stop = stop
        self._pool = ThreadPoolExecutor(
            max_workers=config.processing_workers, thread_name_prefix="mori-emulator-processing"
        )
        self._http = httpx.Client(timeout=config.url_fetch_timeout, follow_redirects=False)
        self._seen_lock = threading.Lock()
        self._seen: set[str] = set()
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, Order]] = []
        self._sequence = itertools.count()
        self._scheduler = threading.Thread(
            target=self._schedule, name="mori-emulator-scheduler", daemon=True
        )
        self._scheduler.start()

    def submit(self, order: Order) -> None:
        """Process ``order`` in the background once its processing time has passed."""
        due = time.monotonic() + self._config.processing_seconds
        with self._wake:
            heapq.heappush(self._due, (due, next(self._sequence), order))
            self._wake.notify()

    def close(self) -> None:
        """Drop waiting orders, wait for running ones, release the HTTP client."""
        with self._wake:
            self._wake.notify()
        self._scheduler.join()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def _schedule(self) -> None:
        """Hand each order to the worker pool when it is due, until shutdown."""
        with self._wake:
            while not self._stop.is_set():
                now = time.monotonic()
                if self._due and self._due[0][0] <= now:
                    self._pool.submit(self._run, heapq.heappop(self._due)[2])
                    continue
                wait = self._due[0][0] - now if self._due else _TICK
                self._wake.wait(min(wait, _TICK))

    def _run(self, order: Order) -> None:
        """Process and report one order (skipped when shutting down)."""
        if self._stop.is_set():
            return
        try:
            self._process(order)
        except Exception:
            log.exception("processing order %s failed unexpectedly", order.order_id)
            self._fail(order, [OrderError(code="INTERNAL_ERROR", message="processing failed")])
        self._on_finished(order)

    def _process(self, order: Order) -> None:
        """Filter every file; store the archive and complete, or fail the order."""
        if order.order_name in self._config.fail_order_names:
            self._fail(
                order, [_error(f, "PROCESSING_FAILED", "the filter failed") for f in order.files]
            )
            return
        done: list[Processed] = []
        errors: list[OrderError] = []
        for stored in order.files:
            try:
                done.append(self._process_file(stored))
            except FileFailure as exc:
                errors.append(_error(stored, exc.code, str(exc)))
        if errors:
            self._fail(order, errors)
            return
        self._storage.put(order.result_key, self._archive(done), "application/zip")
        self._stats.incr("duplicate_files", self._count_duplicates(done))
        self._stats.incr("files_processed", len(done))
        self._stats.incr("orders_completed")
        self._orders.finish(order, [])

    def _fail(self, order: Order, errors: Sequence[OrderError]) -> None:
        """Record a failed order."""
        self._stats.incr("files_failed", len(errors))
        self._stats.incr("orders_failed")
        self._orders.finish(order, errors)

    def _process_file(self, stored: StoredFile) -> Processed:
        """Load and filter (or, in ``copy`` mode, pass through) one file."""
        data = self._load(stored)
        output = self._filter(data)
        fingerprints = {sha256_fingerprint(data)}
        if stored.source_url is not None:
            fingerprints.add(url_fingerprint(stored.source_url))
        return Processed(stored, output, frozenset(fingerprints))

    def _filter(self, data: bytes) -> bytes:
        """The filtered image; in ``copy`` mode the input itself (only an empty file fails)."""
        if self._config.processing_mode == "copy":
            if not data:
                raise FileFailure(InvalidImageError.code, "the file is empty")
            return data
        try:
            return perturb(data)
        except InvalidImageError as exc:
            raise FileFailure(exc.code, str(exc)) from exc

    def _load(self, stored: StoredFile) -> bytes:
        """The input bytes: the uploaded object, or the fetched URL."""
        if stored.source_url is None:
            try:
                return self._storage.get(stored.file_key)
            except KeyError as exc:
                raise FileFailure("MISSING_UPLOAD", "the uploaded file is missing") from exc
        return self._fetch(stored.source_url)

    def _fetch(self, url: str) -> bytes:
        """GET a with-urls source (no redirects: they could leave the allowlist)."""
        host = httpx.URL(url).host
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            raise FileFailure("FETCH_FAILED", f"fetching from {host} failed: {exc}") from exc
        if response.status_code != 200:
            raise FileFailure("FETCH_FAILED", f"{host} answered HTTP {response.status_code}")
        return response.content

    def _archive(self, done: Sequence[Processed]) -> bytes:
        """The result zip: ``{index}/{fileName}`` per file, in file order."""
        when = timestamp(self._config.clock()).timetuple()[:6]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for item in done:
                name = f"{item.file.index}/{item.file.file_name}"
                archive.writestr(zipfile.ZipInfo(name, date_time=when), item.output)
        return buffer.getvalue()

    def _count_duplicates(self, done: Sequence[Processed]) -> int:
        """Files whose content or URL an earlier order already processed; remembers this one's."""
        with self._seen_lock:
            duplicates = sum(1 for item in done if not item.fingerprints.isdisjoint(self._seen))
            for item in done:
                self._seen.update(item.fingerprints)
        return duplicates


def _error(stored: StoredFile, code: str, message: str) -> OrderError:
    """An order error about one file, its message prefixed with ``{index}/{fileName}``."""
    return OrderError(code=code, message=f"{stored.index}/{stored.file_name}: {message}")
