"""Rate limiting (fixed 60 s window per account) and the admin stats, in both generations."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import httpx

from mori.emulator import EmulatorServer
from tests.support.clock import FakeClock
from tests.support.images import make_image

from .conftest import API_KEY, OTHER_KEY, Api, wait_stat


def test_rate_limit_and_window_reset(make_server: Callable[..., EmulatorServer]) -> None:
    clock = FakeClock()
    server = make_server(rpm=3, clock=clock)
    api = Api(server)
    url = api.create(["a.png"]).json()["data"]["files"][0]["uploadUrl"]
    clock.advance(10)
    assert api.http.get(api.webhooks_path).status_code == 200
    assert api.http.get("/api/v2/orders/1").status_code == 404  # still counted
    limited = api.http.get(api.webhooks_path)
    message = api.error(limited, 429, "RATE_LIMIT_EXCEEDED")
    assert message == "rate limit of 3 requests per minute exceeded"
    assert "errors" not in limited.json()
    assert limited.headers["Retry-After"] == "50"
    # presigned storage is not rate limited, unauthenticated calls are not counted
    assert httpx.put(url, content=make_image("PNG")).status_code == 200
    assert httpx.get(f"{server.url}{api.webhooks_path}").status_code == 401
    # other keys have their own window
    assert Api(server, OTHER_KEY).http.get(api.webhooks_path).status_code == 200
    clock.advance(49.5)
    assert api.http.get(api.webhooks_path).headers["Retry-After"] == "1"
    clock.advance(0.5)
    assert api.http.get(api.webhooks_path).status_code == 200
    assert server.stats()["rate_limited"] == 2


def test_stats_fields_and_request_counts(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server()
    api = Api(server)
    order_id = api.submit({"a.png": make_image("PNG"), "b.jpg": make_image("JPEG")})
    api.wait_finished(order_id)
    api.http.get(f"/api/v2/orders/{order_id}/download")
    registered = api.http.post(api.webhooks_path, json={"url": "http://127.0.0.1:9/hook"})
    if api.g3:
        api.http.get(api.webhooks_path)
        api.http.delete(f"{api.webhooks_path}/{registered.json()['data']['id']}")
    else:
        api.http.delete(api.webhooks_path)
    stats = httpx.get(f"{server.url}/_emulator/stats").json()
    assert stats["orders_created"] == 1
    assert stats["orders_confirmed"] == 1
    assert stats["orders_completed"] == 1
    assert stats["files_processed"] == 2
    assert stats["duplicate_files"] == 0
    assert stats["uploads"] == 2
    assert stats["rate_limited"] == 0
    assert stats["faults_injected"] == {}
    requests = stats["requests"]
    assert requests["create"] == 1 and requests["upload"] == 2 and requests["confirm"] == 1
    assert requests["get"] >= 1 and requests["download"] == 1
    assert requests["webhook_register"] == 1 and requests["webhook_delete"] == 1
    if api.g3:
        assert requests["webhook_list"] == 1
    labels = {
        key: "key:" + hashlib.sha256(key.encode()).hexdigest()[:12] for key in (API_KEY, OTHER_KEY)
    }
    assert stats["usage"] == {labels[API_KEY]: 2, labels[OTHER_KEY]: 0}
    assert API_KEY not in str(stats) and OTHER_KEY not in str(stats)
    assert server.stats() == stats


def test_duplicate_files_count_images_seen_in_an_earlier_order(
    make_server: Callable[..., EmulatorServer],
) -> None:
    server = make_server()
    api = Api(server)
    same, other = make_image("PNG"), make_image("PNG", size=(20, 20))
    api.wait_finished(api.submit({"a.png": same, "a-again.png": same}))  # same order: not dup
    assert server.stats()["duplicate_files"] == 0
    api.wait_finished(api.submit({"renamed.png": same, "new.png": other}))
    wait_stat(server, "duplicate_files", 1)
    api.wait_finished(api.submit({"third.png": same}))
    wait_stat(server, "duplicate_files", 2)
    # an order that is only created (never confirmed) processes nothing
    api.create(["a.png"])
    assert server.stats()["files_processed"] == 5
