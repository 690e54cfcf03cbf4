"""The g3 dialect: mixed upload/URL orders, several webhooks per account, g3 events, and each
generation answering the other one's routes with 404."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator

import httpx
import pytest

from mori.emulator import EmulatorConfig, EmulatorServer, LocalS3, psnr
from tests.support.images import make_image

from .conftest import (
    OTHER_KEY,
    Api,
    ImageHost,
    WebhookReceiver,
    expect_error,
    signs,
    start_emulator,
)

g3_only = pytest.mark.generations("g3")


# -- orders -----------------------------------------------------------------------------------


@g3_only
def test_mixed_order_uploads_only_the_files_without_a_url(
    make_server: Callable[..., EmulatorServer], image_host: ImageHost
) -> None:
    image_host.files["/b.png"] = make_image("PNG", "RGBA")
    server = make_server(url_allowlist=frozenset({image_host.host}))
    api = Api(server)
    files = [
        {"fileName": "a.jpg"},
        {"fileName": "b.png", "originalFileUrl": f"{image_host.base_url}/b.png"},
    ]
    response = api.post(api.create_path, {"files": files})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "pending"
    upload, by_url = data["files"]
    assert upload["fileKey"] == f"temp/{data['orderId']}/0/a.jpg" and upload["uploadUrl"]
    assert "uploadUrl" not in by_url and "fileKey" not in by_url
    assert by_url["fileName"] == "b.png"
    message = api.error(api.confirm(data["orderId"]), 400, "FILES_NOT_UPLOADED")
    assert message.startswith("1 of 1 files") and "0/a.jpg" in message
    source = make_image("JPEG")
    assert httpx.put(upload["uploadUrl"], content=source).status_code == 200
    assert api.confirm(data["orderId"]).status_code == 200
    assert api.wait_finished(data["orderId"])["status"] == "complete"
    with zipfile.ZipFile(io.BytesIO(api.download(data["orderId"]))) as archive:
        assert archive.namelist() == ["0/a.jpg", "1/b.png"]
        assert psnr(source, archive.read("0/a.jpg")) >= 35
        assert psnr(image_host.files["/b.png"], archive.read("1/b.png")) >= 35
    stats = server.stats()
    assert stats["orders_confirmed"] == 1 and stats["files_processed"] == 2


@g3_only
def test_url_only_order_starts_at_once(
    make_server: Callable[..., EmulatorServer], image_host: ImageHost
) -> None:
    image_host.files["/a.png"] = make_image("PNG")
    server = make_server(url_allowlist=frozenset({image_host.host}))
    api = Api(server)
    files = [{"fileName": "a.png", "originalFileUrl": f"{image_host.base_url}/a.png"}]
    data = api.post(api.create_path, {"files": files}).json()["data"]
    assert data["status"] == "inProgress"
    assert data["files"] == [{"fileId": data["files"][0]["fileId"], "fileName": "a.png"}]
    assert api.wait_finished(data["orderId"])["status"] == "complete"
    api.error(api.confirm(data["orderId"]), 409, "INVALID_ORDER_STATUS")
    assert server.stats()["orders_confirmed"] == 1
    assert server.stats()["requests"]["create"] == 1


@g3_only
def test_url_files_are_checked(api: Api, image_host: ImageHost) -> None:
    for url, fragment in ((f"{image_host.base_url}/a.png", "not allowed"), ("ftp://x/a", "http")):
        files = [{"fileName": "a.png"}, {"fileName": "b.png", "originalFileUrl": url}]
        response = api.post(api.create_path, {"files": files})
        assert fragment in api.error(response, 400, "INVALID_REQUEST")
        assert response.json()["errors"]["propertyName"] == "files[1].originalFileUrl"


# -- webhooks ---------------------------------------------------------------------------------


@g3_only
def test_webhook_add_list_delete(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server()
    api, other = Api(server), Api(server, OTHER_KEY)
    assert api.http.get(api.webhooks_path).json() == {"data": []}
    first = api.http.post(api.webhooks_path, json={"url": "https://a.example/h", "name": "main"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"data"} and set(body["data"]) == {"id", "name", "secret"}
    assert body["data"]["name"] == "main" and body["data"]["secret"].startswith("whsec_")
    second = api.http.post(api.webhooks_path, json={"url": "https://b.example/h"}).json()["data"]
    assert second["id"] != body["data"]["id"] and second["secret"] != body["data"]["secret"]
    assert second["name"] == "https://b.example/h"  # unnamed webhooks are named by their URL
    listed = api.http.get(api.webhooks_path).json()["data"]
    assert listed == [
        {"id": body["data"]["id"], "name": "main", "url": "https://a.example/h"},
        {"id": second["id"], "name": second["name"], "url": "https://b.example/h"},
    ]
    assert other.http.get(other.webhooks_path).json()["data"] == []
    path = f"{api.webhooks_path}/{body['data']['id']}"
    other.error(other.http.delete(path), 404, "WEBHOOK_NOT_FOUND")
    assert api.http.delete(path).status_code == 200
    api.error(api.http.delete(path), 404, "WEBHOOK_NOT_FOUND")
    api.error(api.http.delete(f"{api.webhooks_path}/abc"), 404, "WEBHOOK_NOT_FOUND")
    assert [h["id"] for h in api.http.get(api.webhooks_path).json()["data"]] == [second["id"]]
    longest = {"url": "https://c.example/h", "name": "n" * 100}
    assert api.http.post(api.webhooks_path, json=longest).json()["data"]["name"] == "n" * 100


@g3_only
@pytest.mark.parametrize(
    ("body", "property_name"),
    [
        ({"url": "https://a.example/h", "name": "n" * 101}, "name"),
        ({"url": "https://a.example/h", "name": 5}, "name"),
        ({"name": "x"}, "url"),
    ],
)
def test_webhook_validation(api: Api, body: dict[str, object], property_name: str) -> None:
    response = api.http.post(api.webhooks_path, json=body)
    api.error(response, 400, "INVALID_REQUEST")
    assert response.json()["errors"]["propertyName"] == property_name


@g3_only
def test_each_event_goes_to_each_webhook(
    make_server: Callable[..., EmulatorServer],
    receiver: WebhookReceiver,
) -> None:
    server = make_server()
    api = Api(server)
    first = api.register_webhook(receiver.url)
    second = api.register_webhook(receiver.url + "?second")
    order_id = api.submit({"a.png": make_image("PNG")})
    deliveries = receiver.wait_for(2)
    assert {d.header for d in deliveries} == {"X-MoriBiz-Signature"}
    assert len({json.loads(d.body)["eventId"] for d in deliveries}) == 1
    assert sorted(signs(d.body, d.signature, first) for d in deliveries) == [False, True]
    assert sorted(signs(d.body, d.signature, second) for d in deliveries) == [False, True]
    for delivery in deliveries:  # keyed with the whole secret, prefix included
        assert not signs(delivery.body, delivery.signature, first.removeprefix("whsec_"))
    event = json.loads(deliveries[0].body)
    assert list(event) == ["eventId", "eventType", "occurredAt", "data"]
    assert list(event["data"]) == [
        "orderId",
        "orderName",
        "createdAt",
        "updatedAt",
        "completedAt",
        "status",
        "fileCount",
        "downloadUrl",
    ]
    assert event["data"]["orderId"] == order_id
    assert httpx.get(event["data"]["downloadUrl"]).status_code == 200
    assert server.stats()["webhook_attempts"] == 2


@g3_only
def test_failed_event_shape(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    server = make_server()
    api = Api(server)
    api.register_webhook(receiver.url)
    api.submit({"bad.png": b"not an image"})
    event = json.loads(receiver.wait_for(1)[0].body)
    assert event["eventType"] == "order.antiAi.failed"
    assert list(event["data"]) == [
        "orderId",
        "orderName",
        "createdAt",
        "updatedAt",
        "failedAt",
        "status",
        "fileCount",
        "error",
    ]
    assert event["data"]["error"]["code"] == "INVALID_IMAGE"


# -- each generation refuses the other one's routes -------------------------------------------

G1_ROUTES = [
    ("POST", "/api/v2/orders"),
    ("POST", "/api/v2/orders/with-urls"),
    ("POST", "/api/v2/orders/confirm"),
    ("POST", "/api/v2/webhook"),
    ("GET", "/api/v2/webhook"),
    ("DELETE", "/api/v2/webhook"),
]
G3_ROUTES = [
    ("POST", "/api/v2/orders/anti-ai"),
    ("POST", "/api/v2/orders/anti-ai/confirm"),
    ("POST", "/api/v2/orders/webhooks"),
    ("GET", "/api/v2/orders/webhooks"),
    ("DELETE", "/api/v2/orders/webhooks/1"),
]


@pytest.mark.parametrize(
    ("served", "method", "path"),
    [("g3", m, p) for m, p in G1_ROUTES] + [("g1", m, p) for m, p in G3_ROUTES],
)
def test_routes_of_the_other_generation_are_404(
    server_of: Callable[[str], EmulatorServer], served: str, method: str, path: str
) -> None:
    server = server_of(served)
    body = {"files": [{"fileName": "a.png"}], "orderId": "1", "url": "https://a.example/h"}
    response = httpx.request(
        method,
        server.url + path,
        json={**body, "idempotencyKey": "k"},
        headers={"Authorization": "Bearer test-key", "X-Idempotency-Key": "k"},
    )
    assert "not part of this API" in expect_error(response, 404, "NOT_FOUND", served)
    stats = server.stats()
    assert stats["orders_created"] == 0 and sum(stats["requests"].values()) == 0


@pytest.fixture(scope="module")
def server_of(s3: LocalS3) -> Iterator[Callable[[str], EmulatorServer]]:
    """One emulator per generation for the cross-generation table, started on first use."""
    started: dict[str, EmulatorServer] = {}

    def get(generation: str) -> EmulatorServer:
        if generation not in started:
            started[generation] = start_emulator(s3, generation=generation)
        return started[generation]

    yield get
    for emulator in started.values():
        emulator.stop()


def test_generation_is_validated() -> None:
    with pytest.raises(ValueError, match="generation"):
        EmulatorConfig(generation="g2")  # type: ignore[arg-type]


@g3_only
def test_create_fault_target_covers_url_files(
    make_server: Callable[..., EmulatorServer], image_host: ImageHost
) -> None:
    server = make_server(faults="create:503=1", url_allowlist=frozenset({image_host.host}))
    api = Api(server)
    files = [{"fileName": "a.png", "originalFileUrl": f"{image_host.base_url}/a.png"}]
    api.error(api.post(api.create_path, {"files": files}), 503, "SERVICE_UNAVAILABLE")
    assert server.stats()["faults_injected"] == {"create:503": 1}
    assert server.stats()["orders_created"] == 0
