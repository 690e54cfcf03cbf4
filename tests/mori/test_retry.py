"""RetryPolicy: Retry-After parsing, delays, the retryable set and the tenacity loop."""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mori import errors
from mori.retry import (
    DEFAULT_RETRY_POLICY,
    RetryPolicy,
    parse_retry_after,
    retry_after_from_headers,
)
from tests.support.clock import FakeTime

# openai's Retry-After table freezes time at 1696004797 = 2023-09-29 16:26:37 UTC.
NOW = datetime.fromtimestamp(1696004797, UTC)


def http_date(delta: float) -> str:
    return format_datetime(NOW + timedelta(seconds=delta), usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20", 20.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        (" 7 ", 7.0),
        ("121", 121.0),  # returned as is; the policy caps it
        ("99999999999", 99999999999.0),
        ("Fri, 29 Sep 2023 16:26:57 GMT", 20.0),
        (http_date(90), 90.0),
        ("Fri, 29 Sep 2023 16:26:27 GMT", None),  # in the past: fall back to backoff
        (http_date(0), None),
        ("Fri, 29 Sep 2023 16:26:57 +0000", 20.0),
        ("-1", None),
        ("+1", None),
        ("-0.5", None),
        ("1e3", None),
        ("1.", None),
        (".5", None),
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("-inf", None),
        ("Infinity", None),
        ("9" * 400, None),  # float overflow -> inf
        ("", None),
        ("   ", None),
        (None, None),
        ("soon", None),
        ("\xb2", None),
        ("\u0663", None),  # ARABIC-INDIC DIGIT THREE: a digit, but not ASCII
        ("Fri, 31 Feb 2023 16:26:57 GMT", None),
        ("Fri, 29 Sep 2023 25:61:57 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_naive_now_is_utc() -> None:
    assert parse_retry_after(http_date(15), NOW.replace(tzinfo=None)) == 15.0


def test_retry_after_from_headers_uses_the_server_date() -> None:
    server = {"Date": format_datetime(NOW, usegmt=True), "Retry-After": http_date(12)}
    assert retry_after_from_headers(server) == 12.0  # NOW is years in the past: Date wins
    assert retry_after_from_headers({"Retry-After": "3"}) == 3.0
    assert retry_after_from_headers({"Date": "garbage", "Retry-After": "4"}) == 4.0
    assert retry_after_from_headers({"Date": "garbage", "Retry-After": http_date(5)}) is None
    assert retry_after_from_headers({}) is None


def test_defaults() -> None:
    p = RetryPolicy()
    assert (p.max_attempts, p.initial_delay, p.multiplier, p.max_delay) == (6, 0.5, 2.0, 30.0)
    assert (p.jitter, p.max_retry_after, p.deadline) == (0.5, 60.0, 300.0)
    assert p == DEFAULT_RETRY_POLICY


def test_policy_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_RETRY_POLICY.max_attempts = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial_delay": -1},
        {"max_delay": -1},
        {"max_retry_after": -1},
        {"multiplier": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"deadline": 0},
    ],
)
def test_invalid_policies(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_base_delay_sequence() -> None:
    p = RetryPolicy(initial_delay=0.5, multiplier=2, max_delay=30)
    assert [p.base_delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert p.base_delay(10_000) == 30  # no OverflowError


def test_no_jitter_is_exact() -> None:
    p = RetryPolicy(jitter=0)
    assert p.backoff(3, random.Random()) == 2.0


def test_jitter_is_applied_after_the_cap() -> None:
    p = RetryPolicy(max_delay=30, jitter=0.5)
    rng = random.Random(3)
    delays = {p.backoff(50, rng) for _ in range(50)}
    assert len(delays) > 40  # clients at the cap still spread out
    assert all(15 <= d <= 30 for d in delays)


policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    initial_delay=st.floats(0, 10),
    multiplier=st.floats(1, 10),
    max_delay=st.floats(0, 120),
    jitter=st.floats(0, 1),
)


@given(policies, st.integers(1, 200))
def test_base_delay_is_non_decreasing_and_capped(policy: RetryPolicy, attempt: int) -> None:
    assert 0 <= policy.base_delay(attempt) <= policy.base_delay(attempt + 1) <= policy.max_delay


@given(policies, st.integers(1, 200), st.integers(0, 2**32))
def test_jittered_delay_within_bounds(policy: RetryPolicy, attempt: int, seed: int) -> None:
    d = policy.base_delay(attempt)
    delay = policy.backoff(attempt, random.Random(seed))
    assert max(0.0, (1 - policy.jitter) * d) - 1e-9 <= delay <= d + 1e-9


def rate_limited(retry_after: float | str | None) -> errors.RateLimitedError:
    exc = errors.RateLimitedError("slow down", retry_after=None, status_code=429)
    exc.retry_after = retry_after  # type: ignore[assignment]
    return exc


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (rate_limited(7.0), 7.0),
        (rate_limited(0.0), 0.0),
        (rate_limited(3600.0), 60.0),  # capped at max_retry_after
        (rate_limited(None), 2.0),  # backoff of attempt 3
        (rate_limited(-5.0), 2.0),
        (rate_limited(math.nan), 2.0),
        (rate_limited(math.inf), 2.0),
        (rate_limited("12"), 12.0),
        (rate_limited(http_date(45)), 45.0),  # raw header value: parsed relative to `now`
        (rate_limited("garbage"), 2.0),
        (errors.ServerError("x", status_code=503), 2.0),
        (errors.TransportError("reset"), 2.0),
        (None, 2.0),
    ],
)
def test_delay_after(error: BaseException | None, expected: float) -> None:
    p = RetryPolicy(jitter=0)
    assert p.delay_after(error, 3, random.Random(), NOW) == expected


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (errors.TransportError("reset"), True),
        (errors.TimeoutError("slow"), True),
        (errors.ServerError("x", status_code=500), True),
        (errors.ServerError("x", status_code=503), True),
        (errors.ServerError("x", status_code=408), True),
        (errors.RateLimitedError("x", status_code=429), True),
        (errors.BadRequestError("x", status_code=400, code="INVALID_REQUEST"), False),
        (errors.AuthenticationError("x", status_code=401), False),
        (errors.NotFoundError("x", status_code=404), False),
        (errors.ConflictError("x", status_code=409), False),
        (errors.GoneError("x", status_code=410), False),
        (errors.APIStatusError("x", status_code=200, code="SOMETHING"), False),
        (errors.APIStatusError("x", status_code=422), False),
        (errors.URLExpiredError("x", status_code=403), False),
        (errors.PresignedURLError("x", status_code=500), True),
        (errors.PresignedURLError("x", status_code=400), False),
        (errors.SignatureVerificationError("x"), False),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (ValueError("bug"), False),
        (KeyboardInterrupt(), False),
    ],
)
def test_is_retryable(exc: BaseException, retryable: bool) -> None:
    assert RetryPolicy.is_retryable(exc) is retryable


