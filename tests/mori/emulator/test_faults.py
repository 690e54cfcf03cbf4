"""Fault injection: spec parsing, seeded decisions, HTTP faults over sockets, webhook faults."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from mori.emulator import EmulatorConfig, EmulatorServer, FaultRule, parse_faults
from mori.emulator.faults import FaultInjector
from mori.emulator.stats import Stats
from tests.support.images import make_image

from .conftest import Api, WebhookReceiver, wait_stat, wait_until


def _seed_firing_first_only(probability: float) -> int:
    """A seed whose first draw fires at ``probability`` and whose second does not."""
    for seed in range(1000):
        rng = random.Random(seed)
        if rng.random() < probability <= rng.random():
            return seed
    raise AssertionError("no such seed")


# -- parsing and decisions --------------------------------------------------------------------


def test_parse_the_documented_example() -> None:
    spec = "create:drop=0.05,confirm:503=0.1,upload:500=0.1,any:429=0.05,webhook:dup=0.3"
    assert parse_faults(spec) == (
        FaultRule("create", "drop", 0.05),
        FaultRule("confirm", "503", 0.1),
        FaultRule("upload", "500", 0.1),
        FaultRule("any", "429", 0.05),
        FaultRule("webhook", "dup", 0.3),
    )
    assert parse_faults("") == () == parse_faults("  ")
    assert parse_faults(" Get : Timeout = 1 ") == (FaultRule("get", "timeout", 1.0),)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("create", "TARGET:FAULT=PROBABILITY"),
        ("create:drop", "TARGET:FAULT=PROBABILITY"),
        ("nowhere:500=0.1", "unknown target 'nowhere'"),
        ("create:404=0.1", "cannot take fault '404'"),
        ("create:dup=0.1", "cannot take fault 'dup'"),
        ("webhook:500=0.1", "cannot take fault '500'"),
        ("any:lose=0.1", "cannot take fault 'lose'"),
        ("create:drop=lots", "is not a number"),
        ("create:drop=1.5", "between 0 and 1"),
        ("create:drop=-0.1", "between 0 and 1"),
        ("create:drop=0.1,,get:500=0.1", "TARGET:FAULT=PROBABILITY"),
        ("create:drop=0.1,create:drop=0.2", "given twice"),
    ],
)
def test_invalid_specs(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="fault spec") as caught:
        parse_faults(spec)
    assert fragment in str(caught.value)


def test_invalid_spec_is_rejected_by_the_config() -> None:
    with pytest.raises(ValueError, match="unknown target"):
        EmulatorConfig(faults="everything:500=1")


def _decisions(seed: int, count: int = 200) -> list[str | None]:
    injector = FaultInjector("create:500=0.3,any:503=0.2,webhook:dup=0.5", seed, Stats())
    targets = ["create", "get", "webhook", "upload"]
    return [injector.decide(targets[i % 4]) for i in range(count)]


def test_decisions_are_reproducible_by_seed() -> None:
    assert _decisions(7) == _decisions(7)
    assert _decisions(7) != _decisions(8)
    decisions = _decisions(7)
    assert {d for i, d in enumerate(decisions) if i % 4 == 2} <= {None, "dup"}  # webhook
    assert {d for i, d in enumerate(decisions) if i % 4 in (1, 3)} <= {None, "503"}


def test_faults_are_counted_per_endpoint() -> None:
    stats = Stats()
    injector = FaultInjector("any:429=1", 0, stats)
    for target in ("create", "create", "result"):
        assert injector.decide(target) == "429"
    assert injector.decide("webhook") is None
    assert stats.snapshot()["faults_injected"] == {"create:429": 2, "result:429": 1}


# -- HTTP faults ------------------------------------------------------------------------------


def test_drop_commits_then_closes(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(faults="create:drop=0.5", seed=_seed_firing_first_only(0.5))
    api = Api(server)
    with pytest.raises(httpx.RemoteProtocolError):
        api.create(["a.png"], key="order-1")
    assert server.stats()["orders_created"] == 1  # committed although never answered
    retry = api.create(["a.png"], key="order-1")
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["data"]["orderId"] == "100000001"
    assert server.stats()["orders_created"] == 1
    assert server.stats()["faults_injected"] == {"create:drop": 1}


def test_dropped_confirm_is_committed(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(faults="confirm:drop=1")
    api = Api(server)
    created = api.create(["a.png"]).json()["data"]
    httpx.put(created["files"][0]["uploadUrl"], content=make_image("PNG"))
    with pytest.raises(httpx.RemoteProtocolError):
        api.confirm(created["orderId"])
    assert api.wait_finished(created["orderId"])["status"] == "complete"


def test_dropped_upload_is_recorded(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(faults="upload:drop=1")
    api = Api(server)
    created = api.create(["a.png"]).json()["data"]
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.put(created["files"][0]["uploadUrl"], content=make_image("PNG"))
    assert api.confirm(created["orderId"]).status_code == 200
    assert api.wait_finished(created["orderId"])["status"] == "complete"


def test_same_seed_same_faults_over_http(make_server: Callable[..., EmulatorServer]) -> None:
    def statuses(seed: int) -> list[int]:
        server = make_server(faults="get:500=0.5,any:503=0.2", seed=seed)
        api = Api(server)
        return [api.http.get("/api/v2/orders/1").status_code for _ in range(30)]

    first = statuses(11)
    assert first == statuses(11)
    assert first != statuses(12)
    assert {500, 503, 404} <= set(first)


def test_reset_does_not_commit(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(faults="create:reset=1")
    api = Api(server)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        api.create(["a.png"])
    assert server.stats()["orders_created"] == 0
    assert server.stats()["faults_injected"] == {"create:reset": 1}


def test_error_faults(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(faults="get:500=1,download:503=1,confirm:429=1,upload:503=1")
    api = Api(server)
    created = api.create(["a.png"]).json()["data"]
    failed = api.http.get(f"/api/v2/orders/{created['orderId']}")
    api.error(failed, 500, "INTERNAL_ERROR")
    unavailable = api.http.get(f"/api/v2/orders/{created['orderId']}/download")
    api.error(unavailable, 503, "SERVICE_UNAVAILABLE")
    limited = api.confirm(created["orderId"])
    api.error(limited, 429, "RATE_LIMIT_EXCEEDED")
    assert limited.headers["Retry-After"] == "1"
    upload = httpx.put(created["files"][0]["uploadUrl"], content=b"x")
    assert upload.status_code == 503 and "<Code>ServiceUnavailable</Code>" in upload.text
    stats = server.stats()
    assert stats["uploads"] == 0 and stats["orders_confirmed"] == 0 and stats["rate_limited"] == 0
    assert stats["faults_injected"] == {
        "confirm:429": 1,
        "download:503": 1,
        "get:500": 1,
        "upload:503": 1,
    }


def test_any_target(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(faults="any:503=1")
    api = Api(server)
    assert api.create(["a.png"]).status_code == 503
    assert api.http.get(api.webhooks_path).status_code == 200  # not a fault target
    assert server.stats()["faults_injected"] == {"create:503": 1}


def test_timeout_hangs_past_the_client_timeout(
    make_server: Callable[..., EmulatorServer],
) -> None:
    server = make_server(faults="create:timeout=1", fault_hang_seconds=0.4)
    with pytest.raises(httpx.ReadTimeout):
        Api(server, timeout=0.1).create(["a.png"])
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        Api(server, timeout=5).create(["a.png"])
    assert 0.3 < time.monotonic() - started < 3
    assert server.stats()["orders_created"] == 0


def test_stop_ends_a_hanging_request(make_server: Callable[..., EmulatorServer]) -> None:
    server = make_server(faults="get:timeout=1", fault_hang_seconds=60)
    errors: list[Exception] = []

    def call() -> None:
        try:
            Api(server, timeout=30).http.get("/api/v2/orders/1")
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: server.stats()["faults_injected"].get("get:timeout") == 1)
    started = time.monotonic()
    server.stop()
    caller.join(10)
    assert time.monotonic() - started < 5
    assert len(errors) == 1


# -- webhook faults ---------------------------------------------------------------------------


def _webhook_server(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver, faults: str, **kw: object
) -> tuple[EmulatorServer, Api]:
    server = make_server(faults=faults, **kw)
    api = Api(server)
    receiver.secret = api.register_webhook(receiver.url)
    return server, api


def _event_ids(receiver: WebhookReceiver, count: int) -> list[str]:
    return [json.loads(d.body)["eventId"] for d in receiver.wait_for(count)]


def test_webhook_dup(make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver) -> None:
    server, api = _webhook_server(make_server, receiver, "webhook:dup=1")
    api.submit({"a.png": make_image("PNG")})
    first, second = _event_ids(receiver, 2)
    assert first == second
    wait_stat(server, "webhooks_sent", 2)
    assert server.stats()["faults_injected"] == {"webhook:dup": 1}


def test_webhook_lose(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    server, api = _webhook_server(make_server, receiver, "webhook:lose=1")
    api.wait_finished(api.submit({"a.png": make_image("PNG")}))
    wait_until(lambda: server.stats()["faults_injected"] == {"webhook:lose": 1})
    time.sleep(0.2)
    assert receiver.received == []
    assert server.stats()["webhook_attempts"] == 0


def test_webhook_badsig(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    server, api = _webhook_server(make_server, receiver, "webhook:badsig=1")
    api.submit({"a.png": make_image("PNG")})
    bad, good = receiver.wait_for(2)
    assert (bad.status, good.status) == (401, 200)
    assert bad.body == good.body and bad.signature != good.signature
    wait_stat(server, "webhooks_sent", 1)


def test_webhook_delay(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    _, api = _webhook_server(make_server, receiver, "webhook:delay=1", webhook_delay_seconds=0.5)
    order_id = api.submit({"a.png": make_image("PNG")})
    api.wait_finished(order_id)
    finished = time.monotonic()
    receiver.wait_for(1)
    assert time.monotonic() - finished > 0.3


def test_webhook_reorder(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    seed = _seed_firing_first_only(0.5)
    _, api = _webhook_server(make_server, receiver, "webhook:reorder=0.5", seed=seed)
    first = api.submit({"a.png": make_image("PNG")})
    api.wait_finished(first)
    time.sleep(0.1)
    assert receiver.received == []  # held back until a later event
    second = api.submit({"b.png": make_image("PNG")})
    orders = [json.loads(d.body)["data"]["orderId"] for d in receiver.wait_for(2)]
    assert orders == [second, first]


def test_reordered_webhook_is_sent_after_the_hold(
    make_server: Callable[..., EmulatorServer], receiver: WebhookReceiver
) -> None:
    _, api = _webhook_server(make_server, receiver, "webhook:reorder=1", webhook_reorder_hold=0.3)
    order_id = api.submit({"a.png": make_image("PNG")})
    (delivery,) = receiver.wait_for(1)
    assert json.loads(delivery.body)["data"]["orderId"] == order_id
