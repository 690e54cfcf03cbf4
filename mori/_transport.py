"""The client's HTTP plumbing: sharded connection pools, an in-flight cap, whole-call deadlines.

Deadlines. httpx and httpcore time out each socket operation, so a server that trickles a
byte every second keeps a request alive forever. Here every request runs under an absolute
deadline (:func:`deadline`, a context variable set around the call): the pools' httpcore
network backend is wrapped in :class:`DeadlineBackend`, whose streams cap each connect, TLS
handshake, read and write at the time left before that deadline and raise httpcore's own
timeout once it has passed, which httpx maps to ``httpx.ReadTimeout`` and :class:`Pools` to
:class:`mori.errors.TimeoutError`. The deadline covers connect, send, headers and body, not the
wait for a free slot. (DNS resolution runs in ``getaddrinfo``, which no socket timeout bounds.)

Pools. httpcore scans every connection of a pool on each request (O(connections²) in total),
so the connections are split over :data:`POOL_SHARDS` pools used in turn, and at most
:data:`MAX_IN_FLIGHT` requests are in flight at once; more callers wait on a semaphore rather
than in httpcore's pool queue (measured: 7 ms of CPU per upload with 320 threads on one pool of
100 connections, 1.8 ms with this cap).
"""

from __future__ import annotations

import itertools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from mori import errors
from mori._redact import redact_text, redact_url

__all__ = [
    "MAX_IN_FLIGHT",
    "POOL_SHARDS",
    "DeadlineBackend",
    "Pools",
    "deadline",
    "default_user_agent",
]

logger = logging.getLogger("mori.client")

MAX_IN_FLIGHT = 100
POOL_SHARDS = 8
#: Bytes handed to one socket write, so a slow reader cannot stretch a write past the deadline.
WRITE_CHUNK = 64 * 1024

_deadline: ContextVar[float | None] = ContextVar("mori_request_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Run the enclosed requests of this thread under a deadline ``seconds`` from now."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def default_user_agent() -> str:
    """``mori-pipeline/<version> python-httpx/<version>``."""
    try:
        from importlib.metadata import version

        sdk = version("mori-pipeline")
    except Exception:  # metadata is optional (source checkout)
        sdk = "0"
    return f"mori-pipeline/{sdk} python-httpx/{httpx.__version__}"


def _budget(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` capped at the time left before the current deadline (raise once past it)."""
    end = _deadline.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise error("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the calling request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read at most ``max_bytes``, waiting no longer than the deadline allows."""
        return self._inner.read(max_bytes, _budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write ``buffer`` in chunks, each bounded by the time left."""
        view = memoryview(buffer)
        for start in range(0, len(view), WRITE_CHUNK):
            chunk = bytes(view[start : start + WRITE_CHUNK])
            self._inner.write(chunk, _budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        """Close the underlying stream."""
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        """Upgrade to TLS within the time left."""
        budget = _budget(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, budget))

    def get_extra_info(self, info: str) -> Any:
        """What the underlying stream says (socket, peer address, TLS object...)."""
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """An httpcore network backend whose connections honour the calling request's deadline."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner if inner is not None else httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect within the time left; the stream keeps honouring deadlines."""
        budget = _budget(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, budget, local_address, socket_options)
        return DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Connect to a Unix socket within the time left."""
        budget = _budget(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.connect_unix_socket(path, budget, socket_options))

    def sleep(self, seconds: float) -> None:
        """Sleep as the wrapped backend does."""
        self._inner.sleep(seconds)


def _arm(client: httpx.Client) -> None:
    """Wrap the network backend of each httpcore pool ``client`` routes through (proxies too).

    httpx exposes no hook for an httpcore network backend, so this reaches the pools it built
    (``HTTPTransport._pool``); it fails loudly if a new httpx lays them out differently.
    """
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        if not isinstance(transport, httpx.HTTPTransport):
            continue  # no route (NO_PROXY) or a caller's transport: nothing to wrap
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if not isinstance(backend, httpcore.NetworkBackend):
            raise RuntimeError("cannot install request deadlines on this httpx/httpcore version")
        if not isinstance(backend, DeadlineBackend):
            pool._network_backend = DeadlineBackend(backend)  # type: ignore[union-attr]


class Where:
    """``"<endpoint>: <METHOD> <redacted URL>"``, formatted only when used."""

    __slots__ = ("endpoint", "method", "url")

    def __init__(self, endpoint: str, method: str, url: str) -> None:
        self.endpoint, self.method, self.url = endpoint, method, url

    def __str__(self) -> str:
        return f"{self.endpoint}: {self.method} {redact_url(self.url)}"


def failure_reason(exc: BaseException) -> str | None:
    """What a network failure was, from its chain: ``dns``, ``refused``, ``tls``, ``timeout``."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return "dns"
        if isinstance(current, ConnectionRefusedError):
            return "refused"
        if isinstance(current, ssl.SSLError):
            return "tls"
        current = current.__cause__ or current.__context__
    return None


class Pools:
    """Round-robin httpx clients (one when a transport is given), a cap on requests in flight,
    and a deadline around each request; failures come out as :mod:`mori.errors`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None,
        user_agent: str,
        secrets: Callable[[], Iterable[str | None]] = tuple,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._secrets = secrets
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        shards = 1 if transport is not None else POOL_SHARDS
        per_shard = -(-MAX_IN_FLIGHT // shards)
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        self.clients = [
            httpx.Client(
                base_url=base_url,
                timeout=timeout,
                limits=limits,
                transport=transport,
                headers={"User-Agent": user_agent},
            )
            for _ in range(shards)
        ]
        for client in self.clients:
            _arm(client)
        self._turn = itertools.count()

    def close(self) -> None:
        """Close every pool."""
        for client in self.clients:
            client.close()

    def send(
        self,
        endpoint: str,
        method: str,
        url: str,
        attempt: int,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        within: float | None = None,
        connect_timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request within ``within`` seconds (default: the client's timeout).

        httpx's failures become :mod:`mori.errors` whose messages hold the endpoint, the method
        and the redacted URL only; no httpx exception (holding the full URL) is chained.
        """
        # Redacting means parsing the URL again: done only for a message or an emitted log line.
        where = Where(endpoint, method, url if "://" in url else self.base_url + url)
        seconds = self.timeout if within is None else within
        timeout = httpx.Timeout(seconds, connect=min(seconds, connect_timeout or seconds))
        started = time.monotonic()
        try:
            client = self.clients[next(self._turn) % len(self.clients)]
            with self._in_flight, deadline(seconds):
                response = client.request(
                    method, url, headers=headers, json=json, content=content, timeout=timeout
                )
        except httpx.TimeoutException as exc:
            error: errors.MoriError = errors.TimeoutError(
                f"{where} timed out after {seconds:g}s ({type(exc).__name__})", reason="timeout"
            )
        except httpx.TransportError as exc:
            detail = redact_text(str(exc), self._secrets())
            error = errors.TransportError(
                f"{where} failed: {type(exc).__name__}: {detail}", reason=failure_reason(exc)
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # bad URL, decoding, redirects
            error = errors.MoriError(f"{where} failed: {type(exc).__name__}")
        else:
            logger.debug(
                "mori %s attempt %d -> %d (%.3fs)",
                where,
                attempt,
                response.status_code,
                time.monotonic() - started,
            )
            return response
        logger.debug("mori %s attempt %d: %s", where, attempt, type(error).__name__)
        raise error  # outside the handler: no httpx exception (holding the full URL) chained
