"""The G3 dialect: the same client methods on G3's paths and bodies, and its webhooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mori import errors
from mori.client import MoriClient
from mori.models import FileSpec, MixedFileSpec, UrlFileSpec

from .helpers import API_KEY, Script

MakeClient = Callable[..., MoriClient]
KEY = "order-key-1"
CREATED = {
    "orderId": "42",
    "orderName": "anti_ai_2026-02-19",
    "status": "pending",
    "files": [{"fileId": 1, "fileName": "a.jpg", "uploadUrl": "https://s3.test/u?sig=x"}],
}


def g3(data: Any = None, status: int = 200) -> httpx.Response:
    """A G3 answer: ``{"data": ...}`` only."""
    return httpx.Response(status, json={"data": data} if data is not None else None)


@pytest.fixture
def make_g3(make_client: MakeClient) -> MakeClient:
    return lambda handler, **kw: make_client(handler, generation="g3", **kw)


def test_create_order(make_g3: MakeClient) -> None:
    script = Script(g3(CREATED))
    order = make_g3(script).create_order(
        ["a.jpg", FileSpec(fileName="b.png")],
        idempotency_key=KEY,
        order_name="batch",
        options={"strength": "high"},
    )
    req = script.last
    assert (req.method, req.url.path) == ("POST", "/api/v2/orders/anti-ai")
    assert "X-Idempotency-Key" not in req.headers
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert json.loads(req.content) == {
        "idempotencyKey": KEY,
        "files": [{"fileName": "a.jpg"}, {"fileName": "b.png"}],
        "orderName": "batch",
        "options": {"strength": "high"},
    }
    assert list(json.loads(req.content)) == ["idempotencyKey", "files", "orderName", "options"]
    assert (order.order_id, order.files[0].upload_url) == ("42", "https://s3.test/u?sig=x")


def test_create_url_order(make_g3: MakeClient) -> None:
    script = Script(g3({**CREATED, "status": "inProgress", "files": []}))
    order = make_g3(script).create_url_order(
        [("a.jpg", "https://pub.test/a.jpg"), UrlFileSpec(fileName="b.png", url="https://p/b")],
        idempotency_key=KEY,
    )
    assert script.last.url.path == "/api/v2/orders/anti-ai"
    assert "X-Idempotency-Key" not in script.last.headers
    assert json.loads(script.last.content) == {
        "idempotencyKey": KEY,
        "files": [
            {"fileName": "a.jpg", "originalFileUrl": "https://pub.test/a.jpg"},
            {"fileName": "b.png", "originalFileUrl": "https://p/b"},
        ],
    }
    assert order.status == "inProgress"


def test_create_mixed_order(make_g3: MakeClient) -> None:
    script = Script(g3(CREATED))
    make_g3(script).create_mixed_order(
        [
            "a.jpg",
            ("b.jpg", "https://pub.test/b.jpg"),
            MixedFileSpec(fileName="c.png"),
            UrlFileSpec(fileName="d.png", originalFileUrl="https://pub.test/d.png"),
        ],
        idempotency_key=KEY,
    )
    assert json.loads(script.last.content)["files"] == [
        {"fileName": "a.jpg"},
        {"fileName": "b.jpg", "originalFileUrl": "https://pub.test/b.jpg"},
        {"fileName": "c.png"},
        {"fileName": "d.png", "originalFileUrl": "https://pub.test/d.png"},
    ]


def test_mixed_orders_need_g3(make_client: MakeClient) -> None:
    script = Script(g3(CREATED))
    with pytest.raises(errors.ConfigurationError, match="g3"):
        make_client(script).create_mixed_order(["a.jpg"], idempotency_key=KEY)
    assert script.requests == []


def test_confirm_get_and_download(make_g3: MakeClient) -> None:
    script = Script(
        g3({"orderId": 42, "status": "inProgress"}),
        g3({"orderId": 42, "status": "complete", "type": "antiAi"}),
        g3({"downloadUrl": "https://s3.test/r.zip?sig=x"}),
    )
    client = make_g3(script)
    assert client.confirm_order("42", idempotency_key="confirm-key").status == "inProgress"
    assert client.get_order("42").status == "complete"
    assert client.get_download("42").download_url == "https://s3.test/r.zip?sig=x"
    confirm, get, download = script.requests
    assert (confirm.method, confirm.url.path) == ("POST", "/api/v2/orders/anti-ai/confirm")
    assert json.loads(confirm.content) == {"idempotencyKey": "confirm-key", "orderId": "42"}
    assert "X-Idempotency-Key" not in confirm.headers
    assert (get.method, get.url.path) == ("GET", "/api/v2/orders/42")
    assert (download.method, download.url.path) == ("GET", "/api/v2/orders/42/download")


def test_g1_sends_the_key_in_the_header_only(make_client: MakeClient) -> None:
    script = Script(g3(CREATED), g3({"orderId": "42", "status": "inProgress"}))
    client = make_client(script)
    client.create_order(["a.jpg"], idempotency_key=KEY)
    client.confirm_order("42", idempotency_key="confirm-key")
    create, confirm = script.requests
    assert create.headers["X-Idempotency-Key"] == KEY
    assert "idempotencyKey" not in json.loads(create.content)
    assert confirm.headers["X-Idempotency-Key"] == "confirm-key"
    assert json.loads(confirm.content) == {"orderId": "42"}


def test_g3_errors_without_success(make_g3: MakeClient) -> None:
    body = {"code": "IDEMPOTENCY_KEY_REQUIRED", "message": "idempotencyKey is required"}
    with pytest.raises(errors.BadRequestError) as info:
        make_g3(Script(httpx.Response(400, json=body))).confirm_order("1", idempotency_key=KEY)
    assert (info.value.code, info.value.message) == (body["code"], body["message"])


# -- webhooks ----------------------------------------------------------------------------------


class Hooks:
    """A G3 webhook registry behind a MockTransport."""

    def __init__(self, *existing: tuple[int, str]) -> None:
        self.hooks = {i: {"id": i, "name": f"h{i}", "url": url} for i, url in existing}
        self.next = max(self.hooks, default=0) + 1
        self.calls: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append((request.method, path))
        if request.method == "GET" and path == "/api/v2/orders/webhooks":
            return g3(list(self.hooks.values()))
        if request.method == "POST" and path == "/api/v2/orders/webhooks":
            body = json.loads(request.content)
            ident, self.next = self.next, self.next + 1
            self.hooks[ident] = {"id": ident, "name": body.get("name", ""), "url": body["url"]}
            return g3({"id": ident, "name": body.get("name", ""), "secret": f"whsec_{ident}"})
        if request.method == "DELETE" and path.startswith("/api/v2/orders/webhooks/"):
            ident = int(path.rsplit("/", 1)[1])
            if self.hooks.pop(ident, None) is None:
                return httpx.Response(404, json={"code": "NOT_FOUND", "message": "no webhook"})
            return httpx.Response(204)
        return httpx.Response(404, json={"code": "NOT_FOUND", "message": "no route"})


def test_register_replaces_the_webhooks_of_the_same_url(make_g3: MakeClient) -> None:
    hooks = Hooks((1, "https://a.test/hook"), (2, "https://b.test/hook"))
    client = make_g3(hooks)
    secret = client.register_webhook("https://a.test/hook", name="pipeline")
    assert (secret.secret, secret.id, secret.name) == ("whsec_3", "3", "pipeline")
    assert sorted(h["url"] for h in hooks.hooks.values()) == [
        "https://a.test/hook",
        "https://b.test/hook",
    ]
    assert ("DELETE", "/api/v2/orders/webhooks/1") in hooks.calls
    assert client.get_webhook().url == "https://a.test/hook"  # the newest
    assert [(h.id, h.url) for h in client.list_webhooks()] == [
        ("2", "https://b.test/hook"),
        ("3", "https://a.test/hook"),
    ]


def test_register_sends_name_only_when_given(make_g3: MakeClient) -> None:
    script = Script(g3([]), g3({"id": 1, "secret": "whsec_x"}))
    make_g3(script).register_webhook("https://a.test/hook")
    assert json.loads(script.last.content) == {"url": "https://a.test/hook"}


def test_delete_by_url_or_all(make_g3: MakeClient) -> None:
    hooks = Hooks(
        (1, "https://a.test/hook"), (2, "https://b.test/hook"), (3, "https://a.test/hook")
    )
    client = make_g3(hooks)
    client.delete_webhook("https://a.test/hook")
    assert [h["url"] for h in hooks.hooks.values()] == ["https://b.test/hook"]
    client.delete_webhook()
    assert hooks.hooks == {}
    assert client.get_webhook().url is None
    assert client.list_webhooks() == []


def test_delete_tolerates_a_webhook_deleted_meanwhile(make_g3: MakeClient) -> None:
    script = Script(g3([{"id": 9, "url": "https://a.test/h"}]), httpx.Response(404, json={}))
    make_g3(script).delete_webhook()
    assert script.last.url.path == "/api/v2/orders/webhooks/9"


@pytest.mark.parametrize(
    "data",
    [
        [{"id": 1, "url": "https://a.test"}],
        {"webhooks": [{"id": 1, "url": "https://a.test"}]},
        {"items": [{"id": "1", "url": "https://a.test", "extra": True}, "junk"]},
    ],
)
def test_webhook_lists_are_read_liberally(make_g3: MakeClient, data: Any) -> None:
    hooks = make_g3(Script(g3(data))).list_webhooks()
    assert [(h.id, h.url) for h in hooks] == [("1", "https://a.test")]


def test_g1_webhooks(make_client: MakeClient) -> None:
    script = Script(
        g3({"url": "https://a.test/hook"}),  # delete("https://b.test"): GET, no match
        g3({"url": "https://a.test/hook"}),  # delete("https://a.test/hook"): GET, match
        httpx.Response(204),
        g3({"url": None}),
    )
    client = make_client(script)
    client.delete_webhook("https://b.test/hook")
    client.delete_webhook("https://a.test/hook")
    assert client.list_webhooks() == []
    assert [(r.method, r.url.path) for r in script.requests] == [
        ("GET", "/api/v2/webhook"),
        ("GET", "/api/v2/webhook"),
        ("DELETE", "/api/v2/webhook"),
        ("GET", "/api/v2/webhook"),
    ]


def test_g1_register_ignores_the_name(make_client: MakeClient) -> None:
    script = Script(g3({"secret": "s"}))
    make_client(script).register_webhook("https://a.test/hook", name="ignored")
    assert json.loads(script.last.content) == {"url": "https://a.test/hook"}
