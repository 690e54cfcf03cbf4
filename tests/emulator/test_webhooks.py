"""Webhook registration and signed delivery, with retries."""

from __future__ import annotations

import json
from collections.abc import Callable

from mori.emulator import EmulatorServer
from mori.models import PROCESSED_EVENT_TYPES, WebhookEvent
from mori.webhooks import verify

from .conftest import Api, WebhookReceiver, make_image, wait_stat


def _register(api: Api, url: str) -> str:
    response = api.http.post("/api/v2/webhook", json={"url": url})
    assert response.status_code == 200, response.text
    secret: str = response.json()["data"]["secret"]
    return secret


def test_register_get_delete(api: Api) -> None:
    assert api.http.get("/api/v2/webhook").json()["data"] == {"url": None}
    first = _register(api, "https://hooks.example/a")
    assert api.http.get("/api/v2/webhook").json()["data"] == {"url": "https://hooks.example/a"}
    second = _register(api, "https://hooks.example/b")
    assert second != first
    assert api.http.get("/api/v2/webhook").json()["data"]["url"] == "https://hooks.example/b"
    deleted = api.http.delete("/api/v2/webhook")
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    assert api.http.get("/api/v2/webhook").json()["data"] == {"url": None}


def test_register_needs_an_http_url(api: Api) -> None:
    bodies: list[object] = [{"url": "ftp://x"}, {"url": ""}, {}, []]
    for body in bodies:
        response = api.http.post("/api/v2/webhook", json=body)
        assert response.status_code == 400 and response.json()["code"] == "INVALID_REQUEST"


def test_signed_delivery_on_completion(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    server = make_server()
    api = Api(server.url)
    secret = _register(api, receiver.url)
    order_id = api.submit({"a.png": make_image("PNG")})
    (delivery,) = receiver.wait_for(1)
    verify(delivery.body, delivery.signature, secret)
    event = WebhookEvent.model_validate_json(delivery.body)
    assert event.event_type in PROCESSED_EVENT_TYPES
    assert event.data.order_id == order_id and event.data.status == "complete"
    assert event.data.file_count == 1 and event.data.download_url
    raw = json.loads(delivery.body)
    assert raw["occurredAt"].endswith("Z") and "failedAt" not in raw["data"]
    assert delivery.body == json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()
    wait_stat(server, "webhooks_sent", 1)


def test_failure_event(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    server = make_server(fail_order_names=frozenset({"doomed"}))
    api = Api(server.url)
    _register(api, receiver.url)
    created = api.create(["a.png"], orderName="doomed").json()["data"]
    api.http.put(created["files"][0]["uploadUrl"], content=make_image("PNG"))
    api.confirm(created["orderId"])
    (delivery,) = receiver.wait_for(1)
    data = json.loads(delivery.body)["data"]
    assert data["status"] == "failed" and data["failedAt"].endswith("Z")
    assert data["error"]["code"] == "PROCESSING_FAILED"
    assert "downloadUrl" not in data and "completedAt" not in data


def test_retries_until_success_with_the_same_event_id(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    receiver.statuses = [500, 503]
    server = make_server()
    api = Api(server.url)
    _register(api, receiver.url)
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
    api = Api(server.url)
    _register(api, receiver.url)
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