# -- the tenacity loop -------------------------------------------------------------------------


class Flaky:
    def __init__(self, *outcomes: BaseException | str) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_retrying_returns_after_transient_failures() -> None:
    t = FakeTime()
    fn = Flaky(errors.TransportError("a"), errors.ServerError("b", status_code=502), "done")
    retrying = RetryPolicy(jitter=0).retrying(sleep=t.sleep, clock=t.clock)
    assert retrying(fn) == "done"
    assert fn.calls == 3
    assert t.sleeps == [0.5, 1.0]


def test_retrying_reraises_the_last_error_not_retry_error() -> None:
    t = FakeTime()
    last = errors.ServerError("last", status_code=500)
    fn = Flaky(errors.ServerError("first", status_code=500), last)
    with pytest.raises(errors.ServerError) as info:
        RetryPolicy(max_attempts=3, jitter=0).retrying(sleep=t.sleep, clock=t.clock)(fn)
    assert info.value is last
    assert fn.calls == 3


def test_retrying_does_not_retry_non_retryable() -> None:
    t = FakeTime()
    fn = Flaky(errors.BadRequestError("bad", status_code=400))
    with pytest.raises(errors.BadRequestError):
        RetryPolicy().retrying(sleep=t.sleep, clock=t.clock)(fn)
    assert (fn.calls, t.sleeps) == (1, [])


def test_retrying_uses_the_injected_rng() -> None:
    def sleeps(seed: int) -> list[float]:
        t = FakeTime()
        fn = Flaky(errors.TransportError("x"), errors.TransportError("x"), "ok")
        RetryPolicy().retrying(sleep=t.sleep, clock=t.clock, rng=random.Random(seed))(fn)
        return t.sleeps

    assert sleeps(1) == sleeps(1)
    assert sleeps(1) != sleeps(2)


def test_retrying_stops_before_sleeping_past_the_deadline() -> None:
    t = FakeTime()
    fn = Flaky(rate_limited(50.0))
    policy = RetryPolicy(max_attempts=10, deadline=120)
    with pytest.raises(errors.RateLimitedError):
        policy.retrying(sleep=t.sleep, clock=t.clock)(fn)
    assert t.sleeps == [50.0, 50.0]  # a third 50 s sleep would end at 150 s > 120 s
    assert fn.calls == 3


def test_retrying_without_deadline_is_bounded_by_attempts() -> None:
    t = FakeTime()
    fn = Flaky(rate_limited(1000.0))
    policy = RetryPolicy(max_attempts=4, deadline=None, max_retry_after=1000)
    with pytest.raises(errors.RateLimitedError):
        policy.retrying(sleep=t.sleep, clock=t.clock)(fn)
    assert fn.calls == 4


def test_retrying_deadline_restarts_on_reuse() -> None:
    t = FakeTime()
    retrying = RetryPolicy(max_attempts=3, initial_delay=10, jitter=0, deadline=25).retrying(
        sleep=t.sleep, clock=t.clock
    )
    for _ in range(2):
        fn = Flaky(errors.TransportError("x"), "ok")
        assert retrying(fn) == "ok"
        t.advance(1000)  # time between calls does not count against the next call's deadline
