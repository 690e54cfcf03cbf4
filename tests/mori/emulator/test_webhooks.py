"""Webhook registration and signed delivery, with retries and the whole-attempt deadline."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from mori.emulator import EmulatorServer
from mori.models import PROCESSED_EVENT_TYPES, WebhookEvent
from mori.webhooks import verify
from tests.support.images import make_image

from .conftest import (
    SIGNATURE_HEADERS,
    Api,
    WebhookReceiver,
    signs,
    wait_stat,
    wait_until,
)

# -- g1 registration --------------------------------------------------------------------------


@pytest.mark.generations("g1")
def test_register_get_delete(api: Api) -> None:
    assert api.http.get("/api/v2/webhook").json()["data"] == {"url": None}
    first = api.register_webhook("https://hooks.example/a")
    assert api.http.get("/api/v2/webhook").json()["data"] == {"url": "https://hooks.example/a"}
    second = api.register_webhook("https://hooks.example/b")
    assert second != first
    assert api.http.get("/api/v2/webhook").json()["data"]["url"] == "https://hooks.example/b"
    deleted = api.http.delete("/api/v2/webhook")
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    assert api.http.get("/api/v2/webhook").json()["data"] == {"url": None}


def test_register_needs_an_http_url(api: Api) -> None:
    bodies: list[object] = [{"url": "ftp://x"}, {"url": ""}, {}, []]
    for body in bodies:
        response = api.http.post(api.webhooks_path, json=body)
        api.error(response, 400, "INVALID_REQUEST")
        expected = "body" if api.g3 and body == [] else "url"
        assert response.json()["errors"]["propertyName"] == expected


# -- delivery (both generations) --------------------------------------------------------------


def test_signed_delivery_on_completion(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    server = make_server()
    api = Api(server)
    secret = api.register_webhook(receiver.url)
    order_id = api.submit({"a.png": make_image("PNG")})
    (delivery,) = receiver.wait_for(1)
    assert delivery.header == SIGNATURE_HEADERS[api.generation]
    assert signs(delivery.body, delivery.signature, secret)
    raw = json.loads(delivery.body)
    data = raw["data"]
    assert data["orderId"] == order_id and data["status"] == "complete"
    assert data["fileCount"] == 1 and data["downloadUrl"]
    assert raw["occurredAt"].endswith("Z") and "failedAt" not in data
    assert delivery.body == json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()
    if api.g3:
        assert raw["eventType"] == "order.antiAi.completed"
        assert data["updatedAt"].endswith("Z") and data["completedAt"].endswith("Z")
    else:  # the SDK's own models and verifier read it
        verify(delivery.body, delivery.signature, secret)
        event = WebhookEvent.model_validate_json(delivery.body)
        assert event.event_type in PROCESSED_EVENT_TYPES and event.data.order_id == order_id
    wait_stat(server, "webhooks_sent", 1)


def test_failure_event(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    server = make_server(fail_order_names=frozenset({"doomed"}))
    api = Api(server)
    api.register_webhook(receiver.url)
    api.submit({"a.png": make_image("PNG")}, orderName="doomed")
    (delivery,) = receiver.wait_for(1)
    event = json.loads(delivery.body)
    data = event["data"]
    assert data["status"] == "failed" and data["failedAt"].endswith("Z")
    assert data["error"]["code"] == "PROCESSING_FAILED"
    assert "0/a.png" in data["error"]["message"]
    assert "downloadUrl" not in data and "completedAt" not in data
    if api.g3:
        assert event["eventType"] == "order.antiAi.failed"


def test_retries_until_success_with_the_same_event_id(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    receiver.statuses = [500, 503]
    server = make_server()
    api = Api(server)
    api.register_webhook(receiver.url)
    api.submit({"a.png": make_image("PNG")})
    deliveries = receiver.wait_for(3)
    assert [d.status for d in deliveries] == [500, 503, 200]
    assert len({json.loads(d.body)["eventId"] for d in deliveries}) == 1
    assert len({d.body for d in deliveries}) == 1
    wait_stat(server, "webhooks_sent", 1)
    assert server.stats()["webhook_attempts"] == 3


def test_gives_up_after_three_retries(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    receiver.statuses = [500] * 10
    server = make_server()
    api = Api(server)
    api.register_webhook(receiver.url)
    api.submit({"a.png": make_image("PNG")})
    assert len(receiver.wait_for(4)) == 4
    api.wait_finished(api.submit({"b.png": make_image("PNG")}))
    assert len(receiver.wait_for(8)) == 8
    wait_stat(server, "webhooks_failed", 2)
    assert server.stats()["webhook_attempts"] == 8


def test_no_registration_no_delivery(server: EmulatorServer, api: Api) -> None:
    before = server.stats()["webhooks_unregistered"]
    api.wait_finished(api.submit({"a.png": make_image("PNG")}))
    wait_stat(server, "webhooks_unregistered", before + 1)


# -- the whole-attempt deadline ---------------------------------------------------------------


class Trickler:
    """A raw TCP receiver that answers one byte every ``gap`` seconds and never finishes."""

    def __init__(self, gap: float = 0.05) -> None:
        self.gap = gap
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.connections: list[tuple[float, float]] = []  # (accepted, closed) monotonic times
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        accepted = time.monotonic()
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000
        with conn:
            conn.recv(65536)
            for byte in answer:
                if self.stopped.is_set():
                    break
                try:
                    conn.sendall(bytes([byte]))
                except OSError:  # the emulator gave up and closed the connection
                    break
                time.sleep(self.gap)
        self.connections.append((accepted, time.monotonic()))

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def trickler() -> Iterator[Trickler]:
    """A receiver that trickles its answer byte by byte."""
    server = Trickler()
    yield server
    server.close()


def test_a_trickling_receiver_is_cut_off_at_the_attempt_deadline(
    make_server: Callable[..., EmulatorServer], trickler: Trickler
) -> None:
    server = make_server(webhook_timeout=0.5, webhook_retry_delays=(0.05,))
    api = Api(server)
    api.register_webhook(trickler.url)
    started = time.monotonic()
    api.submit({"a.png": make_image("PNG")})
    wait_stat(server, "webhooks_failed", 1, timeout=10)
    elapsed = time.monotonic() - started
    stats = server.stats()
    assert stats["webhook_attempts"] == 2 and stats["webhooks_sent"] == 0
    assert elapsed < 4, elapsed  # two attempts of 0.5 s, not two of 100000 x 0.05 s
    # each attempt held its connection for about the deadline, then closed it
    wait_until(lambda: len(trickler.connections) == 2)
    for accepted, closed in trickler.connections:
        assert 0.4 < closed - accepted < 2.0
