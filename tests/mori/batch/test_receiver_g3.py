"""The webhook receiver with ``generation="g3"``: X-MoriBiz-Signature, G3 event types.

(The G1 receiver is covered by ``test_receiver.py`` beside it.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mori.batch.ledger import Ledger
from mori.batch.receiver import PATH, create_app
from mori.webhooks import G3_SIGNATURE_HEADER, SIGNATURE_HEADER, sign

SECRET = "whsec_c2VjcmV0LWZvci10ZXN0cw"


def g3_event(event_type: str = "order.antiAi.completed", **data: object) -> bytes:
    event = {
        "eventId": "0e4c3f0a-9f77-4a8e-9f2a-2f1f7f0c9a11",
        "eventType": event_type,
        "occurredAt": "2026-02-19T12:00:00.000Z",
        "data": {"orderId": 9001, "orderName": "n", "fileCount": 1, **data},
    }
    return json.dumps(event, separators=(",", ":")).encode()


def post(app: FastAPI, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rx") as client:
            return await client.post(PATH, content=body, headers=headers)

    return asyncio.run(send())


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    yield ledger
    ledger.close()


@pytest.mark.parametrize(
    ("event_type", "status"),
    [("order.antiAi.completed", "complete"), ("order.antiAi.failed", "failed")],
)
def test_g3_deliveries_are_verified_and_recorded(
    ledger: Ledger, event_type: str, status: str
) -> None:
    app = create_app(ledger, lambda: SECRET, generation="g3")
    body = g3_event(event_type)
    response = post(app, body, {G3_SIGNATURE_HEADER: sign(body, SECRET)})
    assert response.status_code == 200 and response.json() == {"ok": True, "duplicate": False}
    assert ledger.event_status("9001") == status


def test_g3_receiver_rejects_a_g1_signature_header(ledger: Ledger) -> None:
    app = create_app(ledger, lambda: SECRET, generation="g3")
    body = g3_event()
    assert post(app, body, {SIGNATURE_HEADER: sign(body, SECRET)}).status_code == 401
    assert ledger.event_status("9001") is None


def test_g3_events_of_other_products_are_acknowledged_and_ignored(ledger: Ledger) -> None:
    app = create_app(ledger, lambda: SECRET, generation="g3")
    body = g3_event("order.watermarkEmbed.completed")
    response = post(app, body, {G3_SIGNATURE_HEADER: sign(body, SECRET)})
    assert response.status_code == 202
    assert ledger.event_status("9001") is None
