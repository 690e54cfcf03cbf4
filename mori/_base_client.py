"""The machinery under :class:`mori.client.MoriClient`: construction, one API call with rate
limiting, retries and token refresh, reading answers, signing in, and preflight probes.

:class:`BaseClient` holds no endpoint; the public client adds them on top.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

import httpx
from tenacity import RetryCallState

from mori import _parse, errors
from mori._auth import LOGIN_PATH, PROCESS_TOKENS, Auth, Login, TokenCache, sign_in
from mori._dialects import API_PREFIX, dialect
from mori._redact import install_log_filters, redact_url
from mori._stats import ClientStats, Counters
from mori._transport import Pools, default_user_agent
from mori._webhook_admin import WebhookAdmin
from mori.ratelimit import RateLimiter, SupportsAcquire
from mori.retry import DEFAULT_RETRY_POLICY, RetryPolicy, retry_after_from_headers
from mori.settings import DEFAULT_API_URL, DEFAULT_TIMEOUT, Generation

__all__ = ["BaseClient"]

logger = logging.getLogger("mori.client")

T = TypeVar("T")


class BaseClient:
    """Configuration, pools, credentials and the call machinery of a MORI client."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        api_key: str | None = None,
        *,
        email: str | None = None,
        password: str | None = None,
        generation: Generation = "g1",
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = DEFAULT_RETRY_POLICY,
        rate_limiter: SupportsAcquire | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        user_agent: str | None = None,
        token_cache: TokenCache | None = None,
    ) -> None:
        if not timeout > 0:
            raise errors.ConfigurationError("timeout must be > 0 seconds")
        self.base_url = base_url.rstrip("/")
        self.generation: Generation = generation
        self._dialect = dialect(generation)
        self._auth = Auth(
            base_url=self.base_url,
            api_key=api_key,
            email=email,
            password=password,
            generation=generation,
            cache=token_cache if token_cache is not None else PROCESS_TOKENS,
            clock=clock,
        )
        self.retry_policy = retry if retry is not None else RetryPolicy(max_attempts=1)
        self.rate_limiter = rate_limiter
        self.timeout = float(timeout)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._counters = Counters()
        install_log_filters()
        self._pools = Pools(
            self.base_url,
            timeout=self.timeout,
            transport=transport,
            user_agent=user_agent or default_user_agent(),
            secrets=self._auth.secrets,
        )
        self._webhooks = WebhookAdmin(self._dialect, self._api)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pools."""
        self._pools.close()

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`close` closed every connection pool."""
        return all(pool.is_closed for pool in self._pools.clients)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={redact_url(self.base_url)!r}, "
            f"generation={self.generation!r}, auth={self._auth.mode!r})"
        )

    @property
    def stats(self) -> ClientStats:
        """A consistent snapshot of the request, retry, 429 and rate-limit-wait counters."""
        return self._counters.snapshot()

    # -- one call ------------------------------------------------------------------------------

    def _api(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        json: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> tuple[Any, int]:
        """One API call with rate limiting, retries and one token refresh on 401; returns the
        answer's ``data`` and HTTP status."""
        headers = {"Accept": "application/json"}
        if key is not None:
            headers.update(self._dialect.key_headers(key))
        refreshed = False

        def attempt(number: int) -> tuple[Any, int]:
            nonlocal refreshed
            while True:
                auth = self._auth.header(self._login)
                response = self._send(endpoint, method, path, number, {**headers, **auth}, json)
                if response.status_code == 401 and not refreshed and self._auth.invalidate(auth):
                    refreshed = True  # the token expired early or was revoked: sign in again
                    continue
                return self._read(response, endpoint, key), response.status_code

        return self._with_retries(endpoint, attempt)

    def _send(
        self,
        endpoint: str,
        method: str,
        path: str,
        attempt: int,
        headers: Mapping[str, str],
        json: Any,
        **options: Any,
    ) -> httpx.Response:
        """One rate-limited API request."""
        if self.rate_limiter is not None:
            self._counters.add(waited=self.rate_limiter.acquire())
        self._counters.add(request=endpoint)
        url = API_PREFIX + path
        return self._pools.send(
            endpoint, method, url, attempt, headers=headers, json=json, **options
        )

    def _read(self, response: httpx.Response, endpoint: str, key: str | None) -> Any:
        """The answer's ``data``, or the mapped :class:`~mori.errors.APIStatusError`."""
        body = _parse.body_of(response)
        if not _parse.is_failure(response, body):
            return _parse.data_of(body)
        exc = _parse.status_error(
            response, body, endpoint=endpoint, key=key, secrets=self._auth.secrets()
        )
        if isinstance(exc, errors.RateLimitedError):
            self._counters.add(rate_limited=1)
            exc.retry_after = retry_after_from_headers(response.headers)
            if exc.retry_after is not None and isinstance(self.rate_limiter, RateLimiter):
                # Pause every thread's requests, not only this call's retry.
                pause = min(exc.retry_after, self.retry_policy.max_retry_after)
                self.rate_limiter.block_for(pause)
        raise exc

    def _login(self, **options: Any) -> Login:
        """Sign in once (no retry of its own: it runs inside a call's attempt)."""

        def send(body: dict[str, Any]) -> httpx.Response:
            headers = {"Accept": "application/json"}
            return self._send("login", "POST", LOGIN_PATH, 1, headers, body, **options)

        return sign_in(self._auth, send, lambda response: self._read(response, "login", None))

    def _probe(
        self, method: str, path: str, json: Any, *, within: float, connect: float
    ) -> httpx.Response:
        """One unretried request for :meth:`preflight` (signing in first if needed)."""
        options = {"within": within, "connect_timeout": connect}
        auth = self._auth.header(lambda: self._login(**options))
        headers = {"Accept": "application/json", **auth}
        return self._send("preflight", method, path, 1, headers, json, **options)

    def _with_retries(self, endpoint: str, attempt: Callable[[int], T]) -> T:
        number = 0

        def once() -> T:
            nonlocal number
            number += 1
            return attempt(number)

        def before_sleep(state: RetryCallState) -> None:
            self._counters.add(retry=endpoint)
            error = state.outcome.exception() if state.outcome is not None else None
            logger.debug(
                "mori %s: attempt %d failed (%s), retrying in %.3fs",
                endpoint,
                state.attempt_number,
                type(error).__name__,
                state.upcoming_sleep,
            )

        retrying = self.retry_policy.retrying(
            sleep=self._sleep, clock=self._clock, rng=self._rng, before_sleep=before_sleep
        )
        return retrying(once)
