"""Fixtures for the emulator tests: local S3, emulator servers, an API client, test images,
an image host for URL files and a webhook receiver. Everything runs over real HTTP.

Tests that use ``server``, ``make_server`` or ``generation`` run once per API generation
(``g1``, ``g3``); ``@pytest.mark.generations("g1")`` limits a test (or a module, through
``pytestmark``) to the generations that have its feature.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from mori.emulator import EmulatorConfig, EmulatorServer, LocalS3

API_KEY = "test-key"
OTHER_KEY = "other-key"
GENERATIONS = ("g1", "g3")
SIGNATURE_HEADERS = {"g1": "X-Mori-Signature", "g3": "X-MoriBiz-Signature"}


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``generations`` marker."""
    config.addinivalue_line(
        "markers", "generations(*names): the API generations a test runs under (g1, g3)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs an emulator once per generation its marker allows."""
    if "generation" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("generations")
        names = marker.args if marker else GENERATIONS
        metafunc.parametrize("generation", names, scope="module")


def signs(body: bytes, signature: str | None, secret: str) -> bool:
    """Whether ``signature`` is the hex HMAC-SHA256 of ``body`` under ``secret`` (UTF-8)."""
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return signature is not None and hmac.compare_digest(expected, signature)


def expect_error(response: httpx.Response, status: int, code: str, generation: str) -> str:
    """Assert the generation's error envelope with ``status`` and ``code``; its message."""
    assert response.status_code == status, response.text
    body = response.json()
    if generation == "g1":
        assert body["success"] is False
    else:
        assert "success" not in body and "data" not in body
    assert body["code"] == code
    message: str = body["message"]
    return message


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds (fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def wait_stat(server: EmulatorServer, name: str, value: int, timeout: float = 10.0) -> None:
    """Wait until the server's counter ``name`` reaches ``value``."""
    wait_until(lambda: server.stats()[name] >= value, timeout)
    assert server.stats()[name] == value


# -- images -----------------------------------------------------------------------------------


# -- servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3(s3_server: LocalS3) -> LocalS3:
    """The session's local S3 endpoint (tests/support/s3.py): each emulator gets a bucket."""
    return s3_server


def start_emulator(s3: LocalS3, **overrides: Any) -> EmulatorServer:
    """A started emulator with fast test defaults and its own bucket."""
    settings: dict[str, Any] = {
        "api_keys": frozenset({API_KEY, OTHER_KEY}),
        "processing_seconds": 0.05,
        "webhook_retry_delays": (0.05, 0.05, 0.05),
        "webhook_timeout": 2.0,
        "s3_endpoint_url": s3.endpoint_url,
        "s3_bucket": f"emu-{uuid.uuid4().hex[:12]}",
    }
    settings.update(overrides)
    return EmulatorServer(EmulatorConfig(**settings)).start()


@pytest.fixture(scope="module")
def server(s3: LocalS3, generation: str) -> Iterator[EmulatorServer]:
    """A shared emulator with default (fast) settings; tests must not assume its counters."""
    emulator = start_emulator(s3, generation=generation)
    yield emulator
    emulator.stop()


@pytest.fixture
def make_server(s3: LocalS3, generation: str) -> Iterator[Callable[..., EmulatorServer]]:
    """Start emulators of the test's generation with custom settings; stopped after the test."""
    started: list[EmulatorServer] = []

    def make(**overrides: Any) -> EmulatorServer:
        emulator = start_emulator(s3, **{"generation": generation, **overrides})
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


# -- API client -------------------------------------------------------------------------------


class Api:
    """A small synchronous MORI client of either generation for tests (no retries: every
    answer is visible). Every client is closed after the test that made it."""

    opened: ClassVar[list[Api]] = []

    def __init__(self, server: EmulatorServer, key: str = API_KEY, timeout: float = 10.0) -> None:
        self.generation = server.config.generation
        self.http = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )
        Api.opened.append(self)

    @property
    def g3(self) -> bool:
        return self.generation == "g3"

    @property
    def create_path(self) -> str:
        return "/api/v2/orders/anti-ai" if self.g3 else "/api/v2/orders"

    @property
    def confirm_path(self) -> str:
        return "/api/v2/orders/anti-ai/confirm" if self.g3 else "/api/v2/orders/confirm"

    @property
    def webhooks_path(self) -> str:
        return "/api/v2/orders/webhooks" if self.g3 else "/api/v2/webhook"

    def create(self, names: list[str], key: str | None = None, **body: Any) -> httpx.Response:
        """Create an order of upload files."""
        files = [{"fileName": name} for name in names]
        return self.post(self.create_path, {"files": files, **body}, key)

    def post(self, path: str, body: Any, key: str | None = None) -> httpx.Response:
        """POST JSON with a (fresh unless given) idempotency key: a header in g1; in g3 the
        body's ``idempotencyKey`` (bodies that are no JSON object go without)."""
        key = key or str(uuid.uuid4())
        if not self.g3:
            return self.http.post(path, json=body, headers={"X-Idempotency-Key": key})
        if isinstance(body, dict):
            body = {"idempotencyKey": key, **body}
        return self.http.post(path, json=body)

    def confirm(self, order_id: str, key: str | None = None) -> httpx.Response:
        """Confirm a pending order."""
        return self.post(self.confirm_path, {"orderId": order_id}, key)

    def error(self, response: httpx.Response, status: int, code: str) -> str:
        """:func:`expect_error` in this client's generation."""
        return expect_error(response, status, code, self.generation)

    def order(self, order_id: str) -> dict[str, Any]:
        """``GET /api/v2/orders/{orderId}`` data."""
        response = self.http.get(f"/api/v2/orders/{order_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def wait_finished(self, order_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll until the order is complete or failed."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.order(order_id)
            if info["status"] in ("complete", "failed"):
                return info
            assert time.monotonic() < deadline, f"order {order_id} still {info['status']}"
            time.sleep(0.02)

    def submit(self, files: dict[str, bytes], **body: Any) -> str:
        """Create, upload every file and confirm; the order id."""
        created = self.create(list(files), **body)
        assert created.status_code == 200, created.text
        data = created.json()["data"]
        for spec, content in zip(data["files"], files.values(), strict=True):
            assert httpx.put(spec["uploadUrl"], content=content).status_code == 200
        confirmed = self.confirm(data["orderId"])
        assert confirmed.status_code == 200, confirmed.text
        order_id: str = data["orderId"]
        return order_id

    def download(self, order_id: str) -> bytes:
        """The result archive of a complete order."""
        response = self.http.get(f"/api/v2/orders/{order_id}/download")
        assert response.status_code == 200, response.text
        archive = httpx.get(response.json()["data"]["downloadUrl"])
        assert archive.status_code == 200
        return archive.content

    def register_webhook(self, url: str) -> str:
        """Register a webhook (g1: the account's one; g3: one more); its secret."""
        response = self.http.post(self.webhooks_path, json={"url": url})
        assert response.status_code == 200, response.text
        secret: str = response.json()["data"]["secret"]
        return secret


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close the test's :class:`Api` clients."""
    yield
    while Api.opened:
        Api.opened.pop().http.close()


@pytest.fixture
def api(server: EmulatorServer) -> Api:
    """A client of the shared emulator."""
    return Api(server)


# -- tiny HTTP servers: an image host and a webhook receiver ------------------------------------


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No request logging in tests."""


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd


@dataclass
class ImageHost:
    """Serves ``files`` (path -> bytes) at ``base_url``; unknown paths are 404."""

    files: dict[str, bytes]
    httpd: ThreadingHTTPServer

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    """A local HTTP server of test images."""
    files: dict[str, bytes] = {}

    class Handler(_Quiet):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    httpd = _serve(Handler)
    yield ImageHost(files, httpd)
    httpd.shutdown()


@dataclass
class Received:
    """One webhook request as the receiver saw it."""

    body: bytes
    signature: str | None
    header: str | None
    status: int


@dataclass
class WebhookReceiver:
    """Records deliveries; answers ``statuses`` in turn (then 200), 401 on a bad signature."""

    httpd: ThreadingHTTPServer
    statuses: list[int] = field(default_factory=list)
    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def answer(self, body: bytes, signature: str | None, header: str | None) -> int:
        with self.lock:
            if self.secret is not None and not signs(body, signature, self.secret):
                status = 401
            else:
                status = self.statuses.pop(0) if self.statuses else 200
            self.received.append(Received(body, signature, header, status))
        return status

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` requests arrived; all of them."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"got {len(self.received)} of {count} webhooks"
            time.sleep(0.02)
        with self.lock:
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A local webhook receiver (either generation's signature header)."""
    state: list[WebhookReceiver] = []

    class Handler(_Quiet):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            header = next((h for h in SIGNATURE_HEADERS.values() if h in self.headers), None)
            signature = self.headers.get(header) if header else None
            status = state[0].answer(body, signature, header)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    hook = WebhookReceiver(_serve(Handler))
    state.append(hook)
    yield hook
    hook.httpd.shutdown()
