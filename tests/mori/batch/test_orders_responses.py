"""How OrderProcessor records the SDK's answers, over real HTTP against a scripted MORI:
an unreadable answer after create or confirm leaves the order pending and resumable (the rerun
replays the same idempotency key); a refusal's field details reach the audit message."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mori.batch import manifest
from mori.batch.completion import CompletionWaiter
from mori.batch.ledger import Ledger
from mori.batch.orders import OrderProcessor, OrderSettings
from mori.batch.plan import plan_orders, record_intent
from mori.batch.storage import Storage
from mori.client import MoriClient
from mori.retry import RetryPolicy
from tests.mori.servers import JSONServer


@dataclass
class Script:
    """What the scripted MORI answers to create and confirm, and what it was sent."""

    create: list[tuple[int, Any]] = field(default_factory=list)
    confirm: list[tuple[int, Any]] = field(default_factory=list)
    keys: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def __call__(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple:
        key = next((v for k, v in headers.items() if k.lower() == "x-idempotency-key"), None)
        with self.lock:
            if method == "PUT":
                return 200, {}, None
            self.keys.append((path, key))
            if path == "/api/v2/orders":
                status, payload = self.create.pop(0)
                if payload == "CREATED":
                    files = json.loads(body)["files"]
                    payload = {"data": _created(files, self.url)}
                return status, {}, payload
            if path == "/api/v2/orders/confirm":
                status, payload = self.confirm.pop(0)
                return status, {}, payload
        return 404, {}, {"code": "NOT_FOUND", "message": path}


def _created(files: list[dict[str, str]], url: str) -> dict[str, Any]:
    return {
        "orderId": 555,
        "orderName": "n",
        "status": "pending",
        "orderFiles": [
            {"fileId": i, "fileName": f["fileName"], "uploadUrl": f"{url}/put/{i}?sig=x"}
            for i, f in enumerate(files)
        ],
    }


@dataclass
class World:
    script: Script
    ledger: Ledger
    processor: OrderProcessor
    order_key: str


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    for i in range(2):
        Image.new("RGB", (6, 4), (i * 90, 10, 20)).save(tmp_path / f"p{i}.png")
    (tmp_path / "m.csv").write_text("source\np0.png\np1.png\n")
    storage = Storage()
    items = manifest.load(str(tmp_path / "m.csv"), storage)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    (order,) = plan_orders([it for it in items if it.ok])
    record_intent([order], items, ledger)
    script = Script()
    with JSONServer(script) as server:
        script.url = server.url
        retry = RetryPolicy(max_attempts=2, initial_delay=0.01, deadline=5)
        with MoriClient(server.url, "k", retry=retry, timeout=5) as client:
            waiter = CompletionWaiter(client, ledger, use_webhooks=False, poll_interval=0.01)
            settings = OrderSettings(str(tmp_path / "out"), wait_timeout=0.05)
            processor = OrderProcessor(client, ledger, storage, waiter, settings)
            yield World(script, ledger, processor, order.order_key)
    ledger.close()


UNREADABLE = (200, {"success": True, "message": "ok"})


def test_an_unreadable_create_answer_leaves_the_order_pending_and_resumable(world: World) -> None:
    world.script.create = [UNREADABLE, (200, "CREATED")]
    world.script.confirm = [UNREADABLE]

    first = world.processor.process(world.order_key)
    assert (first.status, first.error_code) == ("pending", "INVALID_RESPONSE")
    assert "resumable" in (first.error_message or "")
    assert {i.status for i in first.images.values()} == {"pending"}
    assert world.ledger.order(world.order_key).status == "planned"

    second = world.processor.process(world.order_key)  # the rerun: create replays, confirm fails
    assert (second.status, second.error_code) == ("pending", "INVALID_RESPONSE")
    record = world.ledger.order(world.order_key)
    assert (record.status, record.order_id) == ("uploaded", "555")
    creates = [key for path, key in world.script.keys if path == "/api/v2/orders"]
    assert creates == [world.order_key, world.order_key]


def test_refusal_details_reach_the_audit_message(world: World) -> None:
    refusal = {
        "success": False,
        "message": "Bad Request",
        "code": "INVALID_REQUEST",
        "errors": {
            "message": "fileName has an unsupported extension",
            "propertyName": "files[0].fileName",
        },
    }
    world.script.create = [(400, refusal)]
    result = world.processor.process(world.order_key)
    expected = "Bad Request: files[0].fileName: fileName has an unsupported extension"
    assert (result.status, result.error_code, result.error_message) == (
        "failed",
        "INVALID_REQUEST",
        expected,
    )
    record = world.ledger.order(world.order_key)
    assert (record.status, record.error_message) == ("failed", expected)
