"""The MORI Anti-AI filter API client (primary generation G1, see ``shared/mori-api.md``).

:class:`MoriClient` is synchronous, built on one ``httpx.Client`` and safe to share between
threads. Every API call sends ``Authorization: Bearer <key>``, waits for the client-side rate
limiter before *each* attempt, is retried per the :class:`~mori.retry.RetryPolicy` with the same
``X-Idempotency-Key``, and reads the envelope's ``data`` whether or not ``success``/``message``
are present. "Non-2xx or ``success: false``" raises the :mod:`mori.errors` class for the status.

Presigned storage URLs (:meth:`MoriClient.upload`, :meth:`MoriClient.download`) are called
without the Authorization header and are not rate-limited; a 403 there is
:class:`~mori.errors.URLExpiredError`.

Secrets: the API key and presigned URLs' query strings (their signatures) never appear in an
exception message, in ``repr(client)`` or in a log record -- every URL goes through
:func:`redact_url`, and a filter on the ``httpx`` logger redacts the URLs httpx itself logs.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
import pydantic
from pydantic import BaseModel
from tenacity import RetryCallState

from mori import errors
from mori.models import (
    ConfirmedOrder,
    ConfirmRequest,
    CreatedOrder,
    DownloadInfo,
    FileSpec,
    OrderInfo,
    UrlFileSpec,
    WebhookInfo,
    WebhookSecret,
)
from mori.ratelimit import RateLimiter, SupportsAcquire
from mori.retry import DEFAULT_RETRY_POLICY, RetryPolicy, retry_after_from_headers

__all__ = ["DEFAULT_BASE_URL", "ClientStats", "MoriClient", "redact_url"]

logger = logging.getLogger("mori.client")

DEFAULT_BASE_URL = "https://morimori.app"
DEFAULT_TIMEOUT = 30.0
#: Connection pool: enough for ~100 concurrent uploads/API calls from one process.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
#: Requests in flight at once; more callers wait on a semaphore, not in httpcore's pool queue,
#: whose bookkeeping costs O(queued requests x connections) per request (measured: 7 ms of
#: CPU per upload with 320 threads on 100 connections, 1.8 ms with this cap).
MAX_IN_FLIGHT = 100
#: The connections are split over this many pools, used in turn: httpcore also scans every
#: connection once per idle connection on each request (O(connections²)), so 8 pools of 13
#: cost 1/8 of one pool of 100.
POOL_SHARDS = 8
IDEMPOTENCY_HEADER = "X-Idempotency-Key"
API_PREFIX = "/api/v2"

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_URL_IN_TEXT = re.compile(r"(?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+)")
_S3_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


def redact_url(url: str | httpx.URL) -> str:
    """``scheme://host[:port]/path`` of ``url``: user info, query string and fragment dropped.

    Use it wherever a URL could be formatted into a message or log record; a presigned URL's
    signature lives in its query string.
    """
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url))
        host = parsed.host
        if ":" in host:
            host = f"[{host}]"
        port = f":{parsed.port}" if parsed.port is not None else ""
        if not parsed.scheme:
            return parsed.path
        return f"{parsed.scheme}://{host}{port}{parsed.path}"
    except Exception:  # never let redaction itself leak the input
        return "<unparseable URL>"


def _redact_text(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with every embedded URL redacted and each of ``secrets`` masked."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group("url")), text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class _RedactingFilter(logging.Filter):
    """Redact URLs in records of the ``httpx`` logger (it logs full request URLs at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args
            )
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = _redact_text(record.msg)
        return True


def _install_httpx_log_filter() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactingFilter) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactingFilter())


_install_httpx_log_filter()


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of a client's counters (see :attr:`MoriClient.stats`)."""

    requests: dict[str, int] = field(default_factory=dict)
    """HTTP requests sent (attempts, retries included), per endpoint."""
    retries: dict[str, int] = field(default_factory=dict)
    """Attempts after the first one, per endpoint."""
    rate_limited: int = 0
    """429 answers seen."""
    waited_seconds: float = 0.0
    """Seconds spent waiting for the client-side rate limiter."""


