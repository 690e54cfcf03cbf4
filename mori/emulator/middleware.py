"""Pure-ASGI middleware: per-endpoint request counting and HTTP fault injection.

Closing a connection without an answer is not part of ASGI, so :func:`abort_connection` reaches
uvicorn's transport through the ``receive`` callable (a bound method of uvicorn's
request-response cycle, which holds the transport; true for its h11 and httptools protocols).
After closing, it waits until uvicorn has seen the disconnect, so uvicorn does not try to answer
with a 500. ``reset`` sets ``SO_LINGER`` to 0 first, so the peer gets a TCP RST (httpx:
``ReadError``); ``drop`` and ``timeout`` close normally (httpx: ``RemoteProtocolError``).
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mori.emulator.config import Generation
from mori.emulator.core import Emulator
from mori.emulator.faults import HTTP_TARGETS
from mori.emulator.presign import S3Error
from mori.emulator.responses import ApiError

_Table = tuple[tuple[str, re.Pattern[str], str], ...]


def _table(*rows: tuple[str, str, str]) -> _Table:
    """Compiled ``(method, path pattern, endpoint name)`` rows, matched in order (``""``: none)."""
    return tuple((method, re.compile(pattern), name) for method, pattern, name in rows)


_COMMON = (
    ("POST", r"/api/v2/auth/login", "login"),
    ("GET", r"/api/v2/orders/[^/]+", "get"),
    ("GET", r"/api/v2/orders/[^/]+/download", "download"),
    ("PUT", r"/_s3/upload/.+", "upload"),
    ("GET", r"/_s3/result/.+", "result"),
)
#: Endpoint names per generation (a route another generation serves is no endpoint here).
ENDPOINTS: dict[Generation, _Table] = {
    "g1": _table(
        ("POST", r"/api/v2/orders", "create"),
        ("POST", r"/api/v2/orders/with-urls", "with_urls"),
        ("POST", r"/api/v2/orders/confirm", "confirm"),
        ("POST", r"/api/v2/webhook", "webhook_register"),
        ("GET", r"/api/v2/webhook", "webhook_get"),
        ("DELETE", r"/api/v2/webhook", "webhook_delete"),
        ("GET", r"/api/v2/orders/webhooks", ""),  # a g3 route: answered 404, not counted
        *_COMMON,
    ),
    "g3": _table(
        ("POST", r"/api/v2/orders/anti-ai", "create"),
        ("POST", r"/api/v2/orders/anti-ai/confirm", "confirm"),
        ("POST", r"/api/v2/orders/webhooks", "webhook_register"),
        ("GET", r"/api/v2/orders/webhooks", "webhook_list"),
        ("DELETE", r"/api/v2/orders/webhooks/[^/]+", "webhook_delete"),
        *_COMMON,
    ),
}
_STORAGE_TARGETS = frozenset({"upload", "result"})
_API_ERRORS = {
    "500": ("INTERNAL_ERROR", "internal server error (injected)"),
    "503": ("SERVICE_UNAVAILABLE", "service temporarily unavailable (injected)"),
    "429": ("RATE_LIMIT_EXCEEDED", "rate limit exceeded (injected)"),
}
_S3_ERRORS = {
    "500": ("InternalError", "We encountered an internal error. Please try again."),
    "503": ("ServiceUnavailable", "Service is unable to handle request."),
    "429": ("SlowDown", "Please reduce your request rate."),
}
_DISCONNECT_POLLS = 200


def endpoint_name(method: str, path: str, generation: Generation = "g1") -> str | None:
    """The stats name of an endpoint of ``generation`` (``create``, ``upload``...), or ``None``."""
    for endpoint_method, pattern, name in ENDPOINTS[generation]:
        if method == endpoint_method and pattern.fullmatch(path):
            return name or None
    return None


class FaultMiddleware:
    """Counts requests per endpoint and injects the configured HTTP faults."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        generation = self.emulator.config.generation
        endpoint = endpoint_name(scope.get("method", ""), scope.get("path", ""), generation)
        if scope["type"] != "http" or endpoint is None:
            await self.app(scope, receive, send)
            return
        self.emulator.stats.request(endpoint)
        fault = self.emulator.faults.decide(endpoint) if endpoint in HTTP_TARGETS else None
        if fault is None:
            await self.app(scope, receive, send)
        elif fault in _API_ERRORS:
            await self._error_response(endpoint, fault)(scope, receive, send)
        elif fault == "reset":
            await abort_connection(receive, reset=True)
        elif fault == "timeout":
            await self._hang()
            await abort_connection(receive)
        else:  # drop: commit the request's side effects, then never answer
            await self.app(scope, receive, _discard)
            await abort_connection(receive)

    def _error_response(self, endpoint: str, fault: str) -> Response:
        """The injected error answer (S3-style XML for storage endpoints)."""
        retry_after = str(self.emulator.config.fault_retry_after)
        headers = {"Retry-After": retry_after} if fault == "429" else {}
        if endpoint in _STORAGE_TARGETS:
            error = S3Error(*_S3_ERRORS[fault], status=int(fault))
            return Response(error.xml(), error.status, headers, media_type="application/xml")
        code, message = _API_ERRORS[fault]
        injected = ApiError(int(fault), code, message, headers)
        return injected.response(self.emulator.config.generation)

    async def _hang(self) -> None:
        """Wait ``fault_hang_seconds``, ending early when the emulator shuts down."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.emulator.config.fault_hang_seconds
        stop = self.emulator.stop_event
        while not stop.is_set() and (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(0.05, left))


async def _discard(message: Message) -> None:
    """An ASGI ``send`` that throws the response away."""


async def abort_connection(receive: Receive, *, reset: bool = False) -> None:
    """Close the client's connection without an HTTP answer (RST if ``reset``)."""
    cycle: Any = getattr(receive, "__self__", None)
    transport: asyncio.Transport | None = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("this ASGI server does not expose its transport; cannot drop")
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.close()
    for _ in range(_DISCONNECT_POLLS):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0.005)
