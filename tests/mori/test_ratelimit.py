"""RateLimiter: never more than N acquisitions in any window; unlimited when None/0."""

from __future__ import annotations

import threading
from bisect import bisect_left

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mori.ratelimit import RateLimiter, SupportsAcquire
from tests.support.clock import FakeTime


def max_in_window(times: list[float], window: float, *, closed: bool) -> int:
    """The largest number of ``times`` inside any interval of length ``window``."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        # intervals starting at an event are the worst case
        end = start + window
        j = bisect_left(ordered, end) if not closed else _bisect_right(ordered, end)
        best = max(best, j - i)
    return best


def _bisect_right(xs: list[float], x: float) -> int:
    lo, hi = 0, len(xs)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < xs[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@pytest.mark.parametrize("rpm", [None, 0])
def test_unlimited(rpm: int | None) -> None:
    t = FakeTime()
    limiter = RateLimiter(rpm, clock=t.clock, sleep=t.sleep)
    assert all(limiter.acquire() == 0 for _ in range(10_000))
    assert t.sleeps == []
    assert limiter.rpm is None
    assert limiter.acquired == 10_000


def test_blocks_when_budget_is_used() -> None:
    t = FakeTime(0.0)
    limiter = RateLimiter(3, margin=0, clock=t.clock, sleep=t.sleep)
    waits = [limiter.acquire() for _ in range(7)]
    assert waits == [0, 0, 0, 60, 0, 0, 60]
    assert t.sleeps == [60, 60]
    assert limiter.waited_seconds == 120


def test_margin_widens_the_window() -> None:
    t = FakeTime(0.0)
    limiter = RateLimiter(1, margin=0.5, clock=t.clock, sleep=t.sleep)
    assert [limiter.acquire() for _ in range(3)] == [0, 60.5, 60.5]


def test_capacity_frees_as_the_window_slides() -> None:
    t = FakeTime(0.0)
    limiter = RateLimiter(2, margin=0, clock=t.clock, sleep=t.sleep)
    limiter.acquire()  # t=0
    t.advance(40)
    limiter.acquire()  # t=40
    t.advance(30)  # t=70: the t=0 grant left the window
    assert limiter.acquire() == 0
    assert limiter.acquire() == pytest.approx(30)  # must wait until t=100 (40 + 60)


@settings(max_examples=200, deadline=None)
@given(
    rpm=st.integers(1, 20),
    margin=st.sampled_from([0.0, 0.5]),
    gaps=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=120),
)
def test_never_more_than_rpm_in_any_window(rpm: int, margin: float, gaps: list[float]) -> None:
    t = FakeTime(0.0)
    limiter = RateLimiter(rpm, margin=margin, clock=t.clock, sleep=t.sleep)
    starts: list[float] = []
    for gap in gaps:
        t.advance(gap)
        limiter.acquire()
        starts.append(t.now)  # the request goes out when acquire returns
    # With a margin even closed 60 s windows hold at most rpm; without, half-open ones do
    # (less a nanosecond: the fake clock adds floats, so a slot at t+60 may land at t+60-ulp).
    assert max_in_window(starts, 60.0 - 1e-9, closed=margin > 0) <= rpm
    assert starts == sorted(starts)


def test_threads_reserve_distinct_slots() -> None:
    clock = FakeTime(0.0)  # frozen: sleeping threads do not move it
    slept: list[float] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            slept.append(seconds)

    limiter = RateLimiter(10, margin=0, clock=clock.clock, sleep=sleep)
    starts: list[float] = []

    def worker() -> None:
        for _ in range(25):
            wait = limiter.acquire()
            with lock:
                starts.append(clock.now + wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(starts) == 200
    assert max_in_window(starts, 60.0, closed=False) <= 10
    assert sorted(starts) == [60.0 * (i // 10) for i in range(200)]  # first come, first served
    assert limiter.acquired == 200


def test_block_for_pauses_everyone() -> None:
    t = FakeTime(0.0)
    limiter = RateLimiter(100, clock=t.clock, sleep=t.sleep)
    limiter.block_for(10)
    limiter.block_for(3)  # a shorter pause does not shorten the current one
    assert limiter.acquire() == 10
    assert limiter.acquire() == 0
    limiter.block_for(0)
    limiter.block_for(-5)
    assert limiter.acquire() == 0


def test_block_for_applies_when_unlimited() -> None:
    t = FakeTime(0.0)
    limiter = RateLimiter(None, clock=t.clock, sleep=t.sleep)
    limiter.block_for(2.5)
    assert limiter.acquire() == 2.5


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        RateLimiter(-1)
    with pytest.raises(ValueError):
        RateLimiter(10, window=0)
    with pytest.raises(ValueError):
        RateLimiter(10, margin=-1)


def test_repr_and_protocol() -> None:
    assert repr(RateLimiter(60)) == "RateLimiter(60/60s, margin=0.5s)"
    assert repr(RateLimiter(None, margin=0)) == "RateLimiter(unlimited, margin=0s)"
    assert isinstance(RateLimiter(60), SupportsAcquire)
    assert RateLimiter(60).window == 60.0