class _Counters:
    """The thread-safe counters behind :attr:`MoriClient.stats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._retries: Counter[str] = Counter()
        self._rate_limited = 0
        self._waited = 0.0

    def add(
        self, *, request: str = "", retry: str = "", rate_limited: int = 0, waited: float = 0.0
    ) -> None:
        with self._lock:
            if request:
                self._requests[request] += 1
            if retry:
                self._retries[retry] += 1
            self._rate_limited += rate_limited
            self._waited += waited

    def snapshot(self) -> ClientStats:
        with self._lock:
            return ClientStats(
                dict(self._requests), dict(self._retries), self._rate_limited, self._waited
            )


def _default_user_agent() -> str:
    try:
        from importlib.metadata import version

        sdk = version("mori-pipeline")
    except Exception:  # metadata is optional (source checkout)
        sdk = "0"
    return f"mori-pipeline/{sdk} python-httpx/{httpx.__version__}"


class MoriClient:
    """Synchronous, thread-safe client of the MORI API (see the module docstring).

    ``retry=None`` disables retries. ``rate_limiter`` is any object with ``acquire() -> float``
    (usually a :class:`~mori.ratelimit.RateLimiter`). ``transport`` replaces httpx's network
    transport (``httpx.MockTransport`` in tests). ``sleep``, ``clock`` and ``rng`` drive the
    retry delays, the retry deadline and the jitter.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = DEFAULT_RETRY_POLICY,
        rate_limiter: SupportsAcquire | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        user_agent: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.retry_policy = retry if retry is not None else RetryPolicy(max_attempts=1)
        self.rate_limiter = rate_limiter
        self._sleep = sleep
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._counters = _Counters()
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        # A given transport (a mock) gets one pool; the network gets POOL_SHARDS small ones.
        shards = 1 if transport is not None else POOL_SHARDS
        per_shard = -(-MAX_IN_FLIGHT // shards)  # ceil: 13 connections each
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        self._pools = [
            httpx.Client(
                base_url=self.base_url,
                timeout=timeout,
                limits=DEFAULT_LIMITS if shards == 1 else limits,
                transport=transport,
                headers={"User-Agent": user_agent or _default_user_agent()},
            )
            for _ in range(shards)
        ]
        self._turn = itertools.count()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Self:
        """A client configured from ``MORI_API_URL`` (default ``https://morimori.app``),
        ``MORI_API_KEY``, ``MORI_RATE_LIMIT_RPM`` (unset, empty or ``0`` = no client-side
        limit) and ``MORI_TIMEOUT_SECONDS`` (default 30). ``kwargs`` go to the constructor and
        win over the environment."""
        source = os.environ if env is None else env
        kwargs.setdefault("base_url", source.get("MORI_API_URL") or DEFAULT_BASE_URL)
        if "timeout" not in kwargs and source.get("MORI_TIMEOUT_SECONDS"):
            kwargs["timeout"] = float(source["MORI_TIMEOUT_SECONDS"])
        kwargs.setdefault("api_key", source.get("MORI_API_KEY") or None)
        if "rate_limiter" not in kwargs:
            raw = (source.get("MORI_RATE_LIMIT_RPM") or "0").strip()
            if not raw.isascii() or not raw.isdigit():
                raise ValueError(f"MORI_RATE_LIMIT_RPM must be an integer >= 0, got {raw[:20]!r}")
            clock, sleep = kwargs.get("clock", time.monotonic), kwargs.get("sleep", time.sleep)
            rpm = int(raw)
            kwargs["rate_limiter"] = RateLimiter(rpm, clock=clock, sleep=sleep) if rpm else None
        return cls(**kwargs)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pools."""
        for pool in self._pools:
            pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        key = "***" if self._api_key else None
        return f"MoriClient(base_url={redact_url(self.base_url)!r}, api_key={key})"

    @property
    def stats(self) -> ClientStats:
        """A consistent snapshot of the request, retry, 429 and rate-limit-wait counters."""
        return self._counters.snapshot()

    # -- orders --------------------------------------------------------------------------------

    def create_order(
        self,
        files: Sequence[str | FileSpec],
        *,
        idempotency_key: str,
        order_name: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> CreatedOrder:
        """``POST /api/v2/orders``: a ``pending`` order with one presigned upload URL per file.

        ``files`` are file names (with extension) or :class:`~mori.models.FileSpec`;
        ``options`` is sent only when given.
        """
        specs = [
            f if isinstance(f, FileSpec) else FileSpec.model_validate({"fileName": f})
            for f in files
        ]
        body = _order_body(specs, order_name, options)
        data = self._api("POST", "/orders", "create_order", json=body, key=idempotency_key)
        return self._model(CreatedOrder, data, "create_order", idempotency_key)

    def create_url_order(
        self,
        files: Sequence[UrlFileSpec | tuple[str, str]],
        *,
        idempotency_key: str,
        order_name: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> CreatedOrder:
        """``POST /api/v2/orders/with-urls``: MORI fetches each public URL itself (no upload,
        no confirm). ``files`` are specs or ``(file_name, url)`` pairs."""
        pairs = [f if isinstance(f, UrlFileSpec) else _url_spec(*f) for f in files]
        body = _order_body(pairs, order_name, options)
        endpoint = "create_url_order"
        data = self._api("POST", "/orders/with-urls", endpoint, json=body, key=idempotency_key)
        return self._model(CreatedOrder, data, endpoint, idempotency_key)

    def confirm_order(self, order_id: str, *, idempotency_key: str) -> ConfirmedOrder:
        """``POST /api/v2/orders/confirm``: start processing once every file is uploaded."""
        body = _dump(ConfirmRequest.model_validate({"orderId": order_id}))
        endpoint = "confirm_order"
        data = self._api("POST", "/orders/confirm", endpoint, json=body, key=idempotency_key)
        return self._model(ConfirmedOrder, data, endpoint, idempotency_key)

    def get_order(self, order_id: str) -> OrderInfo:
        """``GET /api/v2/orders/{orderId}``: the order's status and details."""
        data = self._api("GET", f"/orders/{_segment(order_id)}", "get_order")
        return self._model(OrderInfo, data, "get_order")

    def get_download(self, order_id: str) -> DownloadInfo:
        """``GET /api/v2/orders/{orderId}/download``: a presigned URL of the processed result."""
        data = self._api("GET", f"/orders/{_segment(order_id)}/download", "get_download")
        return self._model(DownloadInfo, data, "get_download")

    # -- webhook endpoint ----------------------------------------------------------------------

    def register_webhook(self, url: str) -> WebhookSecret:
        """``POST /api/v2/webhook``: set (or replace) the account's webhook URL; returns the
        signing secret."""
        data = self._api("POST", "/webhook", "register_webhook", json={"url": url})
        return self._model(WebhookSecret, data, "register_webhook")

    def get_webhook(self) -> WebhookInfo:
        """``GET /api/v2/webhook``: the registered URL (``None`` when there is none)."""
        data = self._api("GET", "/webhook", "get_webhook")
        return self._model(WebhookInfo, data, "get_webhook")

    def delete_webhook(self) -> None:
        """``DELETE /api/v2/webhook``: unregister the account's webhook URL."""
        self._api("DELETE", "/webhook", "delete_webhook")

    # -- presigned storage URLs ----------------------------------------------------------------

    def upload(self, upload_url: str, data: bytes, *, content_type: str | None = None) -> None:
        """PUT ``data`` to a presigned ``upload_url`` (no Authorization header).

        Raises :class:`~mori.errors.URLExpiredError` on 403 (not retried) and
        :class:`~mori.errors.PresignedURLError` on other failing statuses (5xx retried).
        """
        headers = {"Content-Type": content_type} if content_type else {}

        def attempt(number: int) -> None:
            response = self._send(
                "upload", "PUT", upload_url, number, headers=headers, content=data
            )
            self._check_presigned(response, "PUT", upload_url)

        self._with_retries("upload", attempt)

    def download(self, download_url: str) -> bytes:
        """GET a presigned ``download_url`` (no Authorization header); returns the body.

        Raises :class:`~mori.errors.URLExpiredError` on 403 and
        :class:`~mori.errors.PresignedURLError` on other failing statuses (5xx retried).
        """

        def attempt(number: int) -> bytes:
            response = self._send("download", "GET", download_url, number)
            self._check_presigned(response, "GET", download_url)
            return response.content

        return self._with_retries("download", attempt)

    # -- internals -----------------------------------------------------------------------------

    def _api(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        json: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> Any:
        """One API call with rate limiting and retries; returns the envelope's ``data``."""
        if key is not None and not key.strip():
            raise ValueError(f"{endpoint}: idempotency_key must not be empty")
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if key is not None:
            headers[IDEMPOTENCY_HEADER] = key

        def attempt(number: int) -> Any:
            if self.rate_limiter is not None:
                self._counters.add(waited=self.rate_limiter.acquire())
            response = self._send(
                endpoint, method, API_PREFIX + path, number, headers=headers, json=json
            )
            return self._parse(response, endpoint, key)

        return self._with_retries(endpoint, attempt)

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

    def _send(
        self,
        endpoint: str,
        method: str,
        url: str,
        attempt: int,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send one request, mapping httpx's failures to :mod:`mori.errors` without the URL."""
        # Redacting means parsing the URL again: done only for a message or an emitted log line.
        where = _Where(endpoint, method, url if "://" in url else self.base_url + url)
        self._counters.add(request=endpoint)
        started = self._clock()
        try:
            pool = self._pools[next(self._turn) % len(self._pools)]
            with self._in_flight:
                response = pool.request(method, url, headers=headers, json=json, content=content)
        except httpx.TimeoutException as exc:
            error: errors.MoriError = errors.TimeoutError(
                f"{where} timed out ({type(exc).__name__})"
            )
        except httpx.TransportError as exc:
            detail = self._redact(str(exc))
            error = errors.TransportError(f"{where} failed: {type(exc).__name__}: {detail}")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # bad URL, decoding, redirects
            error = errors.MoriError(f"{where} failed: {type(exc).__name__}")
        else:
            elapsed = self._clock() - started
            logger.debug(
                "mori %s attempt %d -> %d (%.3fs)", where, attempt, response.status_code, elapsed
            )
            return response
        logger.debug("mori %s attempt %d: %s", where, attempt, type(error).__name__)
        raise error  # outside the handler: no httpx exception (holding the full URL) chained

    def _parse(self, response: httpx.Response, endpoint: str, key: str | None) -> Any:
        """The envelope's ``data``, or the mapped :class:`~mori.errors.APIStatusError`."""
        try:
            body: Any = response.json() if response.content else None
        except ValueError:
            body = None
        envelope = body if isinstance(body, dict) else {}
        failed = envelope.get("success") is False
        if response.is_success and not failed:
            return envelope.get("data")

        status = response.status_code
        # G1 puts code/message at the top level; tolerate a nested {"error": {...}} as well.
        nested = envelope.get("error")
        source = nested if isinstance(nested, dict) and "code" not in envelope else envelope
        code = source.get("code") if isinstance(source.get("code"), str) else None
        message = source.get("message") or envelope.get("message")
        if not isinstance(message, str) or not message:
            message = response.reason_phrase or "error"
            if not isinstance(body, dict):
                message += " (non-JSON response body)"
        message = self._redact(message)
        cls = errors.error_class_for(status)
        exc = cls(message, status_code=status, code=code, idempotency_key=key, endpoint=endpoint)
        if isinstance(exc, errors.RateLimitedError):
            self._counters.add(rate_limited=1)
            exc.retry_after = retry_after_from_headers(response.headers)
            if exc.retry_after is not None and isinstance(self.rate_limiter, RateLimiter):
                # Pause every thread's requests, not only this call's retry.
                pause = min(exc.retry_after, self.retry_policy.max_retry_after)
                self.rate_limiter.block_for(pause)
        raise exc

    def _model(self, model: type[M], data: Any, endpoint: str, key: str | None = None) -> M:
        try:
            return model.model_validate(data if data is not None else {})
        except pydantic.ValidationError as exc:
            # Field paths only: pydantic's own message quotes input values (presigned URLs).
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<data>'}: {e['type']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise errors.APIStatusError(
                f"unexpected response data ({problems})",
                status_code=200,
                code="INVALID_RESPONSE",
                idempotency_key=key,
                endpoint=endpoint,
            ) from None

    def _check_presigned(self, response: httpx.Response, method: str, url: str) -> None:
        if response.is_success:
            return
        status = response.status_code
        match = _S3_CODE.search(response.content[:4096])
        detail = f" {match.group(1).decode()}" if match else ""
        message = f"{method} {redact_url(url)} failed: HTTP {status}{detail}"
        if status == 403:
            raise errors.URLExpiredError(message, status_code=status)
        raise errors.PresignedURLError(message, status_code=status)

    def _redact(self, text: str) -> str:
        return _redact_text(text, (self._api_key,) if self._api_key else ())


class _Where:
    """``"<endpoint>: <METHOD> <redacted URL>"``, formatted only when used."""

    __slots__ = ("endpoint", "method", "url")

    def __init__(self, endpoint: str, method: str, url: str) -> None:
        self.endpoint, self.method, self.url = endpoint, method, url

    def __str__(self) -> str:
        return f"{self.endpoint}: {self.method} {redact_url(self.url)}"


def _dump(model: BaseModel) -> dict[str, Any]:
    """``model`` as wire JSON (camelCase aliases, ``None`` fields omitted)."""
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def _order_body(
    specs: Sequence[BaseModel], order_name: str | None, options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A create body: ``files``, plus ``orderName`` and ``options`` only when given."""
    body: dict[str, Any] = {"files": [_dump(spec) for spec in specs]}
    if order_name is not None:
        body["orderName"] = order_name
    if options is not None:
        body["options"] = dict(options)
    return body


def _url_spec(file_name: str, url: str) -> UrlFileSpec:
    return UrlFileSpec.model_validate({"fileName": file_name, "originalFileUrl": url})


def _segment(value: str) -> str:
    """``value`` quoted as one URL path segment."""
    if not value:
        raise ValueError("order_id must not be empty")
    return quote(value, safe="")
