"""The transfer pool: results in order, a failure stops the caller's queue, one bound for all."""

from __future__ import annotations

import threading

import pytest

from mori.batch.pool import TransferPool


def test_results_come_in_the_items_order() -> None:
    pool = TransferPool(4)
    try:
        assert pool.run_all(lambda n: n * n, range(20)) == [n * n for n in range(20)]
        assert pool.run_all(str, []) == []
    finally:
        pool.close()


def test_a_failure_cancels_the_calls_not_started_and_raises_the_first_error() -> None:
    pool = TransferPool(1)  # one thread: the calls run one after another, in order
    started: list[int] = []

    def call(n: int) -> int:
        started.append(n)
        if n in (2, 3):
            raise ValueError(f"item {n}")
        return n

    try:
        with pytest.raises(ValueError, match="item 2"):
            pool.run_all(call, range(10))
        assert started == [0, 1, 2]  # the rest of the queue never started
        assert pool.run_all(call, [5]) == [5]  # the pool serves the next caller
    finally:
        pool.close()


def test_every_caller_shares_the_bound() -> None:
    pool = TransferPool(3)
    lock, running, most = threading.Lock(), [0], [0]
    released = threading.Event()
    gate = threading.Barrier(3, action=released.set)  # the first three calls meet here

    def call(_: int) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if not released.is_set():
            gate.wait(timeout=30)
        with lock:
            running[0] -= 1

    callers = [threading.Thread(target=pool.run_all, args=(call, range(10))) for _ in range(4)]
    try:
        for t in callers:
            t.start()
        for t in callers:
            t.join(60)
        assert released.is_set() and most[0] == 3  # 4 callers x 10 items, at most 3 at once
    finally:
        pool.close()


def test_a_closed_pool_starts_again_and_needs_a_thread() -> None:
    pool = TransferPool(2)
    assert pool.run_all(abs, [-1]) == [1]
    pool.close()
    assert pool.run_all(abs, [-2]) == [2]
    pool.close()
    pool.close()  # closing twice is harmless
    with pytest.raises(ValueError):
        TransferPool(0)
