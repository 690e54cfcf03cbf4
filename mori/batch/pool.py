"""One thread pool for the file transfers of every order a process drives.

Uploads of sources and writes of outputs are I/O: they run on threads. One pool shared by all
orders serves them first come, first served: the order that started uploading first finishes
first and MORI starts processing it while later orders still upload, instead of every order
finishing its uploads at the same late moment. The pool also bounds the transfers in flight
across orders, however many orders run at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["TransferPool"]

T = TypeVar("T")
R = TypeVar("R")


class TransferPool:
    """``workers`` threads, made on first use, shared by every caller (thread-safe)."""

    def __init__(self, workers: int, name: str = "mori-transfer") -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers, self.name = workers, name
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def run_all(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` of each item, on the pool; the results in the items' order.

        When a call raises, the calls not yet started do not run (they are cancelled, and one a
        thread took meanwhile returns at once) and, once every started call ended, the first
        error (in the items' order) is raised.
        """
        failed = threading.Event()

        def call(item: T) -> R:
            if failed.is_set():
                raise _Skipped
            try:
                return fn(item)
            except BaseException:
                failed.set()
                raise

        pool = self._executor()
        futures = [pool.submit(call, item) for item in items]
        pending = wait(futures, return_when=FIRST_EXCEPTION).not_done
        if pending:  # a call failed: the rest of this caller's queue does not start
            for future in pending:
                future.cancel()
            wait(pending)
        _raise_first(futures)
        return [f.result() for f in futures]

    def close(self) -> None:
        """Wait for the running transfers and stop the threads (the pool can start again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name)
            return self._pool


class _Skipped(Exception):
    """A call that did not run because an earlier call of its caller failed."""


def _raise_first(futures: list[Future[R]]) -> None:
    """Raise the error of the first failed future in ``futures``, if any."""
    for future in futures:
        error = None if future.cancelled() else future.exception()
        if error is not None and not isinstance(error, _Skipped):
            raise error
