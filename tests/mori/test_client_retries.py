"""MoriClient against httpx.MockTransport: retries, deadlines, the rate limiter, threads."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from mori import errors
from mori.client import MoriClient
from mori.ratelimit import RateLimiter
from mori.retry import RetryPolicy
from tests.support.clock import FakeTime

from .helpers import CountingLimiter, Script, fail, ok

MakeClient = Callable[..., MoriClient]

CREATED = {
    "orderId": "123456789",
    "orderName": "anti_ai_2026-02-19",
    "status": "pending",
    "files": [
        {
            "fileId": 1,
            "fileName": "a.jpg",
            "uploadUrl": "https://s3.test/temp/123456789/0/a.jpg?sig=abc",
            "fileKey": "temp/123456789/0/a.jpg",
        }
    ],
}
KEY = "2f1c9c4e-0000-5000-8000-000000000001"


# -- retries -----------------------------------------------------------------------------------


def test_503_503_200_reuses_idempotency_key_and_sleeps_policy_delays(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    policy = RetryPolicy()  # default jitter: the delays come from the seeded RNG
    script = Script(fail(503), fail(503), ok(CREATED))
    client = make_client(script, retry=policy)
    order = client.create_order(["a.jpg"], idempotency_key=KEY)

    assert order.order_id == "123456789"
    assert [r.headers["X-Idempotency-Key"] for r in script.requests] == [KEY] * 3
    assert len({r.content for r in script.requests}) == 1
    rng = random.Random(1234)
    assert fake_time.sleeps == [policy.backoff(1, rng), policy.backoff(2, rng)]
    stats = client.stats
    assert stats.requests == {"create_order": 3}
    assert stats.retries == {"create_order": 2}


def test_400_is_never_retried(make_client: MakeClient, fake_time: FakeTime) -> None:
    script = Script(fail(400, "INVALID_REQUEST"))
    client = make_client(script)
    with pytest.raises(errors.BadRequestError):
        client.confirm_order("1", idempotency_key=KEY)
    assert len(script.requests) == 1
    assert fake_time.sleeps == []
    assert client.stats.retries == {}


def test_attempts_are_bounded_and_last_error_is_raised(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    script = Script(fail(503, message="busy"))
    with pytest.raises(errors.ServerError) as info:
        make_client(script, retry=RetryPolicy(max_attempts=4, jitter=0)).get_order("1")
    assert info.value.message == "busy"
    assert len(script.requests) == 4
    assert fake_time.sleeps == [0.5, 1.0, 2.0]


def test_retry_none_means_one_attempt(make_client: MakeClient) -> None:
    script = Script(fail(503))
    with pytest.raises(errors.ServerError):
        make_client(script, retry=None).get_order("1")
    assert len(script.requests) == 1


def test_deadline_is_honoured_with_injected_clock(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        fake_time.advance(5.0)  # each attempt takes 5 s
        return fail(503)

    policy = RetryPolicy(max_attempts=100, initial_delay=10, multiplier=1, jitter=0, deadline=35)
    script = Script(slow)
    start = fake_time.now
    with pytest.raises(errors.ServerError):
        make_client(script, retry=policy).get_order("1")
    # t=5 fail, sleep to 15; t=20 fail, sleep to 30; t=35 fail: a 10 s sleep would pass 35.
    assert len(script.requests) == 3
    assert fake_time.now - start <= 35


def test_timeout_then_success_is_retried(make_client: MakeClient) -> None:
    script = Script(httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), ok(CREATED))
    order = make_client(script).create_order(["a.jpg"], idempotency_key=KEY)
    assert order.order_id == "123456789"
    assert [r.headers["X-Idempotency-Key"] for r in script.requests] == [KEY] * 3


def test_retry_after_is_honoured(make_client: MakeClient, fake_time: FakeTime) -> None:
    script = Script(fail(429, "RATE_LIMIT_EXCEEDED", **{"Retry-After": "7"}), ok(CREATED))
    client = make_client(script)
    client.create_order(["a.jpg"], idempotency_key=KEY)
    assert fake_time.sleeps == [7.0]
    assert client.stats.rate_limited == 1


def test_retry_after_is_capped(make_client: MakeClient, fake_time: FakeTime) -> None:
    script = Script(fail(429, None, **{"Retry-After": "3600"}), ok(CREATED))
    make_client(script, retry=RetryPolicy(max_retry_after=60)).create_order(
        ["a.jpg"], idempotency_key=KEY
    )
    assert fake_time.sleeps == [60.0]


def test_invalid_retry_after_falls_back_to_backoff(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    script = Script(fail(429, None, **{"Retry-After": "-1"}), ok(CREATED))
    make_client(script).create_order(["a.jpg"], idempotency_key=KEY)
    assert fake_time.sleeps == [0.5]


def test_rate_limiter_is_acquired_before_every_attempt(make_client: MakeClient) -> None:
    limiter = CountingLimiter()
    script = Script(fail(503), fail(500), ok({"orderId": "1", "status": "pending"}))
    client = make_client(script, rate_limiter=limiter)
    client.get_order("1")
    assert limiter.calls == 3
    assert client.stats.waited_seconds == pytest.approx(0.75)


def test_rate_limiter_waits_are_counted(make_client: MakeClient, fake_time: FakeTime) -> None:
    limiter = RateLimiter(2, margin=0, clock=fake_time.clock, sleep=fake_time.sleep)
    client = make_client(Script(ok({"url": None})), rate_limiter=limiter)
    for _ in range(3):
        client.get_webhook()
    assert fake_time.sleeps == [60.0]
    assert client.stats.waited_seconds == 60.0


def test_429_pauses_the_shared_rate_limiter(make_client: MakeClient, fake_time: FakeTime) -> None:
    limiter = RateLimiter(None, clock=fake_time.clock, sleep=fake_time.sleep)
    client = make_client(
        Script(fail(429, None, **{"Retry-After": "10"})), rate_limiter=limiter, retry=None
    )
    with pytest.raises(errors.RateLimitedError):
        client.get_order("1")
    assert limiter.reserve() == 10.0  # every other thread now waits as well


def test_client_is_thread_safe(make_client: MakeClient) -> None:
    lock = threading.Lock()
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            seen.append(request.url.path)
        return ok({"orderId": request.url.path.rsplit("/", 1)[1], "status": "pending"})

    client = make_client(Script(handler))
    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(lambda i: client.get_order(str(i)).order_id, range(200)))
    assert ids == [str(i) for i in range(200)]
    assert client.stats.requests == {"get_order": 200}
    assert len(seen) == 200
