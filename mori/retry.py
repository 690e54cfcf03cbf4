"""The SDK's retry policy: which failures are retried, how long to wait, and when to give up.

One immutable :class:`RetryPolicy` value (modelled on Temporal's ``RetryPolicy`` and urllib3's
``Retry``) holds every knob. The retry loop itself is `tenacity`_'s: :meth:`RetryPolicy.retrying`
builds a ``tenacity.Retrying`` from the policy, with the sleep, the clock and the random source
injected so that tests never sleep. Rules (docs/ARCHITECTURE.md, invariant 4):

* only retryable failures are retried -- :attr:`mori.errors.MoriError.retryable`: network
  errors, timeouts, 408, 429 and 5xx; a 4xx validation error fails at once;
* the delay is exponential, ``initial_delay * multiplier ** (attempt - 1)``, capped at
  ``max_delay``, and *then* jittered to ``delay * U[1 - jitter, 1]`` (jitter after the cap, so
  clients that all reached the cap still spread out);
* a server's ``Retry-After`` (seconds or an HTTP-date) replaces the backoff, capped at
  ``max_retry_after``; an invalid value falls back to the backoff;
* attempts are bounded by ``max_attempts`` and the whole call by ``deadline`` seconds: a retry
  whose sleep would end past the deadline is not attempted, and the last error is raised.

.. _tenacity: https://tenacity.readthedocs.io/
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import tenacity
from tenacity import RetryCallState
from tenacity.stop import stop_base

from mori.errors import APIStatusError, MoriError

__all__ = ["DEFAULT_RETRY_POLICY", "RetryPolicy", "parse_retry_after", "retry_after_from_headers"]

_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_RETRYABLE_STATUSES = frozenset({408, 429})


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value, or ``None`` if unusable.

    Accepts non-negative integer or decimal seconds (``"20"``, ``"1.5"``) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``), which is taken relative to ``now`` (a naive ``now``
    is read as UTC). Returns ``None`` -- the caller falls back to its backoff -- for an absent,
    empty, negative, signed, exponent, NaN, infinite or malformed value and for an HTTP-date
    that is not in the future (server/client clock skew). Large values are returned as they
    are: capping is the policy's job (:attr:`RetryPolicy.max_retry_after`).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """:func:`parse_retry_after` of a response's ``Retry-After``, an HTTP-date being taken
    relative to the response's own ``Date`` header when present (immune to clock skew)."""
    now = datetime.now(UTC)
    date = headers.get("Date")
    if date:
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            now = parsedate_to_datetime(date)
    return parse_retry_after(headers.get("Retry-After"), now)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the SDK retries a failed request (immutable; share one instance freely).

    ``RetryPolicy(max_attempts=1)`` disables retries. All durations are in seconds.
    """

    max_attempts: int = 6
    """Attempts in total, the first one included (default ``6``); ``1`` means never retry."""

    initial_delay: float = 0.5
    """Backoff before the second attempt, before jitter (default ``0.5`` s)."""

    multiplier: float = 2.0
    """Growth factor of the backoff from one retry to the next (default ``2.0``)."""

    max_delay: float = 30.0
    """Cap of the exponential backoff, applied before jitter (default ``30.0`` s)."""

    jitter: float = 0.5
    """Fraction of randomness applied after the cap: the delay becomes ``d * U[1 - jitter, 1]``
    (default ``0.5``; ``0`` = no jitter, ``1`` = "full jitter")."""

    max_retry_after: float = 60.0
    """Cap on a server's honoured ``Retry-After`` (default ``60.0`` s)."""

    deadline: float | None = 300.0
    """Total seconds one call may spend across all attempts and sleeps (default ``300.0`` s);
    ``None`` = bounded by ``max_attempts`` only."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must be >= 0")
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("deadline must be > 0 (or None)")

    # -- delays --------------------------------------------------------------------------------

    def base_delay(self, attempt: int) -> float:
        """The capped backoff after failed attempt number ``attempt`` (1-based), before jitter.

        Non-decreasing in ``attempt`` and never above :attr:`max_delay`.
        """
        exponent = max(attempt, 1) - 1
        try:
            delay = self.initial_delay * self.multiplier**exponent
        except OverflowError:
            return self.max_delay
        return min(delay, self.max_delay)

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The backoff after failed attempt ``attempt``: ``base_delay * U[1 - jitter, 1]``."""
        delay = self.base_delay(attempt)
        if self.jitter == 0 or delay == 0:
            return delay
        return delay * rng.uniform(1.0 - self.jitter, 1.0)

    def delay_after(
        self,
        error: BaseException | None,
        attempt: int,
        rng: random.Random,
        now: datetime | None = None,
    ) -> float:
        """Seconds to sleep after ``error`` ended attempt ``attempt``.

        The error's ``retry_after`` hint (``RateLimitedError.retry_after``: seconds, or a raw
        header string that is parsed relative to ``now``, default the current UTC time) wins when
        it is valid, capped at :attr:`max_retry_after`; otherwise :meth:`backoff`.
        """
        hint: object = getattr(error, "retry_after", None)
        if isinstance(hint, str):
            hint = parse_retry_after(hint, now or datetime.now(UTC))
        if isinstance(hint, int | float) and math.isfinite(hint) and hint >= 0:
            return min(float(hint), self.max_retry_after)
        return self.backoff(attempt, rng)

    # -- decisions -----------------------------------------------------------------------------

    @staticmethod
    def is_retryable(exc: BaseException) -> bool:
        """Whether the same request may succeed when sent again.

        True for transport errors and timeouts, 408, 429 and 5xx; never for other 4xx (a
        validation error stays an error) nor for anything that is not a network failure.
        """
        if isinstance(exc, APIStatusError):
            return exc.status_code >= 500 or exc.status_code in _RETRYABLE_STATUSES
        if isinstance(exc, MoriError):
            return bool(exc.retryable)
        # Raw network failures that escaped the client's mapping (builtin TimeoutError too).
        return isinstance(exc, ConnectionError | TimeoutError)

    def retrying(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        before_sleep: Callable[[RetryCallState], None] | None = None,
    ) -> tenacity.Retrying:
        """A ``tenacity.Retrying`` that applies this policy; build one per call.

        ``sleep`` is called with each delay, ``clock`` (monotonic seconds) measures the
        :attr:`deadline` from the first attempt, ``rng`` draws the jitter. The caller sees the
        last error itself, never ``tenacity.RetryError``.
        """
        source = rng if rng is not None else random.Random()
        deadline = _Deadline(self.deadline, clock)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            return self.delay_after(error, state.attempt_number, source)

        return tenacity.Retrying(
            sleep=sleep,
            stop=tenacity.stop_after_attempt(self.max_attempts) | deadline,
            wait=wait,
            retry=tenacity.retry_if_exception(self.is_retryable),
            before=deadline.start,
            before_sleep=before_sleep,
            reraise=True,
        )


class _Deadline(stop_base):
    """Stop when the next attempt would start after ``deadline`` seconds since the first one."""

    def __init__(self, deadline: float | None, clock: Callable[[], float]) -> None:
        self._deadline = deadline
        self._clock = clock
        self._started = clock()

    def start(self, state: RetryCallState) -> None:
        if state.attempt_number == 1:
            self._started = self._clock()

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self._deadline is None:
            return False
        elapsed = self._clock() - self._started
        return elapsed + retry_state.upcoming_sleep > self._deadline


#: The policy a :class:`~mori.client.MoriClient` uses unless told otherwise.
DEFAULT_RETRY_POLICY = RetryPolicy()
